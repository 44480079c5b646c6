//! The sandbox's view of the program: tasks, system calls and signals.
//!
//! Each task runs on a vCPU (vmm); every `syscall` the program executes
//! arrives here as a [`vmm::Exit::Syscall`] and is either forwarded to the
//! host kernel with the program's own pointers (guest and host share one
//! address space) or emulated where the host's answer would be wrong: memory
//! mappings (mirrored into the guest), FS/GS bases (vCPU state), signal
//! dispositions, the sandbox's own descriptors.

pub mod cpuid;
pub mod explain;
pub mod host;
pub mod identity;
pub mod launch;
pub mod limits;
pub mod loader;
pub mod memory;
pub mod perf;
pub mod seccomp;
pub mod signals;
pub mod syscalls;
pub mod task;
pub mod trace;

// The paths every module uses, kept short.
pub use memory::{mm, umem};
pub use task::{clone, exec, process, thread};

pub use launch::{LaunchError, Request, launch};
pub use process::{Options, Outcome, Process};
pub use task::Task;
