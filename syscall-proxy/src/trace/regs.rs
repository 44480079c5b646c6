//! The register views ptrace gives, built from a thread's vCPU state as
//! Linux builds them from a task's (arch/x86/kernel/ptrace.c,
//! arch/x86/kernel/fpu/regset.c).

use guest_runtime::abi::selectors;
use vmm::kvm_regs;

/// Note types of the regsets (elf.h), which libc lacks.
pub const NT_PRSTATUS: u64 = 1;
pub const NT_PRFPREG: u64 = 2;
pub const NT_X86_XSTATE: u64 = 0x202;

/// The FXSAVE region: what PTRACE_GETFPREGS and NT_PRFPREG hold.
pub const FXSAVE_SIZE: usize = 512;
/// Where the XSTATE regset holds the task's XCR0: the first word of the
/// FXSAVE region's software-reserved bytes (xstate_fx_sw_bytes), which
/// gdb reads its register set from.
pub const XSTATE_XCR0_OFFSET: usize = 464;
const XSTATE_BV: usize = 512;

/// What RAX holds in a task stopped in an interrupted system call
/// (include/linux/errno.h), by how the kernel restarts it.
pub const ERESTARTSYS: i64 = -512;
pub const ERESTARTNOINTR: i64 = -513;
pub const ERESTARTNOHAND: i64 = -514;
pub const ERESTART_RESTARTBLOCK: i64 = -516;

/// The call that registers left in an interrupted system call make once
/// the task returns to user mode with no handler to run
/// (arch_do_signal_or_restart): the call itself, or restart_syscall for
/// ERESTART_RESTARTBLOCK; None if they say no call restarts (orig_rax -1,
/// or RAX a result).
pub fn restarts(r: &libc::user_regs_struct) -> Option<u64> {
    if (r.orig_rax as i64) < 0 {
        return None;
    }
    match r.rax as i64 {
        ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => Some(r.orig_rax),
        ERESTART_RESTARTBLOCK => Some(libc::SYS_restart_syscall as u64),
        _ => None,
    }
}

/// user_regs_struct from the program's registers where it stopped.
pub fn user_regs(
    r: &kvm_regs,
    orig_rax: u64,
    fs_base: u64,
    gs_base: u64,
) -> libc::user_regs_struct {
    libc::user_regs_struct {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        orig_rax,
        rip: r.rip,
        cs: u64::from(selectors::USER_CS),
        eflags: r.rflags,
        rsp: r.rsp,
        ss: u64::from(selectors::USER_DS),
        fs_base,
        gs_base,
        ds: 0,
        es: 0,
        fs: 0,
        gs: 0,
    }
}

/// The general-purpose registers back from a user_regs_struct.
pub fn kvm(u: &libc::user_regs_struct) -> kvm_regs {
    kvm_regs {
        rax: u.rax,
        rbx: u.rbx,
        rcx: u.rcx,
        rdx: u.rdx,
        rsi: u.rsi,
        rdi: u.rdi,
        rsp: u.rsp,
        rbp: u.rbp,
        r8: u.r8,
        r9: u.r9,
        r10: u.r10,
        r11: u.r11,
        r12: u.r12,
        r13: u.r13,
        r14: u.r14,
        r15: u.r15,
        rip: u.rip,
        rflags: u.eflags,
    }
}

/// What a tracer may change in RFLAGS (FLAG_MASK in arch/x86/kernel/ptrace.c):
/// the arithmetic flags, TF, DF, OF, AC, RF... never IF, IOPL or VM.
const FLAG_MASK: u64 = 0x0000_0000_0025_4dd5;

/// Whether putreg (arch/x86/kernel/ptrace.c) takes the registers a tracer
/// set: a segment selector must be null or of user privilege (CS and SS
/// not null), and the FS and GS bases below the top of user space; else
/// EIO.
pub fn acceptable(r: &libc::user_regs_struct) -> bool {
    // The kernel takes a selector's low 16 bits.
    let user = |sel: u64| matches!(sel as u16, 0) || sel as u16 & 3 == 3;
    [r.ds, r.es, r.fs, r.gs].into_iter().all(user)
        && [r.cs, r.ss].into_iter().all(|s| s as u16 != 0 && user(s))
        && r.fs_base < super::hwbp::TASK_SIZE_MAX
        && r.gs_base < super::hwbp::TASK_SIZE_MAX
}

