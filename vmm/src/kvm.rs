//! The host's KVM: opening it, what it supports, which kind it is.

use std::os::fd::RawFd;
use std::path::Path;

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_cpuid_entry2};
use kvm_ioctls::{Cap, Kvm};

use crate::fds;

#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    #[error(
        "/dev/kvm does not exist: load KVM (modprobe kvm_amd or kvm_intel) on a host with virtualisation enabled"
    )]
    Missing,
    #[error(
        "no permission to open /dev/kvm: add the user to the 'kvm' group (usermod -aG kvm $USER, then log in again) or run as root"
    )]
    Permission,
    #[error("cannot open /dev/kvm: {0}")]
    Open(std::io::Error),
    #[error("KVM lacks {0}, which the sandbox needs")]
    MissingCap(&'static str),
    #[error("{op}: {err}")]
    Ioctl {
        op: &'static str,
        err: kvm_ioctls::Error,
    },
}

/// Which KVM implementation serves /dev/kvm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Ant Group's PVM: shadow paging, emulated CPL0, XCR0 not applied.
    Pvm,
    /// kvm_amd (SVM).
    Amd,
    /// kvm_intel (VMX).
    Intel,
    Unknown,
}

impl Flavour {
    fn detect() -> Flavour {
        let loaded = |m: &str| Path::new("/sys/module").join(m).exists();
        if loaded("kvm_pvm") {
            Flavour::Pvm
        } else if loaded("kvm_amd") {
            Flavour::Amd
        } else if loaded("kvm_intel") {
            Flavour::Intel
        } else {
            Flavour::Unknown
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Flavour::Pvm => "PVM (kvm_pvm: paravirtual, shadow paging, no hardware virtualisation)",
            Flavour::Amd => "hardware (kvm_amd, SVM)",
            Flavour::Intel => "hardware (kvm_intel, VMX)",
            Flavour::Unknown => "unknown KVM module",
        }
    }
}

