//! The x86-64 signal frame, laid out as Linux lays it out
//! (arch/x86/kernel/signal.c get_sigframe, signal_64.c, fpu/signal.c):
//!
//! ```text
//! higher   the interrupted stack (minus the 128-byte red zone),
//!          or the top of the sigaltstack
//!          XSAVE area of the thread's XCR0 + FP_XSTATE_MAGIC2, 64-aligned
//!          struct rt_sigframe { pretcode; struct ucontext uc; siginfo }
//! lower    <- RSP at the handler (RSP + 8 is 16-byte aligned)
//! ```
//!
//! Pure data: building and reading the bytes, unit-tested without KVM.

use vmm::kvm_regs;

/// The red zone below a 64-bit RSP that a frame must not overwrite.
pub const RED_ZONE: u64 = 128;

// struct ucontext as the kernel writes it: glibc's ucontext_t has the same
// prefix (flags, link, stack, mcontext) but a 128-byte sigmask; the
// kernel's sigset is 8 bytes.
pub const UC: u64 = 8;
const UC_FLAGS: u64 = UC;
const UC_LINK: u64 = UC + 8;
const UC_STACK: u64 = UC + std::mem::offset_of!(libc::ucontext_t, uc_stack) as u64;
const UC_MCONTEXT: u64 = UC + std::mem::offset_of!(libc::ucontext_t, uc_mcontext) as u64;
const UC_FPSTATE: u64 = UC_MCONTEXT + std::mem::offset_of!(libc::mcontext_t, fpregs) as u64;
const UC_SIGMASK: u64 = UC + std::mem::offset_of!(libc::ucontext_t, uc_sigmask) as u64;
pub const INFO: u64 = UC_SIGMASK + 8;
/// sizeof(struct rt_sigframe): 440.
pub const FRAME_SIZE: u64 = INFO + size_of::<libc::siginfo_t>() as u64;

// uc_flags (arch/x86/include/uapi/asm/ucontext.h); libc lacks them.
const UC_FP_XSTATE: u64 = 0x1;
const UC_SIGCONTEXT_SS: u64 = 0x2;
const UC_STRICT_RESTORE_SS: u64 = 0x4;

// The software-reserved bytes of the FXSAVE area and the word after the
// XSAVE area (arch/x86/include/uapi/asm/sigcontext.h).
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
const SW_RESERVED: usize = 464;
const XSTATE_BV: usize = 512;
/// The legacy (FXSAVE) area and the XSAVE header.
const XSAVE_HEADER_END: usize = 576;

/// RFLAGS bits sigreturn takes from the frame (FIX_EFLAGS,
/// arch/x86/kernel/signal.c): AC, OF, DF, TF, SF, ZF, AF, PF, CF, RF.
pub const FIX_EFLAGS: u64 = 0x50dd5;

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// RSP at the handler: the rt_sigframe.
    pub frame: u64,
    /// The XSAVE area (uc_mcontext.fpstate).
    pub fpstate: u64,
}

/// The frame's place below `sp` (the top to build down from: the
/// interrupted RSP minus the red zone, or the top of the altstack), for an
/// XSAVE area of `xstate_size` bytes.
pub fn place(sp: u64, xstate_size: u32) -> Placement {
    let fpstate = (sp - (u64::from(xstate_size) + 4)) & !63;
    let frame = ((fpstate - FRAME_SIZE) & !15) - 8;
    Placement { frame, fpstate }
}

/// What the kernel keeps of the last fault that raised a signal, and
/// writes in every later frame (err, trapno, cr2 of sigcontext).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trap {
    pub error_code: u64,
    pub trapno: u64,
    pub cr2: u64,
}

/// Everything a frame records.
pub struct Saved<'a> {
    pub regs: &'a kvm_regs,
    /// The blocked mask to restore.
    pub mask: u64,
    pub restorer: u64,
    /// uc_stack: the altstack as it was (sp, flags as sas_ss_flags gives
    /// them, size).
    pub altstack: (u64, i32, u64),
    pub trap: Trap,
    /// The siginfo, or zeros (without SA_SIGINFO).
    pub info: &'a [u8; size_of::<libc::siginfo_t>()],
    pub fpstate: u64,
}

