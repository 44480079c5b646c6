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
