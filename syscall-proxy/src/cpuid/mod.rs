//! The CPUID the program sees (`--cpuid`).
//!
//! `host` (the default) leaves CPUID alone: the guest executes it as the
//! KVM answers (PVM runs it natively at CPL3). Any other policy answers
//! every CPUID of the program itself: the vCPU's CPUID faulting is kept on
//! (KVM emulates the Intel feature on any vendor; PVM passes it to the
//! CPU), the instruction's #GP comes to the sandbox, which writes the
//! policy's answer for the thread's XCR0 of the moment and steps over it.
//! So the answer follows each thread's XCR0, also after ARCH_SET_XCR0,
//! whatever the KVM does with CPUID at CPL3. A program that turned
//! faulting on itself (ARCH_SET_CPUID) still gets its SIGSEGV.
//!
//! - `xcr0`: the host's CPUID without the features of the XSAVE
//!   components the thread's XCR0 disables, and leaf 0xD as a CPU that
//!   supports only those components reports it.
//! - a file: a whole table, rr's `cpuidRecords` (`rr traceinfo`'s JSON:
//!   rows of eax_in, ecx_in, eax, ebx, ecx, edx; ecx_in 0xffffffff for
//!   any subleaf), with leaf 0xD's current size following the XCR0.
//! - an rr trace directory: the CPUID records of its header (`rr_trace`).

mod features;
#[rustfmt::skip]
#[allow(clippy::all, clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]
mod rr_header_capnp;
pub mod rr_trace;
mod table;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use table::Table;

/// What CPUID answers: EAX, EBX, ECX, EDX.
pub type Regs = [u32; 4];

/// `--cpuid=`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    #[default]
    Host,
    Xcr0,
    File(Arc<Table>),
}

impl Policy {
    /// `host`, `xcr0`, or a file's path; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s {
            "host" => Ok(Policy::Host),
            "xcr0" => Ok(Policy::Xcr0),
            "" => Err("--cpuid: empty; accepted: host, xcr0, a file of CPUID records, or an rr trace directory".into()),
            path if Path::new(path).join("version").is_file() => {
                let h = rr_trace::read(Path::new(path)).map_err(|e| format!("--cpuid={path}: {e}"))?;
                Ok(Policy::File(Arc::new(Table::from_records(h.records, Path::new(path)))))
            }
            path => {
                let p = PathBuf::from(path);
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    format!("--cpuid={path}: {e}; accepted: host, xcr0, a file of CPUID records, or an rr trace directory")
                })?;
                let t = Table::from_json(&text, &p).map_err(|e| format!("--cpuid={path}: {e}"))?;
                Ok(Policy::File(Arc::new(t)))
            }
        }
    }

    /// Whether the sandbox answers the program's CPUID.
    pub fn emulated(&self) -> bool {
        *self != Policy::Host
    }

    /// The answer to CPUID (`leaf`, `subleaf`) for a thread with `xcr0`.
    pub fn answer(&self, leaf: u32, subleaf: u32, xcr0: u64) -> Regs {
        match self {
            Policy::Host => host(leaf, subleaf),
            Policy::Xcr0 => features::for_xcr0(leaf, subleaf, xcr0, &host),
            Policy::File(t) => t.answer(leaf, subleaf, xcr0),
        }
    }

    /// How a re-executed sandbox gets the same policy: its `--cpuid=`
    /// word (a file's table travels as its path, made absolute).
    pub fn to_arg(&self) -> String {
        match self {
            Policy::Host => "host".into(),
            Policy::Xcr0 => "xcr0".into(),
            Policy::File(t) => t.path().display().to_string(),
        }
    }
}

/// Before a task first runs (and in a fork child's new vCPU): the vCPU
/// faults on CPUID for the sandbox to answer, if the policy says so, or
/// to see (`--explain`, where the KVM can fault: else unseen).
pub fn arm(t: &mut crate::thread::Thread) -> Result<(), vmm::VcpuError> {
    let answer = t.process.options.cpuid.emulated();
    let on = answer || crate::explain::watches_cpuid(&t.process.options);
    if on != t.vcpu.cpuid_answered() {
        match t.vcpu.set_cpuid_answered(on) {
            Err(e) if !answer => log::debug!("--explain: CPUID cannot fault here: {e}"),
            r => r?,
        }
    }
    Ok(())
}

/// This CPU's own answer, as a program outside the sandbox gets it.
pub fn host(leaf: u32, subleaf: u32) -> Regs {
    let r = std::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The size of an XSAVE area in the standard format holding the
/// components of `xcr0`, from leaf 0xD's subleaves as `sub` answers them
/// (each: size in EAX, offset in EBX): the legacy area and header, then
/// as far as the last component's end.
pub fn xsave_size(xcr0: u64, sub: impl Fn(u32) -> Regs) -> u32 {
    (2..63)
        .filter(|i| xcr0 & (1 << i) != 0)
        .map(|i| {
            let [size, offset, _, _] = sub(i);
            offset + size
        })
        .fold(512 + 64, u32::max)
}
