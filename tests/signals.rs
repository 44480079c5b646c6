//! Signals: tests/guests/signals.c's checks (handlers, siginfo, the frame
//! byte for byte where printed, registers across a handler, SA_RESTART,
//! masks, sigaltstack, waiting for signals, timers, children, faults), a
//! stack overflow caught on an altstack, corrupt frames, a storm of
//! real-time signals at busy threads, python's signal handling, timeout(1),
//! a shell killing its job, and job control on a pseudo-terminal. Each
//! runs natively and in the sandbox, and the two must agree. On this KVM
//! the program sees the host's XCR0, so the frames must match natively.
//! Every run is killed, with its process group, after `LIMIT`.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;

const PYTHON: &str = "/usr/bin/python3";

/// Runs `args` natively and in the sandbox at the same time, each set up
/// by `setup` before exec; returns (native, sandbox).
fn both_runs<S: AsRef<OsStr> + Sync>(args: &[S], setup: fn()) -> (Output, Output) {
    std::thread::scope(|scope| {
        let [n, s] = [false, true].map(|sandboxed| {
            scope.spawn(move || run_limited(with_pre_exec(command(sandboxed, args), setup)))
        });
        (n.join().unwrap(), s.join().unwrap())
    })
}

/// Runs `args` natively and in the sandbox; asserts the two agree (status,
/// stdout, stderr) and returns the native run.
fn same<S: AsRef<OsStr> + Sync + std::fmt::Debug>(args: &[S], setup: fn()) -> Output {
    let (n, s) = both_runs(args, setup);
    assert_same(&format!("{args:?}"), &n, &s, true);
    n
}

/// Nothing to set up before exec.
fn nothing() {}

/// No core file when a run dies by a signal.
fn no_core_file() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads a local; async-signal-safe.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

/// SIGINT at its default action, whatever the test runner's is (a shell
/// running it in the background ignores SIGINT, and python then installs
/// no KeyboardInterrupt handler).
fn default_sigint() {
    // SAFETY: signal is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}

/// The signals guest.
fn signals() -> std::path::PathBuf {
    guest("signals", &["-pthread", "-lrt"])
}

/// The default mode's two runs (native, sandbox), made once for the
/// tests that compare their lines.
fn default_runs() -> &'static (Output, Output) {
    static RUNS: OnceLock<(Output, Output)> = OnceLock::new();
    RUNS.get_or_init(|| both_runs(&[signals()], nothing))
}

/// The lines of the default mode's output that each group of checks
/// prints, by prefix.
const GROUPS: &[(&str, &[&str])] = &[
    (
        "senders",
        &[
            "raise:",
            "kill:",
            "tgkill:",
            "sigqueue:",
            "rt_tgsigqueueinfo:",
            "kill SIGSEGV",
            "plain:",
        ],
    ),
    ("frame", &["frame:"]),
    ("registers", &["registers:", "edit:"]),
    (
        "restart",
        &[
            "read ",
            "nanosleep ",
            "poll ",
            "waitpid ",
            "restart_syscall ",
        ],
    ),
    ("masks", &["default mask:", "SA_NODEFER:", "SA_RESETHAND:"]),
    ("altstack", &["altstack", "SS_AUTODISARM:"]),
    (
        "waits",
        &[
            "sigsuspend ",
            "sigwaitinfo:",
            "sigtimedwait ",
            "signalfd:",
            "pause+alarm:",
            "blocked then unblocked:",
        ],
    ),
    ("timers", &["timer ", "pthread_kill:"]),
    ("children", &["SIGCHLD", "fork:", "exec:"]),
    (
        "faults",
        &[
            "NULL",
            "non-canonical",
            "kernel-half",
            "PROT_READ",
            "divide by zero",
            "ud2",
            "int3",
            "SSE",
            "kill after faults",
        ],
    ),
];

/// The lines of `out` in group `group`.
fn group_lines<'a>(out: &'a str, group: &str) -> Vec<&'a str> {
    let prefixes = GROUPS
        .iter()
        .find(|(g, _)| *g == group)
        .unwrap_or_else(|| panic!("no group {group}"))
        .1;
    out.lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .collect()
}

