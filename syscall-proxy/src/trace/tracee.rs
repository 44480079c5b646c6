//! The traced side: the stops a traced thread makes at the points where
//! Linux makes them (system call entry and exit, signal delivery, exec,
//! exit), each raised as a host ptrace stop its tracer's sandbox reports.
//!
//! A stop fills the thread's trace page (registers, siginfo, what the stop
//! is), then sends the host thread a marked SIGURG: the host kernel holds
//! it in a signal-delivery stop, which the tracer's sandbox recognises by
//! the mark and turns into the stop the page describes. The tracer
//! resumes it with the signal suppressed, having written into the page how
//! to go on.

use libc::{
    PTRACE_EVENT_EXEC, PTRACE_EVENT_EXIT, PTRACE_EVENT_STOP, PTRACE_O_TRACEEXEC, PTRACE_O_TRACEEXIT,
};
use libc::{PTRACE_EVENT_SECCOMP, PTRACE_O_TRACESECCOMP};
use libc::{
    PTRACE_O_TRACESYSGOOD, PTRACE_SYSCALL_INFO_ENTRY, PTRACE_SYSCALL_INFO_EXIT,
    PTRACE_SYSCALL_INFO_SECCOMP,
};

use super::page::{self, Page, dirty, mode};
use super::regs;
use crate::signals::{arrival, deliver};
use crate::thread::Thread;

/// What marks a stop the tracee raised: si_errno of its STOP_SIGNAL.
pub const MARK: i32 = 0x5842_5452;

/// si_code SI_QUEUE (rt_sigqueueinfo's).
const SI_QUEUE: i32 = -1;

/// The thread's vCPU is gone (an exec let go of the VM): its tracer finds
/// no kvm_run to read registers from or to kick.
pub fn vcpu_gone() {
    // SAFETY: a field of this thread's page, which its tracer reads from
    // another process while this thread is stopped.
    unsafe { std::ptr::write_volatile(&mut page::own().kvm_run, 0) };
}

/// This thread's page if a sandboxed tracer traces it.
pub fn traced() -> Option<&'static mut Page> {
    let p = page::own();
    (p.traced != 0).then_some(p)
}

thread_local! {
    /// The signal a tracer resumed a stop with that the thread made
    /// outside a signal's delivery (a new task's first SIGSTOP, an exec's
    /// SIGTRAP), 0 if none: delivered at the thread's next return to the
    /// program with no stop of its own, as Linux delivers the signal a
    /// tracer gives at a signal-delivery stop. Apart from its siginfo
    /// (`RESUMED_INFO`), so that the check on every return reads a word.
    static RESUMED_WITH: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
    static RESUMED_INFO: std::cell::Cell<[u8; 128]> = const { std::cell::Cell::new([0; 128]) };
}

/// Keeps the signal a tracer resumed such a stop with (`RESUMED_WITH`).
fn resume_with(sig: i32, info: [u8; 128]) {
    if sig != 0 {
        RESUMED_INFO.set(info);
        RESUMED_WITH.set(sig);
    }
}

/// The signal to deliver with its delivery stop made already
/// (`RESUMED_WITH`), if any.
pub fn resumed_with() -> Option<(i32, [u8; 128])> {
    let sig = RESUMED_WITH.replace(0);
    (sig != 0).then(|| (sig, RESUMED_INFO.get()))
}

/// Whether the tracer handed a signal back (`requeued`), or resumed a
/// stop with one (`resumed_with`).
#[inline]
pub fn has_requeued() -> bool {
    // SAFETY: a field of this thread's page, which the tracer writes from
    // another process while this thread is stopped.
    let requeued = unsafe { std::ptr::read_volatile(&page::own().requeued) };
    requeued != 0 || RESUMED_WITH.get() != 0
}

/// A signal the tracer handed back from a stop the host made in a system
/// call (`tracer::requeue`), with its siginfo: delivered now, after the
/// call's exit stop, as Linux orders them. A tracer that left meanwhile
/// leaves it to the host to deliver.
#[cold]
pub fn requeued() -> Option<(i32, [u8; 128])> {
    let p = page::own();
    // SAFETY: fields of this thread's page, which the tracer writes from
    // another process while this thread is stopped.
    let sig = unsafe { std::ptr::read_volatile(&p.requeued) };
    if sig == 0 {
        return None;
    }
    p.requeued = 0;
    // SAFETY: as above.
    let (traced, info) = unsafe {
        (
            std::ptr::read_volatile(&p.traced),
            std::ptr::read_volatile(&p.requeued_info),
        )
    };
    if traced == 0 {
        // SAFETY: raises a valid signal at this thread.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), sig) };
        return None;
    }
    Some((sig as i32, info))
}

/// Whether the tracer suspended the thread's seccomp filters
/// (PTRACE_O_SUSPEND_SECCOMP).
pub fn seccomp_suspended() -> bool {
    traced().is_some_and(|p| p.options & libc::PTRACE_O_SUSPEND_SECCOMP as u32 != 0)
}