fn put(buf: &mut [u8], at: u64, v: u64) {
    buf[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(buf: &[u8], at: u64) -> u64 {
    u64::from_le_bytes(
        buf[at as usize..at as usize + 8]
            .try_into()
            .expect("8 bytes"),
    )
}

fn greg(i: libc::c_int) -> u64 {
    UC_MCONTEXT + 8 * i as u64
}

/// The general-purpose registers in sigcontext order.
fn gregs(r: &kvm_regs) -> [(libc::c_int, u64); 17] {
    [
        (libc::REG_R8, r.r8),
        (libc::REG_R9, r.r9),
        (libc::REG_R10, r.r10),
        (libc::REG_R11, r.r11),
        (libc::REG_R12, r.r12),
        (libc::REG_R13, r.r13),
        (libc::REG_R14, r.r14),
        (libc::REG_R15, r.r15),
        (libc::REG_RDI, r.rdi),
        (libc::REG_RSI, r.rsi),
        (libc::REG_RBP, r.rbp),
        (libc::REG_RBX, r.rbx),
        (libc::REG_RDX, r.rdx),
        (libc::REG_RAX, r.rax),
        (libc::REG_RCX, r.rcx),
        (libc::REG_RSP, r.rsp),
        (libc::REG_RIP, r.rip),
    ]
}

/// The rt_sigframe's bytes.
pub fn build(s: &Saved) -> Vec<u8> {
    let mut f = vec![0u8; FRAME_SIZE as usize];
    put(&mut f, 0, s.restorer);
    put(
        &mut f,
        UC_FLAGS,
        UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
    );
    put(&mut f, UC_LINK, 0);
    put(&mut f, UC_STACK, s.altstack.0);
    put(&mut f, UC_STACK + 8, s.altstack.1 as u32 as u64);
    put(&mut f, UC_STACK + 16, s.altstack.2);
    for (i, v) in gregs(s.regs) {
        put(&mut f, greg(i), v);
    }
    put(&mut f, greg(libc::REG_EFL), s.regs.rflags);
    // cs, gs, fs, ss as four 16-bit fields; gs and fs are 0.
    let (cs, ss) = (
        u64::from(guest_runtime::abi::selectors::USER_CS),
        u64::from(guest_runtime::abi::selectors::USER_DS),
    );
    put(&mut f, greg(libc::REG_CSGSFS), cs | (ss << 48));
    put(&mut f, greg(libc::REG_ERR), s.trap.error_code);
    put(&mut f, greg(libc::REG_TRAPNO), s.trap.trapno);
    put(&mut f, greg(libc::REG_OLDMASK), s.mask);
    put(&mut f, greg(libc::REG_CR2), s.trap.cr2);
    put(&mut f, UC_FPSTATE, s.fpstate);
    put(&mut f, UC_SIGMASK, s.mask);
    f[INFO as usize..].copy_from_slice(s.info);
    f
}

/// The XSAVE area for the frame, from the thread's state in the standard
/// format (`xsave`, at least `xstate_size` bytes): as the kernel's
/// save_xstate_epilog leaves it, with the software-reserved bytes saying
/// what follows, x87 and SSE always marked present, and MAGIC2 after it.
pub fn fpstate(xsave: &[u8], xstate_size: u32, xcr0: u64) -> Vec<u8> {
    let n = xstate_size as usize;
    let mut b = xsave[..n].to_vec();
    b.extend_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
    // struct _fpx_sw_bytes: magic1, extended_size, xfeatures, xstate_size.
    b[SW_RESERVED..SW_RESERVED + 48].fill(0);
    b[SW_RESERVED..SW_RESERVED + 4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
    b[SW_RESERVED + 4..SW_RESERVED + 8].copy_from_slice(&(xstate_size + 4).to_le_bytes());
    b[SW_RESERVED + 8..SW_RESERVED + 16].copy_from_slice(&xcr0.to_le_bytes());
    b[SW_RESERVED + 16..SW_RESERVED + 20].copy_from_slice(&xstate_size.to_le_bytes());
    // KVM may report components outside the vCPU's XCR0 (hardware KVM
    // reports the host's PKRU); XSAVE under that XCR0 never would.
    let bv = (get(&b, XSTATE_BV as u64) & xcr0) | 0x3;
    put(&mut b, XSTATE_BV as u64, bv);
    b
}

/// What sigreturn takes back from a frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Restored {
    pub regs: kvm_regs,
    /// The CS and SS selectors the frame holds.
    pub cs: u16,
    pub ss: u16,
    pub mask: u64,
    pub fpstate: u64,
    pub altstack: (u64, i32, u64),
}

/// Reads the rt_sigframe's bytes (`f`, FRAME_SIZE long). RFLAGS is the
/// frame's, to be merged with FIX_EFLAGS by the caller.
pub fn parse(f: &[u8]) -> Restored {
    let g = |i: libc::c_int| get(f, greg(i));
    let regs = kvm_regs {
        r8: g(libc::REG_R8),
        r9: g(libc::REG_R9),
        r10: g(libc::REG_R10),
        r11: g(libc::REG_R11),
        r12: g(libc::REG_R12),
        r13: g(libc::REG_R13),
        r14: g(libc::REG_R14),
        r15: g(libc::REG_R15),
        rdi: g(libc::REG_RDI),
        rsi: g(libc::REG_RSI),
        rbp: g(libc::REG_RBP),
        rbx: g(libc::REG_RBX),
        rdx: g(libc::REG_RDX),
        rax: g(libc::REG_RAX),
        rcx: g(libc::REG_RCX),
        rsp: g(libc::REG_RSP),
        rip: g(libc::REG_RIP),
        rflags: g(libc::REG_EFL),
    };
    let segs = g(libc::REG_CSGSFS);
    Restored {
        regs,
        cs: segs as u16,
        ss: (segs >> 48) as u16,
        mask: get(f, UC_SIGMASK),
        fpstate: get(f, UC_FPSTATE),
        altstack: (
            get(f, UC_STACK),
            get(f, UC_STACK + 8) as i32,
            get(f, UC_STACK + 16),
        ),
    }
}

/// The extended state sigreturn restores from an XSAVE area read from the
/// program (`b`, `xstate_size` + 4 bytes), as fpu__restore_sig takes it:
/// the whole XSAVE image if the software-reserved bytes and MAGIC2 say so,
/// else only x87 and SSE (a frame written by other software), in both
/// cases with what XSTATE_BV leaves out in its initial state. Returns the
/// image (standard format) to load.
pub fn restore_image(b: &[u8], xstate_size: u32, xcr0: u64) -> Vec<u8> {
    let n = xstate_size as usize;
    let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let full = word(SW_RESERVED) == FP_XSTATE_MAGIC1
        && word(SW_RESERVED + 4) == xstate_size + 4
        && word(SW_RESERVED + 16) == xstate_size
        && word(n) == FP_XSTATE_MAGIC2;
    let mut img = b[..n].to_vec();
    let bv = if full {
        get(&img, XSTATE_BV as u64) & get(b, SW_RESERVED as u64 + 8) & xcr0
    } else {
        0x3
    };
    // The software-reserved bytes are not state.
    img[SW_RESERVED..SW_RESERVED + 48].fill(0);
    if !full {
        // Only the legacy area counts; the header is the kernel's.
        img[XSTATE_BV..XSAVE_HEADER_END].fill(0);
    }
    put(&mut img, XSTATE_BV as u64, bv);
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_the_kernels_size_and_shape() {
        assert_eq!(FRAME_SIZE, 440);
        assert_eq!(UC_MCONTEXT, 48);
        assert_eq!(UC_SIGMASK, 304);
        assert_eq!(INFO, 312);
        assert_eq!(UC_FPSTATE, 48 + 184);
    }

    #[test]
    fn placement_follows_get_sigframe() {
        // 832-byte XSAVE area (x87, SSE, AVX).
        let p = place(0x7fff_0000_1000 - RED_ZONE, 832);
        assert_eq!(p.fpstate % 64, 0);
        assert!(p.fpstate + 836 <= 0x7fff_0000_1000 - RED_ZONE);
        assert_eq!((p.frame + 8) % 16, 0);
        assert!(p.frame + FRAME_SIZE <= p.fpstate);
    }

    #[test]
    fn frames_read_back_what_was_written() {
        let regs = kvm_regs {
            rax: 1,
            rbx: 2,
            rcx: 3,
            rdx: 4,
            rsi: 5,
            rdi: 6,
            rsp: 7,
            rbp: 8,
            r8: 9,
            r9: 10,
            r10: 11,
            r11: 12,
            r12: 13,
            r13: 14,
            r14: 15,
            r15: 16,
            rip: 17,
            rflags: 0x246,
        };
        let info = [0xa5u8; 128];
        let f = build(&Saved {
            regs: &regs,
            mask: 0x1234,
            restorer: 0x5678,
            altstack: (0x1000, libc::SS_DISABLE, 0x2000),
            trap: Trap::default(),
            info: &info,
            fpstate: 0x9000,
        });
        let r = parse(&f);
        assert_eq!(r.regs, regs);
        assert_eq!((r.cs, r.ss), (0x33, 0x2b));
        assert_eq!(r.mask, 0x1234);
        assert_eq!(r.fpstate, 0x9000);
        assert_eq!(r.altstack, (0x1000, libc::SS_DISABLE, 0x2000));
        assert_eq!(get(&f, 0), 0x5678);
    }

    #[test]
    fn xsave_areas_round_trip_and_foreign_ones_restore_x87_and_sse_only() {
        let mut xsave = vec![0u8; 832];
        xsave[XSTATE_BV] = 0x4; // AVX in use
        let area = fpstate(&xsave, 832, 0x7);
        assert_eq!(area.len(), 836);
        assert_eq!(get(&area, XSTATE_BV as u64), 0x7, "x87 and SSE always set");
        assert_eq!(get(&restore_image(&area, 832, 0x7), XSTATE_BV as u64), 0x7);
        // A frame whose magic was overwritten: legacy state only.
        let mut foreign = area.clone();
        foreign[SW_RESERVED] ^= 1;
        assert_eq!(
            get(&restore_image(&foreign, 832, 0x7), XSTATE_BV as u64),
            0x3
        );
    }
}