/// Compares group `group` of the default mode line by line: the native
/// lines must contain each of `expected` (what Linux does, so the check
/// itself is known to work), and the sandbox's lines must be the native
/// ones. Fails listing every line that differs.
fn compare_group(group: &str, expected: &[&str]) {
    if !kvm() {
        return;
    }
    let (n, s) = default_runs();
    let (nout, sout) = (stdout(n), stdout(s));
    let native = group_lines(&nout, group);
    let boxed = group_lines(&sout, group);
    assert!(!native.is_empty(), "natively, no {group} lines:\n{nout}");
    for e in expected {
        assert!(
            native.iter().any(|l| l.contains(e)),
            "natively, no {e:?} among the {group} lines:\n{}",
            native.join("\n")
        );
    }
    let mut diffs = Vec::new();
    for i in 0..native.len().max(boxed.len()) {
        let (a, b) = (native.get(i), boxed.get(i));
        if a != b {
            diffs.push(format!(
                "  native:  {}\n  sandbox: {}",
                a.unwrap_or(&"(none)"),
                b.unwrap_or(&"(none)")
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{group}: {} line(s) differ from native:\n{}\n(sandbox {:?}, stderr:\n{})",
        diffs.len(),
        diffs.join("\n"),
        s.status,
        stderr(s)
    );
}

#[test]
fn the_default_mode_runs_to_the_end_as_natively() {
    if !kvm() {
        return;
    }
    let (n, s) = default_runs();
    assert_exit(n, 0);
    let out = stdout(n);
    assert!(out.ends_with("done\n"), "natively:\n{out}");
    // Every line belongs to a group that some test compares.
    for l in out.lines().filter(|l| *l != "done") {
        assert!(
            GROUPS
                .iter()
                .any(|(_, ps)| ps.iter().any(|p| l.starts_with(p))),
            "line in no group: {l}"
        );
    }
    assert_eq!(status(s), status(n), "status\n{}", both(n, s));
    assert_eq!(
        stdout(s).lines().count(),
        out.lines().count(),
        "line count\n{}",
        both(n, s)
    );
}

#[test]
fn siginfo_from_raise_kill_tgkill_sigqueue_and_handlers_without_sa_siginfo() {
    compare_group(
        "senders",
        &[
            "raise: sig=10 signo=10 code=-6 errno=0 pid_self=1 uid_self=1 calls=1",
            "kill: sig=10 signo=10 code=0 errno=0 pid_self=1",
            "sigqueue: sig=10 signo=10 code=-1",
            "sigqueue: value_ok=1",
            "rt_tgsigqueueinfo: ret=0 code=-42 pid=12345 uid=678 value=99 calls=1",
            "kill SIGSEGV: sig=11 signo=11 code=0 errno=0 pid_self=1 uid_self=1 calls=1",
            "kill SIGSEGV, raise SIGILL, both ignored: survived=1",
            "plain: sig=12 calls=1 uc_flags=0x7 info_minus_uc=304",
        ],
    );
}

#[test]
fn the_signal_frame_is_laid_out_as_linux_lays_it_out() {
    compare_group(
        "frame",
        &[
            "uc_minus_rsp=8 info_minus_rsp=312 rsp_plus_8_mod_16=0 fpstate_minus_uc=448 \
             fpstate_mod_64=0",
            "uc_flags=0x7 uc_link_null=1",
            "magic1=0x46505853 extended_minus_xstate_size=4",
            "xstate_size_is_cpuid=1 magic2_ok=1 sw_padding_zero=1",
            "xfeatures_is_xcr0=1 xstate_bv_fp_sse=3 xstate_bv_within_xcr0=1 xcomp_bv=0",
            "below_red_zone_within_64=1 rip_after_syscall=1 csgsfs=0x2b000000000033",
            "oldmask_is_sigmask=1 sigmask_usr2=0 sigmask_prof=1 live_usr2_blocked=1",
            "fpu_cwd=0x37f mxcsr=0x1f80",
        ],
    );
}

#[test]
fn registers_survive_a_handler_that_clobbers_them_and_sigreturn_takes_edits() {
    compare_group(
        "registers",
        &[
            "gprs_kept=1 vectors_kept=1 mxcsr=0x3f80 df=1 rsp_kept=1 rax=0",
            "handler rax=0 rdi=12 df=0 tf=0 mxcsr=0x1f80 vector8_zero=1 rsp_plus_8_mod_16=0",
            "edit: frame gregs=1 rip=1 rsp=1 rcx=1 rax_zero=1 r11_df=1 xmm8=1",
            "edit: after rbx=1 r15=1 others_kept=1 xmm9=1 ymm9_hi=1 vectors_kept=1 mxcsr=0x5f80",
        ],
    );
}

#[test]
fn interrupted_calls_restart_under_sa_restart_as_signal_7_says() {
    compare_group(
        "restart",
        &[
            "read SA_RESTART: ret=1 byte=x alarms=2",
            "read no SA_RESTART: ret=-1 errno=EINTR alarms=1",
            "nanosleep SA_RESTART: ret=-1 errno=EINTR alarms=1 remaining_over_4s=1",
            "poll SA_RESTART: ret=-1 errno=EINTR",
            "waitpid SA_RESTART: got_child=1",
            "waitpid no SA_RESTART: got_child=0 errno=EINTR",
            "restart_syscall alone: ret=-1 errno=EINTR",
        ],
    );
}

#[test]
fn handlers_block_their_signal_and_sa_mask_unless_nodefer_and_resethand_resets() {
    compare_group(
        "masks",
        &[
            "default mask: in_handler usr1_blocked=1 usr2_blocked=1 calls=2 max_depth=1",
            "SA_NODEFER: in_handler usr1_blocked=0 usr2_blocked=1 calls=2 max_depth=2",
            "SA_RESETHAND: calls=1 in_handler_dfl=1",
        ],
    );
}

#[test]
fn sigaltstack_onstack_nesting_and_autodisarm() {
    compare_group(
        "altstack",
        &[
            "altstack: local_on=1 sigaltstack_flags=1 uc_sp_is_alt=1 uc_size=65536",
            "change_errno=EPERM after_flags=0",
            "altstack nested: on=1 below_outer=1",
            "SS_AUTODISARM: local_on=1 sigaltstack_flags=0x2 uc_flags=0x80000000 \
             after_flags=0x80000000",
            "altstack disabled: flags=2",
        ],
    );
}

#[test]
fn sigsuspend_sigwaitinfo_signalfd_pause_and_unblocking() {
    compare_group(
        "waits",
        &[
            "sigsuspend pending: ret=-1 errno=EINTR calls=1 uc_sigmask_usr1=1 \
             usr1_blocked_after=1",
            "sigsuspend alarm: ret=-1 errno=EINTR alarms=1 alrm_blocked_after=1",
            "sigwaitinfo: ret=12 code=-1 value=77 pid_self=1 handler_calls=0",
            "sigtimedwait empty: ret=-1 errno=EAGAIN",
            "signalfd: read=128 signo=12 code=0 pid_self=1 handler_calls=0",
            "pause+alarm: ret=-1 errno=EINTR alarms=1",
            "blocked then unblocked: calls_before=0 pending=1 calls_after=1",
        ],
    );
}

#[test]
fn posix_timers_and_pthread_kill_reach_the_thread_named() {
    compare_group(
        "timers",
        &[
            "timer SIGEV_SIGNAL: code=-2 value=5 overrun=0 timerid_ok=1 calls=1",
            "timer SIGEV_THREAD_ID: code=-2 value=9 in_target_thread=1 calls=1",
            "pthread_kill: code=-6 in_target_thread=1 pid_self=1 calls=1",
        ],
    );
}

#[test]
fn sigchld_fork_and_exec_keep_or_reset_dispositions_as_linux() {
    compare_group(
        "children",
        &[
            "SIGCHLD: code=1 status=5 pid_is_child=1 calls=1",
            "fork: child ran the inherited handler=1",
            "exec: usr1_default=1 usr2_ignored=1 prof_blocked=1 prof_pending=1",
            "exec: fault signals ignored=6, SIGSEGV and SIGTRAP sent: survived",
            "exec: status=0",
            "SIGCHLD ignored: waitpid=-1 errno=ECHILD",
        ],
    );
}

#[test]
fn faults_reach_handlers_with_linux_siginfo_and_trap_details() {
    let mut expected = vec![
        "NULL write: signo=11 code=1 errno=0 addr=0 rip_is_insn=1 trapno=14 err=0x6 \
         cr2_is_addr=1 jumped=1 segv_blocked_after=0",
        "NULL+16 read: code=1 addr=0x10 rip_is_insn=1 trapno=14 err=0x4",
        "non-canonical read: signo=11 code=128 addr=0 rip_is_insn=1 trapno=13 err=0",
        "kernel-half read: signo=11 code=1 addr_ok=1 trapno=14 err=0x5",
        "PROT_READ write: signo=11 code=2 addr_is_page=1 rip_is_insn=1 trapno=14 err=0x7 \
         cr2_is_page=1 calls=1 value=42",
        "divide by zero: signo=8 code=1 errno=0 addr_is_insn=1 rip_is_insn=1 trapno=0 err=0",
        "ud2: signo=4 code=2 errno=0 addr_is_insn=1 rip_is_insn=1 trapno=6 err=0",
        "int3: signo=5 code=128 addr=0 rip_after_int3=1 trapno=3 err=0",
    ];
    // QEMU's TCG, the real-KVM lane's CPU, raises no SIMD floating-point
    // exceptions: there the sandbox is compared with native only.
    if std::env::var_os("XCR0_SANDBOX_LANE").is_none() {
        expected.extend([
            "SSE divide by zero: signo=8 code=3 addr_is_insn=1 trapno=19",
            "kill after faults: trapno=19 err=0 cr2_is_page=1",
        ]);
    }
    compare_group("faults", &expected);
}

#[test]
fn a_main_thread_stack_overflow_is_caught_on_the_altstack() {
    if !kvm() {
        return;
    }
    let prog = signals();
    let (n, s) = both_runs(&[prog.as_os_str(), OsStr::new("overflow")], no_core_file);
    assert_exit(&n, 0);
    assert!(
        stdout(&n).starts_with("overflow: sig=11 code=1 on_altstack=1 addr_near_deepest_frame=1"),
        "natively: {}",
        stdout(&n)
    );
    assert_same("overflow", &n, &s, false);
}

#[test]
fn a_thread_stack_overflow_is_caught_on_the_altstack() {
    if !kvm() {
        return;
    }
    let prog = signals();
    let (n, s) = both_runs(
        &[prog.as_os_str(), OsStr::new("overflow-thread")],
        no_core_file,
    );
    assert_exit(&n, 0);
    assert!(
        stdout(&n).starts_with("overflow: sig=11 code=2 on_altstack=1 addr_near_deepest_frame=1"),
        "natively: {}",
        stdout(&n)
    );
    assert_same("overflow-thread", &n, &s, false);
}

#[test]
fn fault_siginfos_a_program_sends_itself_reach_its_handlers() {
    if !kvm() {
        return;
    }
    let prog = signals();
    let (n, s) = both_runs(&[prog.as_os_str(), OsStr::new("forged")], no_core_file);
    assert_exit(&n, 0);
    let round = "forged SIGSEGV: ret=0 signo=11 code=1 addr=0x1234 calls=1\n\
                 forged SIGILL: ret=0 signo=4 code=1 addr=0x1234 calls=1\n\
                 then kill SIGSEGV: sig=11 signo=11 code=0 errno=0 pid_self=1 uid_self=1 calls=1\n";
    assert_eq!(stdout(&n), round.repeat(2), "natively");
    assert_same("forged", &n, &s, false);
}

#[test]
fn a_handler_returning_through_a_corrupt_frame_dies_by_sigsegv() {
    if !kvm() {
        return;
    }
    let prog = signals();
    for mode in ["badframe", "badcs"] {
        let (n, s) = both_runs(&[prog.as_os_str(), OsStr::new(mode)], no_core_file);
        assert_signal(&n, libc::SIGSEGV);
        assert_eq!(stdout(&n), "badframe: the handler returns\n", "{mode}");
        assert_same(mode, &n, &s, false);
    }
}

#[test]
fn a_storm_of_realtime_signals_at_busy_threads_loses_none() {
    if !kvm() {
        return;
    }
    let prog = signals();
    let (n, s) = both_runs(&[prog.as_os_str(), OsStr::new("storm")], nothing);
    eprintln!("native: {}sandbox: {}", stderr(&n), stderr(&s));
    let want = "storm: process_directed=10000\n\
                storm: thread_directed_each=1250,1250,1250,1250,1250,1250,1250,1250\n\
                storm: thread_directed=10000\n";
    assert_exit(&n, 0);
    assert_eq!(stdout(&n), want, "natively");
    assert_same("storm", &n, &s, false);
}

#[test]
fn sigbus_past_the_end_of_a_mapped_file_reaches_the_handler() {
    if !kvm() {
        return;
    }
    let prog = signals();
    let (n, s) = both_runs(&[prog.as_os_str(), OsStr::new("sigbus")], no_core_file);
    assert_exit(&n, 0);
    assert_eq!(
        stdout(&n),
        "sigbus: signo=7 code=2 addr_ok=1 rip_is_insn=1 jumped=1 first_page=1\n"
    );
    assert_same("sigbus", &n, &s, false);
}

#[test]
fn python_runs_its_signal_handlers_and_raises_keyboard_interrupt() {
    if !kvm() {
        return;
    }
    let handler = "import os, signal\n\
        def h(sig, frame):\n    print('handler got', sig)\n\
        signal.signal(signal.SIGINT, h)\n\
        os.kill(os.getpid(), signal.SIGINT)\n\
        print('after kill')\n";
    let n = same(&[PYTHON, "-c", handler], default_sigint);
    assert_exit(&n, 0);
    assert_eq!(stdout(&n), "handler got 2\nafter kill\n");

    let interrupt = "import os, signal, time\n\
        print('default handler:', signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n\
        try:\n\
        \x20   os.kill(os.getpid(), signal.SIGINT)\n\
        \x20   time.sleep(5)\n\
        \x20   print('not interrupted')\n\
        except KeyboardInterrupt:\n\
        \x20   print('KeyboardInterrupt caught')\n";
    let n = same(&[PYTHON, "-c", interrupt], default_sigint);
    assert_exit(&n, 0);
    assert_eq!(
        stdout(&n),
        "default handler: True\nKeyboardInterrupt caught\n"
    );

    // An alarm whose handler raises ends a sleep early.
    let alarm = "import signal, time\n\
        class Late(Exception): pass\n\
        def h(sig, frame): raise Late()\n\
        signal.signal(signal.SIGALRM, h)\n\
        signal.setitimer(signal.ITIMER_REAL, 0.05)\n\
        t = time.monotonic()\n\
        try:\n\
        \x20   time.sleep(5)\n\
        except Late:\n\
        \x20   print('Late raised, early:', time.monotonic() - t < 4)\n";
    let n = same(&[PYTHON, "-c", alarm], nothing);
    assert_exit(&n, 0);
    assert_eq!(stdout(&n), "Late raised, early: True\n");
}

#[test]
fn timeout_ends_a_sleep_with_sigterm_and_exits_124_or_with_sigkill() {
    if !kvm() {
        return;
    }
    let n = same(&["timeout", "1", "sleep", "5"], nothing);
    assert_exit(&n, 124);
    // With KILL, timeout signals its process group, itself included.
    let n = same(&["timeout", "-s", "KILL", "1", "sleep", "5"], nothing);
    assert_signal(&n, libc::SIGKILL);
}

#[test]
fn a_shell_kills_its_background_job_and_runs_its_traps() {
    if !kvm() {
        return;
    }
    // dash has no job control in a script (kill %1 finds no process
    // group): the job's pid. The kill comes while the shell waits: dash
    // prints "Terminated" only for a job it reaps inside `wait`, so one
    // that died before (seen natively once in the lane) would change its
    // stderr by timing alone.
    let n = same(
        &[
            "/bin/sh",
            "-c",
            "sleep 5 & p=$!; (sleep 0.3; kill $p) & wait $p; echo \"status $?\"",
        ],
        nothing,
    );
    assert_exit(&n, 0);
    assert_eq!(stdout(&n), "status 143\n");
    let n = same(
        &[
            "/bin/sh",
            "-c",
            "trap 'echo trapped TERM; exit 3' TERM; kill -TERM $$; echo not reached",
        ],
        nothing,
    );
    assert_exit(&n, 3);
    assert_eq!(stdout(&n), "trapped TERM\n");
    for (name, sig) in [
        ("USR1", libc::SIGUSR1),
        ("SEGV", libc::SIGSEGV),
        ("ILL", libc::SIGILL),
    ] {
        let script = format!("kill -{name} $$; echo not reached");
        let n = same(&["/bin/sh", "-c", &script], no_core_file);
        assert_signal(&n, sig);
    }
}

/// An interactive bash on a pseudo-terminal: what it has printed so far,
/// and a way to type at it.
struct Terminal {
    master: std::fs::File,
    seen: Arc<Mutex<Vec<u8>>>,
    bash: std::process::Child,
    log: String,
}

/// Makes the pty the session's controlling terminal: run in the child
/// between fork and exec.
fn controlling_terminal() {
    // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the pty.
    unsafe {
        libc::setsid();
        libc::ioctl(0, libc::TIOCSCTTY, 0);
    }
}

impl Terminal {
    /// Starts `bash --norc --noprofile -i` on a new pseudo-terminal.
    fn bash() -> Terminal {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty writes two descriptors we then own.
        let r = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors are fresh and owned here alone.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut c = Command::new("bash");
        c.args(["--norc", "--noprofile", "-i"])
            .env("PS1", "$ ")
            .env("TERM", "dumb")
            .env("HISTFILE", "/dev/null")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        let bash = with_pre_exec(c, controlling_terminal)
            .spawn()
            .expect("spawn bash");
        let master = std::fs::File::from(master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once bash and its jobs have closed the pty.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            master,
            seen,
            bash,
            log: String::new(),
        }
    }

    /// Everything the terminal has shown.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Types `s`.
    fn send(&mut self, s: &str) {
        self.log += &format!("<typed {s:?}>\n");
        self.master
            .write_all(s.as_bytes())
            .expect("write to the pty");
    }

    /// Waits until the terminal shows `marker`; fails with the transcript
    /// after 30 s.
    fn expect(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screen.contains(marker) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {marker:?} on the terminal after 30 s\n{}\nscreen:\n{screen}",
                self.log
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // bash leads its session: the group goes, and its jobs get SIGHUP
        // when the terminal's controlling process is gone.
        let pid = self.bash.id() as i32;
        // SAFETY: signals the process group of the bash this test started.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.bash.wait();
    }
}

/// Drives bash on a pty through `job` (a command line that prints
/// started-2, sleeps 2 s, then prints resumed-42): Ctrl-Z once it has
/// started, `fg`, and the end. Returns the transcript.
fn job_control(job: &str) -> String {
    let mut t = Terminal::bash();
    // The markers are computed, so the echo of what is typed never
    // matches them.
    t.send("echo ready-$((6*7))\n");
    t.expect("ready-42");
    t.send(&format!("{job}\n"));
    t.expect("started-2");
    t.send("\x1a");
    let screen = t.expect("Stopped");
    assert!(
        !screen.contains("resumed-42"),
        "the job ran on past Ctrl-Z:\n{screen}"
    );
    t.send("fg\n");
    t.expect("resumed-42");
    t.send("echo fg-status=$?\n");
    t.expect("fg-status=0");
    t.send("exit\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.bash.try_wait().expect("wait bash").is_none() {
        assert!(
            Instant::now() < deadline,
            "bash did not exit:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.screen()
}

#[test]
fn ctrl_z_stops_a_sandboxed_job_and_fg_resumes_it() {
    if !kvm() {
        return;
    }
    // One process: a job whose shell vforks can be caught between vfork
    // and exec, a window far wider in the sandbox (README, limitations).
    let script = "/usr/bin/python3 -c 'import time; print(\"started-%d\" % 2, flush=True); \
                  time.sleep(2); print(\"resumed-%d\" % 42)'";
    let flag = if enforced() {
        ""
    } else {
        " --allow-unenforced-xcr0"
    };
    let boxed = format!("{SANDBOX}{flag} -- {script}");
    std::thread::scope(|scope| {
        let n = scope.spawn(|| job_control(script));
        let s = scope.spawn(|| job_control(&boxed));
        let (n, s) = (n.join(), s.join());
        if let Err(e) = n {
            std::panic::resume_unwind(e);
        }
        if let Err(e) = s {
            eprintln!("natively the job stopped and resumed; in the sandbox:");
            std::panic::resume_unwind(e);
        }
    });
}
