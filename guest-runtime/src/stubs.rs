//! The guest's code: two page-aligned blobs linked into the host binary and
//! copied into guest memory by the VMM.
//!
//! * The kernel page (mapped supervisor-only) holds the CPL0 entry points.
//!   They are tiny on purpose: PVM emulates guest CPL0 one instruction at a
//!   time and cannot emulate `xgetbv` or AVX there (kvm-platforms.md).
//! * The user page (mapped user, read-only) holds the CPL3 probe that reads
//!   XCR0 the way the program will: with `xgetbv` at CPL3.
//!
//! All code is position independent; the VMM places it anywhere.

use core::arch::global_asm;

global_asm!(
    r#"
    .pushsection .text.xcr0_guest,"ax",@progbits
    .balign 4096
    .globl xcr0_guest_kernel_start
xcr0_guest_kernel_start:

    // Initial entry at CPL0: the VMM sets RCX = target RIP, R11 = RFLAGS,
    // RSP = user stack. SYSRET is the one way to reach CPL3 that both KVMs
    // accept from the reset state.
    .globl xcr0_guest_enter_user
xcr0_guest_enter_user:
    .byte 0x48, 0x0f, 0x07          // sysretq

    // MSR_LSTAR. No stack is touched: the program's RSP (and red zone) stay
    // as they were. The VMM answers in RAX; on PVM it resumes the program
    // itself (sysretq faults there), elsewhere the sysretq below does.
    .balign 16
    .globl xcr0_guest_syscall_entry
xcr0_guest_syscall_entry:
    out 0x10, al                    // abi::PORT_SYSCALL
    .byte 0x48, 0x0f, 0x07          // sysretq

    // Exceptions arrive on TSS.RSP0 with an abi::ExceptionFrame on top.
    .balign 16
    .globl xcr0_guest_exception_common
xcr0_guest_exception_common:
    out 0x11, al                    // abi::PORT_EXCEPTION
    add rsp, 16
    iretq

    // One 16-byte stub per vector so the IDT can be filled by arithmetic.
    .macro XCR0_VEC n, err
    .balign 16
    .if \err == 0
    push 0
    .endif
    push \n
    jmp xcr0_guest_exception_common
    .endm

    .balign 16
    .globl xcr0_guest_vectors
xcr0_guest_vectors:
    XCR0_VEC 0, 0
    XCR0_VEC 1, 0
    XCR0_VEC 2, 0
    XCR0_VEC 3, 0
    XCR0_VEC 4, 0
    XCR0_VEC 5, 0
    XCR0_VEC 6, 0
    XCR0_VEC 7, 0
    XCR0_VEC 8, 1
    XCR0_VEC 9, 0
    XCR0_VEC 10, 1
    XCR0_VEC 11, 1
    XCR0_VEC 12, 1
    XCR0_VEC 13, 1
    XCR0_VEC 14, 1
    XCR0_VEC 15, 0
    XCR0_VEC 16, 0
    XCR0_VEC 17, 1
    XCR0_VEC 18, 0
    XCR0_VEC 19, 0
    XCR0_VEC 20, 0
    XCR0_VEC 21, 1
    XCR0_VEC 22, 0
    XCR0_VEC 23, 0
    XCR0_VEC 24, 0
    XCR0_VEC 25, 0
    XCR0_VEC 26, 0
    XCR0_VEC 27, 0
    XCR0_VEC 28, 0
    XCR0_VEC 29, 1
    XCR0_VEC 30, 1
    XCR0_VEC 31, 0

    .balign 4096
    .globl xcr0_guest_kernel_end
xcr0_guest_kernel_end:

    // CPL3 probe: report XCR0 and the XSAVE size as the program will see
    // them, and the TSC the program's vDSO would read, through the
    // ordinary syscall path.
    .globl xcr0_guest_probe
xcr0_guest_probe:
    xor ecx, ecx
    xgetbv
    shl rdx, 32
    or rax, rdx
    mov rdi, rax
    mov eax, 0xd
    xor ecx, ecx
    cpuid
    mov esi, ebx
    rdtsc
    shl rdx, 32
    or rdx, rax
    mov rax, 0x7f586372             // abi::PROBE_SYSCALL_NR
    syscall
    ud2

    .balign 4096
    .globl xcr0_guest_user_end
xcr0_guest_user_end:
    .popsection
"#
);