/// Whether a stop is due at system calls (PTRACE_SYSCALL or SYSEMU).
pub fn at_syscalls() -> Option<&'static mut Page> {
    traced().filter(|p| p.mode == mode::SYSCALL || mode::emulates(p.mode))
}

/// RFLAGS.TF.
pub const TF: u64 = 0x100;

/// Before the guest runs: a thread that became traced has every signal
/// come through the sandbox; the trap flag is set for PTRACE_SINGLESTEP,
/// and cleared again once the tracer resumed otherwise; the page's
/// registers go stale.
#[inline]
pub fn before_guest(t: &mut Thread) {
    let p = page::own();
    p.fresh = 0;
    p.fp_fresh = 0;
    p.held_group = 0;
    if p.traced != 0 && !arrival::catching_all() {
        let signals = t.process.signals.lock().expect("signals").clone();
        arrival::catch_all(&signals);
    }
    if p.traced != 0 || t.stepping {
        prepare_step(t);
    }
    if p.traced != 0 || t.hwbp.any() {
        super::hwbp::refresh(t, &p.debugreg);
    }
    // SAFETY: a field of this thread's page; volatile, as the tracer reads
    // it from another process while this thread is stopped in KVM_RUN.
    unsafe { std::ptr::write_volatile(&mut p.in_guest, 1) };
}

/// KVM_RUN returned: the thread runs the sandbox's code again, with the
/// FS and GS bases a tracer set meanwhile.
#[inline]
pub fn after_guest(t: &mut Thread) {
    let p = page::own();
    // SAFETY: as in before_guest; the tracer writes `bases_set` only while
    // the thread is stopped in KVM_RUN.
    unsafe { std::ptr::write_volatile(&mut p.in_guest, 0) };
    // SAFETY: as above.
    if unsafe { std::ptr::read_volatile(&p.bases_set) } != 0 {
        set_bases(t, p);
    }
}

#[cold]
fn set_bases(t: &mut Thread, p: &mut Page) {
    p.bases_set = 0;
    // SAFETY: as in after_guest.
    let r = unsafe { std::ptr::read_volatile(&p.regs) };
    let (fs, gs) = (r.fs_base, r.gs_base);
    if t.vcpu.set_segment_base(false, fs).is_err() || t.vcpu.set_segment_base(true, gs).is_err() {
        log::warn!("ptrace: the FS and GS bases a tracer set could not be loaded");
    }
}

fn prepare_step(t: &mut Thread) {
    let want = traced().is_some_and(|p| mode::steps(p.mode));
    if want == t.stepping {
        return;
    }
    set_trap_flag(t, want);
}

fn set_trap_flag(t: &mut Thread, on: bool) {
    let mut r = t.vcpu.user_regs(&t.process.vm.memory);
    if on {
        r.rflags |= TF;
    } else {
        r.rflags &= !TF;
    }
    let _ = t.vcpu.set_user_regs(&t.process.vm.memory, &r);
    t.stepping = on;
}

/// DR6.BS, which a single step's #DB leaves alone in the thread's DR6 as
/// a tracer reads it (virtual_dr6, reset at each #DB).
const DR6_BS: u64 = 1 << 14;

/// A single step ended: at a #DB (`syscall` false: the instruction at
/// `rip` is next) or at a system call's return. Returns the SIGTRAP the
/// kernel sends for it (send_sigtrap, user_single_step_report).
pub fn step_done(t: &mut Thread, syscall: bool) -> [u8; 128] {
    set_trap_flag(t, false);
    if !syscall {
        page::own().debugreg[6] = DR6_BS;
    }
    let rip = t.vcpu.user_regs(&t.process.vm.memory).rip;
    let code = if syscall {
        libc::TRAP_BRKPT
    } else {
        libc::TRAP_TRACE
    };
    crate::signals::deliver::kernel_info(libc::SIGTRAP, code, rip)
}

/// Whether a syscall-exit stop is due (PTRACE_SYSCALL; PTRACE_SYSEMU
/// makes none).
pub fn exit_stop_due() -> Option<&'static mut Page> {
    let p = traced()?;
    // SAFETY: a field of this thread's page, which the tracer writes from
    // another process while this thread is stopped.
    if unsafe { std::ptr::read_volatile(&p.restart_in_view) } != 0 {
        // Resumed from a stop the host made in the call, which restarts.
        p.restart_in_view = 0;
        return None;
    }
    (p.mode == mode::SYSCALL).then_some(p)
}

