//! The program's own seccomp: each scenario of tests/guests/seccomp.c and
//! seccomp-notify.c, libseccomp programs (Debian's python3-seccomp) and
//! stress-ng's seccomp stressor, run natively and in the sandbox, with the same output and
//! status. What differs by design (a call the sandbox carries out itself
//! is not left to a listener) is asserted as such.

mod common;

use std::path::PathBuf;

use common::*;

fn seccomp_guest() -> PathBuf {
    guest("seccomp", &["-pthread"])
}

/// The guest's scenario `mode` natively and sandboxed: the same status and
/// output, which natively holds `expect`.
fn scenario(mode: &str, expect: &str) {
    if !kvm() {
        return;
    }
    let prog = seccomp_guest();
    let args = [prog.to_str().unwrap(), mode];
    let n = run_limited(command(false, &args));
    let s = run_limited(command(true, &args));
    assert_same(&format!("seccomp {mode}"), &n, &s, false);
    assert!(stdout(&n).contains(expect), "natively:\n{}", stdout(&n));
}

#[test]
fn what_seccomp_refuses_as_natively() {
    scenario(
        "errors",
        "unprivileged without no_new_privs: -1 Permission denied\n\
         unprivileged with no_new_privs: 0 \nprctl mode: 2 \nthen strict: -1 Invalid argument\n\
         filters of 4096 instructions installed: 3, then: Cannot allocate memory",
    );
}

#[test]
fn errno_log_and_precedence_as_natively() {
    scenario(
        "actions",
        "getppid: -42 Success\nmode: 2 \ngetppid, ERRNO 7 on top: -7 Success\n\
         getppid, TRACE on top: -7 Success\ngetpgrp, ERRNO 0xffff: -1 errno 4095\n",
    );
    scenario(
        "actions",
        "dup3 with high word 5: -1 Numerical argument out of domain",
    );
}

#[test]
fn trap_raises_sigsys_as_natively() {
    scenario(
        "trap",
        "returned 1234; si_code 1 si_errno 0x77 si_syscall 110 si_arch 0xc000003e \
         call_addr after the syscall 1, RAX 110",
    );
}

#[test]
fn kill_actions_and_strict_mode_end_as_natively() {
    scenario("kill-thread", "joined the killed thread");
    scenario("kill-process", "installed");
    scenario(
        "kill-leader",
        "leader: killed next\nthe other thread: exit(2)\n",
    );
    scenario("strict", "write and read work");
    scenario("strict-exit", "write and read work");
    // Natively: killed by SIGSYS, SIGSYS, SIGKILL (exit_group is not
    // allowed), and exit(2)'s status; a process whose leader was killed
    // alone ends with the status of its last thread's exit(2).
    let prog = seccomp_guest();
    for (mode, sig) in [
        ("kill-thread", libc::SIGSYS),
        ("kill-process", libc::SIGSYS),
        ("strict", libc::SIGKILL),
    ] {
        let args = [prog.as_os_str(), mode.as_ref()];
        assert_signal(&run_limited(command(false, &args)), sig);
    }
    let args = [prog.as_os_str(), "strict-exit".as_ref()];
    assert_exit(&run_limited(command(false, &args)), 7);
    let args = [prog.as_os_str(), "kill-leader".as_ref()];
    assert_exit(&run_limited(command(false, &args)), 5);
}

#[test]
fn threads_inherit_and_tsync_as_natively() {
    scenario("threads", "TSYNC: 0 \nthe other thread's getppid: -1\n");
    scenario(
        "threads",
        "TSYNC failed naming that thread: 1; with TSYNC_ESRCH: -1 No such process",
    );
}

#[test]
fn fork_vfork_and_exec_keep_the_filters_as_natively() {
    scenario(
        "fork",
        "fork child: getppid: -21 Success\nafter exec: mode: 2 \n\
         after exec: getppid: -21 Success\n",
    );
}

#[test]
fn a_tracer_gets_ptrace_event_seccomp_as_natively() {
    scenario(
        "trace",
        "stop: signal 5 event 7 msg 0x55 info size 84 op 3 nr 110 arg0 1 ret_data 0x55",
    );
    scenario(
        "trace",
        "child: changed to getpid: 1, skipped: 777, as is: 1 1",
    );
    // The fourth call: its seccomp stop resumed with PTRACE_SYSCALL gives
    // its exit stop.
    scenario(
        "trace",
        "stop: signal 5 event 7 msg 0x55 info size 84 op 3 nr 110 arg0 4 ret_data 0x55 \
         orig_rax 110 rax -38\nstop: signal 133 event 0 info size 33 op 2 \
         orig_rax 110 rax <the tracer's pid>\n",
    );
}

