//! `--cpuid`: what the program's CPUID answers, per thread and with its
//! XCR0 of the moment (tests/guests/cpuid-view.c prints it), for gcc's
//! and glibc's own probing, across fork and exec, per program of a mixed
//! command; and the errors. Expectations come from the native run and the
//! XCR0 in use, never from this machine's kind. Runs in both lanes.

mod common;

use std::collections::HashMap;

use common::*;

fn view() -> std::path::PathBuf {
    guest("cpuid-view", &["-pthread"])
}

/// cpuid-view's lines of `who` as name -> value ("main: leaf 1: fma 1
/// avx 1 ..." gives "main.fma" = "1", ...).
fn values(out: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for line in out.lines() {
        let Some((who, rest)) = line.split_once(": ") else {
            continue;
        };
        let rest = rest.split_once(": ").map_or(rest, |(_, r)| r);
        let words: Vec<&str> = rest.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        for pair in words.windows(2) {
            m.insert(format!("{who}.{}", pair[0]), pair[1].to_string());
        }
    }
    m
}

fn sandboxed(opts: &[&str], args: &[&str]) -> std::process::Output {
    let prog = view();
    let mut all: Vec<&str> = opts.to_vec();
    all.push("--");
    all.push(prog.to_str().unwrap());
    all.extend_from_slice(args);
    let o = sandbox(&all);
    assert_exit(&o, 0);
    o
}

#[test]
fn the_xcr0_policy_hides_what_the_xcr0_disables() {
    if !kvm() {
        return;
    }
    let o = sandboxed(&["--cpuid=xcr0", "--xcr0=0x3"], &[]);
    let out = stdout(&o);
    for line in [
        "gcc: avx 0 avx2 0 avx512f 0\n",
        "main: leaf 1: fma 0 avx 0 f16c 0 osxsave 1\n",
        "main: leaf 7: avx2 0 avx512f 0 pku 0\n",
        "main: leaf 0xd.0: supported 0x3, size now 576, size max 576\n",
        "main: leaf 0xd.2: size 0 offset 0\n",
    ] {
        assert!(out.contains(line), "{line}in:\n{out}{}", stderr(&o));
    }
}

/// Under 0x7, AVX's features stay as natively, AVX-512's and PKU's go,
/// and leaf 0xD holds AVX's state after the legacy area.
#[test]
fn the_xcr0_policy_under_avx_keeps_avx_only() {
    if !kvm() || default_xcr0() & 0x4 == 0 {
        return;
    }
    let prog = view();
    let n = values(&stdout(&run_limited(command(false, &[&prog]))));
    let s = values(&stdout(&sandboxed(&["--cpuid=xcr0", "--xcr0=0x7"], &[])));
    for key in [
        "main.fma",
        "main.avx",
        "main.f16c",
        "main.avx2",
        "main.osxsave",
    ] {
        assert_eq!(s[key], n[key], "{key}");
    }
    assert_eq!(s["main.avx512f"], "0");
    assert_eq!(s["main.pku"], "0");
    assert_eq!(s["main.supported"], "0x7");
    let end = n["main.offset"].parse::<u32>().unwrap() + n["main.size"].parse::<u32>().unwrap();
    assert_eq!(
        s["main.now"],
        end.to_string(),
        "AVX's end (leaf 0xD.2 natively)"
    );
}

