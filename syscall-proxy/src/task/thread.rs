//! A thread of the program as its system calls see it: its process, its
//! vCPU, and what the kernel keeps per thread and the sandbox emulates
//! (sigaltstack, the CLONE_CHILD_CLEARTID address). This is the context
//! every system call handler receives; the loop that runs a thread is
//! [`crate::task`].

use std::sync::Arc;

use vmm::Vcpu;

use crate::process::Process;
use crate::signals::frame::Trap;

pub struct Thread {
    pub process: Arc<Process>,
    pub vcpu: Vcpu,
    /// Whether this is the thread group leader (the process's first thread).
    pub leader: bool,
    /// The program's sigaltstack (stack_t: sp, flags, size).
    pub altstack: (u64, i32, u64),
    /// set_tid_address / CLONE_CHILD_CLEARTID: cleared and woken at exit.
    pub clear_child_tid: u64,
    /// The last fault that raised a signal, which every later frame
    /// repeats (sigcontext's err, trapno, cr2), as the kernel keeps it.
    pub trap: Trap,
    /// Whether the thread has used AMX's tile data since it was permitted:
    /// only then do its signal frames hold them.
    pub tiles_in_use: bool,
    /// Whether the sandbox set the trap flag for a tracer's single step.
    pub stepping: bool,
    /// The system call the thread is in or returns from, -1 if none (the
    /// kernel's orig_ax, which a tracer sees).
    pub orig_rax: u64,
    /// Its seccomp mode and filters.
    pub seccomp: crate::seccomp::Shared,
    /// Its debug registers, as a tracer set them.
    pub hwbp: crate::trace::hwbp::State,
    /// What restart_syscall resumes (the kernel's restart_block).
    pub restart: Option<crate::signals::restart::Block>,
    /// Its page faults the host does not count, taken again.
    pub faults: crate::perf::faults::Faults,
    /// How many of them it took (perf::rusage leaves them out).
    pub faults_taken: u64,
}

impl Thread {
    pub fn new(process: Arc<Process>, vcpu: Vcpu, leader: bool) -> Thread {
        Thread {
            process,
            vcpu,
            leader,
            // A process starts with its altstack's flags 0 (size 0 says it
            // is disabled); a thread's are reset to SS_DISABLE
            // (sas_ss_reset). uc_stack shows the difference.
            altstack: (0, if leader { 0 } else { libc::SS_DISABLE }, 0),
            clear_child_tid: 0,
            trap: Trap::default(),
            tiles_in_use: false,
            stepping: false,
            orig_rax: u64::MAX,
            seccomp: Default::default(),
            hwbp: Default::default(),
            restart: None,
            faults: Default::default(),
            faults_taken: 0,
        }
    }
}
