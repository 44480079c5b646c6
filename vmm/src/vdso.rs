//! The host's vDSO, lent to the program.
//!
//! clock_gettime, gettimeofday, time and getcpu run in the vDSO without a
//! system call. Guest virtual addresses are host addresses, so the vDSO
//! the kernel gave the sandbox, and its vvar data pages, are where the
//! program would look for them: entered read-only in the guest page
//! tables (`AddressSpace::lend`), they work in the guest wherever its TSC
//! is the host's (see tsc.rs). They stay the sandbox's: the program's
//! calls never change them on the host, where the sandbox's own clock
//! uses them.

use crate::memory::{AddressSpace, Prot};
use crate::tsc::TscSample;

/// The sandbox's vDSO and its data pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostVdso {
    /// Its ELF header: AT_SYSINFO_EHDR.
    pub base: u64,
    /// [vvar], [vvar_vclock] and [vdso]: (start, end, protection).
    pub pages: Vec<(u64, u64, Prot)>,
}

impl HostVdso {
    /// The length of its mappings together, as the kernel maps them (one
    /// span, data pages first); None if it has none.
    pub fn span(&self) -> Option<u64> {
        let start = self.pages.iter().map(|p| p.0).min()?;
        let end = self.pages.iter().map(|p| p.1).max()?;
        Some(end - start)
    }
}

/// Lends the host's vDSO to the program if the probe's `tsc` shows that
/// the guest reads the host's TSC; returns its address for
/// AT_SYSINFO_EHDR. Without it (None, the reason at debug level) the
/// program's libc makes system calls for the time, which are forwarded.
pub fn offer(space: &mut AddressSpace, tsc: &TscSample) -> Option<u64> {
    if !tsc.is_host() {
        log::debug!(
            "no vDSO: the guest's TSC ({:#x}) is not the host's (between {:#x} and {:#x})",
            tsc.guest,
            tsc.before,
            tsc.after
        );
        return None;
    }
    let Some(vdso) = host() else {
        log::debug!("no vDSO: the host gave the sandbox none");
        return None;
    };
    for &(s, e, prot) in &vdso.pages {
        if let Err(err) = space.lend(s, e, prot) {
            log::debug!("no vDSO: entering {s:#x}-{e:#x}: {err}");
            space.withdraw_lent(0, u64::MAX);
            return None;
        }
    }
    log::debug!("vDSO at {:#x}: {:x?}", vdso.base, vdso.pages);
    Some(vdso.base)
}

/// The vDSO the kernel mapped for this process, or None if it has none
/// (booted with vdso=0).
pub fn host() -> Option<HostVdso> {
    // SAFETY: getauxval reads this process's auxiliary vector.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
    if base == 0 {
        return None;
    }
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    parse(&maps, base)
}

/// The vDSO's mappings in `maps` (/proc/self/maps), if one named [vdso]
/// starts at `base`. Its data pages are named [vvar] (and, since Linux
/// 6.13, [vvar_vclock] for the paravirtual clock pages).
fn parse(maps: &str, base: u64) -> Option<HostVdso> {
    let mut pages = Vec::new();
    let mut found = false;
    for m in maps.lines().filter_map(crate::maps::parse_line) {
        let Some(name) = m.name else { continue };
        if name != "[vdso]" && !name.starts_with("[vvar") {
            continue;
        }
        found |= name == "[vdso]" && m.start == base;
        pages.push((m.start, m.end, Prot(m.prot())));
    }
    found.then_some(HostVdso { base, pages })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c8a00000-55d0c8c00000 r-xp 00000000 fd:00 123 /usr/bin/xcr0-sandbox
7fbfe4a77000-7fbfe4a7b000 r--p 00000000 00:00 0                          [vvar]
7fbfe4a7b000-7fbfe4a7d000 r--p 00000000 00:00 0                          [vvar_vclock]
7fbfe4a7d000-7fbfe4a7f000 r-xp 00000000 00:00 0                          [vdso]
7ffd1c9e0000-7ffd1ca01000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn finds_the_vdso_and_its_data_pages() {
        let v = parse(MAPS, 0x7fbf_e4a7_d000).unwrap();
        let r = Prot(Prot::READ);
        let rx = Prot(Prot::READ | Prot::EXEC);
        assert_eq!(
            v.pages,
            vec![
                (0x7fbf_e4a7_7000, 0x7fbf_e4a7_b000, r),
                (0x7fbf_e4a7_b000, 0x7fbf_e4a7_d000, r),
                (0x7fbf_e4a7_d000, 0x7fbf_e4a7_f000, rx),
            ]
        );
    }

    #[test]
    fn none_unless_the_vdso_is_at_the_auxv_address() {
        assert_eq!(parse(MAPS, 0x7fbf_e4a7_7000), None);
        assert_eq!(parse("", 0x1000), None);
    }
}
