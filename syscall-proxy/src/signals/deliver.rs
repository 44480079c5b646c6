//! Delivering a signal to the program's handler as Linux's handle_signal
//! does (arch/x86/kernel/signal.c), forcing the signal of a fault, and
//! rt_sigreturn.

use vmm::kvm_regs;

use super::arrival::{self, bit};
use super::frame::{self, Saved};
use super::{KernelSigaction, SIG_DFL, SIG_IGN};
use crate::process::Outcome;
use crate::syscalls::xstate;
use crate::thread::Thread;
use crate::trace::{regs, tracee};
use crate::umem;

const SIGINFO_SIZE: usize = size_of::<libc::siginfo_t>();

/// A siginfo as bytes.
pub type Info = [u8; SIGINFO_SIZE];

// sa_flags (include/uapi/asm-generic/signal-defs.h); libc has them as
// c_int, the kernel's sigaction holds an unsigned long.
const SA_SIGINFO: u64 = libc::SA_SIGINFO as u64;
const SA_ONSTACK: u64 = libc::SA_ONSTACK as u64;
const SA_RESTART: u64 = libc::SA_RESTART as u64;
const SA_NODEFER: u64 = libc::SA_NODEFER as u64;
const SA_RESETHAND: u64 = libc::SA_RESETHAND as u64;
/// SS_AUTODISARM (include/uapi/linux/signal.h), which libc lacks.
pub const SS_AUTODISARM: i32 = 1 << 31;
/// SI_KERNEL (include/uapi/asm-generic/siginfo.h).
pub const SI_KERNEL: i32 = libc::SI_KERNEL;
/// RFLAGS a handler starts without: DF, TF, RF.
const HANDLER_CLEARS: u64 = 0x400 | 0x100 | 0x1_0000;

/// The siginfo of a signal the kernel raises: signo, errno 0, code, and
/// the address (si_addr, for faults).
pub fn kernel_info(sig: i32, code: i32, addr: u64) -> Info {
    let mut b = [0u8; SIGINFO_SIZE];
    b[0..4].copy_from_slice(&sig.to_le_bytes());
    b[8..12].copy_from_slice(&code.to_le_bytes());
    b[16..24].copy_from_slice(&addr.to_le_bytes());
    b
}

/// The system call a signal interrupted (it returned EINTR), and the
/// ERESTART code the kernel's would have returned, which decides whether
/// it runs again.
#[derive(Clone, Copy, Debug)]
pub struct Interrupted {
    pub nr: u64,
    pub args: [u64; 6],
    code: i64,
}

impl Interrupted {
    /// `notified`: it waited for a seccomp listener's answer, which any
    /// call restarts from (ERESTARTSYS).
    pub fn new(nr: u64, args: [u64; 6], notified: bool) -> Interrupted {
        let code = if notified {
            regs::ERESTARTSYS
        } else {
            kernel_code(nr, &args)
        };
        Interrupted { nr, args, code }
    }

    /// The call a tracer's registers leave to restart, if any: what it
    /// set in the stop stands for what the sandbox knew.
    pub fn from_regs(r: &libc::user_regs_struct) -> Option<Interrupted> {
        regs::restarts(r).map(|_| Interrupted {
            nr: r.orig_rax,
            args: [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9],
            code: r.rax as i64,
        })
    }

    /// The same call, not begun: made after the delivery whatever the
    /// handler (ERESTARTNOINTR).
    pub fn not_begun(self) -> Interrupted {
        Interrupted {
            code: regs::ERESTARTNOINTR,
            ..self
        }
    }

    /// The same call, failing with EINTR itself.
    pub fn failing(self) -> Interrupted {
        Interrupted {
            code: -i64::from(libc::EINTR),
            ..self
        }
    }

    /// What RAX holds in a task stopped in this interrupted call, as a
    /// tracer reads it there.
    pub fn kernel_code(&self) -> i64 {
        self.code
    }

    /// Whether the call restarts when no handler runs (the signal is
    /// ignored, or its tracer cancelled it): every call the kernel returns
    /// an ERESTART code from, not those that return EINTR themselves
    /// (signal(7): epoll waits, semop, sigtimedwait, io_getevents).
    pub fn restarts_without_handler(&self) -> bool {
        self.code != -i64::from(libc::EINTR)
    }

