//! The contract between the guest stubs and the VMM.
//!
//! Every guest -> VMM transition is an `out imm8, al` to one of the ports
//! below: the instruction changes no register, so the VMM sees the guest's
//! registers exactly as the stub received them.

/// `out` from the `syscall` entry stub (MSR_LSTAR). Registers hold the
/// program's system call as the `syscall` instruction left them: RAX the
/// number, RDI/RSI/RDX/R10/R8/R9 the arguments, RCX the return RIP, R11 the
/// saved RFLAGS. The VMM writes the result to RAX and resumes; the next
/// instruction of the stub is `sysretq`.
pub const PORT_SYSCALL: u16 = 0x10;

/// `out` from the common exception path, with RSP pointing at an
/// [`ExceptionFrame`]. Resuming runs `add rsp, 16; iretq`, retrying the
/// faulting instruction.
pub const PORT_EXCEPTION: u16 = 0x11;

/// The system call number the CPL3 probe uses to report what it measured:
/// RDI = `xgetbv(0)`, RSI = CPUID.(EAX=0xD,ECX=0).EBX, RDX = `rdtsc` at
/// CPL3 (whether the guest's TSC is the host's). Out of Linux's range,
/// so no program can reach the probe handler by accident (the VMM also checks
/// that RCX lies in the probe page).
pub const PROBE_SYSCALL_NR: u64 = 0x7f58_6372;

/// GDT layout. Linux's own selectors: PVM requires them (kvm-platforms.md)
/// and SYSCALL/SYSRET derive CS/SS from MSR_STAR with this ordering
/// (SDM Vol. 2B, SYSRET: CS = STAR[63:48] + 16, SS = STAR[63:48] + 8).
pub mod selectors {
    pub const KERNEL_CS: u16 = 0x10;
    pub const KERNEL_DS: u16 = 0x18;
    pub const USER_CS32: u16 = 0x23;
    pub const USER_DS: u16 = 0x2b;
    pub const USER_CS: u16 = 0x33;
    /// 16-byte system descriptor occupying GDT slots 7 and 8.
    pub const TSS: u16 = 0x38;
    /// Linux's GDT_ENTRY_CPUNODE (slot 15, RPL 3): a data segment whose
    /// limit is the CPU and node number, which the vDSO's getcpu reads
    /// with `lsl` on CPUs without RDPID.
    pub const CPUNODE: u16 = 0x7b;
    /// Number of 8-byte GDT slots (the last is CPUNODE's).
    pub const GDT_ENTRIES: usize = 16;
}

/// What the exception stub leaves on the CPL0 stack at the `out`.
///
/// The CPU pushes SS..RIP (and an error code for some vectors, SDM Vol. 3A
/// 6.13); the per-vector stub pushes a zero error code where the CPU does
/// not, then the vector number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExceptionFrame {
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Exception vectors (SDM Vol. 3A, Table 6-1) the VMM gives meaning to.
pub mod vector {
    pub const DIVIDE_ERROR: u8 = 0;
    pub const DEBUG: u8 = 1;
    pub const BREAKPOINT: u8 = 3;
    pub const OVERFLOW: u8 = 4;
    pub const BOUND_RANGE: u8 = 5;
    pub const INVALID_OPCODE: u8 = 6;
    pub const DEVICE_NOT_AVAILABLE: u8 = 7;
    pub const DOUBLE_FAULT: u8 = 8;
    pub const INVALID_TSS: u8 = 10;
    pub const SEGMENT_NOT_PRESENT: u8 = 11;
    pub const STACK_FAULT: u8 = 12;
    pub const GENERAL_PROTECTION: u8 = 13;
    pub const PAGE_FAULT: u8 = 14;
    pub const X87_FPU: u8 = 16;
    pub const ALIGNMENT_CHECK: u8 = 17;
    pub const MACHINE_CHECK: u8 = 18;
    pub const SIMD_FP: u8 = 19;
    /// Vectors 0..COUNT have stubs; the IDT has no other present gates.
    pub const COUNT: usize = 32;

    /// Whether the CPU pushes an error code for `v` (SDM Vol. 3A 6.13).
    pub const fn has_error_code(v: u8) -> bool {
        matches!(v, 8 | 10..=14 | 17 | 21 | 29 | 30)
    }
}

/// Page-fault error code bits (SDM Vol. 3A 4.7).
pub mod pf_error {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const INSTRUCTION_FETCH: u64 = 1 << 4;
}