/// A user_regs_struct a tracer set, made safe as putreg does: RFLAGS
/// keeps what only the kernel may change, the segment selectors stay.
pub fn sanitize(
    new: &libc::user_regs_struct,
    old: &libc::user_regs_struct,
) -> libc::user_regs_struct {
    libc::user_regs_struct {
        eflags: (old.eflags & !FLAG_MASK) | (new.eflags & FLAG_MASK),
        cs: old.cs,
        ss: old.ss,
        ds: old.ds,
        es: old.es,
        fs: old.fs,
        gs: old.gs,
        ..*new
    }
}

/// The XSTATE regset of a task with `xcr0` from its XSAVE image (standard
/// format, `size` bytes under that XCR0): XSTATE_BV limited to XCR0, and
/// the software-reserved bytes naming XCR0 as Linux writes them.
pub fn xstate(xsave: &[u8], size: usize, xcr0: u64) -> Vec<u8> {
    let mut b = vec![0u8; size];
    let n = size.min(xsave.len());
    b[..n].copy_from_slice(&xsave[..n]);
    b[XSTATE_XCR0_OFFSET..FXSAVE_SIZE].fill(0);
    b[XSTATE_XCR0_OFFSET..XSTATE_XCR0_OFFSET + 8].copy_from_slice(&xcr0.to_le_bytes());
    if b.len() >= XSTATE_BV + 8 {
        let bv = u64::from_le_bytes(b[XSTATE_BV..XSTATE_BV + 8].try_into().expect("8 bytes"));
        b[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&(bv & xcr0).to_le_bytes());
    }
    b
}

/// An XSTATE regset a tracer set, into the XSAVE image: the header's
/// XSTATE_BV may name only components of XCR0, as Linux checks
/// (copy_uabi_to_xstate, validate_user_xstate_header).
pub fn set_xstate(image: &mut [u8], new: &[u8], xcr0: u64) -> Result<(), i32> {
    if new.len() >= XSTATE_BV + 8 {
        let bv = u64::from_le_bytes(new[XSTATE_BV..XSTATE_BV + 8].try_into().expect("8 bytes"));
        if bv & !xcr0 != 0 {
            return Err(libc::EINVAL);
        }
    }
    let n = new.len().min(image.len());
    // The software-reserved bytes are the kernel's.
    let keep: Vec<u8> = image[XSTATE_XCR0_OFFSET..FXSAVE_SIZE].to_vec();
    image[..n].copy_from_slice(&new[..n]);
    image[XSTATE_XCR0_OFFSET..FXSAVE_SIZE].copy_from_slice(&keep);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_bases_are_checked_as_putreg_checks_them() {
        // SAFETY: user_regs_struct is plain integers.
        let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        (r.cs, r.ss, r.ds) = (0x33, 0x2b, 0);
        assert!(acceptable(&r));
        assert!(
            acceptable(&libc::user_regs_struct { gs: 0x1_0003, ..r }),
            "low 16 bits"
        );
        for bad in [
            libc::user_regs_struct { cs: 0x1, ..r },
            libc::user_regs_struct { cs: 0, ..r },
            libc::user_regs_struct { ss: 0, ..r },
            libc::user_regs_struct { ds: 0x10, ..r },
            libc::user_regs_struct {
                fs_base: 1 << 47,
                ..r
            },
            libc::user_regs_struct {
                gs_base: u64::MAX,
                ..r
            },
        ] {
            assert!(!acceptable(&bad), "{bad:?}");
        }
    }

    #[test]
    fn the_xstate_regset_names_the_tasks_xcr0_where_gdb_reads_it() {
        let mut image = vec![0xffu8; 1024];
        image[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&0xe7u64.to_le_bytes());
        let set = xstate(&image, 832, 0x7);
        assert_eq!(set.len(), 832);
        assert_eq!(u64::from_le_bytes(set[464..472].try_into().unwrap()), 0x7);
        assert!(set[472..512].iter().all(|&b| b == 0));
        assert_eq!(u64::from_le_bytes(set[512..520].try_into().unwrap()), 0x7);
    }

    #[test]
    fn a_tracer_cannot_name_components_outside_xcr0() {
        let mut image = vec![0u8; 832];
        let mut new = vec![0u8; 832];
        new[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&0x7u64.to_le_bytes());
        assert_eq!(set_xstate(&mut image, &new, 0x3), Err(libc::EINVAL));
        assert_eq!(set_xstate(&mut image, &new, 0x7), Ok(()));
    }

    #[test]
    fn a_tracer_cannot_raise_iopl_or_clear_interrupts() {
        let old = user_regs(
            &kvm_regs {
                rflags: 0x202,
                ..Default::default()
            },
            0,
            0,
            0,
        );
        let new = libc::user_regs_struct {
            eflags: 0x3100,
            ..old
        };
        let s = sanitize(&new, &old);
        assert_eq!(s.eflags, 0x202 | 0x100);
    }
}
