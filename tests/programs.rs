//! Real programs from the distribution, and C programs built here, run in
//! the sandbox behave as they do natively. These run on every KVM (on one
//! that does not apply XCR0, with --allow-unenforced-xcr0).

mod common;

use std::process::Command;

use common::*;

#[test]
fn true_and_false_statuses() {
    if !kvm() {
        return;
    }
    assert_exit(&sandbox(&["true"]), 0);
    assert_exit(&sandbox(&["/bin/false"]), 1);
}

#[test]
fn echo_keeps_arguments_with_spaces() {
    if !kvm() {
        return;
    }
    let o = sandbox(&["echo", "a b", " c ", "", "d"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "a b  c   d\n");
}

#[test]
fn environment_is_passed_through() {
    if !kvm() {
        return;
    }
    let o = sandbox_with(
        &["printenv", "XCR0_TEST_VALUE"],
        None,
        &[("XCR0_TEST_VALUE", "hello world")],
    );
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "hello world\n");
}

#[test]
fn cat_prints_a_file() {
    if !kvm() {
        return;
    }
    let f = scratch().join("cat-input");
    std::fs::write(&f, "line one\nline two\n").unwrap();
    let o = sandbox(&[std::ffi::OsStr::new("cat"), f.as_os_str()]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "line one\nline two\n");
}

#[test]
fn ls_lists_a_directory_as_natively() {
    if !kvm() {
        return;
    }
    let d = scratch().join("ls-dir");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    for n in ["b.txt", "a.txt", "c"] {
        std::fs::write(d.join(n), n).unwrap();
    }
    let args = ["-la", "--time-style=+%s", d.to_str().unwrap()];
    let native = Command::new("ls").args(args).output().unwrap();
    let o = sandbox(&[&["ls"][..], &args[..]].concat());
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), String::from_utf8_lossy(&native.stdout));
}

#[test]
fn sort_reads_stdin() {
    if !kvm() {
        return;
    }
    let o = sandbox_with(&["sort"], Some(b"pear\napple\nfig\n"), &[]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "apple\nfig\npear\n");
}

#[test]
fn a_file_written_can_be_read_back() {
    if !kvm() {
        return;
    }
    let f = scratch().join("tee-output");
    let o = sandbox_with(
        &[std::ffi::OsStr::new("tee"), f.as_os_str()],
        Some(b"kept\n"),
        &[],
    );
    assert_exit(&o, 0);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "kept\n");
    let o = sandbox(&[
        guest("probe", &[]).as_os_str(),
        "files".as_ref(),
        scratch().as_os_str(),
    ]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        "first_fd=3\nread=23 content=written in the sandbox\n"
    );
}

#[test]
fn python_computes_and_prints() {
    if !kvm() {
        return;
    }
    // The distribution's interpreter itself (a PATH shim would need exec).
    let code = "import hashlib, json; print(json.dumps([sum(range(10**5)), hashlib.sha256(b'x').hexdigest()[:8]]))";
    let o = sandbox(&["/usr/bin/python3", "-c", code]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "[4999950000, \"2d711642\"]\n");
}

#[test]
fn shell_builtins_and_exit_status() {
    if !kvm() {
        return;
    }
    let o = sandbox(&[
        "/bin/sh",
        "-c",
        "x=$((6*7)); echo \"$x $0 $1\"; exit 9",
        "zero",
        "one",
    ]);
    assert_exit(&o, 9);
    assert_eq!(stdout(&o), "42 zero one\n");
}

