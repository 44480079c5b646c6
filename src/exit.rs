//! Ending the sandbox the way the program ended.

use std::process::ExitCode;

use syscall_proxy::{Outcome, Task};

/// Exits with the program's status, or dies by its signal (without a core
/// file: the core would be the sandbox's, not the program's).
pub fn mirror(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Exited(code) => ExitCode::from(code as u8),
        Outcome::Signaled(sig) => {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain process-wide settings, then a signal to ourselves.
            unsafe {
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                libc::signal(sig, libc::SIG_DFL);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, sig);
                libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::raise(sig);
            }
            // Only a signal whose default action is not fatal gets here.
            ExitCode::from(128 + sig as u8)
        }
    }
}

/// `--stats`: counts of VM exits, KVM ioctls and forwarded system calls.
/// The ioctls are those after set-up: KVM_RUN, other vCPU ioctls, memslot
/// creations, and the two memslot ioctls of each flush.
pub fn print_stats(task: &Task) {
    let v = task.vcpu.stats;
    let s = task.stats;
    let m = task.vm.memory.lock().map(|m| m.stats).unwrap_or_default();
    let ioctls = v.exits + v.other_ioctls + m.memslots + 2 * m.flushes;
    let per = |x: u64| {
        if s.syscalls == 0 {
            0.0
        } else {
            x as f64 / s.syscalls as f64
        }
    };
    crate::report::line(format_args!(
        "stats: syscalls {} exceptions {} vm-exits {} kvm-ioctls {} (KVM_RUN {}, other vCPU {}, memslots {}, flushes {}); per syscall: {:.2} exits, {:.2} ioctls",
        s.syscalls,
        s.exceptions,
        v.exits,
        ioctls,
        v.exits,
        v.other_ioctls,
        m.memslots,
        m.flushes,
        per(v.exits),
        per(ioctls),
    ));
}
