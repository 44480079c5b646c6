//! The sandbox's own file descriptors, kept out of the program's way.
//!
//! The program must see the descriptor numbers it would see natively (its
//! first open() returns 3), so every descriptor the sandbox holds (KVM, VM,
//! vCPUs, the log) is moved to the top of the descriptor table, just under
//! the hard RLIMIT_NOFILE, and recorded here so that system calls on them can
//! be refused as if they did not exist.

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::{RwLock, RwLockWriteGuard};

/// Read by every call that takes a descriptor, from every thread at once;
/// written only as the sandbox parks one.
static PARKED: RwLock<BTreeSet<RawFd>> = RwLock::new(BTreeSet::new());

/// The registry held across a host fork, so that no other thread holds
/// it in the child.
pub struct Registry(RwLockWriteGuard<'static, BTreeSet<RawFd>>);

/// Takes the registry for a fork.
pub fn lock() -> Registry {
    Registry(PARKED.write().expect("fd registry"))
}

impl Registry {
    /// In a forked child: closes `fds`, descriptors of the parent's KVM
    /// objects, which the child cannot use.
    pub fn close(&mut self, fds: &[RawFd]) {
        for &fd in fds {
            if self.0.remove(&fd) {
                // SAFETY: a parked descriptor of the sandbox's, which no
                // object of the child uses any more.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// Records `fd`, inherited already parked (the sandbox's stderr across a
/// re-exec), as the sandbox's.
pub fn adopt(fd: RawFd) {
    PARKED.write().expect("fd registry").insert(fd);
}

/// How many descriptors the sandbox may park: one per vCPU, so one per
/// thread alive at once, and a few more; KVM's own limit of vCPUs per VM
/// (KVM_CAP_MAX_VCPUS: 1024, 4096 on the largest hosts) is the one met.
const SPAN: RawFd = 4096 + 64;

fn nofile() -> io::Result<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// Duplicates `fd` to a high, close-on-exec number and records it; the
/// caller closes the original.
///
/// Where the sandbox may raise its hard RLIMIT_NOFILE (CAP_SYS_RESOURCE),
/// the copy goes just above the hard limit, out of the program's reach and
/// count: it gets as many descriptors before EMFILE as natively. Otherwise
/// it goes just under the hard limit, where a program whose soft limit
/// equals its hard limit meets it.
pub fn park(fd: RawFd) -> io::Result<RawFd> {
    // Held throughout: two threads lifting and restoring the limit at once
    // would leave it lifted.
    let mut parked = PARKED.write().expect("fd registry");
    let lim = nofile()?;
    let hard = lim.rlim_max.min(1 << 20);
    let above = libc::rlimit {
        rlim_cur: hard + SPAN as u64,
        rlim_max: hard + SPAN as u64,
    };
    let under = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // F_DUPFD refuses numbers at or above the soft limit: lift the limits
    // for the call. Descriptors above lowered limits stay valid.
    // SAFETY: plain syscalls on integers and valid structs.
    let high = unsafe {
        let base = if libc::setrlimit(libc::RLIMIT_NOFILE, &above) == 0 {
            hard as RawFd
        } else {
            libc::setrlimit(libc::RLIMIT_NOFILE, &under);
            // Never into the lower half, where programs' numbers live.
            (hard as RawFd - SPAN).max(hard as RawFd / 2)
        };
        let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, base);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        high
    };
    if high < 0 {
        return Err(io::Error::last_os_error());
    }
    parked.insert(high);
    Ok(high)
}

/// A new memfd named `name`, close-on-exec and sealed against execution:
/// where vm.memfd_noexec is 2 the kernel refuses one without the seal,
/// and kernels before 6.3 refuse the flag (EINVAL).
pub fn memfd(name: &CStr) -> io::Result<File> {
    let made = |flags| {
        // SAFETY: a NUL-terminated name and flags.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor just made, owned by the File alone.
        Ok(unsafe { File::from_raw_fd(fd) })
    };
    match made(libc::MFD_CLOEXEC | libc::MFD_NOEXEC_SEAL) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => made(libc::MFD_CLOEXEC),
        r => r,
    }
}

/// Whether `fd` is one of the sandbox's own descriptors.
pub fn is_parked(fd: i64) -> bool {
    RawFd::try_from(fd).is_ok_and(|fd| PARKED.read().expect("fd registry").contains(&fd))
}

/// The parked descriptors within [first, last], in order.
pub fn parked_in(first: u64, last: u64) -> Vec<RawFd> {
    PARKED
        .read()
        .expect("fd registry")
        .iter()
        .copied()
        .filter(|&fd| (first..=last).contains(&(fd as u64)))
        .collect()
}
