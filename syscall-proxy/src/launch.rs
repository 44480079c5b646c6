//! Starting a program in the sandbox: resolve, open KVM, check that XCR0 is
//! enforced, map the program, and hand back a task ready to run. Nothing of
//! the program runs before every check has passed.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use vmm::check::{ProbeReport, Verdict};
use vmm::xcr0::min_signal_stack_size;
use vmm::{Hypervisor, Vm, Xcr0};

use crate::loader::{self, CpuFacts, resolve};
use crate::mm::Brk;
use crate::process::{Finish, Options, Process};
use crate::signals::Signals;
use crate::task::Task;
use crate::thread::Thread;

/// HWCAP2_FSGSBASE (arch/x86/include/uapi/asm/hwcap2.h), which libc lacks.
const HWCAP2_FSGSBASE: u64 = 1 << 1;

pub struct Request {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<OsString>,
    pub xcr0: Xcr0,
    /// Whether `xcr0` was asked for (--xcr0) rather than the default.
    pub asked: bool,
    pub allow_unenforced: bool,
    /// For the program's own execve (the sandbox executed itself): its
    /// argv[0]. `program` is then the path execve was given, used as is,
    /// and XCR0 enforcement was checked and reported already.
    pub exec_argv0: Option<OsString>,
    pub options: Options,
    pub finish: Finish,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    #[error("cannot execute {0}")]
    Load(#[from] loader::elf::LoadError),
    #[error(transparent)]
    Vcpu(#[from] vmm::VcpuError),
    #[error(
        "XCR0 is not enforced by this KVM ({kvm}): requested {requested}, the program would see {seen:#x}; run on a KVM that applies XCR0 (see --check), or pass --allow-unenforced-xcr0"
    )]
    Unenforced {
        kvm: &'static str,
        requested: Xcr0,
        seen: u64,
    },
    #[error(
        "this KVM ({kvm}) cannot fault on CPUID, so --cpuid cannot answer the program's; use --cpuid=host, or pass --allow-unenforced-xcr0"
    )]
    CpuidUnanswerable { kvm: &'static str },
}

impl LaunchError {
    /// The signal Linux would kill the process with instead of failing
    /// execve (a fault found past the point of no return).
    pub fn fatal_signal(&self) -> Option<i32> {
        match self {
            LaunchError::Load(e) if e.fatal => Some(libc::SIGSEGV),
            _ => None,
        }
    }

    /// Exit status for the sandbox when the program could not start.
    pub fn exit_status(&self) -> i32 {
        match self {
            LaunchError::Resolve(e) => e.exit_status(),
            LaunchError::Load(_) => 126,
            LaunchError::Vcpu(_)
            | LaunchError::Unenforced { .. }
            | LaunchError::CpuidUnanswerable { .. } => 125,
        }
    }
}

/// What the auxiliary vector says of the CPU a task with `xcr0` runs on:
/// AT_HWCAP as the host kernel gives it (CPUID.1:EDX as the kernel sees
/// it), the rest from what the vCPU offers.
pub(crate) fn cpu_facts(hv: &Hypervisor, xcr0: Xcr0) -> CpuFacts {
    CpuFacts {
        hwcap: kernel_hwcap(),
        hwcap2: if hv.has_fsgsbase() {
            HWCAP2_FSGSBASE
        } else {
            0
        },
        minsigstksz: min_signal_stack_size(xcr0.xsave_size(|i| hv.xsave_component(i))),
    }
}

/// AT_HWCAP as the kernel gave it to the sandbox (CPUID.1:EDX as the
/// kernel sees it). Not glibc's getauxval, which on x86 answers its own
/// platform bits (HWCAP_X86_64, HWCAP_X86_AVX512_1) for AT_HWCAP.
fn kernel_hwcap() -> u64 {
    static HWCAP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HWCAP.get_or_init(|| {
        let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
        auxv_value(&auxv, libc::AT_HWCAP).unwrap_or(0)
    })
}

