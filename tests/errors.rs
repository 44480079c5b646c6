//! Bad input: one line naming what is wrong, and the conventional status.
//! Nothing of the program runs.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

fn one_line(o: &std::process::Output) -> String {
    let e = stderr(o);
    assert_eq!(e.lines().count(), 1, "one line expected, got:\n{e}");
    assert!(e.starts_with("xcr0-sandbox: "), "{e}");
    e
}

fn plain(args: &[&str]) -> std::process::Output {
    run(
        {
            let mut c = Command::new(SANDBOX);
            c.args(args);
            c
        },
        None,
        &[],
    )
}

#[test]
fn not_found_is_127() {
    if !kvm() {
        return;
    }
    let o = sandbox(&["no-such-program-xcr0"]);
    assert_exit(&o, 127);
    assert_eq!(
        one_line(&o),
        "xcr0-sandbox: no-such-program-xcr0: command not found\n"
    );
    let o = sandbox(&["/nonexistent/prog"]);
    assert_exit(&o, 127);
    assert!(one_line(&o).contains("/nonexistent/prog: No such file or directory"));
}

#[test]
fn cannot_execute_is_126_with_the_reason() {
    if !kvm() {
        return;
    }
    let d = scratch();
    let text = d.join("not-elf");
    std::fs::write(&text, "just text\n").unwrap();
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o755)).unwrap();
    let noexec = d.join("no-x-bit");
    std::fs::write(&noexec, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut elf32 = vec![0u8; 64];
    elf32[..4].copy_from_slice(b"\x7fELF");
    elf32[4] = 1;
    let e32 = d.join("elf32");
    std::fs::write(&e32, &elf32).unwrap();
    std::fs::set_permissions(&e32, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut arm = vec![0u8; 64];
    arm[..4].copy_from_slice(b"\x7fELF");
    arm[4] = 2;
    arm[5] = 1;
    arm[16] = 2;
    arm[18] = 183;
    let earm = d.join("elf-aarch64");
    std::fs::write(&earm, &arm).unwrap();
    std::fs::set_permissions(&earm, std::fs::Permissions::from_mode(0o755)).unwrap();
    // An x86-64 ELF header whose program header table (2 entries at 64)
    // lies past the end of the file.
    let mut trunc = arm.clone();
    trunc[16] = 2; // ET_EXEC
    trunc[18] = 62; // EM_X86_64
    trunc[32] = 64; // e_phoff
    trunc[54] = 56; // e_phentsize
    trunc[56] = 2; // e_phnum
    let etrunc = d.join("elf-truncated");
    std::fs::write(&etrunc, &trunc).unwrap();
    std::fs::set_permissions(&etrunc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let badinterp = d.join("bad-interp");
    std::fs::write(&badinterp, "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(&badinterp, std::fs::Permissions::from_mode(0o755)).unwrap();

    let cases = [
        (d.join("."), "Is a directory"),
        (text, "Exec format error"),
        (noexec, "Permission denied"),
        (e32, "32-bit ELF is not supported"),
        (earm, "machine 183, not x86-64"),
        (etrunc, "reading program headers"),
        (badinterp, "bad interpreter /no/such/interpreter"),
    ];
    for (path, why) in cases {
        let o = sandbox(&[path.as_os_str()]);
        assert_exit(&o, 126);
        let line = one_line(&o);
        assert!(line.contains(why), "{}: {line}", path.display());
    }
}

#[test]
fn usage_errors_are_2() {
    let o = plain(&[]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("PROG"), "{}", stderr(&o));
    let o = plain(&["--no-such-flag", "true"]);
    assert_exit(&o, 2);
}

#[test]
fn invalid_xcr0_names_the_rule_and_the_supported_mask() {
    if !kvm() {
        return;
    }
    let cases = [
        ("0x6", "x87 (bit 0) must always be set"),
        ("0x5", "avx (bit 2) requires sse (bit 1)"),
        ("0xb", "bndregs and bndcsr (bits 3, 4) must be set together"),
        ("0x27", "(bits 5-7) must be set together"),
        ("0xe3", "AVX-512 (bits 5-7) requires avx (bit 2)"),
        (
            "0x20003",
            "tilecfg and tiledata (bits 17, 18) must be set together",
        ),
        ("0x100", "bits 0x100 are not XCR0 state components"),
        ("x87,zmm", "unknown component 'zmm'"),
        ("seven", "unknown component 'seven'"),
        ("0xq", "is neither a number"),
    ];
    for (mask, rule) in cases {
        let o = plain(&["--xcr0", mask, "true"]);
        assert_exit(&o, 2);
        let line = one_line(&o);
        assert!(line.contains(rule), "{mask}: {line}");
        assert!(line.contains("this KVM supports 0x"), "{mask}: {line}");
    }
}

#[test]
fn unsupported_components_are_refused() {
    if !kvm() {
        return;
    }
    // AMX is in no KVM this project runs on; the message lists what is.
    let o = plain(&["--xcr0", "x87,sse,avx,amx", "true"]);
    assert_exit(&o, 2);
    let line = one_line(&o);
    assert!(
        line.contains("bits 0x60000 are not supported by this KVM; it supports 0x"),
        "{line}"
    );
}

#[test]
fn unenforced_xcr0_stops_unless_allowed() {
    if !kvm() || enforced() {
        eprintln!(
            "skipped: needs a KVM that does not apply XCR0 (this one does, or there is none)"
        );
        return;
    }
    let o = plain(&["--xcr0", "0x3", "echo", "should not run"]);
    assert_exit(&o, 125);
    let line = one_line(&o);
    assert!(line.contains("XCR0 is not enforced by this KVM"), "{line}");
    assert!(line.contains("--allow-unenforced-xcr0"), "{line}");
    assert_eq!(stdout(&o), "", "nothing of the program ran");

    let o = plain(&["--xcr0", "0x3", "--allow-unenforced-xcr0", "echo", "ran"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "ran\n");
    assert_eq!(
        stderr(&o).matches("warning: XCR0 is not enforced").count(),
        1,
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_reports_the_kvm_and_its_enforcement() {
    if !kvm() {
        return;
    }
    let o = plain(&["--check"]);
    let out = stdout(&o);
    assert!(out.starts_with("kvm: "), "{out}");
    assert!(out.contains("supported xcr0: 0x"), "{out}");
    assert!(out.contains("capability: KVM_CAP_SYNC_REGS = "), "{out}");
    let pvm = std::path::Path::new("/sys/module/kvm_pvm").exists();
    if o.status.success() {
        assert!(out.ends_with("xcr0: enforced\n"), "{out}");
        assert!(!pvm, "PVM does not apply XCR0 (kvm-platforms.md)");
    } else {
        assert_exit(&o, 1);
        assert!(out.ends_with("xcr0: not enforced\n"), "{out}");
        assert!(out.contains("NOT applied"), "{out}");
    }
    if pvm {
        assert!(out.contains("kvm: PVM"), "{out}");
        assert_exit(&o, 1);
    }
}

#[test]
fn kvm_unavailable_says_why_and_how_to_fix() {
    if !kvm() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to hide /dev/kvm in a mount namespace");
        return;
    }
    let hide = format!("mount -t tmpfs none /dev && exec {SANDBOX} true");
    let o = run(
        {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c", &hide]);
            c
        },
        None,
        &[],
    );
    if stderr(&o).contains("unshare failed") {
        eprintln!("skipped: mount namespaces unavailable: {}", stderr(&o));
        return;
    }
    assert_exit(&o, 125);
    assert!(
        one_line(&o).contains("/dev/kvm does not exist: load KVM (modprobe kvm_amd or kvm_intel)")
    );

    let mode = std::fs::metadata("/dev/kvm")
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .unwrap_or(0);
    if mode & 0o006 == 0o006 {
        eprintln!(
            "skipped: /dev/kvm is open to every user here (mode {mode:o}): no permission error to provoke"
        );
        return;
    }
    let o = run(
        {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                SANDBOX,
                "true",
            ]);
            c
        },
        None,
        &[],
    );
    assert_exit(&o, 125);
    assert!(
        one_line(&o).contains("no permission to open /dev/kvm: add the user to the 'kvm' group"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn asking_for_no_xcr0_runs_without_a_word_on_any_kvm() {
    if !kvm() {
        return;
    }
    // No --xcr0, no --allow-unenforced-xcr0: the program gets the host's
    // XCR0 (less what the KVM cannot give), and a KVM that applies none
    // leaves it the host's own, as natively: nothing to refuse or warn
    // about, on every machine kind (an AMX host's PVM offers 0xe7 only).
    let o = plain(&["echo", "ran"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "ran\n");
    assert_eq!(stderr(&o), "", "nothing asked, nothing said");
}
