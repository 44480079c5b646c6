//! A task: one thread of the program running on its vCPU, on a host thread
//! of its own that performs its system calls, and the loop that runs it
//! until it ends. The loop also starts the host threads and processes of
//! the threads and vfork children the program creates.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use guest_runtime::abi::{ExceptionFrame, pf_error, selectors, vector};
use vmm::{Exit, Syscall, VcpuError};

use crate::clone::{Child, ChildIds};
use crate::cpuid::Policy;
use crate::host::{self, Errno, SysResult, encode};
use crate::perf::faults;
use crate::process::{Outcome, host_tid};
use crate::seccomp::{self, Verdict};
use crate::signals::{self, arrival, deliver};
use crate::syscalls::{self, Action};
use crate::thread::Thread;
use crate::trace::{hwbp, tracee};
use crate::umem;

/// A call's result when a signal interrupted it.
const EINTR: u64 = -libc::EINTR as i64 as u64;

/// Host stack of a thread or a vfork child: the run loop and the system
/// call handlers, never the program.
const HOST_STACK: usize = 256 << 10;

/// si_code of seccomp's SIGSYS (include/uapi/asm-generic/siginfo.h).
const SYS_SECCOMP: i32 = 1;

/// What seccomp made of a system call.
enum Filtered {
    /// Make it.
    Make,
    /// It was not made: the thread goes on (or takes a signal).
    Skipped,
    Ended(Ended),
}

/// The syscall-exit stop of a call that was not made (the tracer or
/// seccomp skipped it), which Linux still makes.
fn skipped_exit_stop(t: &mut Thread, nr: u64) {
    if let Some(p) = tracee::exit_stop_due() {
        tracee::syscall_exit(t, p, nr, None);
    }
}

/// How a task's run ended.
enum Ended {
    /// exit(2): this thread only, with this status.
    Thread(i32),
    /// This thread only, killed by this signal (SECCOMP_RET_KILL_THREAD).
    ThreadKilled(i32),
    /// The whole process (exit_group, a fatal signal).
    Process(Outcome),
}

pub struct Task {
    pub thread: Thread,
    /// The last page fault taken as possibly spurious (address, error code).
    last_fault: Option<(u64, u64)>,
    /// The system call that returned EINTR, for the signal that
    /// interrupted it to restart it or not.
    interrupted: Option<deliver::Interrupted>,
    /// The tracing an execve carried into this new image: its exec stops
    /// come first.
    traced_exec: Option<tracee::Carried>,
    /// The tracing of a new thread its creator's tracer follows.
    followed: Option<tracee::Carried>,
    /// A step through a page the debug registers watch that the last exit
    /// ended (hwbp.rs).
    watch_step: Option<hwbp::Step>,
}

impl Task {
    pub fn new(thread: Thread) -> Task {
        Task {
            thread,
            last_fault: None,
            interrupted: None,
            traced_exec: None,
            followed: None,
            watch_step: None,
        }
    }

    /// This task is the program's new image after an execve made while a
    /// sandboxed tracer traced it.
    pub fn exec_traced(&mut self, c: tracee::Carried) {
        self.traced_exec = Some(c);
    }

    /// Runs the thread until it ends. The process's end (exit_group, a
    /// fatal signal, the leader's exit once every thread is gone) does not
    /// return; a thread's own exit(2) returns, after its vCPU went back to
    /// the VM.
    pub fn run(mut self) {
        tracee::start(&mut self.thread, self.followed.take());
        faults::start(&mut self.thread);
        if let Some(c) = self.traced_exec.take() {
            tracee::exec_done(&mut self.thread, &c);
        }
        let ended = self.run_until_end();
        let code = self.thread_exit_code(ended);
        if self.thread.leader {
            // (A fork child's thread became its process's leader.)
            self.leader_exit(code);
        }
        signals::arrival::stop_taking();
        // (Only a traced thread runs on while a group stop holds the rest.)
        let traced = tracee::traced().is_some();
        crate::trace::page::release();
        crate::trace::inject::set_port(None);
        let t = self.thread;
        let process = t.process.clone();
        process.vm.release_vcpu(t.vcpu);
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        process.xcomp.lock().expect("xcomp").altstacks.remove(&tid);
        process.thread_ending(tid, t.clear_child_tid, code, traced);
    }

    /// Runs the only task of a process to the process's end, in place (a
    /// vfork child borrows its task from its parent).
    fn run_to_end(&mut self) -> ! {
        let ended = self.run_until_end();
        let code = self.thread_exit_code(ended);
        self.leader_exit(code)
    }