/// Prepares this thread's page for the thread (before it first runs): the
/// tracer reads where the thread's registers are from it. A task its
/// creator's tracer follows (`follow`: the host attached it already) is
/// traced from here, and makes the first stop Linux makes it make.
pub fn start(t: &mut Thread, follow: Option<Carried>) {
    let p = page::own();
    p.kvm_run = t.vcpu.kvm_run_addr();
    p.syscall_stub = t.vcpu.setup().runtime.syscall_entry + 2;
    p.stubs = t.vcpu.setup().runtime.enter_user;
    p.call_entry = super::inject::entry();
    p.forward_rip = [
        crate::host::forward_call_ip(),
        crate::host::notify_call_ip(),
    ];
    (p.slot_full, p.slot_arrival) = arrival::slot_addrs();
    p.cancel = crate::host::cancel_windows();
    super::inject::set_port(Some(t.vcpu.fp_port()));
    p.fresh = 0;
    p.in_guest = 0;
    p.in_call = 0;
    p.regs_in_call = 0;
    p.no_carry = 0;
    bases_changed(t);
    record_xcr0(t, p);
    // A fork child's copy of its parent's page may say the parent was in
    // a stop.
    p.in_stop = 0;
    p.in_clone = 0;
    let tid = crate::umem::own_tid();
    p.started = tid;
    if p.tid != tid {
        // A fork child's breakpoints are not its parent's (DR7 reads as
        // the parent's: the kernel copies it, not the breakpoints).
        p.debugreg[..4].fill(0);
        t.hwbp = super::hwbp::State::inherited(&p.debugreg);
    }
    if p.tid == tid && p.traced != 0 {
        // A tracer attached already, in the moment since the fork (it
        // names the page's thread as it writes it): its settings stay.
        return;
    }
    p.tid = tid;
    // The parent's copy of the page, or a new one: Linux traces a new
    // thread or child only under the PTRACE_O_TRACE* options; an exec's
    // new image is told it is traced by `exec_done`.
    p.traced = 0;
    p.options = 0;
    p.mode = mode::CONT;
    p.seized = 0;
    let Some(c) = follow else {
        return;
    };
    p.traced = 1;
    p.options = c.options;
    p.seized = u32::from(c.seized);
    if c.seized {
        // PTRACE_EVENT_STOP (ptrace_init_task: JOBCTL_TRAP_STOP).
        snapshot(t, p, t.orig_rax);
        p.event_msg = 0;
        p.syscall = page::SyscallAt::default();
        let before = p.regs;
        raise(p, libc::SIGTRAP as u32 | (PTRACE_EVENT_STOP as u32) << 8);
        apply(t, p, &before);
        return;
    }
    // A SIGSTOP the kernel queued without a sender (SI_USER from pid 0).
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&libc::SIGSTOP.to_le_bytes());
    let sig = signal(t, libc::SIGSTOP, &mut info, None, &mut arrival::mask());
    resume_with(sig, info);
}

/// The thread's FS and GS bases changed (arch_prctl), or are first known:
/// kept in the page, where a tracer reads them in a stop the host made
/// while the guest ran (KVM's kvm_run holds the other registers, not
/// these), as thread_db does to tell which thread a task is.
pub fn bases_changed(t: &mut Thread) {
    let p = page::own();
    p.regs.fs_base = t.vcpu.fs_base().unwrap_or(0);
    p.regs.gs_base = t.vcpu.gs_base().unwrap_or(0);
}

/// Fills the page with the thread's state at this point.
fn snapshot(t: &mut Thread, p: &mut Page, orig_rax: u64) {
    let r = t.vcpu.user_regs(&t.process.vm.memory);
    let fs = t.vcpu.fs_base().unwrap_or(0);
    let gs = t.vcpu.gs_base().unwrap_or(0);
    p.regs = regs::user_regs(&r, orig_rax, fs, gs);
    fill_xsave(t, p);
    p.sigmask = arrival::mask();
    p.fresh = 1;
}

/// The thread's XCR0 changed, or is first known: kept in the page, which
/// a tracer sizes the XSTATE regset by in any stop.
pub fn xcr0_changed(t: &mut Thread) {
    record_xcr0(t, page::own());
}

fn record_xcr0(t: &mut Thread, p: &mut Page) {
    p.xcr0 = t.vcpu.xcr0().bits();
    let (_, size) = crate::syscalls::xstate::frame_features(t);
    p.xsave_len = u64::from(size).min(page::XSAVE_MAX as u64);
}

/// The thread's XCR0 and XSAVE image into the page.
fn fill_xsave(t: &mut Thread, p: &mut Page) {
    record_xcr0(t, p);
    if let Ok(x) = t.vcpu.xsave() {
        let n = x.len().min(page::XSAVE_MAX);
        p.xsave[..n].copy_from_slice(&x[..n]);
    }
}

/// A traced thread is about to make a system call, in which a stop the
/// host makes (ATTACH's SIGSTOP, a group stop, PTRACE_INTERRUPT) may find
/// it, its sandbox unable to answer: its FPU and extended state go into
/// the page, where the tracer reads them in such a stop (KVM keeps them
/// out of the tracer's reach). They stay so until the guest runs again.
pub fn syscall_entered(t: &mut Thread) {
    if let Some(p) = traced() {
        fill_xsave(t, p);
        p.fp_fresh = 1;
    }
}

