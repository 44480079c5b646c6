//! The XCR0 suite: what a program sees under each XCR0 the KVM supports.
//!
//! Meaningful only on a KVM that applies a guest's XCR0. On one that does
//! not (the CI machine's PVM) each test says so and returns; the nested
//! kvm_amd lane (tests/nested, `make test-real-kvm`) runs this file with
//! XCR0_SANDBOX_LANE=1, where skipping is a failure.

mod common;

use std::process::Command;

use common::*;

/// Whether the suite can run here; panics in the lane if it cannot.
fn ready() -> bool {
    if !kvm() {
        return false;
    }
    if enforced() {
        return true;
    }
    if std::env::var_os("XCR0_SANDBOX_LANE").is_some() {
        panic!(
            "the real-KVM lane's KVM does not enforce XCR0: {}",
            stdout(&Command::new(SANDBOX).arg("--check").output().unwrap())
        );
    }
    eprintln!(
        "skipped: this KVM does not apply XCR0 (see xcr0-sandbox --check); runs in the nested lane"
    );
    false
}

/// CPUID.(EAX=0DH,ECX=0):EDX:EAX as the sandbox sees it: what KVM supports.
fn supported() -> u64 {
    check_mask("supported xcr0")
}

/// The XCR0 values exercised: 0x1, 0x3, 0x7, and with PKRU and AVX-512
/// where supported.
fn values() -> Vec<u64> {
    let s = supported();
    [0x1, 0x3, 0x7, 0x207, 0xe7, 0x2e7]
        .into_iter()
        .filter(|v| v & !s == 0)
        .collect()
}

fn report(xcr0: u64, extra: &[&str]) -> std::process::Output {
    let rep = guest("xcr0-report", &[]);
    let mask = format!("{xcr0:#x}");
    let mut args = vec!["--xcr0", &mask, "--", rep.to_str().unwrap()];
    args.extend(extra);
    sandbox(&args)
}

/// Expected XSAVE size from the CPUID sub-leaves the program printed.
fn expected_size(xcr0: u64, kv: &std::collections::HashMap<String, String>) -> u64 {
    let mut size = 576;
    for i in 2..20 {
        if xcr0 & (1 << i) == 0 {
            continue;
        }
        let v = &kv[&format!("cpuid_0xd_{i}")];
        let (s, o) = v.split_once(',').unwrap();
        size = size.max(s.parse::<u64>().unwrap() + o.parse::<u64>().unwrap());
    }
    size
}

#[test]
fn xgetbv_cpuid_and_xsave_follow_the_requested_xcr0() {
    if !ready() {
        return;
    }
    let vals = values();
    eprintln!("XCR0 values exercised: {vals:#x?}");
    assert!(vals.contains(&0x3) && vals.contains(&0x7), "{vals:#x?}");
    for x in vals {
        let o = report(x, &[]);
        assert_exit(&o, 0);
        let kv = keyvals(&stdout(&o));
        assert_eq!(kv["xgetbv"], format!("{x:#x}"), "xgetbv under {x:#x}");
        let ebx: u64 = kv["cpuid_0xd_ebx"].parse().unwrap();
        assert_eq!(ebx, expected_size(x, &kv), "CPUID.0xD.EBX under {x:#x}");
        let bv = u64::from_str_radix(kv["xsave_xstate_bv"].trim_start_matches("0x"), 16).unwrap();
        assert_eq!(bv & !x, 0, "XSTATE_BV {bv:#x} within XCR0 {x:#x}");
        assert_eq!(
            kv["xsave_within_ebx"], "1",
            "XSAVE wrote only inside EBX bytes under {x:#x}"
        );
        let want = vmm::xcr0::min_signal_stack_size(ebx as u32);
        assert_eq!(
            kv["minsigstksz"],
            want.to_string(),
            "AT_MINSIGSTKSZ under {x:#x}"
        );
    }
}

#[test]
fn avx_raises_sigill_without_ymm_state_and_runs_with_it() {
    if !ready() {
        return;
    }
    for x in [0x1, 0x3] {
        let o = report(x, &["avx"]);
        assert_signal(&o, libc::SIGILL);
        assert!(!stdout(&o).contains("avx=ran"), "{}", stdout(&o));
    }
    let o = report(0x7, &["avx"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).ends_with("avx=ran\n"), "{}", stdout(&o));
}