/// The value of `key` in an auxiliary vector's bytes (pairs of native
/// words, ending at AT_NULL).
fn auxv_value(auxv: &[u8], key: u64) -> Option<u64> {
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
    auxv.chunks_exact(16)
        .map(|p| (word(&p[..8]), word(&p[8..])))
        .take_while(|&(k, _)| k != libc::AT_NULL)
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// Prepares `req` to run; the returned task's first instruction is the
/// program's (its interpreter's) entry point.
pub fn launch(hv: Arc<Hypervisor>, mut req: Request) -> Result<Task, LaunchError> {
    let reexec = req.exec_argv0.is_some();
    let (path, argv0) = match req.exec_argv0 {
        Some(argv0) => (req.program.into(), argv0),
        None => {
            let path_var = req
                .env
                .iter()
                .find_map(|e| e.as_bytes().strip_prefix(b"PATH=").map(OsStr::from_bytes));
            (resolve::find(&req.program, path_var)?, req.program)
        }
    };
    let mut argv = vec![argv0];
    argv.extend(req.args);
    let exe = resolve::executable(path, argv)?;

    let vm = Arc::new(Vm::new(hv.clone())?);
    let mut vcpu = vm.create_vcpu(req.xcr0)?;
    if req.options.cpuid.emulated() && !vcpu.cpuid_faulting_applies(&vm.memory)? {
        if !req.allow_unenforced {
            return Err(LaunchError::CpuidUnanswerable {
                kvm: hv.flavour.describe(),
            });
        }
        log::warn!(
            "this KVM cannot fault on CPUID: --cpuid={} is not applied, the program sees the KVM's CPUID",
            req.options.cpuid.to_arg()
        );
        req.options.cpuid = crate::cpuid::Policy::Host;
    }
    let probed = vcpu.probe(&vm.memory, 0)?;
    let xgetbv = probed.xgetbv;
    let report = ProbeReport {
        requested: req.xcr0,
        seen: probed,
    };
    let verdict = report.verdict(req.asked.then_some(req.xcr0), vmm::kvm::host_xcr0());
    if verdict == Verdict::Native {
        log::debug!(
            "XCR0 {} for the vCPU; the program sees the host's {xgetbv:#x}, as natively",
            req.xcr0
        );
    }
    if verdict == Verdict::Unenforced && !reexec {
        if !req.allow_unenforced {
            return Err(LaunchError::Unenforced {
                kvm: hv.flavour.describe(),
                requested: req.xcr0,
                seen: xgetbv,
            });
        }
        log::warn!(
            "XCR0 is not enforced by this KVM: requested {}, the program sees {:#x}",
            req.xcr0,
            xgetbv
        );
    }

    let cpu = cpu_facts(&hv, req.xcr0);
    let image = {
        let mut space = vm.memory.lock().expect("address space");
        let vdso = vmm::vdso::offer(&mut space, &probed.tsc);
        loader::load(&mut space, &exe, req.env, cpu, vdso)?
    };
    vcpu.start_user(image.entry, image.sp);
    crate::identity::present(exe.execfn.as_os_str(), &image);
    log::debug!(
        "entry {:#x} sp {:#x} brk {:#x}",
        image.entry,
        image.sp,
        image.brk
    );
    let exe_path = std::fs::canonicalize(&exe.path).unwrap_or(exe.path);
    let process = Process::new(
        vm,
        Brk::new(image.brk),
        Signals::inherited(),
        exe_path,
        req.options,
        req.finish,
    );
    Ok(Task::new(Thread::new(Arc::new(process), vcpu, true)))
}

#[cfg(test)]
mod tests {
    use super::auxv_value;

    #[test]
    fn auxv_values_are_found_up_to_at_null() {
        let words = [
            libc::AT_PAGESZ,
            4096,
            libc::AT_HWCAP,
            0x1f8b_fbff,
            libc::AT_NULL,
            0,
            99,
            1,
        ];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(auxv_value(&bytes, libc::AT_HWCAP), Some(0x1f8b_fbff));
        assert_eq!(auxv_value(&bytes, libc::AT_PAGESZ), Some(4096));
        assert_eq!(auxv_value(&bytes, 99), None, "past AT_NULL");
        assert_eq!(auxv_value(&[], libc::AT_HWCAP), None);
    }
}
