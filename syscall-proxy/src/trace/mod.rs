//! ptrace between tasks of the sandbox. A tracer and its tracee are
//! different host threads (often different host processes, each with its
//! own VM); the host kernel's ptrace links them, and the two sandboxes
//! share what the host cannot see through the tracee's trace page: the
//! guest's registers and the stops only the tracee's sandbox can make.
//! README's "Debuggers and tracers" section gives the protocol.

mod carry;
pub mod hwbp;
pub mod inject;
pub mod page;
pub mod regs;
pub mod tracee;
pub mod tracer;
