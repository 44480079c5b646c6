//! `xcr0-sandbox check-trace DIR`: can the rr trace in DIR be replayed
//! here? Its XCR0 and CPUID leaf 0xD (each component's size, offset and
//! alignment) against this host's and this KVM's.

use std::path::Path;

use syscall_proxy::cpuid::{self, Regs, rr_trace};
use vmm::xcr0;

/// What the host offers a replay.
pub struct Host {
    /// The XCR0 programs run with outside the sandbox.
    pub xcr0: u64,
    /// What the KVM supports for a guest.
    pub supported: u64,
    /// Whether the KVM applies a guest's XCR0 (`--check`).
    pub enforced: bool,
    /// Whether CPUID at CPL3 faults for a guest (ARCH_SET_CPUID works
    /// inside the sandbox).
    pub sandbox_cpuid_faulting: bool,
    /// Whether programs outside the sandbox have CPUID faulting.
    pub native_cpuid_faulting: bool,
}

/// The verdict, and its exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    AsIs,
    /// With this command line.
    With(String),
    Not(String),
}

impl Verdict {
    pub fn status(&self) -> u8 {
        match self {
            Verdict::AsIs | Verdict::With(_) => 0,
            Verdict::Not(_) => 1,
        }
    }
}

fn name(bit: u32) -> String {
    xcr0::component_name(bit).map_or_else(|| format!("{bit}"), |n| format!("{bit} ({n})"))
}

