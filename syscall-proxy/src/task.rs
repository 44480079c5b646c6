//! A task: one thread of the program on its own vCPU, and the loop that
//! runs it until it ends.

use std::sync::Arc;

use guest_runtime::abi::{ExceptionFrame, pf_error, selectors, vector};
use vmm::{Exit, Vcpu, VcpuError, Vm};

use crate::mm::Brk;
use crate::signals::{self, Signals};
use crate::syscalls::{self, Action};

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// exit/exit_group with this status (0..=255).
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// Counters for `--stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskStats {
    pub syscalls: u64,
    pub exceptions: u64,
}

pub struct Task {
    pub vm: Arc<Vm>,
    pub vcpu: Vcpu,
    pub brk: Brk,
    pub signals: Signals,
    pub stats: TaskStats,
    /// The program's executable (the ELF mapped, absolute): what
    /// /proc/self/exe names for the program, rather than the sandbox.
    pub exe: std::path::PathBuf,
    /// The last page fault taken as possibly spurious (address, error code).
    last_fault: Option<(u64, u64)>,
}

impl Task {
    pub fn new(vm: Arc<Vm>, vcpu: Vcpu, brk: Brk, exe: std::path::PathBuf) -> Task {
        Task {
            exe,
            vm,
            vcpu,
            brk,
            signals: Signals::inherited(),
            stats: TaskStats::default(),
            last_fault: None,
        }
    }

    /// Runs the program until it exits or dies.
    pub fn run(&mut self) -> Result<Outcome, VcpuError> {
        loop {
            let exit = self.vcpu.run(&self.vm.memory)?;
            self.report_dropped_signals();
            match exit {
                Exit::Syscall(sc) => {
                    self.stats.syscalls += 1;
                    // Progress since the last fault: a later fault at the
                    // same place is a new one.
                    self.last_fault = None;
                    match syscalls::handle(self, sc) {
                        Action::Return(v) => self.vcpu.complete_syscall(v),
                        Action::End(outcome) => return Ok(outcome),
                        Action::Replaced => {}
                    }
                }
                Exit::Exception { frame, cr2 } => {
                    self.stats.exceptions += 1;
                    if let Some(outcome) = self.exception(frame, cr2)? {
                        return Ok(outcome);
                    }
                }
                Exit::Interrupted => {}
                Exit::StrayIo { rip } => {
                    log::debug!("port I/O by the program at {rip:#x}: SIGSEGV");
                    return Ok(Outcome::Signaled(libc::SIGSEGV));
                }
                Exit::HostFault => return Ok(Outcome::Signaled(libc::SIGBUS)),
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
        if self.signals.handled(sig) {
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
        let mut space = self.vm.memory.lock().expect("address space");
        let allowed = space.program().get(addr).is_some_and(|(_, _, prot)| {
            prot.readable()
                && (error & pf_error::WRITE == 0 || prot.writable())
                && (error & pf_error::INSTRUCTION_FETCH == 0 || prot.0 & vmm::Prot::EXEC != 0)
        });
        if !allowed {
            return false;
        }
        if let Err(e) = space.populate(addr) {
            log::error!("entering {addr:#x} in the guest page tables: {e}");
            return false;
        }
        self.last_fault = Some((addr, error));
        true
    }

    fn report_dropped_signals(&self) {
        let caught = signals::take_caught();
        for sig in (1..=signals::NSIG as i32).filter(|s| caught & (1 << (s - 1)) != 0) {
            log::warn!(
                "signal {sig} arrived for the program's handler, which cannot run yet (signal delivery is not implemented): ignored"
            );
        }
    }
}