/// Whether a stop may be carried into the thread (carry.rs): not while it
/// creates a task, whose mask is copied from its own (all blocked while
/// a carried stop waits) and, for a vfork child, whose slot is this
/// thread's; nor once it ends, when a stop waiting in its slot would be
/// passed on to the process.
pub fn hold_off_carry(on: bool) {
    // SAFETY: a field of this thread's page, which the tracer reads from
    // another process while this thread is stopped.
    unsafe { std::ptr::write_volatile(&mut page::own().no_carry, u64::from(on)) };
}

/// The sandbox starts a system call for the thread: a tracer may set its
/// registers in a stop the host makes meanwhile (until `call_made`).
#[inline]
pub fn making_call() {
    let p = page::own();
    // SAFETY: a field of this thread's page, which the tracer reads from
    // another process while this thread is stopped.
    unsafe { std::ptr::write_volatile(&mut p.in_call, 1) };
}

/// The sandbox has made a system call for the thread: registers a tracer
/// set in a stop the host made meanwhile (`tracer::set_regs_in_call`)
/// replace the call's outcome if it `returned` one; a call they leave to
/// restart restarts, as the kernel's would. Whether they did.
#[inline]
pub fn call_made(t: &mut Thread, returned: bool) -> bool {
    let p = page::own();
    // SAFETY: fields of this thread's page, which the tracer reads and
    // writes from another process while this thread is stopped.
    unsafe {
        std::ptr::write_volatile(&mut p.in_call, 0);
        if std::ptr::read_volatile(&p.regs_in_call) == 0 {
            return false;
        }
    }
    page::reload(p);
    p.regs_in_call = 0;
    if !returned {
        return false;
    }
    let mut r = p.regs;
    if let Some(nr) = regs::restarts(&r) {
        r.rax = nr;
        r.rip = r.rip.wrapping_sub(2);
    }
    let before = regs::user_regs(
        &t.vcpu.user_regs(&t.process.vm.memory),
        u64::MAX,
        t.vcpu.fs_base().unwrap_or(0),
        t.vcpu.gs_base().unwrap_or(0),
    );
    p.regs = r;
    p.dirty = dirty::REGS;
    apply(t, p, &before);
    p.dirty = 0;
    true
}

/// The registers the tracer set in the stop just ended, if it set any;
/// also if it detached there (gdb puts back the registers of a thread it
/// called a function in, then detaches: an interrupted call restarts).
pub fn regs_set_at_stop() -> Option<libc::user_regs_struct> {
    let p = page::own();
    (p.dirty & dirty::REGS != 0).then_some(p.regs)
}

/// Takes back what the tracer changed during the stop.
fn apply(t: &mut Thread, p: &mut Page, before: &libc::user_regs_struct) {
    if p.dirty & dirty::REGS != 0 {
        let new = regs::sanitize(&p.regs, before);
        let _ = t.vcpu.set_user_regs(&t.process.vm.memory, &regs::kvm(&new));
        if new.fs_base != before.fs_base {
            let _ = t.vcpu.set_segment_base(false, new.fs_base);
        }
        if new.gs_base != before.gs_base {
            let _ = t.vcpu.set_segment_base(true, new.gs_base);
        }
    }
    if p.dirty & dirty::XSAVE != 0 {
        let n = (p.xsave_len as usize).min(page::XSAVE_MAX);
        if let Ok(mut x) = t.vcpu.xsave() {
            let m = n.min(x.len());
            x[..m].copy_from_slice(&p.xsave[..m]);
            let _ = t.vcpu.set_xsave(&x);
        }
    }
    if p.dirty & dirty::SIGMASK != 0 {
        arrival::set_mask(p.sigmask);
    }
}

/// The signal a stop is raised with: ignored by default, so that should
/// the tracer go away without resuming the thread (the host then detaches
/// it and delivers the signal), the thread goes on as Linux's would;
/// with the sandbox's handler installed (every signal of a traced thread
/// comes to it), the handler drops it by its mark (`is_mark`).
pub const STOP_SIGNAL: i32 = libc::SIGURG;

/// Raises the stop the page now describes and waits in it until the
/// tracer resumes the thread; returns with the page as the tracer left it.
/// The stop is the host's signal-delivery stop for a marked STOP_SIGNAL
/// the thread sends itself, the only signal it leaves unblocked meanwhile.
fn raise(p: &mut Page, code: u32) {
    // Unless the tracer says otherwise: no signal after an event stop, the
    // same one after a signal-delivery stop.
    raise_with(p, code, if code < 0x80 { code } else { 0 });
}