#[test]
fn a_tracer_suspends_the_filters_as_natively() {
    scenario(
        "suspend",
        "SEIZE with SUSPEND_SECCOMP: 0 \n\
         child: getppid under suspension is the parent's: 1\ndetach: 0 \n\
         child: getppid after the detach: -1 errno 7\n\
         SEIZE with SUSPEND_SECCOMP by a filtered tracer: -1 Operation not permitted\n\
         SEIZE without it: 0 \nSETOPTIONS with it, stopped: -1 Operation not permitted\n",
    );
}

fn notify_guest() -> PathBuf {
    guest("seccomp-notify", &["-pthread"])
}

/// The notify guest's scenario `mode`, natively and sandboxed: the same
/// status and output, which natively holds `expect`.
fn notify_scenario(mode: &str, expect: &str) {
    if !kvm() {
        return;
    }
    let prog = notify_guest();
    let args = [prog.to_str().unwrap(), mode];
    let n = run_limited(command(false, &args));
    let s = run_limited(command(true, &args));
    assert_same(&format!("seccomp-notify {mode}"), &n, &s, false);
    assert!(stdout(&n).contains(expect), "natively:\n{}", stdout(&n));
}

/// A supervisor in the parent answers the child's calls through the
/// listener it was sent: a value, an error, CONTINUE, ADDFD, the thread
/// id, the arguments and a path read through /proc/PID/mem; the filter
/// notifies a forked child and an exec'd program too; a closed listener
/// leaves ENOSYS.
#[test]
fn a_supervisor_answers_through_the_listener_as_natively() {
    notify_scenario(
        "process",
        "supervisor: child, nr 83, arch 0xc000003e, id valid 0, mode 751, path /allow: CONTINUE\n\
         mkdir allow: 0 \nand the directory is there: 0 \n\
         supervisor: child, nr 319, arch 0xc000003e, id valid 0, name from-the-child: ADDFD with SEND\n\
         memfd_create gave a pipe: written by the supervisor\n\
         supervisor: another task, nr 110, arch 0xc000003e, id valid 0, args 1 2 3: value 4242\n\
         forked child's getppid: 4242 \nafter exec:\n\
         supervisor: another task, nr 110, arch 0xc000003e, id valid 0, args 44 55 66: value 4242\n\
         getppid: 4242 \n",
    );
    notify_scenario(
        "process",
        "getppid with the listener closed: -1 Function not implemented\nchild: exit 0\n\
         supervisor: ID_VALID of the answered id: -1 No such file or directory\n",
    );
}

#[test]
fn a_thread_supervises_another_and_the_flags_as_natively() {
    notify_scenario(
        "thread",
        "helper: nr 110 from the main thread 1, its own call not notified 1\n\
         main thread's getppid: 7 \n",
    );
    notify_scenario(
        "errors",
        "USER_NOTIF available: 0 \nGET_NOTIF_SIZES: 0 \nsizes 80 24 64\n\
         GET_NOTIF_SIZES with flags: -1 Invalid argument\n\
         TSYNC with NEW_LISTENER: -1 Invalid argument\n\
         WAIT_KILLABLE_RECV alone: -1 Invalid argument\n\
         a listener with TSYNC_ESRCH: a descriptor\n\
         a second listener: -1 Device or resource busy\n\
         a filter without one on top: 0 \ngetppid: -1 Function not implemented\n",
    );
}

/// A signal ends the wait for an answer: EINTR, or under SA_RESTART the
/// call again and a second notification.
#[test]
fn a_signal_interrupts_the_wait_for_an_answer_as_natively() {
    notify_scenario(
        "signal",
        "first notification\nhandler\nchild's getppid: -1 Interrupted system call\n\
         answer to the first: -1 No such file or directory\n",
    );
    notify_scenario(
        "signal-restart",
        "first notification\nhandler\nanswer to the first: -1 No such file or directory\n\
         second notification\nchild's getppid: 2 \n",
    );
}

/// By design: a call the sandbox carries out itself (here mmap) is not
/// left to a listener, whose CONTINUE the host could not make for it; it
/// fails with ENOSYS, Linux's answer when no listener is there.
#[test]
fn a_call_the_sandbox_makes_itself_is_not_notified() {
    if !kvm() {
        return;
    }
    let prog = notify_guest();
    let args = [prog.to_str().unwrap(), "own"];
    let n = run_limited(command(false, &args));
    let s = run_limited(command(true, &args));
    assert_eq!(stdout(&n), "mmap was notified\nmmap: 0 \n", "natively");
    assert_eq!(
        stdout(&s),
        "mmap: -1 Function not implemented\nmmap was not notified\n",
        "{}",
        stderr(&s)
    );
}

/// libseccomp's notification API (Debian's python3-seccomp): the filter's
/// loader supervises its forked child.
const LIBSECCOMP_NOTIFY: &str = r#"
import errno, os
import seccomp

