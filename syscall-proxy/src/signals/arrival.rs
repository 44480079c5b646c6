//! How a signal for the program arrives on the host.
//!
//! Each thread of the program is a host thread with the program's signal
//! mask, so the kernel picks the thread a signal goes to, queues and merges
//! signals, and runs the program's default actions itself (host SIG_DFL,
//! SIG_IGN). For a signal the program handles, the host handler below
//! records the siginfo and the mask it interrupted in the thread's slot,
//! blocks every signal in the thread until the task loop has set up the
//! program's frame (so the kernel keeps the next ones pending, as it does
//! while a frame is set up), and makes a KVM_RUN being entered return at
//! once. It is installed without SA_RESTART, so an interrupted host system
//! call returns EINTR and the sandbox decides the restart as Linux would
//! for the program's handler (`deliver`).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::host::Errno;

use super::{KernelSigaction, NSIG, SIG_DFL, SIG_IGN, host_owned};

const SIGINFO_SIZE: usize = size_of::<libc::siginfo_t>();

/// A signal the host handler took for the program (laid out as C: a
/// tracer's sandbox writes one into a tracee's slot, trace/carry.rs).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Arrival {
    pub sig: i32,
    pub info: [u8; SIGINFO_SIZE],
    /// The thread's blocked mask when it arrived.
    pub mask: u64,
}

/// An arrival that is no signal: a tracer's PTRACE_INTERRUPT, which the
/// tracer's sandbox puts in the slot for the sandbox to stop the thread
/// at its next return to the program (trace/carry.rs).
pub const TRAP_STOP: i32 = 0;

/// The per-thread slot. One is enough: after an arrival every signal is
/// blocked in the thread until the task loop has taken it.
struct Slot {
    full: AtomicBool,
    arrival: UnsafeCell<Arrival>,
    /// The immediate_exit byte of the vCPU this thread runs, if any.
    kick: AtomicPtr<u8>,
}

thread_local! {
    static SLOT: Slot = const {
        Slot {
            full: AtomicBool::new(false),
            arrival: UnsafeCell::new(Arrival {
                sig: 0,
                info: [0; SIGINFO_SIZE],
                mask: 0,
            }),
            kick: AtomicPtr::new(std::ptr::null_mut()),
        }
    };
}

/// Whether the interrupted host code had just made a system call (the two
/// bytes before its RIP are `syscall`): then a signal with a fault's
/// si_code was sent (rt_sigqueueinfo may forge one), as a fault of the
/// sandbox's own stops at the faulting instruction instead.
fn in_syscall(ctx: *mut libc::c_void) -> bool {
    // SAFETY: the ucontext the kernel passed; RIP is in the sandbox's
    // code, whose bytes are readable, and a syscall instruction before it
    // was executed from there.
    unsafe {
        let rip = ctx.cast::<u8>().add(RIP).cast::<usize>().read_unaligned();
        let before = (rip - 2) as *const [u8; 2];
        before.read_unaligned() == [0x0f, 0x05]
    }
}

/// Where RIP is in the ucontext the kernel passes a handler.
const RIP: usize = std::mem::offset_of!(libc::ucontext_t, uc_mcontext) + 8 * libc::REG_RIP as usize;

/// The flag saying a signal waits in this thread's slot, which a
/// forwarded call checks before it starts (`host::forward`).
pub fn waiting_flag() -> *const u8 {
    SLOT.with(|slot| slot.full.as_ptr().cast_const().cast::<u8>())
}

/// Where this thread's slot is: its flag, and its arrival, which a
/// tracer's sandbox fills as the handler would (trace/carry.rs).
pub fn slot_addrs() -> (u64, u64) {
    SLOT.with(|slot| (slot.full.as_ptr() as u64, slot.arrival.get() as u64))
}