#[test]
fn glibc_and_gcc_see_avx_only_when_enabled() {
    if !ready() {
        return;
    }
    for (x, avx) in [(0x3, "0"), (0x7, "1")] {
        let o = report(x, &[]);
        assert_exit(&o, 0);
        let kv = keyvals(&stdout(&o));
        assert_eq!(
            kv["gcc_cpu_supports_avx"], avx,
            "__builtin_cpu_supports(avx) under {x:#x}"
        );
        assert_eq!(
            kv["glibc_avx_active"], avx,
            "CPU_FEATURE_ACTIVE(AVX) under {x:#x}"
        );
    }
}

#[test]
fn the_dynamic_loader_sizes_its_xsave_area_from_the_xcr0() {
    if !ready() {
        return;
    }
    let ld = "/lib64/ld-linux-x86-64.so.2";
    let mut sizes = Vec::new();
    for x in [0x3u64, 0x7] {
        let mask = format!("{x:#x}");
        let o = sandbox(&["--xcr0", &mask, "--", ld, "--list-diagnostics"]);
        assert_exit(&o, 0);
        let kv = keyvals(&stdout(&o));
        let hex = |k: &str| u64::from_str_radix(kv[k].trim_start_matches("0x"), 16).unwrap();
        let full = hex("x86.cpu_features.xsave_state_full_size");
        let ebx: u64 = keyvals(&stdout(&report(x, &[])))["cpuid_0xd_ebx"]
            .parse()
            .unwrap();
        // glibc: ALIGN_UP(EBX + STATE_SAVE_OFFSET (64), 64).
        assert_eq!(
            full,
            (ebx + 64).div_ceil(64) * 64,
            "xsave_state_full_size under {x:#x}"
        );
        sizes.push(hex("x86.cpu_features.xsave_state_size"));
    }
    assert!(
        sizes[0] < sizes[1],
        "0x3 needs less XSAVE space than 0x7: {sizes:#x?}"
    );
}

#[test]
fn check_says_enforced() {
    if !ready() {
        return;
    }
    let o = Command::new(SANDBOX).arg("--check").output().unwrap();
    assert_exit(&o, 0);
    assert!(stdout(&o).ends_with("xcr0: enforced\n"), "{}", stdout(&o));
}

/// tests/guests/xcr0-inherit under `xcr0`, with `extra` arguments.
fn inherit(xcr0: u64, extra: &[&str]) -> std::process::Output {
    let prog = guest("xcr0-inherit", &["-pthread"]);
    let mask = format!("{xcr0:#x}");
    let mut args = vec!["--xcr0", &mask, "--", prog.to_str().unwrap()];
    args.extend(extra);
    sandbox(&args)
}

#[test]
fn threads_and_forked_children_keep_the_requested_xcr0() {
    if !ready() {
        return;
    }
    let vals = values();
    for x in [0x3, 0x7] {
        assert!(vals.contains(&x), "{x:#x} not in {vals:#x?}");
        let o = inherit(x, &[]);
        assert_exit(&o, 0);
        let kv = keyvals(&stdout(&o));
        for k in ["main", "thread", "child"] {
            assert_eq!(
                kv.get(k),
                Some(&format!("{x:#x}")),
                "xgetbv in the {k} under {x:#x}:\n{}",
                stdout(&o)
            );
        }
    }
    // A new thread has no YMM state under 0x3 either; under 0x7 it has.
    let o = inherit(0x3, &["avx-thread"]);
    assert_signal(&o, libc::SIGILL);
    assert!(!stdout(&o).contains("avx_thread=ran"), "{}", stdout(&o));
    let o = inherit(0x7, &["avx-thread"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "avx_thread=ran\n");
}

#[test]
fn programs_a_shell_runs_and_execs_keep_the_requested_xcr0() {
    if !ready() {
        return;
    }
    // The shell forks a child that execs the report (a sandbox child
    // re-executing the sandbox), then execs the report itself.
    let rep = guest("xcr0-report", &[]);
    let rep = rep.to_str().unwrap();
    for x in [0x3, 0x7] {
        let mask = format!("{x:#x}");
        let script = format!("{rep}; exec {rep}");
        let o = sandbox(&["--xcr0", &mask, "--", "/bin/sh", "-c", &script]);
        assert_exit(&o, 0);
        let out = stdout(&o);
        let seen: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("xgetbv="))
            .collect();
        assert_eq!(seen, [mask.as_str(); 2], "under {mask}:\n{out}");
    }
}