    /// Whether it restarts after a handler with flags `sa_flags` ran
    /// (handle_signal): ERESTARTSYS under SA_RESTART, and ERESTARTNOINTR.
    fn restarts_after_handler(&self, sa_flags: u64) -> bool {
        self.code == regs::ERESTARTNOINTR
            || (self.code == regs::ERESTARTSYS && sa_flags & SA_RESTART != 0)
    }

    /// The call the thread makes to restart it: restart_syscall for a
    /// sleep that goes on to the deadline it had (signals::restart).
    fn restart_nr(&self) -> u64 {
        if self.code == regs::ERESTART_RESTARTBLOCK {
            libc::SYS_restart_syscall as u64
        } else {
            self.nr
        }
    }
}

/// What the kernel's call `nr` returns when a signal interrupts it.
fn kernel_code(nr: u64, args: &[u64; 6]) -> i64 {
    let nr = nr as i64;
    if nr == libc::SYS_futex
        && matches!(
            args[1] as i32 & libc::FUTEX_CMD_MASK,
            libc::FUTEX_LOCK_PI | libc::FUTEX_LOCK_PI2
        )
    {
        // Taken again whatever the handler (futex_lock_pi).
        return regs::ERESTARTNOINTR;
    }
    if matches!(
        nr,
        libc::SYS_clone
            | libc::SYS_clone3
            | libc::SYS_fork
            | libc::SYS_vfork
            | libc::SYS_execve
            | libc::SYS_execveat
    ) {
        // Made again whatever the handler: copy_process; an exec, which
        // the sandbox does not start with a signal waiting (exec.rs).
        return regs::ERESTARTNOINTR;
    }
    if restarts_under_sa_restart(nr, args) {
        return regs::ERESTARTSYS;
    }
    match nr {
        libc::SYS_epoll_wait
        | libc::SYS_epoll_pwait
        | libc::SYS_epoll_pwait2
        | libc::SYS_semop
        | libc::SYS_semtimedop
        | libc::SYS_rt_sigtimedwait
        | libc::SYS_io_getevents
        | libc::SYS_io_uring_enter => -i64::from(libc::EINTR),
        // An absolute sleep is made again as it was (do_nanosleep).
        libc::SYS_clock_nanosleep if args[1] as i32 & libc::TIMER_ABSTIME != 0 => {
            regs::ERESTARTNOHAND
        }
        libc::SYS_nanosleep
        | libc::SYS_clock_nanosleep
        | libc::SYS_poll
        | libc::SYS_futex
        | libc::SYS_restart_syscall => regs::ERESTART_RESTARTBLOCK,
        _ => regs::ERESTARTNOHAND,
    }
}

/// Whether the kernel returns ERESTARTSYS from call `nr` (restarted
/// under SA_RESTART, signal(7)) rather than ERESTARTNOHAND or
/// ERESTART_RESTARTBLOCK (EINTR whatever the flags: sleeps, poll, select,
/// epoll, sigsuspend, sigtimedwait, System V IPC, waits with a timeout).
fn restarts_under_sa_restart(nr: i64, args: &[u64; 6]) -> bool {
    match nr {
        libc::SYS_futex => {
            // A wait with a timeout sets a restart block instead.
            let cmd = args[1] as i32 & libc::FUTEX_CMD_MASK;
            !matches!(cmd, libc::FUTEX_WAIT | libc::FUTEX_WAIT_BITSET) || args[3] == 0
        }
        libc::SYS_read
        | libc::SYS_readv
        | libc::SYS_write
        | libc::SYS_writev
        | libc::SYS_pread64
        | libc::SYS_pwrite64
        | libc::SYS_preadv
        | libc::SYS_pwritev
        | libc::SYS_preadv2
        | libc::SYS_pwritev2
        | libc::SYS_ioctl
        | libc::SYS_open
        | libc::SYS_openat
        | libc::SYS_openat2
        | libc::SYS_creat
        | libc::SYS_wait4
        | libc::SYS_waitid
        | libc::SYS_accept
        | libc::SYS_accept4
        | libc::SYS_connect
        | libc::SYS_recvfrom
        | libc::SYS_recvmsg
        | libc::SYS_recvmmsg
        | libc::SYS_sendto
        | libc::SYS_sendmsg
        | libc::SYS_sendmmsg
        | libc::SYS_flock
        | libc::SYS_fcntl
        | libc::SYS_mq_timedsend
        | libc::SYS_mq_timedreceive
        | libc::SYS_getrandom
        | libc::SYS_splice
        | libc::SYS_tee
        | libc::SYS_vmsplice
        | libc::SYS_sendfile
        | libc::SYS_copy_file_range => true,
        _ => false,
    }
}