    /// How the thread alone ended (its own exit(2), or killed by seccomp);
    /// anything else ends the process (exit_group, a fatal signal, an
    /// internal error). A leader's end is the process's status once every
    /// other thread has ended, as Linux reports it.
    fn thread_exit_code(&self, ended: Result<Ended, VcpuError>) -> Outcome {
        let process = &self.thread.process;
        match ended {
            Ok(Ended::Thread(code)) => Outcome::Exited(code),
            Ok(Ended::ThreadKilled(sig)) => Outcome::Signaled(sig),
            Ok(Ended::Process(outcome)) => process.end(Ok(outcome)),
            Err(e) => process.end(Err(e.to_string())),
        }
    }

    /// The leader called exit(2): the process ends with its status once
    /// every other thread has.
    fn leader_exit(&mut self, how: Outcome) -> ! {
        signals::arrival::stop_taking();
        let process = self.thread.process.clone();
        process.clear_child_tid(self.thread.clear_child_tid);
        process.leader_exited(how)
    }

    /// Runs the thread until it ends, listed meanwhile among its
    /// process's threads for seccomp's TSYNC (a fork child lists itself in
    /// its new process).
    fn run_until_end(&mut self) -> Result<Ended, VcpuError> {
        crate::cpuid::arm(&mut self.thread)?;
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.thread.process.seccomp.enter(tid, &self.thread.seccomp);
        let ended = self.run_loop();
        tracee::hold_off_carry(true);
        // SAFETY: as above.
        let tid = unsafe { libc::gettid() };
        self.thread.process.seccomp.leave(tid);
        hwbp::forget(&mut self.thread);
        ended
    }

