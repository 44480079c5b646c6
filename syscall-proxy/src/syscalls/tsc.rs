//! rdtsc trapping for the program (PR_SET_TSC, PR_GET_TSC), which rr needs
//! to record and replay: CR4.TSD in the thread's vCPU, so that RDTSC and
//! RDTSCP at CPL3 raise #GP and the program gets SIGSEGV, as under Linux.
//! Forwarded, the call would set the sandbox's own host thread's mode,
//! which is not the guest's (and would trap the sandbox's own clock).

use std::sync::OnceLock;

use crate::host::{Errno, SysResult};
use crate::thread::Thread;
use crate::umem;

/// Whether this KVM applies CR4.TSD to the guest's CPL3, probed once on a
/// spare vCPU of the program's VM.
static TSD_APPLIES: OnceLock<bool> = OnceLock::new();

fn tsd_applies(thread: &Thread) -> bool {
    *TSD_APPLIES.get_or_init(|| {
        let vm = &thread.process.vm;
        let applies = match vm.create_vcpu(thread.vcpu.xcr0()) {
            Ok(mut probe) => {
                let r = probe.tsd_applies(&vm.memory);
                vm.release_vcpu(probe);
                r.unwrap_or(false)
            }
            Err(_) => false,
        };
        log::debug!("CR4.TSD applies to the guest's CPL3: {applies}");
        applies
    })
}

/// PR_SET_TSC: PR_TSC_ENABLE or PR_TSC_SIGSEGV. Where the KVM cannot trap
/// the guest's rdtsc (PVM), trapping fails with EINVAL, as on a kernel
/// without the feature, never pretending (`-v` says why).
pub fn set(thread: &mut Thread, mode: u64) -> SysResult {
    let on = match mode as i32 {
        libc::PR_TSC_ENABLE => false,
        libc::PR_TSC_SIGSEGV => true,
        _ => return Err(Errno(libc::EINVAL)),
    };
    if on && !tsd_applies(thread) {
        // Quiet by default, as the kernel is: programs probe for it in a
        // loop (stress-ng's sigsegv stressor), and -v says why.
        log::debug!(
            "PR_SET_TSC: this KVM does not apply CR4.TSD to the program, so its rdtsc cannot be trapped: EINVAL"
        );
        return Err(Errno(libc::EINVAL));
    }
    thread.vcpu.set_tsc_trapping(on).map_err(|e| {
        log::error!("PR_SET_TSC: {e}");
        Errno(libc::EIO)
    })?;
    Ok(0)
}

/// PR_GET_TSC: the thread's mode, written to the int at `at`.
pub fn get(thread: &Thread, at: u64) -> SysResult {
    let mode = if thread.vcpu.tsc_trapping() {
        libc::PR_TSC_SIGSEGV
    } else {
        libc::PR_TSC_ENABLE
    };
    let space = thread.process.vm.memory.lock().expect("address space");
    umem::write(&space, at, mode).map(|_| 0)
}
