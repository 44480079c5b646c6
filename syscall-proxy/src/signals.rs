//! The program's signal dispositions.
//!
//! rt_sigaction is emulated: the program's handlers are guest addresses and
//! cannot be installed on the host. The host thread gets the equivalent
//! disposition (default or ignore) so that default actions, ignoring and
//! blocking behave natively; for a signal the program handles, the host
//! records its arrival (and system calls return EINTR as they would), but
//! running the guest handler is not implemented yet: the signal is dropped
//! with a warning.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::host::Errno;

/// The kernel's _NSIG (include/uapi/asm-generic/signal.h); libc has no
/// such constant for Linux (glibc's NSIG counts signal 0 as well).
pub const NSIG: usize = 64;

/// struct kernel_sigaction as the x86-64 rt_sigaction system call takes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelSigaction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

// SAFETY: four u64 fields, #[repr(C)], so no padding: every bit pattern
// is a valid KernelSigaction.
unsafe impl vm_memory::ByteValued for KernelSigaction {}

const SIG_DFL: u64 = libc::SIG_DFL as u64;
const SIG_IGN: u64 = libc::SIG_IGN as u64;

/// Signals whose arrival the host recorded for a program handler.
static CAUGHT: AtomicU64 = AtomicU64::new(0);

extern "C" fn record(sig: libc::c_int) {
    CAUGHT.fetch_or(1 << (sig - 1), Ordering::Relaxed);
}

/// Signals caught since the last call (bit n-1 for signal n).
pub fn take_caught() -> u64 {
    CAUGHT.swap(0, Ordering::Relaxed)
}

/// The dispositions of a process's signals.
#[derive(Clone)]
pub struct Signals {
    actions: [KernelSigaction; NSIG],
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            actions: [KernelSigaction::default(); NSIG],
        }
    }
}

impl Signals {
    /// The dispositions the program inherits: what the host process has
    /// (signals ignored by whoever started the sandbox stay ignored; the
    /// sandbox set the rest to default before the program starts).
    pub fn inherited() -> Signals {
        let mut s = Signals::default();
        for sig in 1..=NSIG as i32 {
            // SAFETY: queries one disposition into a zeroed struct we own.
            let ignored = unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction == libc::SIG_IGN
            };
            if ignored {
                s.actions[(sig - 1) as usize].handler = SIG_IGN;
            }
        }
        s
    }

    pub fn action(&self, sig: i32) -> KernelSigaction {
        self.actions[(sig - 1) as usize]
    }

    /// Whether the program ignores `sig`.
    pub fn ignored(&self, sig: i32) -> bool {
        self.action(sig).handler == SIG_IGN
    }

    /// Whether the program installed a handler for `sig`.
    pub fn handled(&self, sig: i32) -> bool {
        !matches!(self.action(sig).handler, SIG_DFL | SIG_IGN)
    }

    /// CLONE_CLEAR_SIGHAND: handled signals back to their default action
    /// in a child (whose host dispositions are the parent's copy).
    pub fn clear_handlers(&mut self) {
        for sig in 1..=NSIG as i32 {
            if self.handled(sig) {
                let dfl = KernelSigaction::default();
                if !host_owned(sig) {
                    let _ = install_host(sig, &dfl);
                }
                self.actions[(sig - 1) as usize] = dfl;
            }
        }
    }

    /// rt_sigaction(sig, new, old): `new` already read from the program.
    pub fn set(
        &mut self,
        sig: u64,
        new: Option<KernelSigaction>,
    ) -> Result<KernelSigaction, Errno> {
        if sig == 0 || sig > NSIG as u64 {
            return Err(Errno(libc::EINVAL));
        }
        let sig = sig as i32;
        let old = self.action(sig);
        let Some(new) = new else { return Ok(old) };
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            return Err(Errno(libc::EINVAL));
        }
        if host_owned(sig) {
            // Recorded only; see host_owned.
        } else {
            install_host(sig, &new)?;
        }
        self.actions[(sig - 1) as usize] = new;
        Ok(old)
    }
}