    fn run_loop(&mut self) -> Result<Ended, VcpuError> {
        arrival::set_kick(self.thread.vcpu.kick_flag());
        loop {
            // Cleared before looking: a signal arriving after the look
            // makes KVM_RUN return at once.
            self.thread.vcpu.clear_kick();
            if self.thread.vcpu.at_user_boundary()
                && (tracee::has_requeued() || arrival::pending() || self.interrupted.is_some())
                && let Some(outcome) = self.signals()?
            {
                return Ok(Ended::Process(outcome));
            }
            tracee::before_guest(&mut self.thread);
            let exit = self.thread.vcpu.run(&self.thread.process.vm.memory);
            tracee::after_guest(&mut self.thread);
            let exit = exit?;
            let sigreturn =
                matches!(exit, Exit::Syscall(sc) if sc.nr == libc::SYS_rt_sigreturn as u64);
            if !sigreturn {
                faults::after_guest(&mut self.thread);
            }
            self.watch_step = hwbp::step_end(&mut self.thread)?;
            self.thread.orig_rax = match exit {
                Exit::Syscall(sc) => sc.nr,
                _ => u64::MAX,
            };
            match exit {
                Exit::Syscall(mut sc) => {
                    if faults::owed(&self.thread) && !sigreturn && arrival::pending() {
                        // Faults the program took before this call are
                        // still being counted, and a signal (a counter's
                        // overflow) came: delivered first, the call made
                        // after.
                        self.interrupted =
                            Some(deliver::Interrupted::new(sc.nr, sc.args, false).not_begun());
                        self.thread.vcpu.complete_syscall(EINTR);
                        continue;
                    }
                    self.thread.process.count_syscall();
                    tracee::syscall_entered(&mut self.thread);
                    // Progress since the last fault: a later fault at the
                    // same place is a new one.
                    self.last_fault = None;
                    let traced = tracee::at_syscalls().is_some();
                    if let Some(p) = tracee::at_syscalls() {
                        match tracee::syscall_entry(&mut self.thread, p, sc.nr, sc.args) {
                            tracee::Entry::Call(nr, args) => {
                                sc.nr = nr;
                                sc.args = args;
                                self.thread.orig_rax = nr;
                            }
                            tracee::Entry::Skip(v) => {
                                self.thread.vcpu.complete_syscall(v);
                                skipped_exit_stop(&mut self.thread, u64::MAX);
                                continue;
                            }
                        }
                    }
                    match self.filter(&mut sc) {
                        Filtered::Make => {}
                        Filtered::Skipped => continue,
                        Filtered::Ended(e) => return Ok(e),
                    }
                    // As the kernel decides at the call's exit: a tracer
                    // resuming a seccomp stop with PTRACE_SYSCALL (strace
                    // --seccomp-bpf) gets the exit stop.
                    let traced = traced || tracee::at_syscalls().is_some();
                    let notified = host::notifying();
                    let began = signals::restart::before(sc.nr, sc.args);
                    tracee::making_call();
                    let action = syscalls::handle(&mut self.thread, sc);
                    if let Some(began) = began
                        && matches!(action, Action::Return(v) if v == EINTR)
                    {
                        // It restarts through restart_syscall, to the
                        // deadline it had.
                        self.thread.restart =
                            signals::restart::block(&self.thread, sc.nr, sc.args, began);
                    }
                    // Unless a check failed before the call was forwarded.
                    host::notify_next(false);
                    let returned = matches!(action, Action::Return(_));
                    if tracee::call_made(&mut self.thread, returned) {
                        continue;
                    }
                    match action {
                        Action::Return(v) => {
                            if v == EINTR {
                                let mut i = deliver::Interrupted::new(sc.nr, sc.args, notified);
                                if sc.nr == libc::SYS_restart_syscall as u64
                                    && self.thread.restart.is_none()
                                {
                                    // Nothing to resume: EINTR itself
                                    // (do_no_restart_syscall).
                                    i = i.failing();
                                }
                                self.interrupted = Some(i);
                            }
                            self.thread.vcpu.complete_syscall(v);
                        }
                        Action::Spawn(child) => {
                            let made = self.spawn(child);
                            if made == Err(Errno(libc::EINTR)) {
                                // Made again once the signal is delivered.
                                self.interrupted =
                                    Some(deliver::Interrupted::new(sc.nr, sc.args, notified));
                            }
                            self.thread.vcpu.complete_syscall(encode(made));
                        }
                        Action::Started => {
                            if sc.nr == libc::SYS_rt_sigreturn as u64 {
                                self.thread.orig_rax = u64::MAX;
                                // Under the mask the handler's frame put
                                // back, as the faults were taken.
                                faults::after_guest(&mut self.thread);
                            }
                            // rt_sigreturn's exit stop shows orig_rax -1,
                            // as restore_sigcontext leaves it.
                            if traced
                                && sc.nr == libc::SYS_rt_sigreturn as u64
                                && let Some(p) = tracee::exit_stop_due()
                            {
                                tracee::syscall_exit(&mut self.thread, p, u64::MAX, None);
                            }
                            continue;
                        }
                        Action::ExitThread(code) => {
                            tracee::hold_off_carry(true);
                            tracee::exiting(&mut self.thread, sc.nr, (code & 0xff) << 8);
                            return Ok(Ended::Thread(code));
                        }
                        Action::End(outcome) => {
                            tracee::hold_off_carry(true);
                            let call = matches!(outcome, Outcome::Exited(_)).then_some(sc.nr);
                            tracee::ending(&mut self.thread, call, None);
                            return Ok(Ended::Process(outcome));
                        }
                    };
                    // (Asked even if untraced at the call's entry: a tracer
                    // that attached meanwhile may have restarted it.)
                    if let Some(p) = tracee::exit_stop_due()
                        && traced
                    {
                        let code = self.interrupted.map(|i| i.kernel_code());
                        tracee::syscall_exit(&mut self.thread, p, sc.nr, code);
                        if let Some(r) = tracee::regs_set_at_stop() {
                            // The tracer's RAX decides whether it restarts.
                            self.interrupted = deliver::Interrupted::from_regs(&r);
                        }
                    }
                    if self.thread.stepping {
                        // The step ends at the call's return.
                        let info = tracee::step_done(&mut self.thread, true);
                        if let Err(o) = deliver::force(&mut self.thread, libc::SIGTRAP, info, false)
                        {
                            return Ok(Ended::Process(o));
                        }
                    }
                }
                Exit::Exception { frame, cr2 } => {
                    self.thread.process.count_exception();
                    if let Some(outcome) = self.exception(frame, cr2)? {
                        return Ok(Ended::Process(outcome));
                    }
                }
                Exit::Interrupted => {}
                Exit::StrayIo { rip } => {
                    log::debug!("port I/O by the program at {rip:#x}: SIGSEGV");
                    return Ok(Ended::Process(Outcome::Signaled(libc::SIGSEGV)));
                }
                Exit::HostFault { gpa } => {
                    if let Err(outcome) = self.host_fault(gpa) {
                        return Ok(Ended::Process(outcome));
                    }
                }
            }
        }
    }