#[test]
fn hashbang_scripts_run_through_their_interpreter() {
    if !kvm() {
        return;
    }
    let s = scratch().join("script.sh");
    std::fs::write(&s, "#!/bin/sh -e\necho \"script $0 [$1] [$2]\"\nexit 3\n").unwrap();
    std::fs::set_permissions(&s, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = sandbox(&[s.as_os_str(), "a b".as_ref(), "c".as_ref()]);
    assert_exit(&o, 3);
    assert_eq!(stdout(&o), format!("script {} [a b] [c]\n", s.display()));
}

/// Static and dynamic, PIE and fixed-address builds of the same program.
const VARIANTS: &[&[&str]] = &[&[], &["-no-pie"], &["-static"], &["-static-pie"]];

#[test]
fn c_programs_static_dynamic_pie_and_not() {
    if !kvm() {
        return;
    }
    for flags in VARIANTS {
        let p = guest("probe", flags);
        let o = sandbox_with(
            &[p.as_os_str(), "args".as_ref(), "x y".as_ref()],
            None,
            &[("PROBE_VAR", "v")],
        );
        assert_exit(&o, 0);
        let expected = format!(
            "argc=3\nargv[0]=[{}]\nargv[1]=[args]\nargv[2]=[x y]\nPROBE_VAR=[v]\ntls=6\n",
            p.display()
        );
        assert_eq!(stdout(&o), expected, "{flags:?}");
        assert_exit(
            &sandbox(&[p.as_os_str(), "exit".as_ref(), "42".as_ref()]),
            42,
        );
        let o = sandbox(&[p.as_os_str(), "memory".as_ref()]);
        assert_exit(&o, 0);
        assert_eq!(stdout(&o), "brk_grew=1 small=heap big_end=2\n", "{flags:?}");
    }
}

#[test]
fn auxiliary_vector_is_complete() {
    if !kvm() {
        return;
    }
    let p = guest("probe", &[]);
    let o = sandbox(&[p.as_os_str(), "auxv".as_ref()]);
    assert_exit(&o, 0);
    let native = Command::new(&p).arg("auxv").output().unwrap();
    let (got, want) = (
        keyvals(&stdout(&o)),
        keyvals(&String::from_utf8_lossy(&native.stdout)),
    );
    // AT_HWCAP2 is left out: it says whether the vCPU has FSGSBASE, which
    // PVM's KVM does not offer though the host has it.
    for k in ["pagesz", "platform", "execfn", "hwcap"] {
        assert!(want.contains_key(k), "{k} missing natively");
        assert_eq!(got.get(k), want.get(k), "{k}");
    }
    assert_eq!(got["entry_set"], "1 random_set=1");
    // The same keys in the same order (gdb's `info auxv` lists them so),
    // but for rseq's AT_RSEQ_FEATURE_SIZE and AT_RSEQ_ALIGN (27, 28):
    // rseq is ENOSYS in the sandbox; and AT_SYSINFO_EHDR (33) where
    // `--check` says the vDSO is not lent.
    let lent =
        stdout(&Command::new(SANDBOX).arg("--check").output().unwrap()).contains("vdso: lent");
    let left_out: &[&str] = if lent {
        &["27", "28"]
    } else {
        &["27", "28", "33"]
    };
    let native_keys: Vec<_> = want["keys"]
        .split_whitespace()
        .filter(|k| !left_out.contains(k))
        .collect();
    assert_eq!(
        got["keys"].split_whitespace().collect::<Vec<_>>(),
        native_keys
    );
    // The native value is for the host's XCR0; the sandbox's default is the
    // host's XCR0 too, so they agree.
    assert_eq!(got["minsigstksz"], want["minsigstksz"]);
}

#[test]
fn first_descriptor_is_3_and_sandbox_descriptors_are_invisible() {
    if !kvm() {
        return;
    }
    let p = guest("probe", &[]);
    let native = Command::new(&p)
        .arg("fds")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let o = sandbox(&[p.as_os_str(), "fds".as_ref()]);
    assert_exit(&o, 0);
    // Closing every number up to the hard limit closes only what the test
    // harness passed down, as natively; the sandbox keeps running.
    assert_eq!(stdout(&o), String::from_utf8_lossy(&native.stdout));
    assert!(
        stdout(&o).ends_with("close_range=0 next_fd=3\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn memory_protection_is_mirrored_into_the_guest() {
    if !kvm() {
        return;
    }
    let p = guest("probe", &[]);
    let o = sandbox(&[p.as_os_str(), "mprotect".as_ref()]);
    assert_signal(&o, libc::SIGSEGV);
    assert_eq!(stdout(&o), "read_after_protect=3\n");
    let o = sandbox(&[p.as_os_str(), "munmap".as_ref()]);
    assert_signal(&o, libc::SIGSEGV);
    assert_eq!(stdout(&o), "unmapped\n");
}

#[test]
fn the_program_cannot_reach_the_sandbox_memory() {
    if !kvm() {
        return;
    }
    let p = guest("probe", &[]);
    let o = sandbox(&[p.as_os_str(), "sandbox-memory".as_ref()]);
    assert_signal(&o, libc::SIGSEGV);
    assert_eq!(
        stdout(&o),
        "read_into_sandbox=-1 errno=EFAULT\nmap_fixed_over_sandbox=ENOMEM\nmap_noreplace_over_sandbox=EEXIST\nmunmap_sandbox=0\nioctl_into_sandbox=EFAULT\n"
    );
}

#[test]
fn death_by_signal_is_mirrored() {
    if !kvm() {
        return;
    }
    let p = guest("probe", &[]);
    for (cmd, sig) in [
        ("segv", libc::SIGSEGV),
        ("abort", libc::SIGABRT),
        ("ud2", libc::SIGILL),
        ("sigterm-self", libc::SIGTERM),
    ] {
        let o = sandbox(&[p.as_os_str(), cmd.as_ref()]);
        assert_signal(&o, sig);
    }
}

#[test]
fn a_closed_pipe_kills_with_sigpipe_as_natively() {
    if !kvm() {
        return;
    }
    // `yes | head -1`: yes dies by SIGPIPE, not by an EPIPE error message.
    let mut child = sandbox_cmd()
        .arg("yes")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 4];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"y\ny\n");
    drop(out);
    let o = child.wait_with_output().unwrap();
    assert_signal(&o, libc::SIGPIPE);
    assert_eq!(stderr(&o), "");
}

#[test]
fn one_exit_and_one_ioctl_per_forwarded_syscall() {
    if !kvm() {
        return;
    }
    let p = guest("syscall-loop", &[]);
    let o = sandbox(&[p.as_os_str(), "5000".as_ref()]);
    assert_exit(&o, 0);
    let o = sandbox(&[
        "--stats".as_ref(),
        "--".as_ref(),
        p.as_os_str(),
        "5000".as_ref(),
    ]);
    assert_exit(&o, 0);
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.contains("stats:"))
        .expect("stats line");
    let num = |key: &str| -> u64 {
        let at = line
            .find(&format!("{key} "))
            .unwrap_or_else(|| panic!("{key} in {line}"))
            + key.len()
            + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (syscalls, exits, run) = (num("syscalls"), num("vm-exits"), num("KVM_RUN"));
    assert!(syscalls > 5000, "{line}");
    // One exit per syscall, plus the probe's before the program starts.
    assert_eq!(exits, syscalls + num("exceptions") + 1, "{line}");
    assert_eq!(run, exits, "{line}");
}

#[test]
fn the_return_path_matches_the_kvm() {
    if !kvm() {
        return;
    }
    let o = sandbox(&["-v", "true"]);
    assert_exit(&o, 0);
    let pvm = std::path::Path::new("/sys/module/kvm_pvm").exists();
    // PVM: the VMM resumes the program; hardware KVM: the stub's sysretq.
    let want = if pvm {
        "syscall return path: Vmm"
    } else {
        "syscall return path: Sysret"
    };
    assert!(stderr(&o).contains(want), "{}", stderr(&o));
}

#[test]
fn execve_replaces_the_program_in_the_sandbox() {
    if !kvm() {
        return;
    }
    let o = sandbox(&["env", "-i", "A=1 2", "/usr/bin/printenv", "A"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "1 2\n");
    let o = sandbox(&["/bin/sh", "-c", "exec echo replaced"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "replaced\n");
    let o = sandbox(&["env", "no-such-command-xcr0"]);
    assert_exit(&o, 127);
    assert!(
        stderr(&o).contains("No such file or directory"),
        "{}",
        stderr(&o)
    );
    for flags in VARIANTS {
        let p = guest("probe", flags);
        let o = sandbox(&[p.as_os_str(), "exec".as_ref()]);
        assert_exit(&o, 0);
        assert_eq!(
            stdout(&o),
            "kept_fd_open=1 dropped_fd_open=0 usr1_default=1 usr2_ignored=1 tls=5\n",
            "{flags:?}"
        );
    }
}

#[test]
fn proc_self_exe_names_the_program_not_the_sandbox() {
    if !kvm() {
        return;
    }
    let o = sandbox(&["readlink", "/proc/self/exe"]);
    assert_exit(&o, 0);
    let want = std::fs::canonicalize("/usr/bin/readlink").unwrap();
    assert_eq!(stdout(&o), format!("{}\n", want.display()));
    let o = sandbox(&["stat", "-L", "-c", "%s", "/proc/self/exe"]);
    assert_exit(&o, 0);
    let size = std::fs::metadata(std::fs::canonicalize("/usr/bin/stat").unwrap())
        .unwrap()
        .len();
    assert_eq!(stdout(&o), format!("{size}\n"));
}

#[test]
fn the_sandbox_descriptors_and_memory_cannot_be_reached_indirectly() {
    if !kvm() {
        return;
    }
    let p = guest("probe", &[]);
    let native = Command::new(&p).arg("steal").output().unwrap();
    let o = sandbox(&[p.as_os_str(), "steal".as_ref()]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), String::from_utf8_lossy(&native.stdout));
    assert_eq!(stdout(&o), "pidfd_getfd_high=0\n");
    // The program's own /proc/self/mem reaches the program only: reads and
    // writes elsewhere (the sandbox's executable, where the sandbox runs)
    // fail as natively where nothing is mapped, through a duplicate, a
    // reopened O_PATH descriptor, a thread's file and a fork child's too.
    let native = Command::new(&p).arg("mem").output().unwrap();
    let o = sandbox(&[p.as_os_str(), "mem".as_ref()]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), String::from_utf8_lossy(&native.stdout));
    assert!(
        stdout(&o).contains("pread outside the program: -1 Input/output error\n"),
        "{}",
        stdout(&o)
    );
    // Its first page is nobody's.
    let dd = ["dd", "if=/proc/self/mem", "of=/dev/null", "count=1"];
    let native = Command::new(dd[0]).args(&dd[1..]).output().unwrap();
    let o = sandbox(&dd);
    assert_eq!(o.status.code(), native.status.code());
    assert!(stderr(&o).contains("Input/output error"), "{}", stderr(&o));
}

#[test]
fn inherited_and_program_signal_dispositions_hold() {
    if !kvm() {
        return;
    }
    let p = guest("probe", &[]);
    let mut c = with_pre_exec(sandbox_cmd(), || {
        // SAFETY: async-signal-safe.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    });
    c.arg(&p).arg("signals");
    let o = run(c, None, &[]);
    // An ignored SIGINT stays ignored; an ignored SIGTRAP raised is
    // nothing; SIGBUS raised kills, as natively.
    assert_signal(&o, libc::SIGBUS);
    assert_eq!(stdout(&o), "sigint_ignored=1\nsurvived_ignored_sigtrap=1\n");
}

#[test]
fn no_core_file_but_the_program_sees_its_core_limit() {
    if !kvm() {
        return;
    }
    let dir = scratch().join("core-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let set_core = || {
        let r = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: async-signal-safe.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &r) };
    };
    let mut c = with_pre_exec(sandbox_cmd(), set_core);
    c.current_dir(&dir).args(["/bin/sh", "-c", "ulimit -c"]);
    let o = run(c, None, &[]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "unlimited\n");
    let mut c = with_pre_exec(sandbox_cmd(), set_core);
    c.current_dir(&dir).arg(guest("probe", &[])).arg("abort");
    let o = run(c, None, &[]);
    assert_signal(&o, libc::SIGABRT);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no core file left"
    );
}