/// Capabilities the sandbox relies on, checked at start.
pub const REQUIRED_CAPS: &[(Cap, &str)] = &[
    (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
    (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
    (Cap::Xcrs, "KVM_CAP_XCRS"),
    (Cap::SyncRegs, "KVM_CAP_SYNC_REGS"),
    (Cap::NrMemslots, "KVM_CAP_NR_MEMSLOTS"),
];

/// An open /dev/kvm and what it offers.
pub struct Hypervisor {
    pub kvm: Kvm,
    pub flavour: Flavour,
    pub cpuid: CpuId,
    /// KVM_CAP_XSAVE2: the size of a guest's XSAVE area (0: no
    /// KVM_GET_XSAVE2), read after the AMX permission was asked for.
    pub xsave2_size: usize,
}

impl Hypervisor {
    pub fn open() -> Result<Hypervisor, KvmError> {
        let fd = Kvm::open_with_cloexec(true).map_err(|e| match e.errno() {
            libc::ENOENT | libc::ENXIO | libc::ENODEV => KvmError::Missing,
            libc::EACCES | libc::EPERM => KvmError::Permission,
            _ => KvmError::Open(std::io::Error::from_raw_os_error(e.errno())),
        })?;
        let high = fds::park(fd);
        // SAFETY: `fd` is the descriptor just opened; only `high` is kept.
        unsafe { libc::close(fd) };
        Hypervisor::adopt(high.map_err(KvmError::Open)?)
    }

    /// The /dev/kvm descriptor `fd`, parked already: one this process
    /// opened, or one a sandbox that executed this one left open, so that a
    /// program that gave up its privileges (setuid, setgroups) before an
    /// execve keeps its KVM, as a process keeps its open files.
    pub fn adopt(fd: RawFd) -> Result<Hypervisor, KvmError> {
        fds::adopt(fd);
        // SAFETY: `fd` is an open /dev/kvm descriptor owned by no one else.
        let kvm = unsafe { <Kvm as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        request_guest_amx();
        for &(cap, name) in REQUIRED_CAPS {
            if !kvm.check_extension(cap) {
                return Err(KvmError::MissingCap(name));
            }
        }
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|err| KvmError::Ioctl {
                op: "KVM_GET_SUPPORTED_CPUID",
                err,
            })?;
        let xsave2_size = usize::try_from(kvm.check_extension_int(Cap::Xsave2)).unwrap_or(0);
        Ok(Hypervisor {
            kvm,
            flavour: Flavour::detect(),
            cpuid,
            xsave2_size,
        })
    }

    /// CPUID entry (function, index) as KVM would give a guest.
    pub fn cpuid_entry(&self, function: u32, index: u32) -> Option<kvm_cpuid_entry2> {
        self.cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == function && e.index == index)
            .copied()
    }

    /// XCR0 bits KVM lets a guest enable (CPUID.(EAX=0DH,ECX=0):EDX:EAX).
    pub fn supported_xcr0(&self) -> u64 {
        self.cpuid_entry(0xd, 0)
            .map_or(0x3, |e| u64::from(e.eax) | (u64::from(e.edx) << 32))
    }

    /// (size, offset) of XSAVE component `i` (CPUID.(EAX=0DH,ECX=i)).
    pub fn xsave_component(&self, i: u32) -> (u32, u32) {
        self.cpuid_entry(0xd, i).map_or((0, 0), |e| (e.eax, e.ebx))
    }

    /// Guest-physical address width (CPUID 0x80000008 EAX[7:0]).
    pub fn phys_bits(&self) -> u32 {
        self.cpuid_entry(0x8000_0008, 0)
            .map_or(36, |e| e.eax & 0xff)
    }

    pub fn has_fsgsbase(&self) -> bool {
        self.cpuid_entry(7, 0).is_some_and(|e| e.ebx & 1 != 0)
    }

    /// Whether guests get XFD (CPUID.(EAX=0DH,ECX=1):EAX[4]), with which
    /// the sandbox makes a first use of AMX's tile data fault as Linux does.
    pub fn has_xfd(&self) -> bool {
        self.cpuid_entry(0xd, 1)
            .is_some_and(|e| e.eax & (1 << 4) != 0)
    }

    pub fn has_pku(&self) -> bool {
        self.cpuid_entry(7, 0)
            .is_some_and(|e| e.ecx & (1 << 3) != 0)
    }

    /// Capability values for `--check`.
    pub fn capabilities(&self) -> Vec<(&'static str, i32)> {
        REQUIRED_CAPS
            .iter()
            .map(|&(cap, name)| (name, self.kvm.check_extension_int(cap)))
            .collect()
    }
}

/// Asks Linux to let this process's guests use AMX's tile data
/// (ARCH_REQ_XCOMP_GUEST_PERM), as QEMU, Firecracker and cloud-hypervisor
/// do: without it KVM_GET_SUPPORTED_CPUID leaves AMX out, and the default
/// XCR0 would silently drop it. Before the first vCPU, which locks the
/// permission. Refused (EOPNOTSUPP, EINVAL) where the host has no AMX.
fn request_guest_amx() {
    // arch/x86/include/uapi/asm/prctl.h; libc lacks it.
    const ARCH_REQ_XCOMP_GUEST_PERM: libc::c_long = 0x1025;
    // SAFETY: arch_prctl with integer arguments only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_GUEST_PERM,
            crate::xcr0::TILEDATA_BIT,
        )
    };
    if r != 0 {
        log::trace!(
            "ARCH_REQ_XCOMP_GUEST_PERM: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The host's own XCR0, as `xgetbv(0)` returns it to this process.
pub fn host_xcr0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: XGETBV with ECX = 0 only reads XCR0. It needs CR4.OSXSAVE,
    // which Linux sets on every CPU with XSAVE, and every x86-64 CPU the
    // sandbox supports has XSAVE (its whole point is XCR0).
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi,
                        options(nomem, nostack, preserves_flags));
    }
    u64::from(lo) | (u64::from(hi) << 32)
}