/// Signals whose host disposition the program must not change: the
/// synchronous ones (the program's faults reach the sandbox as guest
/// exceptions, never as host signals, while a host fault is the sandbox's own
/// bug and must not be swallowed), and 32/33, which glibc reserves for its
/// own threads, the sandbox's included.
pub fn host_owned(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSEGV
            | libc::SIGBUS
            | libc::SIGILL
            | libc::SIGFPE
            | libc::SIGTRAP
            | libc::SIGSYS
            | 32
            | 33
    )
}

fn install_host(sig: i32, act: &KernelSigaction) -> Result<(), Errno> {
    // SAFETY: an all-zero sigaction is a valid value to fill in.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = match act.handler {
        SIG_DFL => libc::SIG_DFL,
        SIG_IGN => libc::SIG_IGN,
        _ => record as extern "C" fn(libc::c_int) as usize,
    };
    sa.sa_flags = (act.flags as i32) & libc::SA_RESTART;
    // SAFETY: sa_mask is a sigset_t we own; the mask bits are the program's.
    unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        for s in 1..=NSIG as i32 {
            if act.mask & (1 << (s - 1)) != 0 {
                libc::sigaddset(&mut sa.sa_mask, s);
            }
        }
    }
    // SAFETY: installs a disposition for this process; `record` is
    // async-signal-safe (one atomic operation).
    if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
        return Err(Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        ));
    }
    Ok(())
}

/// The signal Linux sends for a CPU exception at CPL3 (arch/x86/kernel/traps.c).
pub fn for_exception(vector: u8) -> i32 {
    use guest_runtime::abi::vector::*;
    match vector {
        DIVIDE_ERROR | X87_FPU | SIMD_FP => libc::SIGFPE,
        DEBUG | BREAKPOINT => libc::SIGTRAP,
        INVALID_OPCODE | DEVICE_NOT_AVAILABLE => libc::SIGILL,
        SEGMENT_NOT_PRESENT | STACK_FAULT | ALIGNMENT_CHECK => libc::SIGBUS,
        MACHINE_CHECK => libc::SIGKILL,
        _ => libc::SIGSEGV,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_runtime::abi::vector;

    #[test]
    fn exceptions_map_to_linux_signals() {
        assert_eq!(for_exception(vector::INVALID_OPCODE), libc::SIGILL);
        assert_eq!(for_exception(vector::PAGE_FAULT), libc::SIGSEGV);
        assert_eq!(for_exception(vector::GENERAL_PROTECTION), libc::SIGSEGV);
        assert_eq!(for_exception(vector::DIVIDE_ERROR), libc::SIGFPE);
        assert_eq!(for_exception(vector::SIMD_FP), libc::SIGFPE);
        assert_eq!(for_exception(vector::BREAKPOINT), libc::SIGTRAP);
        assert_eq!(for_exception(vector::ALIGNMENT_CHECK), libc::SIGBUS);
    }

    #[test]
    fn dispositions_are_recorded() {
        let mut s = Signals::default();
        let handler = KernelSigaction {
            handler: 0x1234,
            ..Default::default()
        };
        let ign = KernelSigaction {
            handler: SIG_IGN,
            ..Default::default()
        };
        // Host-owned signals are recorded without touching the host.
        assert_eq!(
            s.set(libc::SIGSEGV as u64, Some(handler)),
            Ok(KernelSigaction::default())
        );
        assert_eq!(s.set(33, Some(ign)), Ok(KernelSigaction::default()));
        assert!(s.handled(libc::SIGSEGV) && s.ignored(33));
        assert_eq!(
            s.set(libc::SIGKILL as u64, Some(ign)),
            Err(Errno(libc::EINVAL))
        );
        assert_eq!(s.set(0, None), Err(Errno(libc::EINVAL)));
        assert_eq!(s.set(65, None), Err(Errno(libc::EINVAL)));
    }
}
