//! Cases where the sandbox used to be observable: each runs natively and in
//! the sandbox and compares what a user sees (output, status, errno).

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

const PYTHON: &str = "/usr/bin/python3";

fn native(args: &[&OsStr], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]);
    run(c, None, env)
}

/// Runs `args` natively and in the sandbox and asserts the same status,
/// stdout and stderr; returns the sandbox's output.
fn same(args: &[&OsStr], env: &[(&str, &str)]) -> Output {
    let n = native(args, env);
    let s = sandbox_with(args, None, env);
    assert_eq!(
        (s.status.code(), s.status.signal_number()),
        (n.status.code(), n.status.signal_number()),
        "{args:?}: status\nsandbox stderr: {}",
        stderr(&s)
    );
    assert_eq!(stdout(&s), stdout(&n), "{args:?}: stdout");
    assert_eq!(stderr(&s), stderr(&n), "{args:?}: stderr");
    s
}

trait SignalNumber {
    fn signal_number(&self) -> Option<i32>;
}

impl SignalNumber for std::process::ExitStatus {
    fn signal_number(&self) -> Option<i32> {
        std::os::unix::process::ExitStatusExt::signal(self)
    }
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn glibc_reading_past_the_last_string_on_the_stack() {
    if !kvm() {
        return;
    }
    // glibc's tunables parser reads past the end of this value when it has
    // no trailing comma: Linux leaves 8 zero bytes above the strings.
    let env = [("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-ERMS")];
    same(&[os("/bin/echo"), os("hi")], &env);
    same(&[os(PYTHON), os("-c"), os("print(6 * 7)")], &env);
}

#[test]
fn options_after_the_program_are_the_programs() {
    if !kvm() {
        return;
    }
    let f = scratch().join("grep-input");
    std::fs::write(&f, "a\nx\nb\n").unwrap();
    let s = same(&[os("grep"), os("-v"), os("x"), f.as_os_str()], &[]);
    assert_eq!(stdout(&s), "a\nb\n");
    let s = same(&[os("/bin/echo"), os("--help")], &[]);
    assert!(stdout(&s).contains("Usage:"), "{}", stdout(&s));
    same(
        &[os("/bin/echo"), os("--stats"), os("-v"), os("--xcr0=0x3")],
        &[],
    );
}

#[test]
fn usage_errors_are_one_line() {
    for args in [&["--no-such-flag", "true"][..], &[], &["--xcr0"]] {
        let o = Command::new(SANDBOX).args(args).output().unwrap();
        assert_exit(&o, 2);
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(
            e.starts_with("xcr0-sandbox: ") && e.contains("usage:"),
            "{e}"
        );
    }
}

/// `prog`, natively or in the sandbox.
fn command(sandboxed: bool, prog: &str) -> Command {
    if !sandboxed {
        return Command::new(prog);
    }
    let mut c = sandbox_cmd();
    c.arg(prog);
    c
}

/// Runs `f` in the child between fork and exec.
fn before_exec(c: &mut Command, f: impl Fn() + Send + Sync + 'static) {
    // SAFETY: callers pass closures that make only async-signal-safe calls
    // (close, setrlimit).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(c, move || {
            f();
            Ok(())
        })
    };
}

/// `sh -c SCRIPT` with the standard descriptors that `setup` leaves.
fn sh_with(script: &str, setup: fn(&mut Command)) -> (Output, Output) {
    let mut out = vec![];
    for mut c in [command(false, "/bin/sh"), command(true, "/bin/sh")] {
        let c = &mut c;
        c.args(["-c", script]);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        setup(c);
        out.push(c.output().unwrap());
    }
    let s = out.pop().unwrap();
    (out.pop().unwrap(), s)
}

/// Closes `fd` in the child before exec.
fn closing(c: &mut Command, fd: i32) {
    // SAFETY: closing a descriptor of the child's own.
    before_exec(c, move || unsafe {
        libc::close(fd);
    });
}

