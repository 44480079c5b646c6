//! Ending the sandbox the way the program ended.

use syscall_proxy::{Outcome, Process};

/// Ends a process of the program (called from whichever of its threads
/// ended it): `--stats` if this process reports them, then its status, or
/// death by its signal (without a core file: the core would be the
/// sandbox's, not the program's).
pub fn finish(process: &Process, r: Result<Outcome, String>) -> ! {
    if process.options.stats {
        print_stats(process);
    }
    process.looks.report(process.options.explain);
    process.wind_down();
    match r {
        Ok(outcome) => mirror(outcome),
        Err(e) => {
            crate::report::line(format_args!("internal error: {e}"));
            exit(125)
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: ends the process; other threads may be running guest code,
    // and no cleanup of the sandbox's is owed to anyone.
    unsafe { libc::_exit(code) }
}

/// Exits with the program's status, or dies by its signal.
pub fn mirror(outcome: Outcome) -> ! {
    match outcome {
        Outcome::Exited(code) => exit(code),
        Outcome::Signaled(sig) => {
            // A tracer saw this signal's delivery stop already.
            syscall_proxy::trace::tracee::passing(sig);
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
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::raise(sig);
            }
            // Only a signal whose default action is not fatal gets here.
            exit(128 + sig)
        }
    }
}

/// `--stats`: counts of VM exits, KVM ioctls and forwarded system calls.
/// The ioctls are those after set-up: KVM_RUN, other vCPU ioctls, memslot
/// creations, and the two memslot ioctls of each flush.
pub fn print_stats(process: &Process) {
    let s = process.stats();
    let m = s.memory;
    let ioctls = s.exits + s.other_ioctls + m.memslots + 2 * m.flushes;
    let per = |x: u64| {
        if s.syscalls == 0 {
            0.0
        } else {
            x as f64 / s.syscalls as f64
        }
    };
    crate::report::line(format_args!(
        "stats: xcr0 {:#x} syscalls {} exceptions {} vm-exits {} kvm-ioctls {} (KVM_RUN {}, other vCPU {}, memslots {}, flushes {}, flushes left to the host {}); per syscall: {:.2} exits, {:.2} ioctls",
        process.options.default_xcr0,
        s.syscalls,
        s.exceptions,
        s.exits,
        ioctls,
        s.exits,
        s.other_ioctls,
        m.memslots,
        m.flushes,
        m.flushes_elided,
        per(s.exits),
        per(ioctls),
    ));
}
