//! `--explain`: each #UD named (instruction, symbol and line, the XSAVE
//! component it needs, whether the task's XCR0 disables it), and at exit
//! each task's first CPUID leaf 0xD (tests/guests/ud.c). An instruction
//! of a disabled component raises #UD only where the KVM applies XCR0:
//! those cases run in the real-KVM lane and say so elsewhere.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::*;

fn ud() -> PathBuf {
    guest("ud", &["-g"])
}

fn explained(xcr0: Option<u64>, mode: &str) -> Output {
    let mut c = sandbox_cmd();
    if let Some(x) = xcr0 {
        c.arg(format!("--xcr0={x:#x}"));
    }
    c.arg("--explain").arg("--").arg(ud()).arg(mode);
    run_limited(c)
}

/// The `#UD` line of `o`'s stderr.
fn ud_line(o: &Output) -> String {
    stderr(o)
        .lines()
        .find(|l| l.contains("#UD at 0x"))
        .unwrap_or_else(|| panic!("no #UD reported:\n{}", stderr(o)))
        .to_string()
}

/// Whether this KVM lets CPUID fault for the sandbox (`--check`).
fn cpuid_seen() -> bool {
    let mut c = std::process::Command::new(SANDBOX);
    c.arg("--check");
    stdout(&run_limited(c)).contains("cpuid: CPUID at CPL3 faults")
}

#[test]
fn ud2_is_named_and_explained_by_no_component() {
    if !kvm() {
        return;
    }
    let o = explained(None, "ud2");
    assert_signal(&o, libc::SIGILL);
    let line = ud_line(&o);
    let path = ud().display().to_string();
    assert!(
        line.contains(&format!("({path}: raise_ud2+0x0, ")),
        "{line}"
    );
    assert!(line.contains("tests/guests/ud.c:"), "{line}");
    assert!(
        line.ends_with(": ud2: no XCR0 component explains it"),
        "{line}"
    );
    // Handled by the program: reported all the same.
    let o = explained(None, "handled");
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "xsave size ok\nhandled\nno #UD\n");
    assert!(ud_line(&o).contains("raise_ud2+0x0"));
    // Quiet without --explain.
    let mut c = sandbox_cmd();
    c.arg("--").arg(ud()).arg("handled");
    let o = run_limited(c);
    assert!(!stderr(&o).contains("explain"), "{}", stderr(&o));
}

#[test]
fn the_first_cpuid_leaf_0xd_is_listed_at_exit() {
    if !kvm() {
        return;
    }
    let o = explained(None, "handled");
    let err = stderr(&o);
    let seen = cpuid_seen();
    assert_eq!(
        err.contains("first looked at XCR0 with CPUID leaf 0xd at 0x"),
        seen,
        "CPUID faults here: {seen}\n{err}"
    );
    assert!(
        err.contains("XGETBV and XSAVE-family instructions run without leaving the guest"),
        "{err}"
    );
}

/// Instructions of components the XCR0 disables: AVX and AVX2 under 0x3,
/// AVX-512 under 0x7 where the host has it.
#[test]
fn a_disabled_component_is_named() {
    if !kvm() {
        return;
    }
    if !enforced() {
        eprintln!(
            "skipped here: this KVM does not apply XCR0, so no #UD comes (the real-KVM lane runs it)"
        );
        return;
    }
    let mut cases = vec![
        (
            0x3,
            "avx",
            "use_avx+0x",
            "vaddps ymm0,ymm1,ymm2",
            "avx (bit 2), which this task's XCR0 0x3 disables",
        ),
        (
            0x3,
            "avx2",
            "use_avx2+0x",
            "vpaddd ymm0,ymm1,ymm2",
            "avx (bit 2), which this task's XCR0 0x3 disables",
        ),
    ];
    if check_mask("supported xcr0") & 0xe0 == 0xe0 {
        cases.push((
            0x7,
            "avx512",
            "use_avx512+0x",
            "vpaddd zmm0,zmm1,zmm2",
            "opmask (bit 5), zmm_hi256 (bit 6), hi16_zmm (bit 7), which this task's XCR0 0x7 disables",
        ));
    } else {
        eprintln!("AVX-512: this host has none");
    }
    for (xcr0, mode, sym, insn, why) in cases {
        let o = explained(Some(xcr0), mode);
        assert_signal(&o, libc::SIGILL);
        let line = ud_line(&o);
        assert!(line.contains(sym), "{mode}: {line}");
        assert!(
            line.contains(&format!("{insn}: it needs {why}")),
            "{mode}: {line}"
        );
    }
}