#[test]
fn closed_standard_descriptors_stay_closed() {
    if !kvm() {
        return;
    }
    // stdout closed: echo fails with EBADF, as natively.
    let (n, s) = sh_with("echo hi; echo status=$? >&2", |c| closing(c, 1));
    assert!(stderr(&n).contains("status=1"), "{}", stderr(&n));
    assert_eq!(s.status.code(), n.status.code());
    assert!(stderr(&s).ends_with(&stderr(&n)), "{}", stderr(&s));
    // stdin closed: the first file opened gets 0.
    let script = "import os; print(os.open('/dev/null', os.O_RDONLY))";
    for (mode, close_stdin) in [("closed", true), ("open", false)] {
        let mut outs = vec![];
        for mut c in [command(false, PYTHON), command(true, PYTHON)] {
            c.args(["-c", script]).stdout(Stdio::piped());
            if close_stdin {
                closing(&mut c, 0);
            } else {
                c.stdin(Stdio::null());
            }
            outs.push(c.output().unwrap());
        }
        assert_eq!(stdout(&outs[1]), stdout(&outs[0]), "stdin {mode}");
        let want = if close_stdin { "0\n" } else { "3\n" };
        assert_eq!(stdout(&outs[0]), want, "natively, stdin {mode}");
    }
}

#[test]
fn the_sandbox_messages_never_reach_the_programs_files() {
    if !kvm() {
        return;
    }
    // The program closes its stderr: --stats still reaches the sandbox's.
    let o = sandbox(&["--stats", "/bin/sh", "-c", "exec 2>&-; echo out"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "out\n");
    assert!(
        stderr(&o).contains("xcr0-sandbox: stats: xcr0 0x"),
        "{}",
        stderr(&o)
    );
    // The program reuses fd 2 for a file: only its own text goes there.
    let f = scratch().join("stderr-file");
    let script = format!("exec 2>{}; echo mine >&2", f.display());
    let o = sandbox(&["--stats", "-v", "/bin/sh", "-c", &script]);
    assert_exit(&o, 0);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "mine\n");
    assert!(
        stderr(&o).contains("xcr0-sandbox: stats: xcr0 0x"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o)
            .lines()
            .any(|l| l.starts_with("xcr0-sandbox[") && l.contains("]: trace: ")),
        "-v traces too, each line naming its thread"
    );
}

/// A chain of `depth` scripts, each interpreted by the one before, the
/// first by /bin/sh; returns the last.
fn script_chain(dir: &Path, depth: usize) -> PathBuf {
    let mut interp = PathBuf::from("/bin/sh");
    for i in 1..=depth {
        let s = dir.join(format!("chain{depth}-{i}"));
        executable(
            &s,
            format!("#!{}\necho depth {depth}: \"$@\"\n", interp.display()).as_bytes(),
        );
        interp = s;
    }
    interp
}

