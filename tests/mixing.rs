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
    let o = sandbox(&[
        "--",
        SEQ,
        "1",
        "200000",
        "::pipe::",
        "--xcr0=0x3",
        "--",
        "/usr/bin/wc",
        "-l",
    ]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o).trim(), "200000");
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