/// The CPU vendor CPUID leaf 0 names.
fn vendor(leaf0: Regs) -> Vec<u8> {
    [leaf0[1], leaf0[3], leaf0[2]]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

/// The verdict on a trace with `trace`'s header, in `dir`, on `host`, whose
/// CPUID leaf 0xD subleaves `host_leaf_d` gives.
pub fn verdict(
    trace: &rr_trace::Header,
    dir: &Path,
    host: &Host,
    host_cpuid: impl Fn(u32, u32) -> Regs,
) -> Verdict {
    let want = trace.xcr0();
    for bit in (2..63).filter(|b| want & (1 << b) != 0) {
        let [t_size, t_off, t_ecx, _] = trace.leaf(0xd, bit);
        let [h_size, h_off, h_ecx, _] = host_cpuid(0xd, bit);
        let (t_align, h_align) = (t_ecx & 2 != 0, h_ecx & 2 != 0);
        if h_size == 0 {
            return Verdict::Not(format!(
                "the trace's XCR0 {want:#x} has component {}, which this host's CPU does not have",
                name(bit)
            ));
        }
        if (t_size, t_off, t_align) != (h_size, h_off, h_align) {
            let vendors = if vendor(trace.leaf(0, 0)) != vendor(host_cpuid(0, 0)) {
                " (recorded on another vendor's CPU: AMD leaves out the MPX components, so the AVX-512 offsets differ)"
            } else {
                ""
            };
            return Verdict::Not(format!(
                "XSAVE layout differs for component {}: the trace's offset {t_off} size {t_size}{}, this host's offset {h_off} size {h_size}{}{vendors}",
                name(bit),
                if t_align { " 64-byte aligned" } else { "" },
                if h_align { " 64-byte aligned" } else { "" },
            ));
        }
    }
    let faulting_needed = trace.cpuid_faulting && !host.native_cpuid_faulting;
    if want == host.xcr0 && !faulting_needed {
        return Verdict::AsIs;
    }
    let missing = want & !host.supported & !(xcr0::X87 | xcr0::SSE);
    if let Some(bit) = (0..64).find(|b| missing & (1 << b) != 0) {
        return Verdict::Not(format!(
            "the trace's XCR0 {want:#x} has component {}, which this host's KVM does not support (it supports {:#x})",
            name(bit),
            host.supported
        ));
    }
    if want != host.xcr0 && !host.enforced {
        return Verdict::Not(format!(
            "the trace needs XCR0 {want:#x}, programs here see {:#x}, and this host's KVM does not apply a guest's XCR0 (xcr0-sandbox --check)",
            host.xcr0
        ));
    }
    if faulting_needed && !host.sandbox_cpuid_faulting {
        return Verdict::Not(
            "the trace was recorded with CPUID faulting, which neither this host nor its KVM offers"
                .into(),
        );
    }
    let mut cmd = String::from("xcr0-sandbox");
    if want != host.xcr0 {
        cmd += &format!(" --xcr0={want:#x} --cpuid={}", dir.display());
    }
    cmd += &format!(" -- rr replay {}", dir.display());
    Verdict::With(cmd)
}

/// Prints the verdict on the trace in `dir`; its exit status (2 for an
/// unreadable trace).
pub fn run(dir: &Path, host: impl FnOnce() -> Result<Host, String>) -> u8 {
    let trace = match rr_trace::read(dir) {
        Ok(t) => t,
        Err(e) => {
            crate::report::line(format_args!("check-trace: {e}"));
            return 2;
        }
    };
    let host = match host() {
        Ok(h) => h,
        Err(e) => {
            crate::report::line(format_args!("check-trace: {e}"));
            return 2;
        }
    };
    let want = trace.xcr0();
    println!(
        "trace xcr0: {want:#x} ({}){}",
        vmm::Xcr0::new(want).map(|x| x.names()).unwrap_or_default(),
        if trace.recorded_xcr0 == 0 {
            " (recorded as 0, unknown: CPUID 0xD.0's)"
        } else {
            ""
        }
    );
    println!(
        "host xcr0: {:#x}, the KVM supports {:#x} and {}",
        host.xcr0,
        host.supported,
        if host.enforced {
            "applies a guest's XCR0"
        } else {
            "does not apply a guest's XCR0"
        }
    );
    println!(
        "cpuid faulting: {} in the trace",
        if trace.cpuid_faulting { "on" } else { "off" }
    );
    let v = verdict(&trace, dir, &host, cpuid::host);
    match &v {
        Verdict::AsIs => println!("replayable here as is: rr replay {}", dir.display()),
        Verdict::With(cmd) => {
            println!("replayable here with: {cmd}");
            println!(
                "(JuliaLang's rr, which sets XCR0 with arch_prctl 0x1021 after each exec, also needs --arch-prctl-compat)"
            );
        }
        Verdict::Not(why) => println!("not replayable on this host: {why}"),
    }
    v.status()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD: Regs = [0x10, 0x6874_7541, 0x444d_4163, 0x6974_6e65];
    const INTEL: Regs = [0x20, 0x756e_6547, 0x6c65_746e, 0x4965_6e69];

    /// A CPU with AVX-512, laid out as `vendor` lays it out.
    fn cpu(vendor: Regs) -> impl Fn(u32, u32) -> Regs {
        move |leaf, sub| match (leaf, sub) {
            (0, _) => vendor,
            (0xd, 2) => [256, 576, 0, 0],
            (0xd, 5) if vendor == AMD => [64, 832, 0, 0],
            (0xd, 6) if vendor == AMD => [512, 896, 0, 0],
            (0xd, 7) if vendor == AMD => [1024, 1408, 0, 0],
            (0xd, 5) => [64, 1088, 0, 0],
            (0xd, 6) => [512, 1152, 0, 0],
            (0xd, 7) => [1024, 1664, 0, 0],
            (0xd, 9) => [8, 2432, 0, 0],
            _ => [0; 4],
        }
    }

    fn trace(xcr0: u64, of: impl Fn(u32, u32) -> Regs) -> rr_trace::Header {
        let mut records = vec![(0, u32::MAX, of(0, 0))];
        records.extend((0..19).map(|i| (0xd, i, of(0xd, i))));
        rr_trace::Header {
            recorded_xcr0: xcr0,
            cpuid_faulting: false,
            records,
        }
    }

    fn host(xcr0: u64, enforced: bool) -> Host {
        Host {
            xcr0,
            supported: xcr0,
            enforced,
            sandbox_cpuid_faulting: true,
            native_cpuid_faulting: false,
        }
    }

    #[test]
    fn verdicts() {
        let dir = Path::new("/t");
        let same = |x, h: &Host| verdict(&trace(x, cpu(AMD)), dir, h, cpu(AMD));
        assert_eq!(same(0xe7, &host(0xe7, false)), Verdict::AsIs);
        assert_eq!(
            same(0x7, &host(0xe7, true)),
            Verdict::With("xcr0-sandbox --xcr0=0x7 --cpuid=/t -- rr replay /t".into())
        );
        let Verdict::Not(why) = same(0x7, &host(0xe7, false)) else {
            panic!("replayable without a KVM that applies XCR0")
        };
        assert!(why.contains("does not apply"), "{why}");
        let Verdict::Not(why) = same(0x2e7, &host(0xe7, true)) else {
            panic!("PKRU is not supported")
        };
        assert!(why.contains("component 9 (pkru)"), "{why}");
        // An AMD trace with AVX-512 on an Intel host.
        let Verdict::Not(why) = verdict(&trace(0xe7, cpu(AMD)), dir, &host(0xe7, true), cpu(INTEL))
        else {
            panic!("AVX-512 offsets differ")
        };
        assert!(
            why.contains("component 5 (opmask)") && why.contains("MPX"),
            "{why}"
        );
        // CPUID faulting, which only the sandbox offers here.
        let mut t = trace(0xe7, cpu(AMD));
        t.cpuid_faulting = true;
        assert_eq!(
            verdict(&t, dir, &host(0xe7, false), cpu(AMD)),
            Verdict::With("xcr0-sandbox -- rr replay /t".into())
        );
    }
}