#[test]
fn hashbang_lines_and_chains_as_the_kernel_reads_them() {
    if !kvm() {
        return;
    }
    let d = scratch().join("hashbang");
    std::fs::create_dir_all(&d).unwrap();
    let no_newline = d.join("no-newline");
    executable(&no_newline, b"#!/bin/echo");
    same(&[no_newline.as_os_str(), os("arg")], &[]);
    // Longer than the kernel's 256-byte buffer: the argument is cut there.
    let long = d.join("long-line");
    let mut text = b"#!/bin/echo ".to_vec();
    text.resize(400, b'a');
    text.push(b'\n');
    executable(&long, &text);
    let s = same(&[long.as_os_str(), os("arg")], &[]);
    assert!(stdout(&s).len() > 200, "{}", stdout(&s));
    // Five interpreters deep runs; six is ELOOP.
    let five = script_chain(&d, 5);
    let s = same(&[five.as_os_str(), os("x")], &[]);
    assert!(stdout(&s).starts_with("depth 5:"), "{}", stdout(&s));
    let six = script_chain(&d, 6);
    // (Busy for a moment after writing, as for every script here.)
    let err = (0..100)
        .map(|_| Command::new(&six).output().unwrap_err())
        .find(|e| {
            let busy = e.raw_os_error() == Some(libc::ETXTBSY);
            if busy {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            !busy
        })
        .expect("busy for a second");
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "natively");
    let o = sandbox(&[six.as_os_str()]);
    assert_exit(&o, 126);
    assert!(
        stderr(&o).contains("Too many levels of symbolic links"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn path_errors_carry_the_kernels_errno() {
    if !kvm() {
        return;
    }
    let d = scratch().join("paths");
    std::fs::create_dir_all(&d).unwrap();
    let (a, b) = (d.join("loop-a"), d.join("loop-b"));
    let _ = std::os::unix::fs::symlink(&b, &a);
    let _ = std::os::unix::fs::symlink(&a, &b);
    let long = PathBuf::from(format!("/{}", "n".repeat(300)));
    let cases = [
        (a, libc::ELOOP, 126),
        (long, libc::ENAMETOOLONG, 126),
        (PathBuf::from("/etc/passwd/x"), libc::ENOTDIR, 126),
        (d.join("missing"), libc::ENOENT, 127),
    ];
    for (path, errno, status) in cases {
        let err = Command::new(&path).output().unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(errno),
            "natively: {}",
            path.display()
        );
        let o = sandbox(&[path.as_os_str()]);
        assert_exit(&o, status);
        let text = std::io::Error::from_raw_os_error(errno).to_string();
        let text = &text[..text.find(" (os error").unwrap()];
        let e = stderr(&o);
        assert!(
            e.lines().count() == 1 && e.contains(text),
            "{}: {e}",
            path.display()
        );
    }
}

#[test]
fn strings_and_iovecs_at_the_end_of_a_mapping() {
    if !kvm() {
        return;
    }
    // The sandbox bounds a string by the mappings, reads the
    // /proc/self/exe candidates and iovec arrays itself: each case ends
    // where a mapping does, or crosses a page.
    let p = guest("pointers", &[]);
    same(&[p.as_os_str(), os("edges")], &[]);
}

#[test]
fn a_segment_larger_on_file_than_in_memory_kills_as_natively() {
    if !kvm() {
        return;
    }
    // /bin/true with its first PT_LOAD's p_memsz below its p_filesz.
    let mut elf = std::fs::read("/bin/true").unwrap();
    let word = |b: &[u8], at: usize, n: usize| {
        b[at..at + n]
            .iter()
            .rev()
            .fold(0u64, |v, &x| v << 8 | u64::from(x))
    };
    let (phoff, phnum) = (word(&elf, 32, 8) as usize, word(&elf, 56, 2) as usize);
    let ph = (0..phnum)
        .map(|i| phoff + 56 * i)
        .find(|&o| word(&elf, o, 4) == 1 && word(&elf, o + 32, 8) > 16)
        .expect("a PT_LOAD with file contents");
    let smaller = word(&elf, ph + 32, 8) - 16;
    elf[ph + 40..ph + 48].copy_from_slice(&smaller.to_le_bytes());
    let bad = scratch().join("filesz-over-memsz");
    executable(&bad, &elf);
    let n = native(&[bad.as_os_str()], &[]);
    assert_signal(&n, libc::SIGSEGV);
    let o = sandbox(&[bad.as_os_str()]);
    assert_signal(&o, libc::SIGSEGV);
    assert!(stderr(&o).contains("p_filesz > p_memsz"), "{}", stderr(&o));
}

#[test]
fn the_loader_environment_acts_on_the_program_only() {
    if !kvm() {
        return;
    }
    // The sandbox is linked statically: ld.so speaks once, for the program.
    let s = same(
        &[os("/bin/echo"), os("hi")],
        &[("LD_PRELOAD", "/nonexistent.so")],
    );
    assert_eq!(stderr(&s).matches("/nonexistent.so").count(), 1);
    let n = native(&[os("/bin/true")], &[("LD_DEBUG", "libs")]);
    let s = sandbox_with(&["/bin/true"], None, &[("LD_DEBUG", "libs")]);
    assert_exit(&s, 0);
    let lines = |o: &Output| {
        stderr(o)
            .lines()
            .filter(|l| l.contains("find library"))
            .count()
    };
    assert!(lines(&n) > 0);
    assert_eq!(lines(&s), lines(&n), "{}", stderr(&s));
    same(
        &[os("/bin/echo"), os("x")],
        &[("MALLOC_CHECK_", "3"), ("LD_LIBRARY_PATH", "/nonexistent")],
    );
}

#[test]
fn proc_self_describes_the_program() {
    if !kvm() {
        return;
    }
    let script = "import os, ctypes\n\
        r = lambda f: open('/proc/self/' + f, 'rb').read()\n\
        print(r('comm'))\n\
        print([l for l in r('status').split(b'\\n') if l.startswith(b'Name:')])\n\
        print(r('cmdline'))\n\
        print(r('environ') == b''.join(k + b'=' + v + b'\\0' for k, v in os.environb.items()))\n\
        print(hex(ctypes.CDLL(None).getauxval(16)))\n";
    let s = same(
        &[os(PYTHON), os("-c"), os(script), os("arg one"), os("two")],
        &[],
    );
    assert!(stdout(&s).starts_with("b'python3\\n'\n"), "{}", stdout(&s));
    assert!(stdout(&s).contains("arg one\\x00two"), "{}", stdout(&s));
    // A script is named after itself, not its interpreter.
    let sh = scratch().join("named-script");
    executable(&sh, b"#!/bin/sh\nread name < /proc/self/comm; echo $name\n");
    let s = same(&[sh.as_os_str()], &[]);
    assert_eq!(stdout(&s), "named-script\n");
    // /proc/self/exe itself, not followed, is a symlink as natively.
    let s = same(&[os("stat"), os("-c"), os("%F"), os("/proc/self/exe")], &[]);
    assert_eq!(stdout(&s), "symbolic link\n");
    let script = "import os\n\
        try:\n\
        \x20   os.open('/proc/self/exe', os.O_RDONLY | os.O_NOFOLLOW)\n\
        except OSError as e:\n\
        \x20   print(e.strerror)\n\
        print(os.stat('/proc/self/exe', follow_symlinks=False).st_size)\n";
    let s = same(&[os(PYTHON), os("-c"), os(script)], &[]);
    assert_eq!(stdout(&s), "Too many levels of symbolic links\n0\n");
    // Its descriptors as it lists them: not the sandbox's parked ones.
    let script = "import os, threading\n\
        fds = lambda d: sorted(os.listdir(d), key=int)\n\
        print(fds('/proc/self/fd'))\n\
        print(fds('/proc/self/fdinfo'))\n\
        print(fds('/proc/%d/task/%d/fd' % (os.getpid(), threading.get_native_id())))\n";
    let s = same(&[os(PYTHON), os("-c"), os(script)], &[]);
    assert!(stdout(&s).starts_with("['0', '1', '2', "), "{}", stdout(&s));
}

/// Descriptors python opens before EMFILE with RLIMIT_NOFILE (soft, hard).
fn descriptors_until_emfile(sandboxed: bool, soft: u64, hard: u64) -> usize {
    let script = "import os\nn = 0\ntry:\n    while True:\n        os.open('/dev/null', 0); n += 1\n\
                  except OSError as e:\n    assert e.errno == 24\nprint(n)";
    let mut c = command(sandboxed, PYTHON);
    c.args(["-c", script]);
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads a struct the closure owns.
    before_exec(&mut c, move || unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    });
    let o = run(c, None, &[]);
    assert_exit(&o, 0);
    stdout(&o).trim().parse().unwrap()
}

#[test]
fn as_many_descriptors_as_natively() {
    if !kvm() {
        return;
    }
    // The usual case, soft limit under the hard one: exactly as natively.
    let (n, s) = (
        descriptors_until_emfile(false, 1024, 4096),
        descriptors_until_emfile(true, 1024, 4096),
    );
    assert_eq!(s, n);
    // Soft = hard, without CAP_SYS_RESOURCE: the sandbox's own five
    // (stderr, /dev/kvm, the VM, the vCPU, the ledger of faults taken
    // again) sit under the limit (README).
    let (n, s) = (
        descriptors_until_emfile(false, 2048, 2048),
        descriptors_until_emfile(true, 2048, 2048),
    );
    let privileged = caps_effective() & (1 << CAP_SYS_RESOURCE) != 0;
    assert_eq!(
        s,
        if privileged { n } else { n - 5 },
        "privileged: {privileged}"
    );
}

/// include/uapi/linux/capability.h (libc lacks it).
const CAP_SYS_RESOURCE: u32 = 24;

/// This process's effective capabilities.
fn caps_effective() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn a_python_signal_handler_runs_as_natively() {
    if !kvm() {
        return;
    }
    let script = "import signal, os\n\
        signal.signal(signal.SIGUSR1, lambda *a: print('handled'))\n\
        os.kill(os.getpid(), signal.SIGUSR1)\n\
        print('after')";
    let o = same(&[os(PYTHON), os("-c"), os(script)], &[]);
    assert_eq!(stdout(&o), "handled\nafter\n");
}

#[test]
fn traces_name_every_system_call() {
    if !kvm() {
        return;
    }
    for args in [
        &["-v", "/bin/sleep", "0.01"][..],
        &["-v", PYTHON, "-c", "import os; os.getppid()"],
    ] {
        let o = sandbox(args);
        assert_exit(&o, 0);
        let err = stderr(&o);
        let calls: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(": trace: syscall "))
            .collect();
        assert!(calls.len() > 20, "{args:?}: {err}");
        for l in &calls {
            assert!(!l.contains("syscall_"), "unnamed: {l}");
        }
    }
    let o = sandbox(&["-v", "/bin/sleep", "0.01"]);
    assert!(
        stderr(&o).contains("trace: syscall clock_nanosleep (230)"),
        "{}",
        stderr(&o)
    );
}