#[test]
fn stack_follows_rlimit_and_gnu_stack() {
    if !kvm() {
        return;
    }
    let mut c = with_pre_exec(sandbox_cmd(), || {
        let r = libc::rlimit {
            rlim_cur: 64 << 20,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: async-signal-safe.
        unsafe { libc::setrlimit(libc::RLIMIT_STACK, &r) };
    });
    c.arg(guest("probe", &[])).arg("deep-stack");
    let o = run(c, None, &[]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "recursed=1\n");
    let o = sandbox(&[guest("nested", &[])]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "nested=42\n");
}

#[test]
fn huge_mappings_cost_what_is_touched() {
    if !kvm() {
        return;
    }
    // 64 GiB writable and 1 TiB reserved: entered in the guest page tables
    // only where touched; protections still hold there.
    let o = sandbox(&[guest("probe", &[]).as_os_str(), "huge".as_ref()]);
    assert_signal(&o, libc::SIGSEGV);
    assert_eq!(stdout(&o), "huge=1,2\n");
}

#[test]
fn single_process_tools_agree_with_native() {
    if !kvm() {
        return;
    }
    let f = scratch().join("tools-input");
    std::fs::write(&f, "alpha beta\ngamma\n\u{00e9}t\u{00e9}\n".repeat(500)).unwrap();
    let path = f.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["sha256sum", path],
        &["wc", path],
        &["head", "-c", "100", path],
        &["tr", "a-z", "A-Z"],
        &["date", "-u", "-d", "@86400", "+%F %T"],
        &["stat", "-c", "%s %F %a", path],
        &["gzip", "-9", "-c", "-n", path],
        &["od", "-An", "-tx1", "-N", "32", path],
        &["uname", "-srm"],
        &["id", "-u"],
    ];
    for args in cases {
        let native = run(
            {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            },
            Some(b"piped input\n"),
            &[],
        );
        let o = sandbox_with(args, Some(b"piped input\n"), &[]);
        assert_exit(&o, native.status.code().unwrap());
        assert_eq!(o.stdout, native.stdout, "{args:?}");
    }
}

