//! Several programs in one sandbox command (`:::`, `::pipe::`), and the
//! per-thread XCR0 calls, as far as a KVM that does not apply XCR0 can
//! show them; what XCR0 each program sees is checked in tests/xcr0.rs (the
//! real-KVM lane).

mod common;

use common::*;

const SEQ: &str = "/usr/bin/seq";

#[test]
fn programs_separated_by_three_colons_share_stdio_and_run_together() {
    if !kvm() {
        return;
    }
    // Both are alive at once: each waits for the other's file.
    let dir = scratch().join("mixing-together");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let wait_for = |me: &str, other: &str| {
        format!(
            "touch {d}/{me}; for i in $(seq 100); do [ -e {d}/{other} ] && echo {me} saw {other} && exit 0; sleep 0.05; done; exit 1",
            d = dir.display()
        )
    };
    let (a, b) = (wait_for("a", "b"), wait_for("b", "a"));
    let o = sandbox(&[
        "--xcr0=0x7",
        "--",
        "/bin/sh",
        "-c",
        &a,
        ":::",
        "--xcr0=0x3",
        "--",
        "/bin/sh",
        "-c",
        &b,
    ]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["a saw b", "b saw a"]);
}

#[test]
fn a_pipe_joins_two_programs() {
    if !kvm() {
        return;
    }
    // tail, not wc: coreutils' wc picks AVX2 from CPUID alone, and dies
    // by SIGILL under an XCR0 without AVX where one is enforced.
    let o = sandbox(&[
        "--",
        SEQ,
        "1",
        "200000",
        "::pipe::",
        "--xcr0=0x3",
        "--",
        "/usr/bin/tail",
        "-n",
        "1",
    ]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "200000\n");
}

#[test]
fn the_status_is_the_first_failure_and_stats_say_how_each_ended() {
    if !kvm() {
        return;
    }
    let o = sandbox(&[
        "--stats",
        "--",
        "/bin/true",
        ":::",
        "/bin/sh",
        "-c",
        "exit 3",
        ":::",
        "/bin/sh",
        "-c",
        "kill -TERM $$",
    ]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("program 1 (/bin/true, xcr0 0x"), "{err}");
    assert!(err.contains("): exited 0"), "{err}");
    assert!(err.contains("): exited 3"), "{err}");
    assert!(err.contains("): killed by signal 15"), "{err}");
    // Only deaths: 128 + the signal of the first.
    let o = sandbox(&["--", "/bin/true", ":::", "/bin/sh", "-c", "kill -TERM $$"]);
    assert_exit(&o, 128 + libc::SIGTERM);
}

#[test]
fn bad_mixes_are_one_line_and_status_2() {
    if !kvm() {
        return;
    }
    for (args, what) in [
        (&["--", "/bin/true", ":::"][..], "program 2: PROG missing"),
        (
            &["--", "/bin/true", ":::", "--stats", "/bin/true"],
            "program 2: unknown option '--stats'",
        ),
        (
            &["--", "/bin/true", ":::", "--xcr0"],
            "program 2: --xcr0 needs a MASK",
        ),
        (
            &["--", "/bin/true", ":::", "--xcr0=0x2", "/bin/true"],
            "program 2: invalid --xcr0 '0x2'",
        ),
        (
            &[
                "--",
                "/bin/true",
                "::pipe::",
                "--xcr0=0x1000000",
                "/bin/true",
            ],
            "program 2: invalid --xcr0",
        ),
    ] {
        let o = sandbox(args);
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with(&format!("xcr0-sandbox: {what}")),
            "{args:?}: {err}"
        );
    }
}

/// xcr0-set MODE ARGS under `opts` (sandbox options), as key=value lines;
/// asserts exit 0.
fn xcr0_set_run(opts: &[&str], mode: &[&str]) -> std::collections::HashMap<String, String> {
    let prog = xcr0_set();
    let mut args: Vec<&str> = opts.to_vec();
    args.push("--");
    args.push(prog.to_str().unwrap());
    args.extend(mode);
    let o = sandbox(&args);
    assert_exit(&o, 0);
    keyvals(&stdout(&o))
}

#[test]
fn arch_set_xcr0_refuses_bad_values_and_all_ones_restores_the_default() {
    if !kvm() {
        return;
    }
    let supported = check_mask("supported xcr0");
    for (opts, default) in [(&[][..], default_xcr0()), (&["--xcr0=0x3"][..], 0x3)] {
        let kv = xcr0_set_run(opts, &["errnos"]);
        assert_eq!(hex(&kv, "default"), default, "ARCH_GET_XCR0 under {opts:?}");
        assert_eq!(hex(&kv, "supported"), supported, "CPUID 0xD.0");
        // Not the rules: x87 clear, AVX without SSE.
        assert_eq!(kv["set_0x2"], "EINVAL");
        assert_eq!(kv["set_0x5"], "EINVAL");
        // Valid, but with a component this KVM lacks.
        assert_ne!(hex(&kv, "enodev_value") & !supported, 0);
        assert_eq!(kv["set_enodev"], "ENODEV", "{kv:#?}");
        assert_eq!(kv["set_all_ones"], "0");
        assert_eq!(hex(&kv, "get_restored"), default, "after ~0 under {opts:?}");
    }
}

#[test]
fn arch_get_xcr0_follows_arch_set_xcr0_until_all_ones() {
    if !kvm() {
        return;
    }
    let kv = xcr0_set_run(&["--xcr0=0x3"], &["get-set-get", "0x7"]);
    assert_eq!(hex(&kv, "get0"), 0x3);
    assert_eq!(kv["set"], "0");
    assert_eq!(hex(&kv, "get1"), 0x7);
    // ~0: back to --xcr0, which disables AVX: the program ran VZEROUPPER,
    // so its upper YMM halves are in their initial state.
    assert_eq!((kv["restore"].as_str(), hex(&kv, "get2")), ("0", 0x3));
}

#[test]
fn each_thread_and_a_child_forked_after_a_change_get_their_own_xcr0() {
    if !kvm() {
        return;
    }
    // Only enabling (nothing in use to refuse): main keeps 0x3, thread a
    // sets 0x7, thread b everything of x87|SSE|AVX|AVX-512|PKRU supported.
    let full = check_mask("supported xcr0") & 0x2e7;
    let b = format!("{full:#x}");
    let kv = xcr0_set_run(&["--xcr0=0x3"], &["threads", "0x7", &b]);
    for (key, want) in [
        ("a_get", 0x7),
        ("b_get", full),
        ("child_get", full),
        ("main_get", 0x3),
    ] {
        assert_eq!(hex(&kv, key), want, "{key}: {kv:#?}");
    }
    assert_eq!((kv["a_set"].as_str(), kv["b_set"].as_str()), ("0", "0"));
}

#[test]
fn arch_prctl_0x1021_sets_xcr0_only_with_arch_prctl_compat() {
    if !kvm() {
        return;
    }
    // Mainline's ARCH_GET_XCOMP_SUPP: 0x7 is no address it can write to.
    let kv = xcr0_set_run(&["--xcr0=0x3"], &["compat", "0x7"]);
    assert_eq!(kv["set"], "EFAULT");
    assert_eq!(hex(&kv, "get_set"), 0x3);
    // The patch's ARCH_SET_XCR0.
    let kv = xcr0_set_run(&["--xcr0=0x3", "--arch-prctl-compat"], &["compat", "0x7"]);
    assert_eq!(kv["set"], "0");
    assert_eq!(hex(&kv, "get_set"), 0x7);
}