/// tests/guests/xcr0-set under `opts` (sandbox options) with `mode`.
fn xcr0_set_run(opts: &[&str], mode: &[&str]) -> std::process::Output {
    let prog = xcr0_set();
    let mut args: Vec<&str> = opts.to_vec();
    args.push("--");
    args.push(prog.to_str().unwrap());
    args.extend(mode);
    sandbox(&args)
}

#[test]
fn arch_set_xcr0_errors_and_successes_under_the_default_xcr0() {
    if !ready() {
        return;
    }
    let o = xcr0_set_run(&[], &["errnos"]);
    assert_exit(&o, 0);
    let kv = keyvals(&stdout(&o));
    let default = default_xcr0();
    assert_eq!(hex(&kv, "default"), default, "ARCH_GET_XCR0");
    assert_eq!(hex(&kv, "xgetbv"), default);
    assert_eq!(hex(&kv, "supported"), supported());
    assert_eq!(kv["set_0x2"], "EINVAL");
    assert_eq!(kv["set_0x5"], "EINVAL");
    assert_ne!(hex(&kv, "enodev_value") & !supported(), 0);
    assert_eq!(kv["set_enodev"], "ENODEV");
    // Disabling AVX (and AVX-512): refused with YMM0's upper half live,
    // accepted once VZEROUPPER has put it back in its initial state.
    assert_ne!(default & 0x4, 0, "AVX in the default {default:#x}");
    let target = hex(&kv, "target");
    assert_eq!(target, default & !0xe4);
    assert_eq!(kv["set_live_avx"], "EPERM");
    assert_eq!(hex(&kv, "xgetbv_after_eperm"), default);
    assert_eq!(kv["set_after_vzeroupper"], "0");
    assert_eq!(hex(&kv, "xgetbv_after_set"), target);
    assert_eq!(hex(&kv, "get_after_set"), target);
    // ~0: the default again (enabling: never refused).
    assert_eq!(kv["set_all_ones"], "0");
    assert_eq!(hex(&kv, "xgetbv_restored"), default);
    assert_eq!(hex(&kv, "get_restored"), default);
}

#[test]
fn arch_set_xcr0_changes_xgetbv_and_all_ones_restores_the_sandbox_xcr0() {
    if !ready() {
        return;
    }
    let o = xcr0_set_run(&["--xcr0=0x3"], &["get-set-get", "0x7"]);
    assert_exit(&o, 0);
    let kv = keyvals(&stdout(&o));
    assert_eq!(hex(&kv, "get0"), 0x3);
    assert_eq!(kv["set"], "0");
    assert_eq!((hex(&kv, "get1"), hex(&kv, "xgetbv1")), (0x7, 0x7));
    assert_eq!(kv["restore"], "0");
    assert_eq!((hex(&kv, "get2"), hex(&kv, "xgetbv2")), (0x3, 0x3));
}

#[test]
fn each_thread_sees_only_its_own_xcr0_and_a_child_forked_after_a_change_inherits_it() {
    if !ready() {
        return;
    }
    // Enabling: main keeps 0x3, thread a sets 0x7, thread b the largest
    // value exercised (0x207 in the lane), forks, and the child execs the
    // report.
    let full = *values().last().unwrap();
    let b = format!("{full:#x}");
    let rep = guest("xcr0-report", &[]);
    let o = xcr0_set_run(
        &["--xcr0=0x3"],
        &["threads", "0x7", &b, rep.to_str().unwrap()],
    );
    assert_exit(&o, 0);
    let kv = keyvals(&stdout(&o));
    for (key, want) in [
        ("main", 0x3),
        ("a", 0x7),
        ("a_get", 0x7),
        ("b", full),
        ("b_get", full),
        ("child", full),
        ("child_get", full),
        ("a_after", 0x7),
        ("b_after", full),
        ("main_after", 0x3),
        ("main_get", 0x3),
        // The report the child executed.
        ("xgetbv", full),
    ] {
        assert_eq!(hex(&kv, key), want, "{key}:\n{}", stdout(&o));
    }
    assert_eq!((kv["a_set"].as_str(), kv["b_set"].as_str()), ("0", "0"));
    let ebx: u64 = kv["cpuid_0xd_ebx"].parse().unwrap();
    assert_eq!(ebx, expected_size(full, &kv), "CPUID.0xD.EBX after execve");
    assert_eq!(kv["glibc_avx_active"], "1");

    // Disabling, under the default: thread a sets 0x3, thread b 0x7.
    let default = default_xcr0();
    let o = xcr0_set_run(&[], &["threads", "0x3", "0x7"]);
    assert_exit(&o, 0);
    let kv = keyvals(&stdout(&o));
    let seen = |t: &str, want: u64| {
        assert_eq!(kv[&format!("{t}_set")], "0", "thread {t} setting {want:#x}");
        want
    };
    let (a, b) = (seen("a", 0x3), seen("b", 0x7));
    for (key, want) in [
        ("main", default),
        ("a", a),
        ("b", b),
        ("child", b),
        ("a_after", a),
        ("b_after", b),
        ("main_after", default),
    ] {
        assert_eq!(hex(&kv, key), want, "{key}:\n{}", stdout(&o));
    }
}