/// At the default XCR0, the policy keeps what the native view has of
/// the components it enables, and drops the rest.
#[test]
fn the_xcr0_policy_at_the_default_xcr0_keeps_the_native_features() {
    if !kvm() {
        return;
    }
    let x = default_xcr0();
    let prog = view();
    let n = values(&stdout(&run_limited(command(false, &[&prog]))));
    let s = values(&stdout(&sandboxed(&["--cpuid=xcr0"], &[])));
    let has = |bits: u64| x & bits == bits;
    for (key, needs) in [
        ("main.fma", 0x4),
        ("main.avx", 0x4),
        ("main.f16c", 0x4),
        ("main.avx2", 0x4),
        ("main.avx512f", 0xe0),
        ("main.pku", 0x200),
        ("main.osxsave", 0),
    ] {
        let expect = if has(needs) { n[key].as_str() } else { "0" };
        assert_eq!(s[key], expect, "{key}: XCR0 {x:#x}, natively {}", n[key]);
    }
    let supported = u64::from_str_radix(n["main.supported"].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(s["main.supported"], format!("{:#x}", supported & x));
}

/// Each thread's CPUID follows its own XCR0, also after ARCH_SET_XCR0.
#[test]
fn each_thread_sees_its_own_xcr0() {
    if !kvm() || default_xcr0() & 0x4 == 0 {
        return;
    }
    let s = values(&stdout(&sandboxed(&["--cpuid=xcr0"], &["0x3"])));
    assert_eq!(s["thread.avx"], "0");
    assert_eq!(s["thread.supported"], "0x3");
    assert_eq!(s["thread.now"], "576");
    assert_eq!(s["main again.supported"], s["main.supported"]);
    assert_eq!(s["main again.avx"], s["main.avx"]);
}

/// glibc's own CPU probing (ld.so --list-diagnostics) takes the policy:
/// leaf 1's AVX bit is gone from what it read and from what it uses.
#[test]
fn glibc_probes_the_policy() {
    if !kvm() {
        return;
    }
    let ld = "/lib64/ld-linux-x86-64.so.2";
    let leaf1 = |out: &str, kind: &str| -> u32 {
        let key = format!("x86.cpu_features.features[0x0].{kind}[0x2]=");
        let v = out
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no {key} in:\n{out}"));
        u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
    };
    let o = sandbox(&["--cpuid=xcr0", "--xcr0=0x3", "--", ld, "--list-diagnostics"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert_eq!(leaf1(&out, "cpuid") & (1 << 28), 0, "AVX read");
    assert_eq!(leaf1(&out, "active") & (1 << 28), 0, "AVX used");
    let n = stdout(&run_limited(command(false, &[ld, "--list-diagnostics"])));
    if leaf1(&n, "cpuid") & (1 << 28) != 0 {
        assert_ne!(leaf1(&n, "active") & (1 << 28), 0, "natively, AVX is used");
    }
}

/// A fork child and an exec keep the policy: sh forks and executes the
/// first view, and executes itself into the second.
#[test]
fn fork_and_exec_keep_the_policy() {
    if !kvm() {
        return;
    }
    let prog = view();
    let script = format!("{p}; exec {p}", p = prog.display());
    let o = sandbox(&["--cpuid=xcr0", "--xcr0=0x3", "--", "/bin/sh", "-c", &script]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert_eq!(
        out.matches("gcc: avx 0 avx2 0 avx512f 0\n").count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.matches("main: leaf 0xd.0: supported 0x3,").count(),
        2,
        "{out}"
    );
}

/// rr's records, in rr traceinfo's JSON or as the bare array: the table
/// answers (this CPU's own records, less leaf 1's AVX bit: AVX2 stays, as
/// the table says), leaf 0xD's current size following the XCR0.
#[test]
fn a_file_answers_from_its_table() {
    if !kvm() {
        return;
    }
    let prog = view();
    let rows = stdout(&run_limited(command(
        false,
        &[prog.as_os_str(), "table".as_ref()],
    )));
    let n = values(&stdout(&run_limited(command(false, &[&prog]))));
    let traceinfo = format!("{{\"uuid\":[0],\"xcr0\":0,\"cpuidRecords\":{rows}}}");
    for (name, text) in [("table.json", rows.clone()), ("traceinfo.json", traceinfo)] {
        let file = scratch().join(name);
        std::fs::write(&file, text).unwrap();
        let policy = format!("--cpuid={}", file.display());
        let s = values(&stdout(&sandboxed(&[&policy, "--xcr0=0x3"], &[])));
        assert_eq!(s["main.avx"], "0", "{name}");
        for key in [
            "main.fma",
            "main.avx2",
            "main.osxsave",
            "main.supported",
            "main.max",
        ] {
            assert_eq!(s[key], n[key], "{name}: {key}");
        }
        assert_eq!(s["main.now"], "576", "{name}: the size for XCR0 0x3");
    }
}

/// Each program of a mixed command has its own policy.
#[test]
fn each_program_has_its_own_policy() {
    if !kvm() {
        return;
    }
    let prog = view();
    let p = prog.to_str().unwrap();
    let o = sandbox(&[
        "--cpuid=xcr0",
        "--xcr0=0x3",
        "--",
        p,
        ":::",
        "--cpuid=host",
        "--",
        p,
    ]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert_eq!(
        out.matches("main: leaf 0xd.0: supported 0x3,").count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.matches("main: leaf 0xd.0: supported").count(),
        2,
        "{out}"
    );
}

/// gdb single-stepping over a CPUID the sandbox answers stops right after
/// it, then after the next instruction, as natively.
#[test]
fn a_single_step_over_an_answered_cpuid_stops_after_it() {
    if !kvm() || !installed("gdb", "/usr/bin/gdb") {
        return;
    }
    let prog = guest("cpuid-step", &["-g", "-O0"]);
    let script = scratch().join("cpuid-step.gdb");
    std::fs::write(
        &script,
        "break at_cpuid\nrun\nstepi\np $pc == &after_cpuid\n\
         stepi\np $pc == (char *)&after_cpuid + 1\ncontinue\n",
    )
    .unwrap();
    let o = sandbox(&[
        "--cpuid=xcr0",
        "--",
        "/usr/bin/gdb",
        "-nx",
        "-batch",
        "-x",
        script.to_str().unwrap(),
        prog.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    let values: Vec<&str> = out.lines().filter(|l| l.starts_with('$')).collect();
    assert_eq!(values, ["$1 = 1", "$2 = 1"], "{out}{}", stderr(&o));
}

#[test]
fn bad_policies_are_one_line_and_status_2() {
    if !kvm() {
        return;
    }
    let bad = scratch().join("bad-cpuid.json");
    std::fs::write(&bad, "{\"xcr0\": 7}").unwrap();
    let missing = scratch().join("no-such-table.json");
    let bad_arg = format!("--cpuid={}", bad.display());
    let missing_arg = format!("--cpuid={}", missing.display());
    for (arg, what) in [
        (missing_arg.as_str(), "No such file or directory"),
        (bad_arg.as_str(), "no \"cpuidRecords\" array"),
        ("--cpuid=", "--cpuid: empty"),
    ] {
        let o = sandbox(&[arg, "--", "/bin/true"]);
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{arg}: {err}");
        assert!(
            err.contains(what) && err.contains("--cpuid"),
            "{arg}: {err}"
        );
    }
}

#[test]
fn check_says_whether_cpuid_can_be_answered() {
    if !kvm() {
        return;
    }
    let o = run_limited({
        let mut c = std::process::Command::new(SANDBOX);
        c.arg("--check");
        c
    });
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("cpuid: "))
        .unwrap_or_else(|| panic!("no cpuid line in:\n{out}"));
    assert!(line.contains("--cpuid="), "{line}");
}
