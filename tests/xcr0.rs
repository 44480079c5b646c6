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
    let o = Command::new(SANDBOX).arg("--check").output().unwrap();
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("supported xcr0: "))
        .expect("supported line");
    let hex = line["supported xcr0: 0x".len()..]
        .split_whitespace()
        .next()
        .unwrap();
    u64::from_str_radix(hex, 16).unwrap()
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

/// tests/guests/xcr0-frame under `xcr0`, with `extra` arguments.
fn frame(xcr0: u64, extra: &[&str]) -> std::process::Output {
    let prog = guest("xcr0-frame", &[]);
    let mask = format!("{xcr0:#x}");
    let mut args = vec!["--xcr0", &mask, "--", prog.to_str().unwrap()];
    args.extend(extra);
    sandbox(&args)
}

/// A "0x..." value as a number.
fn hex(v: &str) -> u64 {
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
        assert_eq!(hex(&kv["frame_xfeatures"]), x, "xfeatures under {x:#x}");
        let bv = hex(&kv["frame_xstate_bv"]);
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