/// A signal to deliver to the thread now.
pub struct Signal {
    pub sig: i32,
    pub info: Info,
    /// The blocked mask to restore when the handler returns.
    pub mask: u64,
    /// Its delivery stop was made already: a tracer resumed a stop with it.
    pub reported: bool,
}

/// Whether `sp` is on the thread's alternate stack (on_sig_stack: never
/// with SS_AUTODISARM).
pub fn on_altstack(t: &Thread, sp: u64) -> bool {
    let (ss_sp, flags, size) = t.altstack;
    flags & SS_AUTODISARM == 0 && sp > ss_sp && sp - ss_sp <= size
}

/// sas_ss_flags(sp): what uc_stack and sigaltstack report.
pub fn altstack_flags(t: &Thread, sp: u64) -> i32 {
    if t.altstack.2 == 0 {
        libc::SS_DISABLE
    } else if on_altstack(t, sp) {
        libc::SS_ONSTACK
    } else {
        0
    }
}

/// Delivers `s`: sets up the frame of the program's handler and points
/// the thread at it, or carries out what the disposition says now (it may
/// have changed since the signal arrived). `interrupted` is the system
/// call the signal interrupted, if it did; it is given back if no handler
/// ran, for the next signal or, once none is left, `no_handler_ran` (as in
/// Linux's get_signal loop, the first handler decides the restart). An
/// error is the end of the process.
pub fn deliver(
    t: &mut Thread,
    mut s: Signal,
    interrupted: Option<Interrupted>,
) -> Result<Option<Interrupted>, Outcome> {
    let mut interrupted = interrupted;
    if tracee::traced().is_some() && !s.reported {
        let code = interrupted.map(|i| i.kernel_code() as u64);
        s.sig = tracee::signal(t, s.sig, &mut s.info, code, &mut s.mask);
        if let Some(r) = tracee::regs_set_at_stop() {
            interrupted = Interrupted::from_regs(&r);
        }
        if s.sig == 0 {
            // The tracer cancelled it: as for a signal without a handler.
            arrival::set_mask(s.mask);
            return Ok(interrupted);
        }
    }
    let act = t.process.signals.lock().expect("signals").action(s.sig);
    if matches!(act.handler, SIG_IGN | SIG_DFL) {
        // Gone since it arrived, or left to its default action, which is
        // the kernel's to carry out.
        arrival::set_mask(s.mask);
        if act.handler == SIG_DFL {
            let held = if arrival::is_stop(s.sig) {
                tracee::holding(t, interrupted.map(|i| i.kernel_code() as u64))
            } else {
                None
            };
            if arrival::kills_by_default(s.sig) {
                // The process ends here, its PTRACE_EVENT_EXIT stops the
                // host's.
                tracee::ending(t, None, interrupted.map(|i| i.kernel_code() as u64));
            }
            tracee::passing(s.sig);
            arrival::raise_default(s.sig);
            // (Raised and passed over, or not raised at all.)
            tracee::passing(0);
            if let Some(before) = held
                && let Some(r) = tracee::released(t, &before)
            {
                // The tracer's RAX decides whether the call restarts.
                interrupted = Interrupted::from_regs(&r);
            }
        }
        return Ok(interrupted);
    }
    let mut regs = t.vcpu.user_regs(&t.process.vm.memory);
    if let Some(i) = interrupted.filter(|i| i.restarts_after_handler(act.flags)) {
        restart(&mut regs, i);
    } else if interrupted.is_some() {
        // The call fails with EINTR, whatever ERESTART code a tracer left
        // in RAX (handle_signal).
        regs.rax = -i64::from(libc::EINTR) as u64;
    }
    setup_frame(t, &s, &act, &regs)?;
    tracee::handler_entered(t);
    Ok(None)
}