    /// At a return to the program: delivers the signals waiting (first one
    /// its tracer handed back, `requeued`), then decides the restart of a
    /// call they interrupted that no handler took. Some: the process ends.
    fn signals(&mut self) -> Result<Option<Outcome>, VcpuError> {
        let mut interrupted = self.interrupted.take();
        let mut signalled = false;
        let resumed = tracee::resumed_with().map(|s| (s, true));
        let mut next = resumed
            .or_else(|| tracee::requeued().map(|s| (s, false)))
            .map(|((sig, info), reported)| deliver::Signal {
                sig,
                info,
                mask: arrival::mask(),
                reported,
            });
        while let Some(s) = next.take().or_else(|| {
            arrival::take().map(|a| deliver::Signal {
                sig: a.sig,
                info: a.info,
                mask: a.mask,
                reported: false,
            })
        }) {
            // A step through a watched page not yet run: the handler's
            // frame must not carry its trap flag.
            hwbp::step_end(&mut self.thread)?;
            if s.sig == arrival::TRAP_STOP {
                // A tracer's PTRACE_INTERRUPT (trace/carry.rs): a call it
                // interrupted restarts unless the tracer said otherwise.
                interrupted = tracee::interrupt_stop(&mut self.thread, interrupted, s.mask);
                signalled = true;
                continue;
            }
            signalled = true;
            match deliver::deliver(&mut self.thread, s, interrupted) {
                Ok(left) => interrupted = left,
                Err(outcome) => return Ok(Some(outcome)),
            }
        }
        Ok(interrupted.and_then(|i| deliver::no_handler_ran(&mut self.thread, i, signalled).err()))
    }

    /// Runs the thread's seccomp filters on the call about to be made
    /// (after the tracer's entry stop, as Linux since 4.8) and acts on
    /// their verdict.
    fn filter(&mut self, sc: &mut Syscall) -> Filtered {
        if tracee::seccomp_suspended() {
            return Filtered::Make;
        }
        let t = &mut self.thread;
        let mut verdict = seccomp::verdict(t, sc.nr, sc.args, sc.rip);
        if let Verdict::Trace(data) = verdict {
            verdict = match tracee::seccomp_stop(t, sc.nr, sc.args, data) {
                // No tracer asks for the stop.
                None => Verdict::Errno(libc::ENOSYS),
                Some(tracee::Entry::Skip(v)) => {
                    t.vcpu.complete_syscall(v);
                    // The tracer set orig_rax to -1.
                    skipped_exit_stop(t, u64::MAX);
                    return Filtered::Skipped;
                }
                Some(tracee::Entry::Call(nr, args)) => {
                    (sc.nr, sc.args, t.orig_rax) = (nr, args, nr);
                    // The filters judge the call as the tracer left it; a
                    // second TRACE lets it through.
                    match seccomp::verdict(t, sc.nr, sc.args, sc.rip) {
                        Verdict::Trace(_) => Verdict::Allow,
                        v => v,
                    }
                }
            };
        }
        if verdict == Verdict::Notify && !syscalls::made_by_host(sc.nr as i64) {
            log::debug!(
                "seccomp: syscall {} is the sandbox's, not for a listener: ENOSYS",
                sc.nr
            );
            verdict = Verdict::Errno(libc::ENOSYS);
        }
        match verdict {
            Verdict::Allow | Verdict::Trace(_) => Filtered::Make,
            Verdict::Notify => {
                // The host makes it through the stub the listener's host
                // filter picks out (seccomp::notify).
                host::notify_next(true);
                Filtered::Make
            }
            Verdict::Errno(e) => {
                t.vcpu.complete_syscall(-i64::from(e) as u64);
                skipped_exit_stop(t, sc.nr);
                Filtered::Skipped
            }
            Verdict::Trap(data) => {
                // The handler sees RAX back at the call's number
                // (syscall_rollback).
                t.vcpu.complete_syscall(sc.nr);
                skipped_exit_stop(t, sc.nr);
                let mut info = deliver::kernel_info(libc::SIGSYS, SYS_SECCOMP, sc.rip);
                info[4..8].copy_from_slice(&i32::from(data).to_le_bytes());
                info[24..28].copy_from_slice(&(sc.nr as i32).to_le_bytes());
                info[28..32].copy_from_slice(&seccomp::AUDIT_ARCH_X86_64.to_le_bytes());
                match deliver::force(t, libc::SIGSYS, info, false) {
                    Ok(()) => Filtered::Skipped,
                    Err(o) => Filtered::Ended(Ended::Process(o)),
                }
            }
            Verdict::Kill { process, sig } => {
                if process || t.process.seccomp.alone() {
                    Filtered::Ended(Ended::Process(Outcome::Signaled(sig)))
                } else {
                    Filtered::Ended(Ended::ThreadKilled(sig))
                }
            }
        }
    }