#[test]
fn python_standard_library_works() {
    if !kvm() {
        return;
    }
    let code = r#"
import json, sqlite3, hashlib, os, tempfile, threading, zlib, subprocess, ssl, decimal
db = sqlite3.connect(":memory:")
db.execute("create table t (x)")
db.executemany("insert into t values (?)", [(i,) for i in range(1000)])
total = db.execute("select sum(x) from t").fetchone()[0]
with tempfile.TemporaryDirectory() as d:
    p = os.path.join(d, "f")
    open(p, "wb").write(zlib.compress(b"x" * 100000))
    size = len(zlib.decompress(open(p, "rb").read()))
print(json.dumps({"sum": total, "size": size, "dec": str(decimal.Decimal(1) / 7)[:8]}))
"#;
    let o = sandbox(&["/usr/bin/python3", "-c", code]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        "{\"sum\": 499500, \"size\": 100000, \"dec\": \"0.142857\"}\n"
    );
}

#[test]
fn terminal_ioctls_on_a_pty() {
    if !kvm() {
        return;
    }
    let (mut master, mut slave) = (0, 0);
    let ws = libc::winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills the two descriptors; winsize is read only.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(r, 0, "openpty");
    let on_pty = |mut c: Command| {
        // SAFETY: `slave` stays open for the whole test; the child gets a dup.
        let fd = unsafe { libc::dup(slave) };
        // SAFETY: `fd` is a fresh descriptor handed to the child's stdin.
        c.stdin(unsafe { <std::process::Stdio as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        c.output().unwrap()
    };
    for args in [&["stty", "size"][..], &["stty", "-g"], &["tty"]] {
        let mut native = Command::new(args[0]);
        native.args(&args[1..]);
        let native = on_pty(native);
        let mut c = sandbox_cmd();
        c.args(args);
        let o = on_pty(c);
        assert_exit(&o, 0);
        assert_eq!(
            stdout(&o),
            String::from_utf8_lossy(&native.stdout),
            "{args:?}"
        );
    }
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(slave);
        libc::close(master);
    }
}
