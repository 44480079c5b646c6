//! The program's signals: dispositions (emulated: handlers are guest
//! addresses), their arrival on the host (arrival.rs), the frame Linux
//! builds (frame.rs), delivery to the program's handlers and back
//! (deliver.rs), and how an interrupted sleep goes on (restart.rs).

pub mod arrival;
pub mod deliver;
pub mod faults;
pub mod frame;
pub mod restart;

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

pub(crate) const SIG_DFL: u64 = libc::SIG_DFL as u64;
pub(crate) const SIG_IGN: u64 = libc::SIG_IGN as u64;

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

    /// CLONE_CLEAR_SIGHAND: handled signals back to their default action,
    /// in the record only; which host they are the child's to carry out
    /// (`install_cleared`, in the child's process), never the parent's.
    /// Returns the signals cleared.
    pub fn clear_handlers(&mut self) -> u64 {
        let mut cleared = 0;
        for sig in 1..=NSIG as i32 {
            if self.handled(sig) {
                self.actions[(sig - 1) as usize] = KernelSigaction::default();
                cleared |= arrival::bit(sig);
            }
        }
        cleared
    }

    /// In the child's process: the host dispositions of the signals
    /// `clear_handlers` cleared, back to the default.
    pub fn install_cleared(cleared: u64) {
        for sig in (1..=NSIG as i32).filter(|&s| cleared & arrival::bit(s) != 0) {
            let _ = arrival::install(sig, &KernelSigaction::default());
        }
    }

    /// Back to the default action (SA_RESETHAND, CLONE_CLEAR_SIGHAND, a
    /// signal forced on a thread that cannot take it).
    pub fn reset(&mut self, sig: i32) {
        let dfl = KernelSigaction::default();
        let _ = arrival::install(sig, &dfl);
        self.actions[(sig - 1) as usize] = dfl;
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
        arrival::install(sig, &new)?;
        self.actions[(sig - 1) as usize] = new;
        Ok(old)
    }
}

/// The synchronous signals, which a fault of the sandbox's own raises on
/// the host (the program's faults reach it as guest exceptions instead):
/// never ignored on the host, and passed on to their default action by
/// the host handler when the kernel raised them (arrival.rs).
pub fn host_owned(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP | libc::SIGSYS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            s.set(libc::SIGUSR2 as u64, Some(handler)),
            Ok(KernelSigaction::default())
        );
        assert_eq!(
            s.set(libc::SIGUSR2 as u64, Some(ign)),
            Ok(handler),
            "the old action comes back"
        );
        assert!(s.ignored(libc::SIGUSR2) && !s.handled(libc::SIGUSR2));
        assert_eq!(
            s.set(libc::SIGKILL as u64, Some(ign)),
            Err(Errno(libc::EINVAL))
        );
        assert_eq!(s.set(0, None), Err(Errno(libc::EINVAL)));
        assert_eq!(s.set(65, None), Err(Errno(libc::EINVAL)));
    }
}
