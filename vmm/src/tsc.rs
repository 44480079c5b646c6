//! The guest's TSC made the host's, and the measurement that shows it.
//!
//! The host's vDSO computes the time from `rdtsc` and the kernel's data in
//! its vvar pages. A program can call it in the guest only where the
//! guest's `rdtsc` reads what the host's would: hardware KVM gives each VM
//! a TSC offset (its TSC starts near 0), which the VMM sets to 0 on every
//! vCPU; PVM runs guest CPL3 on the host's own TSC. Whether that worked is
//! not assumed: the CPL3 probe reads the TSC and the VMM brackets its run
//! with its own reads ([`TscSample`]).

use std::os::fd::AsRawFd;

use kvm_bindings::{KVM_VCPU_TSC_CTRL, KVM_VCPU_TSC_OFFSET, KVMIO, kvm_device_attr};
use kvm_ioctls::VcpuFd;

/// KVM_SET_DEVICE_ATTR on a vCPU (include/uapi/linux/kvm.h): kvm-ioctls
/// offers it on aarch64 only.
const KVM_SET_DEVICE_ATTR: libc::Ioctl = libc::_IOW::<kvm_device_attr>(KVMIO, 0xe1);

/// Sets the vCPU's TSC offset to 0 (KVM_VCPU_TSC_OFFSET, Linux 5.16), so
/// that its TSC is the host's. Fails where KVM has no such attribute; the
/// probe's measurement then decides.
pub fn zero_offset(fd: &VcpuFd) -> std::io::Result<()> {
    let offset: u64 = 0;
    let attr = kvm_device_attr {
        flags: 0,
        group: KVM_VCPU_TSC_CTRL,
        attr: u64::from(KVM_VCPU_TSC_OFFSET),
        addr: &raw const offset as u64,
    };
    // SAFETY: a vCPU descriptor, and an attribute whose `addr` points at a
    // u64 KVM only reads, alive for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), KVM_SET_DEVICE_ATTR, &attr) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The host's TSC now.
pub fn host_now() -> u64 {
    // SAFETY: rdtsc has no memory effects; every x86-64 CPU KVM runs on
    // has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// A guest `rdtsc` and the host's just before and after the KVM_RUN that
/// made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscSample {
    pub before: u64,
    pub guest: u64,
    pub after: u64,
}

impl TscSample {
    /// Whether the guest read the host's TSC: an offset or a scaled rate
    /// would put the guest's value outside the host's window (the TSC
    /// counts billions a second, the window is one KVM_RUN).
    pub fn is_host(&self) -> bool {
        self.before <= self.guest && self.guest <= self.after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ioctl_number_is_the_kernels() {
        // _IOW(KVMIO, 0xe1, struct kvm_device_attr): 24 bytes.
        assert_eq!(KVM_SET_DEVICE_ATTR, 0x4018_aee1);
    }

    #[test]
    fn a_sample_is_the_hosts_only_inside_its_window() {
        let s = |guest| TscSample {
            before: 100,
            guest,
            after: 200,
        };
        assert!(s(100).is_host());
        assert!(s(150).is_host());
        assert!(!s(99).is_host());
        assert!(!s(201).is_host());
        assert!(!s(3).is_host());
    }
}