    /// A debug register's hit (hwbp.rs): SIGTRAP as Linux sends it, before
    /// the instruction for a breakpoint, after it for a watchpoint.
    fn hw_trap(&mut self, dr6: u64, before: bool) -> Option<Outcome> {
        let t = &mut self.thread;
        let info = match hwbp::hit(t, dr6, before) {
            Ok(info) => info,
            Err(e) => {
                log::error!("debug register hit: {e}");
                return Some(Outcome::Signaled(libc::SIGSEGV));
            }
        };
        t.trap = signals::frame::Trap {
            error_code: 0,
            trapno: u64::from(vector::DEBUG),
            cr2: t.trap.cr2,
        };
        deliver::force(t, libc::SIGTRAP, info, false).err()
    }

    /// A tracer's single step done: its SIGTRAP, as after trap `v`.
    fn step_trap(&mut self, v: u8) -> Option<Outcome> {
        let info = tracee::step_done(&mut self.thread, false);
        let t = &mut self.thread;
        t.trap = signals::frame::Trap {
            error_code: 0,
            trapno: u64::from(v),
            cr2: t.trap.cr2,
        };
        deliver::force(t, libc::SIGTRAP, info, false).err()
    }

    /// A #GP of the CPUID at `rip` that faulted for the sandbox to answer
    /// (`--cpuid`), not for the program (ARCH_SET_CPUID): the policy's
    /// answer for the thread's XCR0 goes into its registers, and it goes
    /// on after the instruction. Returns whether it was that.
    fn answer_cpuid(&mut self, rip: u64) -> Result<bool, VcpuError> {
        let t = &mut self.thread;
        if !t.vcpu.cpuid_answered() || t.vcpu.cpuid_faulting() {
            return Ok(false);
        }
        let mut code = [0u8; 2];
        {
            let space = t.process.vm.memory.lock().expect("address space");
            if umem::read_bytes(&space, rip, &mut code).is_err() || code != [0x0f, 0xa2] {
                return Ok(false);
            }
        }
        let mut r = t.vcpu.user_regs(&t.process.vm.memory);
        let (leaf, subleaf) = (r.rax as u32, r.rcx as u32);
        t.process.looks.cpuid(t, leaf, rip);
        let a = match &t.process.options.cpuid {
            // Seen only (`--explain`): answered as the vCPU would.
            Policy::Host => {
                let native = t.process.vm.hv.flavour == vmm::kvm::Flavour::Pvm;
                t.vcpu.guest_cpuid(native, leaf, subleaf)
            }
            p => p.answer(leaf, subleaf, t.vcpu.xcr0().bits()),
        };
        log::trace!("cpuid {leaf:#x}.{subleaf:#x} at {rip:#x}: {a:#x?}");
        // CPUID writes the low halves and clears the high ones.
        (r.rax, r.rbx, r.rcx, r.rdx) = (a[0].into(), a[1].into(), a[2].into(), a[3].into());
        r.rip = rip + 2;
        t.vcpu.set_user_regs(&t.process.vm.memory, &r)?;
        Ok(true)
    }

    /// Starts `child` and returns its id: a new thread runs on a host
    /// thread of this process, a vfork child in a host process sharing
    /// this address space, which the kernel holds this thread for.
    fn spawn(&mut self, child: Box<Child>) -> SysResult {
        tracee::hold_off_carry(true);
        let r = self.spawn_held(child);
        tracee::hold_off_carry(false);
        r
    }