#[test]
fn arch_prctl_compat_makes_0x1021_the_patch_set_xcr0() {
    if !ready() {
        return;
    }
    // rr's check: set 0x7, XGETBV, set the original back, XGETBV; from 0x3
    // (enabling first) and from the default.
    for opts in [&["--xcr0=0x3"][..], &[]] {
        let mut args = vec!["--arch-prctl-compat"];
        args.extend(opts);
        let o = xcr0_set_run(&args, &["compat", "0x7"]);
        assert_exit(&o, 0);
        let kv = keyvals(&stdout(&o));
        let orig = hex(&kv, "orig");
        assert_eq!(kv["set"], "0", "{opts:?}");
        assert_eq!(hex(&kv, "xgetbv_set"), 0x7, "{opts:?}");
        assert_eq!(hex(&kv, "get_set"), 0x7, "{opts:?}");
        assert_eq!(kv["restore"], "0", "{opts:?}");
        assert_eq!(hex(&kv, "xgetbv_restored"), orig, "{opts:?}");
    }
    // Without the option, 0x1021 is ARCH_GET_XCOMP_SUPP.
    let o = xcr0_set_run(&["--xcr0=0x3"], &["compat", "0x7"]);
    assert_exit(&o, 0);
    let kv = keyvals(&stdout(&o));
    assert_eq!(kv["set"], "EFAULT");
    assert_eq!(hex(&kv, "xgetbv_set"), 0x3);
}

#[test]
fn avx_after_arch_set_xcr0_takes_it_away_raises_sigill() {
    if !ready() {
        return;
    }
    // The thread that enabled AVX runs it; main, still at 0x3, dies.
    let o = xcr0_set_run(&["--xcr0=0x3"], &["avx-per-thread", "0x7"]);
    assert_signal(&o, libc::SIGILL);
    let kv = keyvals(&stdout(&o));
    assert_eq!(kv["thread_set"], "0");
    assert_eq!(hex(&kv, "thread"), 0x7);
    assert_eq!(kv["thread_avx"], "ran");
    assert_eq!(hex(&kv, "main"), 0x3);
    assert!(!kv.contains_key("main_avx"), "{}", stdout(&o));

    // Disabling AVX in the running thread.
    let o = xcr0_set_run(&["--xcr0=0x7"], &["avx-after", "0x3"]);
    let kv = keyvals(&stdout(&o));
    assert_signal(&o, libc::SIGILL);
    assert_eq!((kv["set"].as_str(), hex(&kv, "xgetbv")), ("0", 0x3));
    assert!(!kv.contains_key("avx"), "{}", stdout(&o));
}