/// A system call stop: no signal unless the tracer gives one (its code is
/// SIGTRAP's without PTRACE_O_TRACESYSGOOD).
fn raise_call_stop(p: &mut Page) {
    raise_with(p, syscall_code(p), 0);
    send_resumed_with(p);
}

/// `raise`, the signal to go on with `sig` if the tracer goes away first.
fn raise_with(p: &mut Page, code: u32, sig: u32) {
    p.sig = sig;
    if p.tid != crate::umem::own_tid() {
        // A fork or vfork child with its parent's copy of the page: not
        // traced.
        p.traced = 0;
        p.dirty = 0;
        return;
    }
    p.code = code;
    p.dirty = 0;
    p.in_stop = 1;
    log::debug!(
        "ptrace: stop {code:#x} at {:#x}, si_code {}",
        p.regs.rip,
        i32::from_le_bytes(p.siginfo[8..12].try_into().expect("4 bytes"))
    );
    // SAFETY: siginfo_t is plain data, valid all zero.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    info.si_signo = STOP_SIGNAL;
    info.si_errno = MARK;
    info.si_code = SI_QUEUE;
    let only = !arrival::bit(STOP_SIGNAL);
    let mut before = 0u64;
    // SAFETY: rt_sigprocmask with 8-byte kernel sigsets we own; getpid,
    // getuid and gettid have no preconditions; the siginfo is ours and
    // complete (si_pid and si_uid at bytes 16 and 20). The host kernel
    // stops this thread as the signal is delivered; the tracer resumes it
    // with the signal suppressed. The mask is the host thread's exactly
    // as it was (the program's, or all while a signal waits in the slot).
    unsafe {
        let (pid, tid) = (libc::getpid(), libc::gettid());
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &only,
            &mut before,
            8,
        );
        let words = (&mut info as *mut libc::siginfo_t).cast::<i32>();
        words.add(4).write(pid);
        words.add(5).write(libc::getuid() as i32);
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid,
            tid,
            STOP_SIGNAL,
            &info as *const libc::siginfo_t,
        );
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &before,
            std::ptr::null_mut::<u64>(),
            8,
        );
    }
    page::reload(p);
    p.in_stop = 0;
    log::debug!("ptrace: resumed: mode {} signal {}", p.mode, p.sig);
}

/// Whether a signal that reached the sandbox's handler is a stop's mark
/// (its tracer went away before resuming the thread): the handler drops
/// it. Async-signal-safe.
pub fn is_mark(sig: i32, info: &[u8]) -> bool {
    let word = |i: usize| i32::from_le_bytes(info[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    // SAFETY: getpid has no preconditions.
    sig == STOP_SIGNAL
        && word(1) == MARK
        && word(2) == SI_QUEUE
        && word(4) == unsafe { libc::getpid() }
}

/// SIGTRAP, or SIGTRAP|0x80 under PTRACE_O_TRACESYSGOOD.
fn syscall_code(p: &Page) -> u32 {
    libc::SIGTRAP as u32
        | if p.options & PTRACE_O_TRACESYSGOOD as u32 != 0 {
            0x80
        } else {
            0
        }
}

/// What the entry stop decided.
pub enum Entry {
    /// Make the call, with this number and these arguments.
    Call(u64, [u64; 6]),
    /// Skip it (the tracer set the number to -1, or PTRACE_SYSEMU): the
    /// thread resumes with RAX as the tracer left it.
    Skip(u64),
}

/// The syscall-enter stop of system call `nr` with `args`.
pub fn syscall_entry(t: &mut Thread, p: &mut Page, nr: u64, args: [u64; 6]) -> Entry {
    snapshot(t, p, nr);
    p.regs.rax = (-libc::ENOSYS) as u64;
    p.syscall = page::SyscallAt {
        op: u32::from(PTRACE_SYSCALL_INFO_ENTRY),
        nr,
        args,
        rval: 0,
    };
    let sysemu = mode::emulates(p.mode);
    let before = p.regs;
    raise_call_stop(p);
    let r = if p.dirty & dirty::REGS != 0 {
        p.regs
    } else {
        before
    };
    if sysemu || r.orig_rax as i64 == -1 {
        apply(t, p, &before);
        return Entry::Skip(r.rax);
    }
    Entry::Call(r.orig_rax, [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9])
}

/// PTRACE_EVENT_SECCOMP for a filter's SECCOMP_RET_TRACE with `data`, if
/// the tracer asked for it (PTRACE_O_TRACESECCOMP); None otherwise. As at
/// the entry stop, the tracer may change the call or skip it.
pub fn seccomp_stop(t: &mut Thread, nr: u64, args: [u64; 6], data: u16) -> Option<Entry> {
    let p = traced()?;
    if p.options & PTRACE_O_TRACESECCOMP as u32 == 0 {
        return None;
    }
    snapshot(t, p, nr);
    p.regs.rax = (-libc::ENOSYS) as u64;
    p.event_msg = u64::from(data);
    p.syscall = page::SyscallAt {
        op: u32::from(PTRACE_SYSCALL_INFO_SECCOMP),
        nr,
        args,
        rval: i64::from(data),
    };
    let before = p.regs;
    raise(p, libc::SIGTRAP as u32 | (PTRACE_EVENT_SECCOMP as u32) << 8);
    let r = if p.dirty & dirty::REGS != 0 {
        p.regs
    } else {
        before
    };
    if r.orig_rax as i64 == -1 {
        apply(t, p, &before);
        return Some(Entry::Skip(r.rax));
    }
    Some(Entry::Call(
        r.orig_rax,
        [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9],
    ))
}

/// The syscall-exit stop of system call `nr` (-1: skipped, or
/// rt_sigreturn), its result in RAX.
pub fn syscall_exit(t: &mut Thread, p: &mut Page, nr: u64, interrupted: Option<i64>) {
    snapshot(t, p, nr);
    if let Some(code) = interrupted {
        // A signal interrupted it: RAX holds the code that says how it
        // restarts, as the kernel's exit stop shows it.
        p.regs.rax = code as u64;
    }
    p.syscall = page::SyscallAt {
        op: u32::from(PTRACE_SYSCALL_INFO_EXIT),
        nr,
        args: [0; 6],
        rval: p.regs.rax as i64,
    };
    let before = p.regs;
    raise_call_stop(p);
    apply(t, p, &before);
}

/// A signal a tracer resumed a system call stop with is sent to the
/// thread, from the kernel (ptrace_report_syscall's send_sig): strace's
/// `-e inject=SET:signal=SIG`. An event stop ignores it, as Linux's do.
fn send_resumed_with(p: &Page) {
    let sig = p.sig as i32;
    if sig == 0 || p.tid != crate::umem::own_tid() {
        return;
    }
    let info = deliver::kernel_info(sig, deliver::SI_KERNEL, 0);
    // SAFETY: queues a signal on this thread with a complete siginfo of
    // ours; a process may give its own signals any si_code.
    unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            libc::getpid(),
            libc::gettid(),
            sig,
            info.as_ptr(),
        )
    };
}

