//! A task: one thread of the program on its own vCPU (and its own host
//! thread, which performs its system calls), and the loop that runs it
//! until it ends.

use std::sync::Arc;

use guest_runtime::abi::{ExceptionFrame, pf_error, selectors, vector};
use vmm::{Exit, Vcpu, VcpuError, Vm};

use crate::process::Process;
use crate::signals;
use crate::syscalls::{self, Action};

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// exit/exit_group with this status (0..=255).
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// How a task's run ended.
enum Ended {
    /// exit(2): this thread only, with this status.
    Thread(i32),
    /// The whole process (exit_group, a fatal signal).
    Process(Outcome),
}

/// Per-thread state; what threads share is in [`Process`].
pub struct Task {
    pub process: Arc<Process>,
    pub vcpu: Vcpu,
    /// Whether this is the thread group leader (the process's first thread).
    pub leader: bool,
    /// The program's sigaltstack (stack_t: sp, flags, size).
    pub altstack: (u64, i32, u64),
    /// set_tid_address / CLONE_CHILD_CLEARTID: cleared and woken at exit.
    pub clear_child_tid: u64,
    /// The last page fault taken as possibly spurious (address, error code).
    last_fault: Option<(u64, u64)>,
}

impl Task {
    pub fn new(process: Arc<Process>, vcpu: Vcpu, leader: bool) -> Task {
        Task {
            process,
            vcpu,
            leader,
            altstack: (0, libc::SS_DISABLE, 0),
            clear_child_tid: 0,
            last_fault: None,
        }
    }

    pub fn vm(&self) -> &Arc<Vm> {
        &self.process.vm
    }

    /// Runs the thread until it ends. The process's end (exit_group, a
    /// fatal signal, the leader's exit once every thread is gone) does not
    /// return; a thread's own exit(2) returns, after its vCPU went back to
    /// the VM.
    pub fn run(mut self) {
        let ended = self.run_until_end();
        let process = self.process.clone();
        match ended {
            Ok(Ended::Process(outcome)) => process.end(Ok(outcome)),
            Err(e) => process.end(Err(e.to_string())),
            Ok(Ended::Thread(code)) => {
                if self.leader {
                    process.clear_child_tid(self.clear_child_tid);
                    process.leader_exited(code);
                }
                process.vm.release_vcpu(self.vcpu);
                // SAFETY: gettid has no preconditions.
                process.thread_ending(unsafe { libc::gettid() }, self.clear_child_tid);
            }
        }
    }

    /// Runs the only task of a process to the process's end, in place (a
    /// vfork child borrows its task from its parent).
    pub fn run_to_end(&mut self) -> ! {
        match self.run_until_end() {
            Ok(Ended::Thread(code)) => {
                self.process.clear_child_tid(self.clear_child_tid);
                self.process.leader_exited(code)
            }
            Ok(Ended::Process(outcome)) => self.process.end(Ok(outcome)),
            Err(e) => self.process.end(Err(e.to_string())),
        }
    }

    fn run_until_end(&mut self) -> Result<Ended, VcpuError> {
        loop {
            let exit = self.vcpu.run(&self.process.vm.memory)?;
            self.report_dropped_signals();
            match exit {
                Exit::Syscall(sc) => {
                    self.process.count_syscall();
                    // Progress since the last fault: a later fault at the
                    // same place is a new one.
                    self.last_fault = None;
                    match syscalls::handle(self, sc) {
                        Action::Return(v) => self.vcpu.complete_syscall(v),
                        Action::Started => {}
                        Action::ExitThread(code) => return Ok(Ended::Thread(code)),
                        Action::End(outcome) => return Ok(Ended::Process(outcome)),
                    }
                }
                Exit::Exception { frame, cr2 } => {
                    self.process.count_exception();
                    if let Some(outcome) = self.exception(frame, cr2)? {
                        return Ok(Ended::Process(outcome));
                    }
                }
                Exit::Interrupted => {}
                Exit::StrayIo { rip } => {
                    log::debug!("port I/O by the program at {rip:#x}: SIGSEGV");
                    return Ok(Ended::Process(Outcome::Signaled(libc::SIGSEGV)));
                }
                Exit::HostFault => return Ok(Ended::Process(Outcome::Signaled(libc::SIGBUS))),
            }
        }
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
        if v == vector::PAGE_FAULT && self.spurious(cr2, f.error_code) {
            return Ok(None);
        }
        let sig = signals::for_exception(v);
        if self.process.signals.lock().expect("signals").handled(sig) {
            log::warn!(
                "signal {sig} at {:#x}: the program's handler cannot run (signal delivery is not implemented yet)",
                f.rip
            );
        }
        Ok(Some(Outcome::Signaled(sig)))
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
        let mut space = self.process.vm.memory.lock().expect("address space");
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

    /// Warns once per signal number and process; later ones are traced, and
    /// so are the signals whose default action is to be ignored (SIGCHLD,
    /// SIGWINCH, SIGURG): shells and make handle SIGCHLD and reap their
    /// children with wait anyway, and would warn at every child.
    fn report_dropped_signals(&self) {
        let caught = signals::take_caught();
        if caught == 0 {
            return;
        }
        let first = self.process.first_drops(caught);
        for sig in (1..=signals::NSIG as i32).filter(|s| caught & (1 << (s - 1)) != 0) {
            let text = format!(
                "signal {sig} arrived for the program's handler, which cannot run yet (signal delivery is not implemented): ignored"
            );
            let benign = matches!(sig, libc::SIGCHLD | libc::SIGWINCH | libc::SIGURG);
            if first & (1 << (sig - 1)) != 0 && !benign {
                log::warn!("{text}");
            } else {
                log::debug!("{text}");
            }
        }
    }
}