    fn spawn_held(&mut self, child: Box<Child>) -> SysResult {
        let process = self.thread.process.clone();
        if arrival::pending() {
            // A signal waits (a handler's, or a stop a tracer carried in):
            // Linux's copy_process fails then (ERESTARTNOINTR), and the
            // call is made again after the delivery. Here the new task
            // would also start with this thread's mask, all blocked until
            // the delivery, and a vfork child would take the signal from
            // the thread-local slot it shares.
            process.vm.release_vcpu(child.thread.vcpu);
            return Err(Errno(libc::EINTR));
        }
        let Child { mut thread, ids } = *child;
        if ids.is_thread() {
            process.ensure_reaper();
        }
        let creating = tracee::creating(
            &mut self.thread,
            ids.kind(),
            ids.untraced(),
            ids.parent_tid_at(),
        );
        let followed = creating.as_ref().map(|c| c.follow);
        if ids.is_thread() {
            // The new thread reads its creator's DR7, but has none of its
            // breakpoints (copy_thread): tracee::start.
            let dr7 = crate::trace::page::own().debugreg[7];
            process.thread_started();
            let seccomp = thread.seccomp.clone();
            let started = Arc::new(AtomicI32::new(0));
            let started_as = started.clone();
            let spawned = std::thread::Builder::new()
                .stack_size(HOST_STACK)
                .spawn(move || {
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() };
                    thread.process.seccomp.enter_new(tid, &thread.seccomp);
                    ids.settid(&mut thread, Some(&started_as));
                    if dr7 != 0 {
                        crate::trace::page::own().debugreg[7] = dr7;
                    }
                    let mut task = Task::new(thread);
                    task.followed = followed;
                    task.run();
                });
            let handle = match spawned {
                Ok(h) => h,
                Err(e) => {
                    tracee::created(&mut self.thread, creating);
                    // The closure, and the vCPU in it, are gone: KVM
                    // keeps the vCPU.
                    log::debug!("clone: no host thread: {e}");
                    process.thread_failed();
                    return Err(Errno(libc::EAGAIN));
                }
            };
            // Known without waiting for the new thread to run, which a
            // tracer following it may hold in its first stop while this
            // one goes on; a thread already ended said it as it began.
            let tid = host_tid(&handle).unwrap_or_else(|| started.load(Ordering::SeqCst));
            ids.parent_settid(&self.thread, tid, &started);
            // Listed before its creator returns from the clone, as Linux's
            // thread list is (though not yet at the clone's event stop,
            // which the host makes inside the host clone).
            process.seccomp.created(tid, &seccomp);
            // Before any other host clone (the reaper's), which the tracer
            // is not to follow.
            tracee::created(&mut self.thread, creating);
            process.adopt_thread(tid, handle);
            return Ok(tid as u64);
        }
        let stack = HostStack::new()?;
        // The child makes a trace page of its own in the thread-local
        // storage it shares with this thread; this thread's comes back
        // when it resumes. This thread's tracer still finds this thread's
        // page meanwhile (the child's links to it), where a stop of this
        // thread before or after the host clone is described.
        let own_page = crate::trace::page::own_addr();
        let mut task = Box::new(VforkChild(Task::new(thread), ids));
        task.0.followed = followed;
        // SAFETY: the child runs `vfork_child` on its own stack with the
        // Box, which outlives it: the kernel resumes this thread only once
        // the child has executed a program or exited, and only then is the
        // Box dropped.
        let pid = unsafe {
            libc::clone(
                vfork_child,
                stack.top(),
                ids.host_flags(),
                (&mut *task as *mut VforkChild).cast(),
            )
        };
        let errno = std::io::Error::last_os_error().raw_os_error();
        // The child ran on this thread's thread-local state: the kick is
        // this thread's vCPU's again, and the id umem names this process
        // by is read again.
        arrival::set_kick(self.thread.vcpu.kick_flag());
        crate::trace::inject::set_port(Some(self.thread.vcpu.fp_port()));
        crate::umem::forget_own_id();
        crate::trace::page::give_back(own_page);
        tracee::created(&mut self.thread, creating);
        process.vm.release_vcpu(task.0.thread.vcpu);
        if pid < 0 {
            return Err(Errno(errno.unwrap_or(libc::EAGAIN)));
        }
        ids.parent_side(&self.thread, pid)?;
        Ok(pid as u64)
    }

    /// Decides what a CPU exception means: a retry (a stale translation
    /// after rights were added) or the signal Linux would send.
    fn exception(&mut self, f: ExceptionFrame, cr2: u64) -> Result<Option<Outcome>, VcpuError> {
        let v = f.vector as u8;
        if f.cs as u16 != selectors::USER_CS && f.cs as u16 != selectors::USER_CS32 {
            // Either the runtime faulted (a bug) or, on PVM, where the stubs
            // are reachable from CPL3, the program fabricated a frame. Both
            // end the program; only the first deserves a report.
            log::error!(
                "unexpected exception frame {f:x?} (cr2 {cr2:#x}): ending the program with SIGSEGV"
            );
            return Ok(Some(Outcome::Signaled(libc::SIGSEGV)));
        }
        log::debug!(
            "exception {} error {:#x} at {:#x} (cr2 {:#x})",
            v,
            f.error_code,
            f.rip,
            cr2
        );
        if v == vector::DEVICE_NOT_AVAILABLE
            && let Some(outcome) = self.xfd(f.rip)?
        {
            return Ok(outcome);
        }
        if v == vector::INVALID_OPCODE {
            let bits = if f.cs as u16 == selectors::USER_CS32 {
                32
            } else {
                64
            };
            crate::explain::invalid_opcode(&self.thread, f.rip, bits);
        }
        if v == vector::GENERAL_PROTECTION && self.answer_cpuid(f.rip)? {
            // A single step ends after the answered instruction, as after
            // one the CPU executed.
            return Ok(if self.thread.stepping {
                self.step_trap(vector::DEBUG)
            } else {
                None
            });
        }
        if v == vector::PAGE_FAULT {
            // Before the retries below: a watch's fault is allowed by the
            // mapping too.
            match hwbp::page_fault(&mut self.thread, f.rip, cr2, f.error_code)? {
                hwbp::OnFault::NotOurs => {}
                hwbp::OnFault::Stepping => return Ok(None),
                hwbp::OnFault::Breakpoint(dr6) => return Ok(self.hw_trap(dr6, true)),
            }
            if let Some(outcome) = self.unbacked(cr2, f.error_code) {
                return Ok(outcome);
            }
            if self.spurious(cr2, f.error_code) {
                return Ok(None);
            }
        }
        if v == vector::DEBUG
            && let Some(step) = self.watch_step.take()
        {
            // The instruction ran through a watched page.
            if self.thread.stepping {
                let outcome = self.step_trap(v);
                crate::trace::page::own().debugreg[6] |= step.hits;
                return Ok(outcome);
            }
            if step.hits != 0 {
                return Ok(self.hw_trap(step.hits, false));
            }
            if step.own_tf {
                return Ok(None);
            }
        }
        if v == vector::DEBUG && self.thread.stepping {
            return Ok(self.step_trap(v));
        }
        let t = &mut self.thread;
        let fault = {
            let memory = &t.process.vm.memory;
            let vcpu = &mut t.vcpu;
            // The vDSO lent to the program is mapped for it too (a write
            // there is ACCERR, as natively).
            let mapped = |addr| {
                let space = memory.lock().expect("address space");
                space.program().get(addr).is_some() || space.lent().get(addr).is_some()
            };
            // FCW, FSW and MXCSR from the FXSAVE layout.
            let fp = || {
                let x = vcpu.xsave().unwrap_or_default();
                let word = |at: usize| {
                    x.get(at..at + 2)
                        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
                };
                let mxcsr = x
                    .get(24..28)
                    .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
                (word(0), word(2), mxcsr)
            };
            signals::faults::fault(&f, cr2, t.trap, mapped, fp)
        };
        let Some(fault) = fault else {
            return Ok(None);
        };
        t.trap = fault.trap;
        Ok(signals::deliver::force(t, fault.sig, fault.info, false).err())
    }

    /// A #NM from XFD: the thread's first use of AMX's tile data. Run
    /// again once permitted, else SIGILL as Linux sends it. None: not XFD's.
    fn xfd(&mut self, rip: u64) -> Result<Option<Option<Outcome>>, VcpuError> {
        use crate::syscalls::xstate::{XfdEvent, xfd_event};
        let t = &mut self.thread;
        let err = t.vcpu.take_xfd_err()?;
        let granted = t.process.xcomp.lock().expect("xcomp").granted;
        Ok(match xfd_event(err, granted) {
            XfdEvent::NotXfd => None,
            XfdEvent::Enable => {
                t.vcpu.disarm_xfd()?;
                t.tiles_in_use = true;
                Some(None)
            }
            XfdEvent::SigIll => {
                const ILL_ILLOPC: i32 = 1;
                let info = deliver::kernel_info(libc::SIGILL, ILL_ILLOPC, rip);
                Some(deliver::force(t, libc::SIGILL, info, false).err())
            }
        })
    }

    /// A fault on a page `host_fault` took out: SIGBUS at its address if
    /// the file still ends before it, else the page goes back (the file
    /// grew) and the access is retried. None: not such a page.
    fn unbacked(&mut self, addr: u64, error: u64) -> Option<Option<Outcome>> {
        let t = &mut self.thread;
        let mut space = t.process.vm.memory.lock().expect("address space");
        if !space.is_poisoned(addr) {
            return None;
        }
        let mut byte = [0u8];
        if crate::umem::read_bytes(&space, addr, &mut byte).is_ok() {
            space.unpoison(addr);
            let ok = space.populate(addr).and_then(|()| space.flush()).is_ok();
            return ok.then_some(None);
        }
        drop(space);
        Some(bus_error(t, addr, error | guest_runtime::abi::pf_error::USER).err())
    }

    /// A guest access the host could not back (a shared file mapping past
    /// the end of its file): SIGBUS BUS_ADRERR at the address, as
    /// Linux's do_sigbus sends, where KVM tells the address.
    fn host_fault(&mut self, gpa: Option<u64>) -> Result<(), Outcome> {
        let t = &mut self.thread;
        let addr = {
            let mut space = t.process.vm.memory.lock().expect("address space");
            match gpa.and_then(|g| space.hva_of_gpa(g)) {
                Some(addr) => addr,
                None => {
                    // KVM does not say where: the pages past the end of
                    // their files leave the guest's tables, and the access,
                    // retried, faults there with its address (`exception`).
                    let pages = crate::mm::past_end_of_file(&space);
                    let new: Vec<_> = pages
                        .into_iter()
                        .filter(|&(s, _)| !space.is_poisoned(s))
                        .collect();
                    for &(s, e) in &new {
                        space.poison(s, e);
                    }
                    if !new.is_empty() && space.flush().is_ok() {
                        return Ok(());
                    }
                    0
                }
            }
        };
        bus_error(t, addr, guest_runtime::abi::pf_error::USER)
    }

    /// Whether a #PF hit memory the program may access as it tried: then
    /// either the page was not entered in the guest page tables yet (large
    /// mappings are entered lazily) or a TLB entry predates a widening of
    /// rights (SDM Vol. 3A 4.10.4.3). The block is entered and the access
    /// retried; the same fault twice in a row is a real one.
    fn spurious(&mut self, addr: u64, error: u64) -> bool {
        if error & pf_error::USER == 0 || self.last_fault == Some((addr, error)) {
            self.last_fault = None;
            return false;
        }
        let mut space = self.thread.process.vm.memory.lock().expect("address space");
        let allowed = space.program().get(addr).is_some_and(|(_, _, prot)| {
            prot.readable()
                && (error & pf_error::WRITE == 0 || prot.writable())
                && (error & pf_error::INSTRUCTION_FETCH == 0 || prot.0 & vmm::Prot::EXEC != 0)
        });
        if !allowed {
            return false;
        }
        if let Err(e) = space.populate(addr).and_then(|()| space.flush()) {
            log::error!("entering {addr:#x} in the guest page tables: {e}");
            return false;
        }
        self.last_fault = Some((addr, error));
        true
    }
}

