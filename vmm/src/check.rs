//! Measuring whether this KVM really applies a guest's XCR0.
//!
//! KVM_SET_XCRS succeeding proves nothing: PVM accepts and reads back any
//! value but runs guest CPL3 code under the host's XCR0. The only evidence
//! is what the guest sees, so a probe runs `xgetbv` at CPL3 and reports it.

use std::sync::Arc;

use crate::kvm::Hypervisor;
use crate::vcpu::{Probed, VcpuError};
use crate::vm::Vm;
use crate::xcr0::{self, Xcr0};

/// What the CPL3 probe saw under a requested XCR0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    pub requested: Xcr0,
    pub seen: Probed,
}

impl ProbeReport {
    pub fn enforced(&self) -> bool {
        self.seen.xgetbv == self.requested.bits()
    }

    /// What the probe means for a program that asked for `asked` (None:
    /// no --xcr0), on a host whose own XCR0 is `host`.
    pub fn verdict(&self, asked: Option<Xcr0>, host: u64) -> Verdict {
        if self.enforced() {
            Verdict::Applied
        } else if asked.is_none() && self.seen.xgetbv == host {
            Verdict::Native
        } else {
            Verdict::Unenforced
        }
    }
}

/// Whether a program starts with the XCR0 it should have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The program sees the XCR0 its vCPU was given.
    Applied,
    /// Nothing was asked, and the program sees the host's own XCR0, as it
    /// would natively: a KVM that applies no XCR0 (PVM), here with fewer
    /// components to offer its guests than the host has (an AMX host
    /// whose PVM offers 0xe7). Nothing to warn about.
    Native,
    /// An XCR0 was asked for and the program sees another: refused, or run
    /// with a warning under --allow-unenforced-xcr0.
    Unenforced,
}

/// The XCR0 a program gets when it asks for none: the host's, less what
/// this KVM cannot give a guest.
pub fn default_xcr0(host: u64, supported: u64) -> Result<Xcr0, xcr0::Xcr0Error> {
    Xcr0::new(host & supported & xcr0::USER_BITS)
}

/// Runs the probe on a fresh VM with `xcr0`.
pub fn probe(hv: &Arc<Hypervisor>, xcr0: Xcr0) -> Result<ProbeReport, VcpuError> {
    let vm = Vm::new(hv.clone())?;
    let mut vcpu = vm.create_vcpu(xcr0)?;
    Ok(ProbeReport {
        requested: xcr0,
        seen: vcpu.probe(&vm.memory, 0)?,
    })
}

/// Whether CPUID at CPL3 faults on a vCPU of this KVM once faulting is on,
/// which `--cpuid` needs to answer the program's CPUID.
pub fn cpuid_faulting(hv: &Arc<Hypervisor>, xcr0: Xcr0) -> Result<bool, VcpuError> {
    let vm = Vm::new(hv.clone())?;
    let mut vcpu = vm.create_vcpu(xcr0)?;
    vcpu.cpuid_faulting_applies(&vm.memory)
}

/// The values `--check` probes: a reduced XCR0 (so that a KVM running guests
/// under the host's XCR0 is caught) and the full supported one.
pub fn check_values(supported: u64) -> Vec<Xcr0> {
    let mut v = Vec::new();
    let reduced = if supported & xcr0::AVX != 0 {
        xcr0::X87 | xcr0::SSE
    } else {
        xcr0::X87
    };
    v.extend(Xcr0::new(reduced).ok());
    if let Ok(full) = Xcr0::new(supported & xcr0::USER_BITS)
        && full.bits() != reduced
    {
        v.push(full);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsc::TscSample;

    fn report(vcpu: u64, seen: u64) -> ProbeReport {
        ProbeReport {
            requested: Xcr0::new(vcpu).unwrap(),
            seen: Probed {
                xgetbv: seen,
                xsave_size: 0,
                tsc: TscSample {
                    before: 0,
                    guest: 0,
                    after: 0,
                },
            },
        }
    }

    /// The machine kinds of this project, by (host XCR0, what the KVM
    /// supports, whether it applies XCR0).
    const KINDS: &[(u64, u64, bool)] = &[
        (0x207, 0x207, false),    // AMD, PVM
        (0xe7, 0xe7, false),      // Intel (or Zen 4), PVM
        (0x600e7, 0xe7, false),   // Intel with AMX, PVM: no AMX for guests
        (0x600e7, 0x600e7, true), // the same on hardware KVM, guest AMX permitted
        (0x600e7, 0xe7, true),    // hardware KVM without the AMX permission
        (0x207, 0x207, true),     // kvm_amd, the real-KVM lane
    ];

    /// What the CPL3 probe sees: the vCPU's XCR0 where it is applied,
    /// the host's where not.
    fn seen(host: u64, vcpu: u64, applies: bool) -> u64 {
        if applies { vcpu } else { host }
    }

    #[test]
    fn asking_for_nothing_never_warns_on_any_machine_kind() {
        for &(host, supported, applies) in KINDS {
            let x = default_xcr0(host, supported).unwrap();
            assert_eq!(x.bits(), host & supported);
            let v = report(x.bits(), seen(host, x.bits(), applies)).verdict(None, host);
            assert_ne!(v, Verdict::Unenforced, "host {host:#x} kvm {supported:#x}");
        }
    }

    #[test]
    fn an_xcr0_asked_for_and_not_applied_is_always_unenforced() {
        for &(host, supported, applies) in KINDS {
            for asked in [0x3, 0x7, host & supported] {
                let x = Xcr0::new(asked).unwrap();
                let seen = seen(host, asked, applies);
                let v = report(asked, seen).verdict(Some(x), host);
                let expected = if seen == asked {
                    Verdict::Applied
                } else {
                    Verdict::Unenforced
                };
                assert_eq!(v, expected, "host {host:#x} asked {asked:#x}");
            }
        }
    }

    #[test]
    fn nothing_asked_but_neither_the_vcpus_nor_the_hosts_is_unenforced() {
        assert_eq!(
            report(0xe7, 0x7).verdict(None, 0x600e7),
            Verdict::Unenforced
        );
    }
}
