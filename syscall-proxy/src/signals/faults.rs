//! The signal Linux sends for a CPU exception at CPL3, with its siginfo
//! and the trap details later frames carry (arch/x86/kernel/traps.c,
//! arch/x86/mm/fault.c, arch/x86/kernel/fpu/core.c).

use guest_runtime::abi::{ExceptionFrame, pf_error, vector::*};

use super::deliver::{Info, SI_KERNEL, kernel_info};
use super::frame::Trap;

// si_code values (include/uapi/asm-generic/siginfo.h); libc lacks them
// for Linux.
const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;
const ILL_ILLOPN: i32 = 2;
const FPE_INTDIV: i32 = 1;
const FPE_FLTDIV: i32 = 3;
const FPE_FLTOVF: i32 = 4;
const FPE_FLTUND: i32 = 5;
const FPE_FLTRES: i32 = 6;
const FPE_FLTINV: i32 = 7;
const BUS_ADRALN: i32 = libc::BUS_ADRALN;

/// The first address above the user address space (TASK_SIZE_MAX).
const TASK_SIZE_MAX: u64 = 0x7fff_ffff_f000;

/// The signal Linux sends for a CPU exception at CPL3.
pub fn signal_for(vector: u8) -> i32 {
    match vector {
        DIVIDE_ERROR | X87_FPU | SIMD_FP => libc::SIGFPE,
        DEBUG | BREAKPOINT => libc::SIGTRAP,
        INVALID_OPCODE | DEVICE_NOT_AVAILABLE => libc::SIGILL,
        SEGMENT_NOT_PRESENT | STACK_FAULT | ALIGNMENT_CHECK => libc::SIGBUS,
        MACHINE_CHECK => libc::SIGKILL,
        _ => libc::SIGSEGV,
    }
}

/// What the program's handler is told of a fault.
pub struct Fault {
    pub sig: i32,
    pub info: Info,
    pub trap: Trap,
}

/// The fault of exception frame `f` (`cr2` for a page fault). `mapped`
/// says whether the faulting address lies in a program mapping (ACCERR,
/// else MAPERR); `fp` reads the x87 control/status words and MXCSR for a
/// floating-point exception. None: nothing to report (a spurious x87 trap).
pub fn fault(
    f: &ExceptionFrame,
    cr2: u64,
    last: Trap,
    mapped: impl Fn(u64) -> bool,
    mut fp: impl FnMut() -> (u16, u16, u32),
) -> Option<Fault> {
    let v = f.vector as u8;
    let sig = signal_for(v);
    let trap = |error_code: u64| Trap {
        error_code,
        trapno: u64::from(v),
        cr2: last.cr2,
    };
    let (code, addr, trap) = match v {
        PAGE_FAULT => {
            let mut error = f.error_code | pf_error::USER;
            if cr2 >= TASK_SIZE_MAX {
                // set_signal_archinfo: kernel addresses look like
                // protection faults. The bits describe the access alone
                // (the guest's tables for that half are not the host's).
                error = (error & (pf_error::WRITE | pf_error::INSTRUCTION_FETCH))
                    | pf_error::USER
                    | pf_error::PRESENT;
            }
            let code = if mapped(cr2) {
                SEGV_ACCERR
            } else {
                SEGV_MAPERR
            };
            (
                code,
                cr2,
                Trap {
                    error_code: error,
                    trapno: u64::from(v),
                    cr2,
                },
            )
        }
        INVALID_OPCODE => (ILL_ILLOPN, f.rip, trap(0)),
        DIVIDE_ERROR => (FPE_INTDIV, f.rip, trap(0)),
        X87_FPU | SIMD_FP => {
            let (cwd, swd, mxcsr) = fp();
            let err = if v == X87_FPU {
                u32::from(swd & !cwd)
            } else {
                !(mxcsr >> 7) & mxcsr
            };
            let code = if err & 0x1 != 0 {
                FPE_FLTINV
            } else if err & 0x4 != 0 {
                FPE_FLTDIV
            } else if err & 0x8 != 0 {
                FPE_FLTOVF
            } else if err & 0x12 != 0 {
                FPE_FLTUND
            } else if err & 0x20 != 0 {
                FPE_FLTRES
            } else {
                return None;
            };
            (code, f.rip, trap(0))
        }
        ALIGNMENT_CHECK => (BUS_ADRALN, 0, trap(f.error_code)),
        _ => (SI_KERNEL, 0, trap(f.error_code)),
    };
    Some(Fault {
        sig,
        info: kernel_info(sig, code, addr),
        trap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(vector: u8, error_code: u64) -> ExceptionFrame {
        ExceptionFrame {
            vector: u64::from(vector),
            error_code,
            rip: 0x401000,
            ..Default::default()
        }
    }

    fn code(f: &Fault) -> i32 {
        i32::from_le_bytes(f.info[8..12].try_into().unwrap())
    }

    #[test]
    fn exceptions_map_to_linux_signals() {
        assert_eq!(signal_for(INVALID_OPCODE), libc::SIGILL);
        assert_eq!(signal_for(PAGE_FAULT), libc::SIGSEGV);
        assert_eq!(signal_for(GENERAL_PROTECTION), libc::SIGSEGV);
        assert_eq!(signal_for(DIVIDE_ERROR), libc::SIGFPE);
        assert_eq!(signal_for(SIMD_FP), libc::SIGFPE);
        assert_eq!(signal_for(BREAKPOINT), libc::SIGTRAP);
        assert_eq!(signal_for(ALIGNMENT_CHECK), libc::SIGBUS);
    }

    #[test]
    fn siginfo_says_what_linux_says() {
        let none = Trap::default();
        let fp = || (0x37f, 0, 0x1f80);
        let f = fault(&frame(PAGE_FAULT, 0x6), 0x1000, none, |_| true, fp).unwrap();
        assert_eq!((f.sig, code(&f)), (libc::SIGSEGV, SEGV_ACCERR));
        assert_eq!(
            f.trap,
            Trap {
                error_code: 0x6,
                trapno: 14,
                cr2: 0x1000
            }
        );
        let f = fault(&frame(PAGE_FAULT, 0x4), 0x10, none, |_| false, fp).unwrap();
        assert_eq!(code(&f), SEGV_MAPERR);
        let f = fault(&frame(INVALID_OPCODE, 0), 0, none, |_| false, fp).unwrap();
        assert_eq!((f.sig, code(&f)), (libc::SIGILL, ILL_ILLOPN));
        assert_eq!(&f.info[16..24], &0x401000u64.to_le_bytes());
        let f = fault(&frame(GENERAL_PROTECTION, 0), 0, none, |_| false, fp).unwrap();
        assert_eq!(code(&f), SI_KERNEL);
        // An unmasked SSE divide-by-zero (ZM clear, ZE set).
        let f = fault(
            &frame(SIMD_FP, 0),
            0,
            none,
            |_| false,
            || (0x37f, 0, 0x1d84),
        )
        .unwrap();
        assert_eq!(code(&f), FPE_FLTDIV);
    }
}