unsafe extern "C" {
    static xcr0_guest_kernel_start: u8;
    static xcr0_guest_enter_user: u8;
    static xcr0_guest_syscall_entry: u8;
    static xcr0_guest_exception_common: u8;
    static xcr0_guest_vectors: u8;
    static xcr0_guest_kernel_end: u8;
    static xcr0_guest_probe: u8;
    static xcr0_guest_user_end: u8;
}

/// Size of each per-vector stub in the kernel page.
pub const VECTOR_STUB_SIZE: usize = 16;

/// The stub blobs and the offsets of their entry points.
#[derive(Clone, Copy, Debug)]
pub struct Stubs {
    /// The CPL0 page, to be mapped supervisor-only and executable.
    pub kernel: &'static [u8],
    /// The CPL3 page, to be mapped user, read-only, executable.
    pub user: &'static [u8],
    /// Offset in `kernel` of the first-entry `sysretq`.
    pub enter_user: usize,
    /// Offset in `kernel` of the MSR_LSTAR target.
    pub syscall_entry: usize,
    /// Offset in `kernel` of the exception path's `out`.
    pub exception_common: usize,
    /// Offset in `kernel` of vector 0's stub; vector `v` is at
    /// `vectors + v * VECTOR_STUB_SIZE`.
    pub vectors: usize,
    /// Offset in `kernel` of the instruction after the syscall stub's `out`.
    pub syscall_return: usize,
    /// Offset in `user` of the XCR0 probe.
    pub probe: usize,
}

impl Stubs {
    /// Locates the blobs linked into this binary.
    pub fn get() -> Stubs {
        let k0 = &raw const xcr0_guest_kernel_start as usize;
        let k1 = &raw const xcr0_guest_kernel_end as usize;
        let u1 = &raw const xcr0_guest_user_end as usize;
        // SAFETY: the symbols delimit page-aligned ranges of this binary's
        // read-only text, defined in the global_asm! above; they live for the
        // whole program and are never written.
        let (kernel, user) = unsafe {
            (
                core::slice::from_raw_parts(k0 as *const u8, k1 - k0),
                core::slice::from_raw_parts(k1 as *const u8, u1 - k1),
            )
        };
        let syscall_entry = &raw const xcr0_guest_syscall_entry as usize - k0;
        Stubs {
            kernel,
            user,
            enter_user: &raw const xcr0_guest_enter_user as usize - k0,
            syscall_entry,
            // `out imm8, al` is two bytes.
            syscall_return: syscall_entry + 2,
            exception_common: &raw const xcr0_guest_exception_common as usize - k0,
            vectors: &raw const xcr0_guest_vectors as usize - k0,
            probe: &raw const xcr0_guest_probe as usize - k1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_single_pages_with_entry_points_inside() {
        let s = Stubs::get();
        assert_eq!(s.kernel.len(), 4096);
        assert_eq!(s.user.len(), 4096);
        assert_eq!(s.kernel[s.enter_user..s.enter_user + 3], [0x48, 0x0f, 0x07]);
        // out 0x10, al = E6 10; out 0x11, al = E6 11
        assert_eq!(s.kernel[s.syscall_entry..s.syscall_entry + 2], [0xe6, 0x10]);
        assert_eq!(
            s.kernel[s.exception_common..s.exception_common + 2],
            [0xe6, 0x11]
        );
        assert_eq!(
            s.kernel[s.syscall_return..s.syscall_return + 3],
            [0x48, 0x0f, 0x07]
        );
        assert!(s.vectors + 32 * VECTOR_STUB_SIZE <= s.kernel.len());
        // Vector 14 (#PF) has a CPU error code: its stub starts with push 14 (6A 0E).
        let pf = s.vectors + 14 * VECTOR_STUB_SIZE;
        assert_eq!(s.kernel[pf..pf + 2], [0x6a, 0x0e]);
        // Vector 6 (#UD) pushes a zero error code first (6A 00), then 6.
        let ud = s.vectors + 6 * VECTOR_STUB_SIZE;
        assert_eq!(s.kernel[ud..ud + 4], [0x6a, 0x00, 0x6a, 0x06]);
        // The probe starts with xor ecx, ecx (31 C9).
        assert_eq!(s.user[s.probe..s.probe + 2], [0x31, 0xc9]);
    }
}