/// The signal-delivery stop for `sig` with `info`: returns the signal to
/// deliver instead (0: none) and its siginfo. In a system call the signal
/// interrupted, RAX shows `in_call`, the code the kernel leaves there.
/// `mask` is the program's blocked mask (the host thread's blocks every
/// signal while one is delivered), as the tracer left it.
pub fn signal(
    t: &mut Thread,
    sig: i32,
    info: &mut [u8; 128],
    in_call: Option<u64>,
    mask: &mut u64,
) -> i32 {
    let Some(p) = traced() else {
        return sig;
    };
    snapshot(t, p, t.orig_rax);
    p.sigmask = *mask;
    if let Some(code) = in_call {
        p.regs.rax = code;
    }
    p.siginfo = *info;
    p.syscall = page::SyscallAt::default();
    let before = p.regs;
    raise(p, sig as u32);
    apply(t, p, &before);
    if p.dirty & dirty::SIGMASK != 0 {
        *mask = p.sigmask;
    }
    // A signal the tracer changed comes with the siginfo it wrote.
    if p.dirty & dirty::SIGINFO != 0 {
        *info = p.siginfo;
    }
    p.sig as i32
}

/// PTRACE_INTERRUPT's stop, carried to the sandbox by the tracer
/// (carry.rs): made at the thread's return to the program, with the
/// ERESTART code of the call it `interrupted` in RAX, as Linux makes it
/// on the way out of that call, and the program's `mask` taken back after
/// it (every signal stays blocked until then, as in Linux's stop, which
/// comes before any signal is taken). The call as the tracer left it.
pub fn interrupt_stop(
    t: &mut Thread,
    interrupted: Option<crate::signals::deliver::Interrupted>,
    mask: u64,
) -> Option<crate::signals::deliver::Interrupted> {
    let Some(p) = traced() else {
        arrival::set_mask(mask);
        return interrupted;
    };
    snapshot(t, p, t.orig_rax);
    p.sigmask = mask;
    if let Some(i) = interrupted {
        p.regs.rax = i.kernel_code() as u64;
    }
    p.event_msg = 0;
    p.syscall = page::SyscallAt::default();
    let before = p.regs;
    raise(p, super::tracer::INTERRUPT_STOP);
    apply(t, p, &before);
    if p.dirty & dirty::SIGMASK == 0 {
        arrival::set_mask(mask);
    }
    match regs_set_at_stop() {
        Some(r) => crate::signals::deliver::Interrupted::from_regs(&r),
        None => interrupted,
    }
}

