//! The program's tasks: the loop that runs a thread on its vCPU (run.rs),
//! what a thread and a process hold (thread.rs, process.rs), and how
//! tasks begin: clone, fork and vfork (clone.rs), execve (exec.rs).

pub mod clone;
pub mod exec;
pub mod process;
mod run;
pub mod thread;

pub use run::Task;