/// The offset of the blocked mask in the ucontext the kernel passes a
/// handler (struct ucontext: flags, link, stack, mcontext, sigmask).
const UC_SIGMASK: usize = std::mem::offset_of!(libc::ucontext_t, uc_sigmask);

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext.
    let code = unsafe { (*info).si_code };
    if host_owned(sig) && code > 0 && !in_syscall(ctx) {
        // A fault of the sandbox's own (the program's reach it as guest
        // exceptions): die of it, as without this handler.
        // SAFETY: resets this signal's disposition; the faulting
        // instruction runs again and the default action follows.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
        return;
    }
    // SAFETY: the kernel passes a valid siginfo of SIGINFO_SIZE bytes.
    let bytes = unsafe { std::slice::from_raw_parts(info.cast::<u8>(), SIGINFO_SIZE) };
    if crate::trace::tracee::is_mark(sig, bytes) {
        // A ptrace stop's mark whose tracer went away before taking it
        // back (tracee.rs): the thread goes on as if resumed.
        return;
    }
    SLOT.with(|slot| {
        let mut arrival = Arrival {
            sig,
            info: [0; SIGINFO_SIZE],
            mask: 0,
        };
        // SAFETY: siginfo_t is SIGINFO_SIZE plain bytes; the mask is the
        // first 8 bytes of the kernel's sigset in the ucontext, which the
        // kernel restores when this handler returns.
        unsafe {
            std::ptr::copy_nonoverlapping(
                info.cast::<u8>(),
                arrival.info.as_mut_ptr(),
                SIGINFO_SIZE,
            );
            let mask = ctx.cast::<u8>().add(UC_SIGMASK).cast::<u64>();
            arrival.mask = mask.read_unaligned();
            mask.write_unaligned(!0);
            *slot.arrival.get() = arrival;
        }
        slot.full.store(true, Ordering::Release);
        // SAFETY: the ucontext's RIP, which the kernel resumes at.
        unsafe {
            let rip = ctx.cast::<u8>().add(RIP).cast::<u64>();
            if let Some(to) = crate::host::cancel_window(rip.read_unaligned()) {
                rip.write_unaligned(to);
            }
        }
        let kick = slot.kick.load(Ordering::Relaxed);
        if !kick.is_null() {
            // SAFETY: the kvm_run of the vCPU this thread runs, set by
            // `set_kick` and valid while the task runs.
            unsafe { kick.write_volatile(1) };
        }
    });
}

/// Whether a signal for the program is waiting to be taken.
#[inline]
pub fn pending() -> bool {
    SLOT.with(|slot| slot.full.load(Ordering::Acquire))
}

/// The signal that arrived for this thread, if any.
pub fn take() -> Option<Arrival> {
    SLOT.with(|slot| {
        if !slot.full.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: the handler has written the slot and every signal is
        // blocked in this thread until the mask is set again, so no
        // handler runs while it is read.
        let a = unsafe { *slot.arrival.get() };
        slot.full.store(false, Ordering::Release);
        Some(a)
    })
}

/// For a thread that will run no more program code (an ended thread, the
/// reaper): blocks every signal, so the kernel sends the process's to
/// another thread, and passes one that arrived meanwhile back to the
/// process.
pub fn stop_taking() {
    set_mask(!0);
    set_kick(std::ptr::null_mut());
    // (Only a tracer puts a SIGSTOP or TRAP_STOP there, for this thread.)
    if let Some(a) = take().filter(|a| a.sig != TRAP_STOP && a.sig != libc::SIGSTOP) {
        // SAFETY: kill on this process with a valid signal number.
        unsafe { libc::kill(libc::getpid(), a.sig) };
    }
}

/// Points this thread's handler at the immediate_exit byte of the vCPU it
/// runs (null: none).
pub fn set_kick(flag: *mut u8) {
    SLOT.with(|slot| slot.kick.store(flag, Ordering::Relaxed));
}

/// Sets this host thread's blocked mask (SIGKILL and SIGSTOP never are).
/// While a signal waits in the slot everything stays blocked (a second
/// arrival would overwrite it): the mask becomes the one the waiting
/// signal's frame will restore.
pub fn set_mask(mask: u64) {
    let waiting = SLOT.with(|slot| {
        let full = slot.full.load(Ordering::Acquire);
        if full {
            // SAFETY: every signal is blocked while the slot is full, so
            // no handler writes it meanwhile.
            unsafe { (*slot.arrival.get()).mask = mask };
        }
        full
    });
    if waiting {
        return;
    }
    let mask = mask & !(bit(libc::SIGKILL) | bit(libc::SIGSTOP));
    // SAFETY: rt_sigprocmask with an 8-byte kernel sigset we own.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8,
        )
    };
}