/// SIGBUS BUS_ADRERR at `addr`, as Linux's do_sigbus sends it for a page
/// a file does not back.
fn bus_error(t: &mut Thread, addr: u64, error_code: u64) -> Result<(), Outcome> {
    // BUS_ADRERR (include/uapi/asm-generic/siginfo.h).
    const BUS_ADRERR: i32 = 2;
    log::debug!("no host page at {addr:#x}: SIGBUS");
    t.trap = signals::frame::Trap {
        error_code,
        trapno: u64::from(vector::PAGE_FAULT),
        cr2: addr,
    };
    let info = deliver::kernel_info(libc::SIGBUS, BUS_ADRERR, addr);
    deliver::force(t, libc::SIGBUS, info, false)
}

/// What a vfork child borrows from its parent: its task, and what it must
/// do before the program runs.
struct VforkChild(Task, ChildIds);

extern "C" fn vfork_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's Box<VforkChild>, untouched by the
    // parent until this process has executed a program or exited.
    let child = unsafe { &mut *arg.cast::<VforkChild>() };
    // The parent's id is in the thread-local storage this child shares.
    crate::umem::forget_own_id();
    crate::trace::page::take_over();
    child.1.settid(&mut child.0.thread, None);
    let followed = child.0.followed.take();
    tracee::start(&mut child.0.thread, followed);
    child.0.run_to_end()
}

/// A host stack for a vfork child, unmapped when the parent resumes.
struct HostStack(*mut libc::c_void);

impl HostStack {
    fn new() -> Result<HostStack, Errno> {
        // SAFETY: a fresh anonymous mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                HOST_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno(libc::EAGAIN));
        }
        Ok(HostStack(p))
    }

    fn top(&self) -> *mut libc::c_void {
        self.0.wrapping_byte_add(HOST_STACK)
    }
}

impl Drop for HostStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used by the child.
        unsafe { libc::munmap(self.0, HOST_STACK) };
    }
}