#[test]
fn two_programs_in_one_command_run_together_each_with_its_own_xcr0() {
    if !ready() {
        return;
    }
    let dir = scratch().join("xcr0-together");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rep = guest("xcr0-report", &[]);
    // Each execs the report once the other is alive too (a minute at most:
    // under TCG a sandbox takes seconds to start).
    let script = |me: &str, other: &str| {
        format!(
            "touch {d}/{me}; for i in $(seq 300); do [ -e {d}/{other} ] && exec {r} > {d}/{me}.out; sleep 0.2; done; exit 1",
            d = dir.display(),
            r = rep.display()
        )
    };
    let (a, b) = (script("a", "b"), script("b", "a"));
    let o = sandbox(&[
        "--stats",
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
    let err = stderr(&o);
    assert!(
        err.contains("program 1 (/bin/sh, xcr0 0x7): exited 0"),
        "{err}"
    );
    assert!(
        err.contains("program 2 (/bin/sh, xcr0 0x3): exited 0"),
        "{err}"
    );
    for (me, x, avx) in [("a", 0x7, "1"), ("b", 0x3, "0")] {
        let out = std::fs::read_to_string(dir.join(format!("{me}.out"))).unwrap();
        let kv = keyvals(&out);
        assert_eq!(hex(&kv, "xgetbv"), x, "{me}:\n{out}");
        let ebx: u64 = kv["cpuid_0xd_ebx"].parse().unwrap();
        assert_eq!(ebx, expected_size(x, &kv), "{me}: CPUID.0xD.EBX");
        assert_eq!(kv["glibc_avx_active"], avx, "{me}:\n{out}");
    }
}

#[test]
fn a_pipe_carries_100_mb_from_an_sse_program_to_an_avx_one() {
    if !ready() {
        return;
    }
    let prog = guest("xcr0-stream", &[]);
    let prog = prog.to_str().unwrap();
    let n = "100000000";
    let start = std::time::Instant::now();
    let o = sandbox(&[
        "--xcr0=0x3",
        "--",
        prog,
        "produce",
        n,
        "::pipe::",
        "--xcr0=0x7",
        "--",
        prog,
        "consume",
        n,
    ]);
    eprintln!("100 MB through the pipe in {:.1?}", start.elapsed());
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("ok {n}\n"));
    let err = stderr(&o);
    assert!(err.contains("producer xgetbv=0x3\n"), "{err}");
    assert!(err.contains("consumer xgetbv=0x7\n"), "{err}");
}

/// tests/guests/xcr0-frame under `xcr0`, with `extra` arguments.
fn frame(xcr0: u64, extra: &[&str]) -> std::process::Output {
    let prog = guest("xcr0-frame", &[]);
    let mask = format!("{xcr0:#x}");
    let mut args = vec!["--xcr0", &mask, "--", prog.to_str().unwrap()];
    args.extend(extra);
    sandbox(&args)
}

/// A "0x..." value as a number.
fn parse_hex(v: &str) -> u64 {
    u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[test]
fn signal_frames_hold_the_xsave_area_of_the_requested_xcr0() {
    if !ready() {
        return;
    }
    let vals = values();
    let exercised: Vec<u64> = [0x3, 0x7, 0x207]
        .into_iter()
        .filter(|x| vals.contains(x))
        .collect();
    eprintln!("frames under {exercised:#x?}");
    assert!(exercised.contains(&0x3) && exercised.contains(&0x7));
    for x in exercised {
        let o = frame(x, &[]);
        assert_exit(&o, 0);
        let out = stdout(&o);
        let kv = keyvals(&out);
        assert_eq!(kv["xgetbv"], format!("{x:#x}"), "xgetbv:\n{out}");
        // The frame's XSAVE area is CPUID.(0xD,0).EBX bytes, as the
        // program sees CPUID under this XCR0.
        let ebx: u64 = kv["cpuid_0xd_ebx"].parse().unwrap();
        assert_eq!(
            kv["frame_xstate_size"],
            ebx.to_string(),
            "under {x:#x}:\n{out}"
        );
        assert_eq!(
            kv["frame_extended_size"],
            (ebx + 4).to_string(),
            "under {x:#x}"
        );
        assert_eq!(
            parse_hex(&kv["frame_xfeatures"]),
            x,
            "xfeatures under {x:#x}"
        );
        let bv = parse_hex(&kv["frame_xstate_bv"]);
        assert!(
            bv & !x == 0 && bv & 0x3 == 0x3,
            "XSTATE_BV {bv:#x} under {x:#x}"
        );
        assert_eq!(kv["frame_magic_ok"], "1", "magic under {x:#x}");
        let min: u64 = kv["minsigstksz"].parse().unwrap();
        assert_eq!(
            kv["altstack_size"],
            min.max(2048).to_string(),
            "under {x:#x}"
        );
        for key in ["altstack_aligned", "altstack_misaligned"] {
            assert_eq!(kv[key], "ran", "{key} under {x:#x}:\n{out}");
            assert_eq!(
                kv[&format!("{key}_frame_inside")],
                "1",
                "{key} under {x:#x}:\n{out}"
            );
        }
    }
    // Without YMM state, vpxor ymm0 is #UD: SIGILL reaches the handler.
    let o = frame(0x3, &["avx"]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).ends_with("sigill_code=2 sigill_addr_ok=1\nok\n"),
        "{}",
        stdout(&o)
    );
}

/// gdb inside the sandbox builds its register set from the XCR0 its
/// tracee runs with (the XSTATE regset names it at byte 464): under each
/// XCR0 it has exactly the registers that XCR0 enables. And an instruction
/// of a component the XCR0 leaves disabled (AVX's vpxor under 0x3) stops
/// gdb on that instruction with SIGILL, as on a CPU without it; with AVX
/// enabled the program runs to its end. (One gdb run per XCR0: each takes
/// about 20 s under the lane's TCG.)
#[test]
fn gdb_shows_exactly_the_registers_the_xcr0_enables() {
    if !ready() || !installed("gdb", "/usr/bin/gdb") {
        return;
    }
    let prog = guest("debuggee", &["-g", "-O0"]);
    let regs = ["xmm0", "ymm0", "k0", "pkru"];
    let wanted: Vec<u64> = values().into_iter().filter(|v| v & 0x3 == 0x3).collect();
    for xcr0 in [0x3, 0x7, *wanted.last().unwrap()] {
        let mask = format!("{xcr0:#x}");
        let mut args = vec![
            "--xcr0",
            &mask,
            "--",
            "/usr/bin/gdb",
            "-nx",
            "-batch",
            "-ex",
            "break uses_avx",
            "-ex",
            "run",
        ];
        let cmds: Vec<String> = regs.iter().map(|r| format!("info registers {r}")).collect();
        for c in &cmds {
            args.extend(["-ex", c.as_str()]);
        }
        args.extend(["-ex", "continue", "-ex", "x/i $pc", "--args"]);
        args.extend([prog.to_str().unwrap(), "avx"]);
        // Bounded: a gdb run takes about 20 s under the lane's TCG.
        let mut c = sandbox_cmd();
        c.args(&args);
        let o = run_limited_for(c, std::time::Duration::from_secs(300));
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            text.contains("Breakpoint 1, uses_avx"),
            "under {mask}:\n{text}"
        );
        for r in regs {
            let enabled = match r {
                "xmm0" => xcr0 & 0x2 != 0,
                "ymm0" => xcr0 & 0x4 != 0,
                "k0" => xcr0 & 0xe0 == 0xe0,
                _ => xcr0 & 0x200 != 0,
            };
            let shown = text.lines().any(|l| l.starts_with(&format!("{r} ")));
            let refused = text.contains(&format!("Invalid register `{r}'"));
            assert_eq!(
                (shown, refused),
                (enabled, !enabled),
                "under {mask}, {r}:\n{text}"
            );
        }
        if xcr0 & 0x4 == 0 {
            assert!(
                text.contains("Program received signal SIGILL, Illegal instruction."),
                "under {mask}:\n{text}"
            );
            let at = text.lines().find(|l| l.starts_with("=> ")).unwrap_or("");
            assert!(
                at.contains("<uses_avx+") && at.contains("vpxor") && at.contains("%ymm0"),
                "under {mask}, the instruction gdb stopped at:\n{text}"
            );
        } else {
            assert!(
                text.contains("exited normally") && !text.contains("SIGILL"),
                "under {mask}:\n{text}"
            );
        }
    }
}

/// The debug registers a tracer sets (emulated through the guest page
/// tables and a private root per stepping vCPU: trace/hwbp.rs) fire here
/// as natively, under an XCR0 smaller than the host's: each kind of
/// breakpoint hit once with its siginfo, DR6 and RF, and what Linux
/// refuses (tests/guests/ptrace.c's `hwbp`).
#[test]
fn debug_registers_fire_as_natively_under_a_kvm_that_applies_xcr0() {
    if !ready() {
        return;
    }
    let tracer = guest("ptrace", &[]);
    let native = run_limited(command(false, &[tracer.to_str().unwrap(), "hwbp"]));
    let mut c = sandbox_cmd();
    c.args(["--xcr0", "0x3", "--", tracer.to_str().unwrap(), "hwbp"]);
    let sandboxed = run_limited_for(c, std::time::Duration::from_secs(300));
    assert_eq!(
        status(&sandboxed),
        status(&native),
        "{}",
        both(&native, &sandboxed)
    );
    assert_eq!(
        stdout(&sandboxed),
        stdout(&native),
        "{}",
        both(&native, &sandboxed)
    );
    assert!(
        stdout(&native).contains("execute: sig 5 code 4"),
        "{}",
        stdout(&native)
    );
}