/// This host thread's blocked mask (the program's, while a signal waits
/// in the slot with everything blocked).
pub fn mask() -> u64 {
    let waiting = SLOT.with(|slot| {
        slot.full
            .load(Ordering::Acquire)
            // SAFETY: as in set_mask.
            .then(|| unsafe { (*slot.arrival.get()).mask })
    });
    if let Some(m) = waiting {
        return m;
    }
    let mut old = 0u64;
    // SAFETY: rt_sigprocmask only writes the 8-byte kernel sigset we own.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            std::ptr::null::<u64>(),
            &mut old as *mut u64,
            8,
        )
    };
    old
}

/// Set once a thread of this process is traced by a sandboxed tracer:
/// every signal then reaches the handler above, so that its delivery
/// stops the thread where the sandbox can show and change its state (a
/// default action the kernel carried out itself would stop it in the
/// host kernel, out of the sandbox's reach). `raise_default` carries
/// out a default action instead.
static CATCH_ALL: AtomicBool = AtomicBool::new(false);

pub fn catching_all() -> bool {
    CATCH_ALL.load(Ordering::Relaxed)
}

/// From now on every catchable signal comes through the handler, whatever
/// the program's disposition (`signals`): for a traced thread.
pub fn catch_all(signals: &super::Signals) {
    if CATCH_ALL.swap(true, Ordering::AcqRel) {
        return;
    }
    // glibc's own two (SIGCANCEL, SIGSETXID) are the program's glibc's
    // when it uses them, which installs a handler; left as they are.
    for sig in all().filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP && s != 32 && s != 33) {
        let _ = install(sig, &signals.action(sig));
    }
}

/// Carries out `sig`'s default action on this thread, as the kernel does
/// for a signal with no handler: at once when the host's disposition is
/// the default, else with the default put back around the raise (the
/// program's disposition is the default, so another thread's `sig`
/// meanwhile gets the right action too).
pub fn raise_default(sig: i32) {
    if is_stop(sig) && continued() {
        // A SIGCONT came since the stop signal was taken: Linux drops the
        // stop then (prepare_signal clears JOBCTL_STOP_DEQUEUED), where a
        // stop raised anew would wait for another SIGCONT.
        return;
    }
    if catching_all() && ignored_by_default(sig) {
        return;
    }
    let all = catching_all();
    if all {
        let _ = set_host(sig, &KernelSigaction::default());
    }
    // SAFETY: raises the signal at this thread, whose host disposition is
    // the default one.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), sig) };
    if all {
        let _ = install(sig, &KernelSigaction::default());
    }
}

/// Whether `sig`'s default action ends the process (signal(7): all but
/// the stop signals and those ignored by default).
pub fn kills_by_default(sig: i32) -> bool {
    !is_stop(sig) && !ignored_by_default(sig)
}

/// Whether `sig`'s default action is to ignore it.
fn ignored_by_default(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT
    )
}

/// Whether `sig`'s default action stops the process.
pub fn is_stop(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

/// Whether a SIGCONT waits for the program: in the slot, or pending on the
/// host (blocked while the slot is full).
fn continued() -> bool {
    let in_slot = SLOT.with(|slot| {
        // SAFETY: read while the slot is full, when the handler does not
        // write it (every signal is blocked in this thread until taken).
        slot.full.load(Ordering::Acquire) && unsafe { (*slot.arrival.get()).sig } == libc::SIGCONT
    });
    // SAFETY: sigset_t is plain integers, valid all zero; sigpending
    // writes the one we own.
    let pending = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGCONT) == 1
    };
    in_slot || pending
}

/// Before an exec: the host ignores what the program ignores, so that the
/// kernel keeps them ignored for the new image (Signals::inherited), also
/// where the host handler takes them now (a traced thread, `catch_all`,
/// and the signals of the sandbox's own faults). Returns them, for
/// `exec_failed`.
pub fn ignore_for_exec(signals: &super::Signals) -> Vec<i32> {
    let ignored: Vec<i32> = all()
        .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP && signals.ignored(s))
        .collect();
    let ign = KernelSigaction {
        handler: SIG_IGN,
        ..Default::default()
    };
    for &sig in &ignored {
        let _ = set_host(sig, &ign);
    }
    ignored
}

/// After a failed exec: back to what `install` gives them.
pub fn exec_failed(signals: &super::Signals, ignored: &[i32]) {
    for &sig in ignored {
        let _ = install(sig, &signals.action(sig));
    }
}