/// The signals at a return to the program are done and no handler took
/// call `i` they interrupted: it restarts as Linux restarts it
/// (arch_do_signal_or_restart) if a signal came (`signalled`), or if its
/// ERESTART code is what the program would see (a tracer left it in RAX,
/// or showed it at the exit stop). Otherwise (the signal went to another
/// thread) it returns EINTR.
pub fn no_handler_ran(t: &mut Thread, i: Interrupted, signalled: bool) -> Result<(), Outcome> {
    let mut regs = t.vcpu.user_regs(&t.process.vm.memory);
    let shown = regs.rax as i64 == i.code
        || (tracee::traced().is_some() && regs.rax as i64 == -i64::from(libc::EINTR));
    if i.restarts_without_handler() && (signalled || shown) {
        restart(&mut regs, i);
        set_regs(t, &regs)?;
    }
    Ok(())
}

/// The system call runs again when the program resumes (at the handler's
/// return), as with ERESTARTSYS: back over `syscall`, its number in RAX.
fn restart(regs: &mut kvm_regs, i: Interrupted) {
    regs.rax = i.restart_nr();
    regs.rip -= 2;
}

fn set_regs(t: &mut Thread, regs: &kvm_regs) -> Result<(), Outcome> {
    t.vcpu
        .set_user_regs(&t.process.vm.memory, regs)
        .map_err(|e| internal(&e))
}

fn internal(e: &vmm::VcpuError) -> Outcome {
    log::error!("signal delivery: {e}");
    Outcome::Signaled(libc::SIGSEGV)
}

/// x64_setup_rt_frame and signal_setup_done.
fn setup_frame(
    t: &mut Thread,
    s: &Signal,
    act: &KernelSigaction,
    regs: &kvm_regs,
) -> Result<(), Outcome> {
    let (features, xstate_size) = xstate::frame_features(t);
    let nested = on_altstack(t, regs.rsp);
    let mut top = regs.rsp - frame::RED_ZONE;
    let mut entering = false;
    if act.flags & SA_ONSTACK != 0 && altstack_flags(t, top) == 0 {
        top = t.altstack.0 + t.altstack.2;
        entering = true;
    }
    let at = frame::place(top, xstate_size);
    let fits = !(nested || entering) || on_altstack_raw(t, at.frame);
    // uc_stack holds the altstack as recorded (unsafe_save_altstack).
    let saved_stack = t.altstack;
    let xsave = t.vcpu.xsave().map_err(|e| internal(&e))?;
    let fp = frame::fpstate(&xsave, xstate_size, features);
    let zeros = [0u8; SIGINFO_SIZE];
    let bytes = frame::build(&Saved {
        regs,
        mask: s.mask,
        restorer: act.restorer,
        altstack: saved_stack,
        trap: t.trap,
        info: if act.flags & SA_SIGINFO != 0 {
            &s.info
        } else {
            &zeros
        },
        fpstate: at.fpstate,
    });
    // Without SA_SIGINFO the kernel leaves the siginfo area as it was.
    let len = if act.flags & SA_SIGINFO != 0 {
        bytes.len()
    } else {
        frame::INFO as usize
    };
    let written = fits && {
        let space = t.process.vm.memory.lock().expect("address space");
        umem::write_bytes(&space, at.fpstate, &fp).is_ok()
            && umem::write_bytes(&space, at.frame, &bytes[..len]).is_ok()
    };
    if !written {
        // force_sigsegv: the frame could not be written.
        return force(
            t,
            libc::SIGSEGV,
            kernel_info(libc::SIGSEGV, SI_KERNEL, 0),
            s.sig == libc::SIGSEGV,
        );
    }
    if act.flags & SA_RESETHAND != 0 {
        t.process.signals.lock().expect("signals").reset(s.sig);
    }
    if entering && t.altstack.1 & SS_AUTODISARM != 0 {
        t.altstack = (0, libc::SS_DISABLE, 0);
    }
    let mut handler = *regs;
    handler.rdi = s.sig as u64;
    handler.rsi = at.frame + frame::INFO;
    handler.rdx = at.frame + frame::UC;
    handler.rax = 0;
    handler.rip = act.handler;
    handler.rsp = at.frame;
    handler.rflags &= !HANDLER_CLEARS;
    t.vcpu.reset_fpu().map_err(|e| internal(&e))?;
    set_regs(t, &handler)?;
    let mut blocked = s.mask | act.mask;
    if act.flags & SA_NODEFER == 0 {
        blocked |= bit(s.sig);
    }
    arrival::set_mask(blocked);
    Ok(())
}