/// A handler's frame was set up while the tracer single-steps the thread:
/// Linux reports a SIGTRAP stop at the handler's first instruction
/// (signal_setup_done, ptrace_notify), which is how a debugger knows it
/// stepped into a handler.
pub fn handler_entered(t: &mut Thread) {
    let Some(p) = traced().filter(|p| mode::steps(p.mode)) else {
        return;
    };
    // The handler starts without TF (its frame's RFLAGS clear it).
    t.stepping = false;
    snapshot(t, p, t.orig_rax);
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&libc::SIGTRAP.to_le_bytes());
    info[8..12].copy_from_slice(&libc::SIGTRAP.to_le_bytes());
    // SAFETY: getpid and getuid have no preconditions.
    let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
    info[16..20].copy_from_slice(&pid.to_le_bytes());
    info[20..24].copy_from_slice(&uid.to_le_bytes());
    p.siginfo = info;
    p.syscall = page::SyscallAt::default();
    let before = p.regs;
    raise(p, libc::SIGTRAP as u32);
    apply(t, p, &before);
    if p.sig != 0 {
        // SAFETY: sends the signal the tracer resumed with to this thread.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, libc::gettid(), p.sig) };
    }
}

/// What a clone creates, as the PTRACE_O_TRACE* options name it.
#[derive(Clone, Copy, Debug)]
pub enum NewTask {
    Thread,
    Vfork,
    Fork,
}

impl NewTask {
    /// The option under which a tracer follows such tasks, and the event
    /// their creation stops at.
    fn option_and_event(self) -> (u32, u32) {
        let (o, e) = match self {
            NewTask::Thread => (libc::PTRACE_O_TRACECLONE, libc::PTRACE_EVENT_CLONE),
            NewTask::Vfork => (libc::PTRACE_O_TRACEVFORK, libc::PTRACE_EVENT_VFORK),
            NewTask::Fork => (libc::PTRACE_O_TRACEFORK, libc::PTRACE_EVENT_FORK),
        };
        (o as u32, e as u32)
    }
}

/// A traced thread creating a task its tracer follows, from `creating` to
/// `created`.
pub struct Creating {
    /// What the new task is traced with.
    pub follow: Carried,
    before: libc::user_regs_struct,
}

/// Before the host clone that makes the program's new `kind` (`untraced`:
/// CLONE_UNTRACED): whether the tracer follows it. If so, the tracer's
/// options include the host's own for it, so that the host attaches the
/// new task to the tracer and stops this thread at the PTRACE_EVENT; the
/// page describes this thread meanwhile, as in the system call
/// (orig_rax its number, RAX -ENOSYS).
pub fn creating(
    t: &mut Thread,
    kind: NewTask,
    untraced: bool,
    parent_tid_at: u64,
) -> Option<Creating> {
    let p = traced()?;
    let (option, event) = kind.option_and_event();
    if untraced || p.options & option == 0 || p.tid != crate::umem::own_tid() {
        return None;
    }
    snapshot(t, p, t.orig_rax);
    p.regs.rax = (-libc::ENOSYS) as u64;
    p.syscall = page::SyscallAt::default();
    p.code = libc::SIGTRAP as u32 | event << 8;
    p.dirty = 0;
    p.sig = 0;
    p.in_clone = 1;
    p.in_stop = 1;
    // The tracer writes there: program memory only, as the kernel's
    // put_user would find it.
    let space = t.process.vm.memory.lock().expect("address space");
    let writable = space.program_can_access(parent_tid_at, 4, true);
    drop(space);
    p.parent_tid_at = if writable { parent_tid_at } else { 0 };
    Some(Creating {
        follow: Carried {
            options: p.options,
            mode: mode::CONT,
            seized: p.seized != 0,
            former_tid: 0,
        },
        before: p.regs,
    })
}

/// After that host clone returned: what the tracer changed at its event
/// stops takes effect.
pub fn created(t: &mut Thread, c: Option<Creating>) {
    let Some(c) = c else {
        return;
    };
    let p = page::own();
    page::reload(p);
    p.in_stop = 0;
    p.in_clone = 0;
    p.parent_tid_at = 0;
    apply(t, p, &c.before);
}

/// Before a stop signal's default action, which the sandbox raises for a
/// traced thread (signals::arrival::raise_default) and the host carries
/// out as a group stop: the thread's state goes into the page, `held`,
/// where the tracer reads and changes it as in a stop the thread raised,
/// with `in_call` the interrupted call's ERESTART code as at the delivery
/// stop. The registers as shown, for `released`.
pub fn holding(t: &mut Thread, in_call: Option<u64>) -> Option<libc::user_regs_struct> {
    let p = traced()?;
    snapshot(t, p, t.orig_rax);
    if let Some(code) = in_call {
        p.regs.rax = code;
    }
    p.fp_fresh = 1;
    p.dirty = 0;
    // SAFETY: a field of this thread's page, which the tracer reads from
    // another process while this thread is stopped.
    unsafe { std::ptr::write_volatile(&mut p.held, 1) };
    Some(p.regs)
}