f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
f.add_rule(seccomp.NOTIFY, "getppid")
f.add_rule(seccomp.NOTIFY, "mkdir")
f.load()
print("listener:", f.get_notify_fd() >= 0, flush=True)
pid = os.fork()
if pid == 0:
    print("child's getppid:", os.getppid(), flush=True)
    try:
        os.mkdir("/nonexistent/x")
    except OSError as e:
        print("mkdir:", errno.errorcode[e.errno], flush=True)
    os._exit(0)
for _ in range(2):
    n = f.receive_notify()
    print("notified by the child:", n.pid == pid, "syscall", n.syscall, flush=True)
    if n.syscall == 110:
        f.respond_notify(seccomp.NotificationResponse(n, 4242, 0, 0))
    else:
        f.respond_notify(seccomp.NotificationResponse(n, 0, -errno.EACCES, 0))
_, status = os.waitpid(pid, 0)
print("child exited", os.WEXITSTATUS(status))
"#;

#[test]
fn libseccomp_notification_runs_as_natively() {
    let module = "/usr/lib/python3/dist-packages/seccomp.cpython-311-x86_64-linux-gnu.so";
    if !kvm() || !installed("python3-seccomp", module) {
        return;
    }
    let args = ["/usr/bin/python3", "-c", LIBSECCOMP_NOTIFY];
    let n = run_limited(command(false, &args));
    let s = run_limited(command(true, &args));
    assert_same("libseccomp notification", &n, &s, false);
    assert_eq!(
        stdout(&n),
        "listener: True\nnotified by the child: True syscall 110\nchild's getppid: 4242\n\
         notified by the child: True syscall 83\nmkdir: EACCES\nchild exited 0\n",
        "natively"
    );
}

/// A libseccomp program: rules on numbers and arguments, ERRNO, TRAP with
/// a Python handler, KILL_PROCESS in a child, LOG.
const LIBSECCOMP_PROGRAM: &str = r#"
import errno, os, signal, sys
import seccomp

def trapped(sig, frame):
    print("SIGSYS handled")

signal.signal(signal.SIGSYS, trapped)
f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
f.add_rule(seccomp.ERRNO(errno.EPERM), "getppid")
f.add_rule(seccomp.ERRNO(errno.EDOM), "dup3", seccomp.Arg(1, seccomp.EQ, 99))
f.add_rule(seccomp.ERRNO(errno.ERANGE), "lseek", seccomp.Arg(2, seccomp.GT, 1))
f.add_rule(seccomp.TRAP, "getpgid")
f.add_rule(seccomp.LOG, "getuid")
f.load()
print("getppid:", os.getppid())
r, w = os.pipe()
try:
    os.dup2(r, 99, inheritable=False)
except OSError as e:
    print("dup3 to 99:", errno.errorcode[e.errno])
print("dup3 to 98:", os.dup2(r, 98, inheritable=False))
try:
    os.lseek(0, 0, 2)
except OSError as e:
    print("lseek whence 2:", errno.errorcode[e.errno])
print("getpgid returned its number:", os.getpgid(0))
print("getuid under LOG is ours:", os.getuid() == os.geteuid())
pid = os.fork()
if pid == 0:
    k = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    k.add_rule(seccomp.KILL_PROCESS, "getcwd")
    k.load()
    os.getcwd()
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child killed by signal", os.WTERMSIG(status) if os.WIFSIGNALED(status) else None)
"#;

#[test]
fn a_libseccomp_program_runs_as_natively() {
    let module = "/usr/lib/python3/dist-packages/seccomp.cpython-311-x86_64-linux-gnu.so";
    if !kvm() || !installed("python3-seccomp", module) {
        return;
    }
    let args = ["/usr/bin/python3", "-c", LIBSECCOMP_PROGRAM];
    let n = run_limited(command(false, &args));
    let s = run_limited(command(true, &args));
    assert_same("libseccomp program", &n, &s, false);
    assert_eq!(
        stdout(&n),
        "getppid: -1\ndup3 to 99: EDOM\ndup3 to 98: 98\nlseek whence 2: ERANGE\n\
         SIGSYS handled\ngetpgid returned its number: 121\ngetuid under LOG is ours: True\n\
         child killed by signal 31\n",
        "natively"
    );
}

/// stress-ng's seccomp stressor: children install filters (ERRNO, KILL,
/// TRAP) and check what each does.
#[test]
fn stress_ng_seccomp_stressor_as_natively() {
    if !kvm() || !installed("stress-ng", "/usr/bin/stress-ng") {
        return;
    }
    let args = [
        "stress-ng",
        "--seccomp",
        "2",
        "--seccomp-ops",
        "400",
        "--timeout",
        "20s",
    ];
    let n = run_limited(command(false, &args));
    let s = run_limited(command(true, &args));
    assert_eq!(status(&s), status(&n), "{}", both(&n, &s));
    let all = stdout(&s) + &stderr(&s);
    assert!(
        all.contains("successful run completed") && !all.contains("fail"),
        "{}",
        both(&n, &s)
    );
}
