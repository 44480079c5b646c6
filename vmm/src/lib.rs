//! KVM mechanics for xcr0-sandbox: a VM that shares the host process's
//! address space, vCPUs with a chosen XCR0 running guest CPL3 code, the
//! memory mirror, and the measurement of whether XCR0 is really enforced.
//!
//! This crate knows nothing of system calls: a vCPU run ends in an
//! [`vcpu::Exit`] that the layer above interprets.

pub mod check;
pub mod fds;
pub mod kvm;
pub mod layout;
pub mod maps;
pub mod memory;
pub mod paging;
pub mod ranges;
pub mod tables;
pub mod tsc;
pub mod vcpu;
pub mod vdso;
pub mod vm;
pub mod xcr0;

pub use kvm::{Flavour, Hypervisor, KvmError};
/// The general-purpose registers, as KVM and the layers above exchange them.
pub use kvm_bindings::kvm_regs;
pub use memory::{AddressSpace, Lent, Narrow, Overlay, Prot};
pub use vcpu::{Exit, Probed, Syscall, ThreadState, Vcpu, VcpuError};
pub use vm::{Forked, Vm};
pub use xcr0::Xcr0;