/// The group stop after `holding` ended (or never came): what the tracer
/// changed meanwhile takes effect; the registers it set, if it did.
pub fn released(t: &mut Thread, before: &libc::user_regs_struct) -> Option<libc::user_regs_struct> {
    let p = page::own();
    page::reload(p);
    p.held = 0;
    let set = (p.dirty & dirty::REGS != 0).then_some(p.regs);
    apply(t, p, before);
    p.dirty = 0;
    set
}

/// Marks a signal the thread re-raises for its default action: reported
/// already, the tracer lets it through.
pub fn passing(sig: i32) {
    if let Some(p) = traced() {
        p.passing = sig as u32;
    }
}

/// After the program's execve, in the new image: the exec stop Linux
/// makes (PTRACE_EVENT_EXEC, or a SIGTRAP the tracer sees delivered), and
/// the exit stop of the execve.
pub fn exec_done(t: &mut Thread, c: &Carried) {
    let p = page::own();
    p.traced = 1;
    p.options = c.options;
    p.mode = c.mode;
    p.seized = u32::from(c.seized);
    if c.options & PTRACE_O_TRACEEXEC as u32 != 0 {
        snapshot(t, p, libc::SYS_execve as u64);
        // Still in the call, which returns 0 after the stop.
        p.regs.rax = (-libc::ENOSYS) as u64;
        p.event_msg = c.former_tid as u64;
        p.syscall = page::SyscallAt::default();
        let before = p.regs;
        raise(p, libc::SIGTRAP as u32 | (PTRACE_EVENT_EXEC as u32) << 8);
        apply(t, p, &before);
    }
    if let Some(p) = exit_stop_due() {
        syscall_exit(t, p, libc::SYS_execve as u64, None);
    }
    t.orig_rax = libc::SYS_execve as u64;
    if c.options & PTRACE_O_TRACEEXEC as u32 == 0 && !c.seized && traced().is_some() {
        // The SIGTRAP a legacy exec sends (send_sig: SI_USER from itself);
        // none for a seized task (ptrace_event).
        let mut info = [0u8; 128];
        info[0..4].copy_from_slice(&libc::SIGTRAP.to_le_bytes());
        // SAFETY: getpid and getuid have no preconditions.
        let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
        info[16..20].copy_from_slice(&pid.to_le_bytes());
        info[20..24].copy_from_slice(&uid.to_le_bytes());
        let sig = signal(t, libc::SIGTRAP, &mut info, None, &mut arrival::mask());
        resume_with(sig, info);
    }
}

/// PTRACE_EVENT_EXIT as the thread exits alone (exit(2), the call `nr`)
/// with wait status `status`: made here, before its end is seen (its
/// CLONE_CHILD_CLEARTID wake), as Linux makes it.
pub fn exiting(t: &mut Thread, nr: u64, status: i32) {
    let Some(p) = traced() else {
        return;
    };
    // The host's, as the host thread ends, is not the program's.
    p.exit = page::exit::MADE;
    if p.options & PTRACE_O_TRACEEXIT as u32 == 0 {
        return;
    }
    snapshot(t, p, nr);
    // Still in the call, as the kernel shows it.
    p.regs.rax = (-libc::ENOSYS) as u64;
    p.event_msg = status as u64;
    p.syscall = page::SyscallAt::default();
    raise(p, libc::SIGTRAP as u32 | (PTRACE_EVENT_EXIT as u32) << 8);
}

/// The thread is about to end its process (exit_group, the call `nr`, or
/// the default action of a signal, `nr` None, interrupting a call whose
/// restart code is `in_call`): the host makes every traced thread's
/// PTRACE_EVENT_EXIT at once as the process ends, this one's included,
/// the state of which goes into the page for the tracer to show.
pub fn ending(t: &mut Thread, nr: Option<u64>, in_call: Option<u64>) {
    let Some(p) = traced() else {
        return;
    };
    if p.options & PTRACE_O_TRACEEXIT as u32 == 0 {
        return;
    }
    snapshot(t, p, nr.unwrap_or(t.orig_rax));
    p.fp_fresh = 1;
    if nr.is_some() {
        p.regs.rax = (-libc::ENOSYS) as u64;
    } else if let Some(code) = in_call {
        p.regs.rax = code;
    }
}

/// What the new image of a traced thread needs of its tracing (through
/// the sandbox's re-exec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried {
    pub options: u32,
    pub mode: u32,
    /// Attached with PTRACE_SEIZE.
    pub seized: bool,
    /// Across an exec, the thread that made it: PTRACE_EVENT_EXEC's
    /// message, its former id where a thread other than the leader
    /// executed and took the leader's (0 for a new task followed).
    pub former_tid: i32,
}

/// The tracing an execve carries into the new image, if traced.
pub fn carried() -> Option<Carried> {
    traced().map(|p| Carried {
        options: p.options,
        mode: p.mode,
        seized: p.seized != 0,
        former_tid: crate::umem::own_tid(),
    })
}