/// __on_sig_stack: within the altstack whatever its flags.
fn on_altstack_raw(t: &Thread, sp: u64) -> bool {
    let (ss_sp, _, size) = t.altstack;
    sp > ss_sp && sp - ss_sp <= size
}

/// Forces `sig` on the thread, as the kernel does for a fault: delivered
/// to the program's handler if it has one and does not block the signal,
/// the process killed otherwise. `reset` first puts the default action
/// back (a SIGSEGV whose own frame could not be written).
pub fn force(t: &mut Thread, sig: i32, info: Info, reset: bool) -> Result<(), Outcome> {
    if reset {
        t.process.signals.lock().expect("signals").reset(sig);
    }
    let (mut sig, mut info) = (sig, info);
    if tracee::traced().is_some() {
        sig = tracee::signal(t, sig, &mut info, None, &mut arrival::mask());
        if sig == 0 {
            // The tracer cancelled it: the instruction runs again, or a
            // call its registers leave to restart does (a debugger's
            // return from a call it made the thread run in a system call).
            if let Some(i) = tracee::regs_set_at_stop().and_then(|r| Interrupted::from_regs(&r)) {
                let mut regs = t.vcpu.user_regs(&t.process.vm.memory);
                restart(&mut regs, i);
                set_regs(t, &regs)?;
            }
            return Ok(());
        }
    }
    let mask = arrival::mask();
    let act = t.process.signals.lock().expect("signals").action(sig);
    if mask & bit(sig) != 0 || matches!(act.handler, SIG_DFL | SIG_IGN) {
        return Err(Outcome::Signaled(sig));
    }
    let regs = t.vcpu.user_regs(&t.process.vm.memory);
    let s = Signal {
        sig,
        info,
        mask,
        reported: true,
    };
    setup_frame(t, &s, &act, &regs)
}

/// rt_sigreturn: the frame below the program's RSP (the handler's `ret`
/// popped pretcode) gives back every register, the extended state, the
/// mask and the altstack. A frame that cannot be read or loaded is a
/// SIGSEGV, as natively.
pub fn sigreturn(t: &mut Thread) -> Result<(), Outcome> {
    let now = t.vcpu.user_regs(&t.process.vm.memory);
    let at = now.rsp.wrapping_sub(8);
    let mut bytes = vec![0u8; frame::FRAME_SIZE as usize];
    let read = {
        let space = t.process.vm.memory.lock().expect("address space");
        umem::read_bytes(&space, at, &mut bytes).is_ok()
    };
    if !read {
        return bad_frame(t);
    }
    let r = frame::parse(&bytes);
    // restore_sigcontext: a restart_syscall after the handler resumes
    // nothing.
    t.restart = None;
    arrival::set_mask(r.mask);
    if r.cs | 3 != guest_runtime::abi::selectors::USER_CS {
        return bad_frame(t);
    }
    let mut regs = r.regs;
    regs.rflags = (now.rflags & !frame::FIX_EFLAGS) | (r.regs.rflags & frame::FIX_EFLAGS);
    if r.fpstate == 0 {
        t.vcpu.reset_fpu().map_err(|e| internal(&e))?;
    } else {
        let (features, size) = xstate::frame_features(t);
        let mut area = vec![0u8; size as usize + 4];
        let read = {
            let space = t.process.vm.memory.lock().expect("address space");
            umem::read_bytes(&space, r.fpstate, &mut area).is_ok()
        };
        let image = frame::restore_image(&area, size, features);
        if !read || t.vcpu.set_xsave(&image).is_err() {
            return bad_frame(t);
        }
    }
    // restore_altstack: squashed unless the thread is off its altstack.
    let (sp, flags, size) = r.altstack;
    if !on_altstack(t, regs.rsp) && flags & !(libc::SS_DISABLE | SS_AUTODISARM) == 0 {
        if flags & libc::SS_DISABLE != 0 {
            t.altstack = (0, libc::SS_DISABLE, 0);
        } else if size >= libc::MINSIGSTKSZ as u64 {
            t.altstack = (sp, flags, size);
        }
    }
    set_regs(t, &regs)
}