/// The clock through the vDSO, as natively: every clock's reading lies
/// between two of the kernel's own (forwarded system calls), in a new
/// thread and a forked child too, and getcpu names a CPU of this machine;
/// also in a program started by execve (the sandbox executed again).
#[test]
fn the_clock_reads_as_natively_through_the_vdso() {
    if !kvm() {
        return;
    }
    let clock = guest("clock", &["-pthread"]);
    let o = same(&[clock.as_os_str(), os("check")], &[]);
    assert_eq!(stdout(&o), "vdso 1\ncheck ok\ncpu ok\n");
    let script = format!("{} check", clock.display());
    let o = same(&[os("/bin/sh"), os("-c"), os(&script)], &[]);
    assert_eq!(stdout(&o), "vdso 1\ncheck ok\ncpu ok\n");
}

/// The system calls `--stats` counts for `clock loop n`.
fn forwarded_by_clock_loop(clock: &Path, n: &str) -> u64 {
    let o = sandbox(&[os("--stats"), clock.as_os_str(), os("loop"), os(n)]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "loop ok\n");
    let e = stderr(&o);
    let count = e
        .split_once(" syscalls ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    count.unwrap_or_else(|| panic!("no syscall count in:\n{e}"))
}

/// clock_gettime costs no exit: a thousand calls add no forwarded system
/// call to --stats.
#[test]
fn the_clock_makes_no_system_call() {
    if !kvm() {
        return;
    }
    let clock = guest("clock", &["-pthread"]);
    let one = forwarded_by_clock_loop(&clock, "1");
    let many = forwarded_by_clock_loop(&clock, "1000");
    assert_eq!(
        many, one,
        "1000 clock_gettime calls forwarded {many} syscalls, 1 call {one}"
    );
}

/// A program may unmap its vDSO natively, whole (not a part of it): it
/// leaves the program's view, the sandbox keeps its own (a fork after it
/// works), and reading it then is SIGSEGV.
#[test]
fn unmapping_the_vdso_is_as_native() {
    if !kvm() {
        return;
    }
    let clock = guest("clock", &["-pthread"]);
    same(&[clock.as_os_str(), os("unmap")], &[]);
}

/// The vDSO is read-only for the program: a system call may read it,
/// and a write there is SIGSEGV with SEGV_ACCERR at its address, as
/// natively.
#[test]
fn the_vdso_is_read_only_as_natively() {
    if !kvm() {
        return;
    }
    let clock = guest("clock", &["-pthread"]);
    let o = same(&[clock.as_os_str(), os("write")], &[]);
    assert_eq!(
        stdout(&o),
        "elf magic ELF\nwrite from it 4096\nsignal 11 code 2 at the vdso 1\n"
    );
}

#[test]
fn the_auxiliary_vectors_hwcap_is_the_kernels() {
    if !kvm() {
        return;
    }
    // ld.so prints the vector as the kernel gave it; glibc's getauxval
    // would answer its own platform bits for AT_HWCAP.
    let line = |o: &Output| {
        stdout(o)
            .lines()
            .find(|l| l.starts_with("AT_HWCAP:"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no AT_HWCAP line:\n{}", stdout(o)))
    };
    let env = [("LD_SHOW_AUXV", "1")];
    let n = native(&[os("/bin/true")], &env);
    let s = sandbox_with(&["/bin/true"], None, &env);
    assert_exit(&s, 0);
    assert_eq!(line(&s), line(&n));
}

#[test]
fn xstate_permissions_answer_as_linux_for_the_tasks_xcr0() {
    if !kvm() {
        return;
    }
    let prog = guest("xcomp", &[]);
    let n = keyvals(&stdout(&native(&[prog.as_os_str()], &[])));
    let s = sandbox(&[&prog]);
    assert_exit(&s, 0);
    let s = keyvals(&stdout(&s));
    // The task's XCR0 is the sandbox's default: the host's, less what the
    // KVM does not support (AMX on an AMX host's PVM).
    let xcr0 = default_xcr0();
    const AMX: u64 = 0x60000;
    const TILEDATA: u64 = 0x40000;
    assert_eq!(
        hex(&s, "supp"),
        xcr0,
        "ARCH_GET_XCOMP_SUPP: the task's XCR0"
    );
    assert_eq!(
        hex(&s, "perm"),
        xcr0 & !TILEDATA,
        "tile data only on request"
    );
    assert_eq!(hex(&s, "guest_perm"), xcr0 & !TILEDATA);
    for i in 0..66 {
        let key = format!("req{i}");
        if (17..=18).contains(&i) {
            let expected = if xcr0 & AMX == AMX { "0" } else { "EOPNOTSUPP" };
            assert_eq!(s[&key], expected, "{key}");
        } else {
            // Every other index is the host kernel's answer, as natively.
            assert_eq!(s[&key], n[&key], "{key}");
        }
    }
    let granted = if xcr0 & AMX == AMX { TILEDATA } else { 0 };
    assert_eq!(hex(&s, "perm_after"), (xcr0 & !TILEDATA) | granted);
    assert_eq!(s["perm_bad_pointer"], "EFAULT");
    assert_eq!(s["perm_bad_pointer"], n["perm_bad_pointer"]);
    if xcr0 == check_mask("host xcr0") {
        // The same XCR0 as natively: every answer is the host's.
        assert_eq!(s, n);
    }
}

#[test]
fn threads_that_reset_their_tid_address_are_joined() {
    if !kvm() {
        return;
    }
    let prog = guest("tid-address", &["-pthread"]);
    let n = run_limited(common::command(false, &[&prog]));
    let s = run_limited(common::command(true, &[&prog]));
    assert_same("PR_GET_TID_ADDRESS then set_tid_address", &n, &s, true);
    assert_exit(&s, 0);
}

/// CPUID faulting (ARCH_GET_CPUID / ARCH_SET_CPUID), which rr uses to
/// replay a trace's CPUID: with it on, CPUID at CPL3 raises SIGSEGV
/// (SI_KERNEL, trap 13) that a handler emulates, a new thread and a fork
/// child inherit it, an exec turns it off, and without a handler the
/// program dies of SIGSEGV. KVM emulates it for its guests on any vendor,
/// so the sandbox offers it on AMD too: compared with native where the
/// host kernel offers it, else with what it does where it does.
#[test]
fn cpuid_faulting_per_thread_as_linux() {
    if !kvm() {
        return;
    }
    let prog = guest("cpuid-fault", &[]);
    let s = sandbox(&[&prog]);
    assert_signal(&s, libc::SIGSEGV);
    let n = native(&[prog.as_os_str()], &[]);
    if stdout(&n).starts_with("get 1\nset 0: 0 \n") {
        assert_eq!(status(&s), status(&n));
        assert_eq!(stdout(&s), stdout(&n));
        return;
    }
    assert_eq!(
        stdout(&s),
        "get 1\nset 0: 0 \nget 0\n\
         cpuid: eax 0x1234, faults 1, si_code 128, si_addr (nil), trapno 13\n\
         a new thread: get 0\na fork child: get 0\nafter exec: get 1\n\
         set 1: 0\ncpuid: real leaf 1, faults 0\nget 1\n",
        "natively (without CPUID faulting):\n{}",
        stdout(&n)
    );
}

/// perf_event_open on the program's own thread: software counters over
/// known work, an overflow signal to the thread with its siginfo (as rr's
/// ticks counter uses it), the ioctls rr uses; page-fault counters over
/// new pages touched (KVM's faults for the guest fire no perf event on
/// the host: the sandbox takes them again), with overflow signals every
/// 100 faults, on another thread and on a child process by their ids,
/// inherited by a new thread, and kept across an exec, with rusage
/// counting each fault once (getrusage, wait4 of a child ended, killed
/// outright, stopped or reaped by its parent's new image, across the
/// exec); this
/// machine's answer for hardware events
/// (none has a PMU here: ENOENT natively), errors. The same output
/// natively and sandboxed.
#[test]
fn perf_events_on_the_program_as_natively() {
    if !kvm() {
        return;
    }
    let prog = guest("perf-events", &[]);
    let s = sandbox(&[&prog]);
    let n = native(&[prog.as_os_str()], &[]);
    assert_eq!(status(&s), status(&n), "{}", both(&n, &s));
    assert_eq!(stdout(&s), stdout(&n), "{}", both(&n, &s));
    for fact in [
        "overflow signals over 60 ms every 2 ms: at least 5: 1; si_code POLL_IN 1, \
         si_fd the counter's 1\n",
        "page faults over 2000 new pages: 2000 to 2100: 1, minor too: 1, major: 0\n",
        "rusage over them, counted once: 2000 to 2100: process 1, thread 1\n",
        "its rusage, counted once: 1000 to 1500: wait4 1, RUSAGE_CHILDREN 1\n",
        "a child killed by SIGKILL over 1000 new pages: counted 1000 to 1200: 1; \
         its rusage 1000 to 1500: wait4 1, RUSAGE_CHILDREN 1\n",
        "a stopped child over 1000 new pages: counted 1000 to 1200: 1; \
         its rusage in WUNTRACED's wait4 1000 to 1500: 1\n",
        "a counted child the old image made, reaped by the new: its rusage 1000 to 1500: 1\n",
        "rusage goes on across an exec: its own faults at most 600: 1\n",
        "overflow signals over 1000 new pages every 100 faults: 9 to 11: 1\n",
        "page faults of another thread over 1000 new pages: 1000 to 1100: 1\n",
        "page faults of a child process over 1000 new pages: 1000 to 1200: 1\n",
        "an inherited counter over a new thread's 1000 new pages: 1000 to 1200: 1\n",
        "after an exec, the counter kept over 1000 new pages: 1000 to 1100: 1\n",
    ] {
        assert!(stdout(&n).contains(fact), "natively:\n{}", stdout(&n));
    }
}

/// A hardware breakpoint event (`perf stat -e mem:ADDR:w`) on the
/// program's thread: the host's would watch the host thread, never the
/// guest, and count nothing, so it is refused as by a kernel without the
/// breakpoint PMU, where natively it counts each write.
#[test]
fn a_breakpoint_event_on_the_program_is_refused_rather_than_counting_nothing() {
    if !kvm() {
        return;
    }
    let prog = guest("perf-events", &[]);
    let s = sandbox(&[prog.as_os_str(), "breakpoint".as_ref()]);
    let n = native(&[prog.as_os_str(), "breakpoint".as_ref()], &[]);
    assert_eq!(status(&s), status(&n), "{}", both(&n, &s));
    assert_eq!(
        stdout(&s),
        "breakpoint event: No such file or directory\n",
        "{}",
        both(&n, &s)
    );
    // The host lane's kernel has the breakpoint PMU; where a kernel has
    // none (ENOENT natively too), the answers agree.
    assert!(
        [
            "breakpoint event: 10 of 10 writes\n",
            "breakpoint event: No such file or directory\n"
        ]
        .contains(&stdout(&n).as_str()),
        "natively: {}",
        stdout(&n)
    );
}

/// rdtsc trapping (PR_SET_TSC, PR_GET_TSC), which rr needs: under
/// PR_TSC_SIGSEGV, rdtsc and rdtscp (the vDSO's clock's too) raise SIGSEGV
/// that a handler emulates, a thread, a fork child and an exec keep the
/// mode, and without a handler the program dies. Where the KVM applies
/// CR4.TSD to the guest (the real-KVM lane) as natively; where it does not
/// (PVM), the call fails with EINVAL, never pretending, and `-v` says why.

#[test]
fn rdtsc_trapping_as_linux_or_refused() {
    if !kvm() {
        return;
    }
    let prog = guest("tsc-trap", &[]);
    let s = sandbox(&[&prog]);
    if enforced() {
        let n = native(&[prog.as_os_str()], &[]);
        assert_eq!(status(&s), status(&n), "{}", stderr(&s));
        assert_eq!(stdout(&s), stdout(&n));
        assert!(
            stdout(&n).contains("rdtsc: 1000, faults 1"),
            "{}",
            stdout(&n)
        );
        return;
    }
    assert_exit(&s, 1);
    assert_eq!(
        stdout(&s),
        "mode 1\nbad mode: -1 Invalid argument\nset PR_TSC_SIGSEGV: -1 Invalid argument\n"
    );
    // Quiet, as the kernel is (programs probe for it in a loop); -v says
    // why.
    assert_eq!(stderr(&s), "");
    let mut c = sandbox_cmd();
    c.arg("-v").arg("--").arg(&prog);
    let v = run_limited(c);
    assert!(
        stderr(&v).contains("rdtsc cannot be trapped"),
        "{}",
        stderr(&v)
    );
}
