//! Programs that make threads and processes: POSIX threads, fork, vfork,
//! posix_spawn, exec from a thread, shells, make, python's threading,
//! subprocess and multiprocessing, gcc, a PATH shim that forks, a page
//! taken away under a running thread, and many short-lived children and
//! threads leaving nothing behind. Each runs natively and in the sandbox
//! and the two must agree (status, stdout, stderr), except the leak test,
//! which compares the sandbox with limits. Every run is killed, with its
//! process group, after `LIMIT`, so a hang fails with what it printed.

mod common;

use std::ffi::OsStr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// How long one run may take, natively or in the sandbox.
const LIMIT: Duration = Duration::from_secs(120);

/// `args` (program first), natively or in the sandbox.
fn command<S: AsRef<OsStr>>(sandboxed: bool, args: &[S]) -> Command {
    let mut c = if sandboxed {
        let mut c = sandbox_cmd();
        c.arg(&args[0]);
        c
    } else {
        Command::new(&args[0])
    };
    c.args(&args[1..]);
    c
}

/// Runs `c` with stdin empty in a process group of its own and collects
/// its output; fails, with the output so far, if it is still running
/// after `LIMIT` (then the whole group is killed).
fn run_limited(mut c: Command) -> Output {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = c.spawn().unwrap_or_else(|e| panic!("spawn {c:?}: {e}"));
    let group = child.id() as i32;
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let late = finished.recv_timeout(LIMIT) == Err(mpsc::RecvTimeoutError::Timeout);
        if late {
            // SAFETY: signals the process group this test started.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        late
    });
    let o = child.wait_with_output().expect("wait");
    drop(done);
    let late = watchdog.join().unwrap();
    assert!(
        !late,
        "{c:?}: still running after {LIMIT:?}, killed\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// Exit code or signal, for comparing two runs.
fn status(o: &Output) -> (Option<i32>, Option<i32>) {
    (o.status.code(), o.status.signal())
}

/// Both runs in full, for failure messages.
fn both(n: &Output, s: &Output) -> String {
    format!(
        "native {:?}\n  stdout:\n{}\n  stderr:\n{}\nsandbox {:?}\n  stdout:\n{}\n  stderr:\n{}",
        n.status,
        stdout(n),
        stderr(n),
        s.status,
        stdout(s),
        stderr(s)
    )
}

/// Asserts that the sandbox's run `s` of `what` has the status, stdout and
/// stderr of the native run `n`.
fn assert_same(what: &str, n: &Output, s: &Output) {
    assert_eq!(
        status(s),
        status(n),
        "{what}: status differs\n{}",
        both(n, s)
    );
    assert_eq!(
        stdout(s),
        stdout(n),
        "{what}: stdout differs\n{}",
        both(n, s)
    );
    assert_eq!(
        stderr(s),
        stderr(n),
        "{what}: stderr differs\n{}",
        both(n, s)
    );
}

/// Runs `args` with `env` added natively, then in the sandbox; asserts the
/// two agree and returns the native run.
fn same<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S], env: &[(&str, &str)]) -> Output {
    let [n, s] = [false, true].map(|sandboxed| {
        let mut c = command(sandboxed, args);
        c.envs(env.iter().copied());
        run_limited(c)
    });
    assert_same(&format!("{args:?}"), &n, &s);
    n
}

#[test]
fn pthreads_compute_synchronise_and_join_as_natively() {
    if !kvm() {
        return;
    }
    let threads = guest("threads", &["-pthread"]);
    let n = same(&[threads.as_os_str()], &[]);
    assert_exit(&n, 0);
    let out = stdout(&n);
    for line in [
        "thread 63: sum=25399990000 ",
        "joined=64 total=819199360000 ",
        "thread_tid_differs=1",
        "thread_blocked_usr1=1 main_blocked_usr1=0",
        "timedwait=ETIMEDOUT waited_50ms=1",
        "pi_mutex_contended=1 count=2",
        "affinity_ok=1 same_in_thread=1",
        "pthread_exit_value=7 other_continued=8",
    ] {
        assert!(out.contains(line), "natively, no {line:?} in:\n{out}");
    }
}

#[test]
fn a_thread_calling_exit_ends_every_thread_with_its_status() {
    if !kvm() {
        return;
    }
    let threads = guest("threads", &["-pthread"]);
    let n = same(&[threads.as_os_str(), OsStr::new("exit")], &[]);
    assert_exit(&n, 3);
    assert_eq!(stdout(&n), "thread calls exit(3)\n");
}

#[test]
fn a_thread_calling_exec_replaces_the_whole_process() {
    if !kvm() {
        return;
    }
    let threads = guest("threads", &["-pthread"]);
    let n = same(&[threads.as_os_str(), OsStr::new("exec")], &[]);
    assert_exit(&n, 0);
    assert_eq!(stdout(&n), "thread execs echo\necho ran after exec\n");
}

#[test]
fn main_calling_pthread_exit_leaves_the_other_threads_running() {
    if !kvm() {
        return;
    }
    let threads = guest("threads", &["-pthread"]);
    let n = same(&[threads.as_os_str(), OsStr::new("main-exit")], &[]);
    assert_exit(&n, 0);
    assert_eq!(
        stdout(&n),
        "main calls pthread_exit\nthe last thread finishes\n"
    );
}