fn bad_frame(t: &mut Thread) -> Result<(), Outcome> {
    force(
        t,
        libc::SIGSEGV,
        kernel_info(libc::SIGSEGV, SI_KERNEL, 0),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_calls_restart_under_sa_restart_as_signal_7_lists() {
        let call = |nr: i64, args: [u64; 6]| Interrupted::new(nr as u64, args, false);
        let restarts = |i: Interrupted| i.restarts_after_handler(SA_RESTART);
        assert!(restarts(call(libc::SYS_read, [0; 6])));
        assert!(restarts(call(libc::SYS_wait4, [0; 6])));
        assert!(!call(libc::SYS_read, [0; 6]).restarts_after_handler(0));
        assert!(!restarts(call(libc::SYS_nanosleep, [0; 6])));
        assert!(!restarts(call(libc::SYS_epoll_wait, [0; 6])));
        assert!(!restarts(call(libc::SYS_rt_sigsuspend, [0; 6])));
        let wait = libc::FUTEX_WAIT as u64;
        assert!(restarts(call(libc::SYS_futex, [0, wait, 0, 0, 0, 0])));
        assert!(!restarts(call(libc::SYS_futex, [0, wait, 0, 0x1000, 0, 0])));
        assert!(!restarts(call(libc::SYS_getppid, [0; 6])));
        let notified = Interrupted::new(libc::SYS_getppid as u64, [0; 6], true);
        assert!(restarts(notified), "seccomp's wait for a listener");
    }

    #[test]
    fn without_a_handler_only_the_calls_that_return_eintr_themselves_do_not_restart() {
        let call = |nr: i64| Interrupted::new(nr as u64, [0; 6], false);
        for nr in [
            libc::SYS_read,
            libc::SYS_pause,
            libc::SYS_rt_sigsuspend,
            libc::SYS_nanosleep,
            libc::SYS_clock_nanosleep,
            libc::SYS_poll,
            libc::SYS_select,
        ] {
            assert!(call(nr).restarts_without_handler(), "{nr}");
        }
        for nr in [
            libc::SYS_epoll_wait,
            libc::SYS_semop,
            libc::SYS_rt_sigtimedwait,
        ] {
            assert!(!call(nr).restarts_without_handler(), "{nr}");
        }
        assert_eq!(call(libc::SYS_read).kernel_code(), -512);
        assert_eq!(call(libc::SYS_pause).kernel_code(), -514);
        assert_eq!(call(libc::SYS_select).kernel_code(), -514);
    }

    #[test]
    fn relative_sleeps_go_on_through_restart_syscall_and_absolute_ones_are_made_again() {
        let restart_syscall = libc::SYS_restart_syscall as u64;
        let rel = |nr: i64, args: [u64; 6]| Interrupted::new(nr as u64, args, false);
        for (nr, args) in [
            (libc::SYS_nanosleep, [0; 6]),
            (libc::SYS_clock_nanosleep, [1, 0, 0, 0, 0, 0]),
            (libc::SYS_poll, [0, 1, u32::MAX as u64, 0, 0, 0]),
            (
                libc::SYS_futex,
                [0, libc::FUTEX_WAIT as u64, 0, 0x1000, 0, 0],
            ),
            (libc::SYS_restart_syscall, [0; 6]),
        ] {
            let i = rel(nr, args);
            assert_eq!(i.kernel_code(), -516, "{nr}");
            assert_eq!(i.restart_nr(), restart_syscall, "{nr}");
        }
        let abs = [1, libc::TIMER_ABSTIME as u64, 0, 0, 0, 0];
        let i = rel(libc::SYS_clock_nanosleep, abs);
        assert_eq!(i.kernel_code(), -514);
        assert_eq!(i.restart_nr(), libc::SYS_clock_nanosleep as u64);
    }

    #[test]
    fn a_tracer_s_code_decides_the_restart() {
        // SAFETY: plain integers, valid all zero.
        let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        r.orig_rax = libc::SYS_nanosleep as u64;
        r.rax = regs::ERESTARTSYS as u64;
        let i = Interrupted::from_regs(&r).expect("restarts");
        assert_eq!(i.restart_nr(), libc::SYS_nanosleep as u64);
        assert!(i.restarts_after_handler(SA_RESTART));
        r.rax = regs::ERESTART_RESTARTBLOCK as u64;
        let i = Interrupted::from_regs(&r).expect("restarts");
        assert_eq!(i.restart_nr(), libc::SYS_restart_syscall as u64);
        assert!(!i.restarts_after_handler(SA_RESTART));
        r.rax = 0;
        assert!(Interrupted::from_regs(&r).is_none());
    }
}
