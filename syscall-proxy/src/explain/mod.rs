//! `--explain` (and `-v`): what XCR0 changed for the program.
//!
//! Each #UD a task takes, handled by the program or not, is reported on
//! the sandbox's stderr: the instruction (decoded by iced-x86), where it is
//! (`symbols`), the XSAVE components it needs and whether the task's XCR0
//! disables them, or that no XCR0 component explains it (ud2, an invalid
//! opcode). At exit, each task's first look at XCR0 that a VMM can see: its
//! first CPUID leaf 0xD (the vCPU's CPUID faults for the sandbox to answer,
//! as under `--cpuid`). XGETBV and the XSAVE family never leave the guest
//! at CPL3, on any KVM: they cannot be seen.

mod symbols;

use std::sync::Mutex;

use iced_x86::{CpuidFeature, Decoder, DecoderOptions, EncodingKind, Formatter, IntelFormatter};
use vmm::xcr0;

use crate::thread::Thread;
use crate::umem;

/// The XSAVE components an instruction needs, from its encoding and the
/// CPUID features iced-x86 lists for it; 0 when no component does.
fn needs(encoding: EncodingKind, features: &[CpuidFeature]) -> u64 {
    let named = |prefix: &str| {
        features
            .iter()
            .any(|f| format!("{f:?}").starts_with(prefix))
    };
    let avx = xcr0::SSE | xcr0::AVX;
    if named("AMX") {
        xcr0::AMX
    } else if encoding == EncodingKind::EVEX || named("AVX512") || named("AVX10") {
        avx | xcr0::AVX512
    } else if named("MPX") {
        xcr0::BNDREGS | xcr0::BNDCSR
    } else if named("PKU") {
        xcr0::PKRU
    } else if encoding == EncodingKind::VEX
        || named("AVX")
        || named("FMA")
        || named("F16C")
        || named("VAES")
        || named("VPCLMULQDQ")
    {
        avx
    } else {
        0
    }
}

/// "AVX (bit 2)", "AVX-512 (bits 5-7)" and the like, for `mask`.
fn describe(mask: u64) -> String {
    let bits: Vec<String> = (0..64)
        .filter(|b| mask & (1 << b) != 0 && *b > 1)
        .map(|b| format!("{} (bit {b})", xcr0::component_name(b).unwrap_or("?")))
        .collect();
    bits.join(", ")
}

/// The report of a #UD at `rip` in a thread with `xcr0`, the instruction
/// being `bytes` (as many as could be read).
fn report(rip: u64, bytes: &[u8], bitness: u32, xcr0: u64, place: &str) -> String {
    let mut decoder = Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE);
    let insn = decoder.decode();
    let (text, need) = if insn.is_invalid() {
        (format!("bytes {}", hex(&bytes[..bytes.len().min(4)])), 0)
    } else {
        let mut text = String::new();
        IntelFormatter::new().format(&insn, &mut text);
        let need = if insn.mnemonic() == iced_x86::Mnemonic::Ud2 {
            0
        } else {
            needs(insn.encoding(), insn.cpuid_features())
        };
        (text, need)
    };
    let why = if need == 0 {
        "no XCR0 component explains it".to_string()
    } else if xcr0 & need != need {
        format!(
            "it needs {}, which this task's XCR0 {xcr0:#x} disables",
            describe(need & !xcr0)
        )
    } else {
        format!(
            "it needs {}, which this task's XCR0 {xcr0:#x} enables: not XCR0's doing",
            describe(need)
        )
    };
    format!("#UD at {rip:#x}{place}: {text}: {why}")
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `--explain` (or `-v`) is on for the process.
fn on(t: &Thread) -> bool {
    t.process.options.explain || t.process.options.verbose > 0
}

/// Reports the #UD the thread took at `rip`.
pub fn invalid_opcode(t: &Thread, rip: u64, bitness: u32) {
    if !on(t) {
        return;
    }
    let bytes = {
        let space = t.process.vm.memory.lock().expect("address space");
        umem::read_instruction(&space, rip)
    };
    let place = symbols::place(rip);
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let line = report(rip, &bytes, bitness, t.vcpu.xcr0().bits(), &place);
    log::warn!(target: "explain", "task {tid}: {line}");
}

/// Each thread's first CPUID leaf 0xD: its id, and where.
#[derive(Default)]
pub struct Looks(Mutex<Vec<(libc::pid_t, u64)>>);

impl Looks {
    /// Notes the thread's CPUID (`leaf`, `subleaf`) at `rip`, if it is its
    /// first of leaf 0xD.
    pub fn cpuid(&self, t: &Thread, leaf: u32, rip: u64) {
        if leaf != 0xd || !t.process.options.explain {
            return;
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let mut v = self.0.lock().expect("looks");
        if !v.iter().any(|&(t, _)| t == tid) {
            v.push((tid, rip));
        }
    }

    /// The report at exit.
    pub fn report(&self, explain: bool) {
        if !explain {
            return;
        }
        let v = self.0.lock().expect("looks");
        for &(tid, rip) in v.iter() {
            log::warn!(
                target: "explain",
                "task {tid}: first looked at XCR0 with CPUID leaf 0xd at {rip:#x}{}",
                symbols::place(rip)
            );
        }
        log::warn!(
            target: "explain",
            "{} task(s) used CPUID leaf 0xd; XGETBV and XSAVE-family instructions run without leaving the guest, on any KVM: their first uses cannot be seen",
            v.len()
        );
    }
}

/// Whether the vCPU's CPUID must fault for the sandbox to see it: under
/// `--explain` only (`-v` reports #UDs but changes no CPUID).
pub fn watches_cpuid(options: &crate::process::Options) -> bool {
    options.explain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(bytes: &[u8], xcr0: u64) -> String {
        report(0x1000, bytes, 64, xcr0, " (prog: main+0x10)")
    }

    #[test]
    fn each_kind_of_ud_is_explained() {
        // vaddps ymm0, ymm1, ymm2
        let r = explained(&[0xc5, 0xf4, 0x58, 0xc2], 0x3);
        assert!(r.contains("vaddps ymm0,ymm1,ymm2"), "{r}");
        assert!(
            r.contains("avx (bit 2), which this task's XCR0 0x3 disables"),
            "{r}"
        );
        assert!(r.starts_with("#UD at 0x1000 (prog: main+0x10): "), "{r}");
        // vpaddd zmm0, zmm1, zmm2 (EVEX)
        let r = explained(&[0x62, 0xf1, 0x75, 0x48, 0xfe, 0xc2], 0x7);
        assert!(
            r.contains("opmask (bit 5), zmm_hi256 (bit 6), hi16_zmm (bit 7)"),
            "{r}"
        );
        // ud2
        let r = explained(&[0x0f, 0x0b], 0x7);
        assert!(r.contains("ud2: no XCR0 component explains it"), "{r}");
        // AVX enabled: not XCR0's doing.
        let r = explained(&[0xc5, 0xf4, 0x58, 0xc2], 0x7);
        assert!(r.contains("enables: not XCR0's doing"), "{r}");
        // tilerelease (AMX)
        let r = explained(&[0xc4, 0xe2, 0x78, 0x49, 0xc0], 0xe7);
        assert!(r.contains("tilecfg (bit 17), tiledata (bit 18)"), "{r}");
        // Not an instruction at all.
        let r = explained(&[0x0f, 0xff], 0x7);
        assert!(r.contains("no XCR0 component explains it"), "{r}");
    }
}