/// Signal `sig`'s bit in a kernel sigset.
pub fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// Gives the host the disposition matching the program's `act`: its
/// default or ignore as they are (so the kernel carries them out), the
/// handler above for a handler. Signals the sandbox's own faults raise
/// (see `host_owned`) are never ignored on the host: the handler takes
/// the program's instead.
pub fn install(sig: i32, act: &KernelSigaction) -> Result<(), Errno> {
    let all = catching_all() && sig != libc::SIGKILL && sig != libc::SIGSTOP;
    let mut sa = KernelSigaction {
        handler: match act.handler {
            SIG_DFL if !all => SIG_DFL,
            SIG_IGN if !host_owned(sig) && !all => SIG_IGN,
            // A handler, or an ignored signal the host must not ignore: a
            // program's own arrives here (and is dropped at delivery).
            _ => {
                on_signal as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                    as usize as u64
            }
        },
        // Every signal is blocked while the handler runs.
        mask: !0,
        ..Default::default()
    };
    if sa.handler != SIG_DFL && sa.handler != SIG_IGN {
        sa.flags = libc::SA_SIGINFO as u64 | SA_RESTORER;
        sa.restorer = restore_rt as *const () as usize as u64;
    }
    set_host(sig, &sa)
}

/// The host disposition of `sig`, as is.
fn set_host(sig: i32, sa: &KernelSigaction) -> Result<(), Errno> {
    // The system call itself, not glibc's sigaction, which refuses the
    // two signals it keeps for itself (SIGCANCEL, SIGSETXID: 32 and 33)
    // and would leave the sandbox's own glibc handlers there: a program's
    // glibc signals its threads with 33 to change their credentials
    // together (setgroups, setuid in a threaded program), and the
    // sandbox's handler, finding no request of its own, faulted.
    // SAFETY: installs a disposition for this process from a struct we
    // own; the handler only copies bytes to thread-local memory and
    // stores to atomics, and returns through `restore_rt`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            sa as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            size_of::<u64>(),
        )
    };
    if r != 0 {
        return Err(Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        ));
    }
    Ok(())
}

/// SA_RESTORER (arch/x86/include/uapi/asm/signal.h), which libc keeps
/// to itself on x86-64.
const SA_RESTORER: u64 = 0x0400_0000;

// The return from the host handler: rt_sigreturn, as SA_RESTORER wants
// (glibc's own __restore_rt is private to it).
std::arch::global_asm!(
    ".pushsection .text.xcr0_sandbox_restore_rt,\"ax\",@progbits",
    "xcr0_sandbox_restore_rt:",
    "mov eax, {nr}",
    "syscall",
    "ud2",
    ".popsection",
    nr = const libc::SYS_rt_sigreturn,
);

unsafe extern "C" {
    #[link_name = "xcr0_sandbox_restore_rt"]
    fn restore_rt();
}

/// How long the thread `reclaim_glibc_signals` makes is waited for.
const HELPER_ENDS_WITHIN: std::time::Duration = std::time::Duration::from_millis(200);

/// Gives the program signals 32 and 33 as natively (default until it
/// installs handlers). glibc keeps them for itself (SIGCANCEL, SIGSETXID)
/// and installs its SIGSETXID handler in the sandbox when the sandbox
/// first creates a thread, over whatever the program had installed: made
/// to happen now, before the program runs, then undone.
pub fn reclaim_glibc_signals() {
    let spawned = std::thread::Builder::new()
        .stack_size(16 << 10)
        .spawn(|| {});
    if let Ok(t) = spawned {
        // Bounded: in a new image of a process a tracer resumed from a
        // group stop, the thread (the host attached it, its tracer let it
        // go) re-enters the stop, which lasts until a SIGCONT
        // (__ptrace_unlink). glibc's handler is installed already.
        let poll = std::time::Duration::from_micros(50);
        crate::process::join_within(t, HELPER_ENDS_WITHIN, poll);
    }
    // The kernel's first two real-time signals, which glibc's SIGRTMIN
    // (34) leaves out (sysdeps/unix/sysv/linux/internal-signals.h).
    const SIGCANCEL: i32 = 32;
    const SIGSETXID: i32 = 33;
    for sig in [SIGCANCEL, SIGSETXID] {
        let _ = install(sig, &KernelSigaction::default());
    }
}

/// Every signal number.
pub fn all() -> impl Iterator<Item = i32> {
    1..=NSIG as i32
}
