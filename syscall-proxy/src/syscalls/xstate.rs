//! The XSAVE calls of arch_prctl: mainline's permission calls
//! (ARCH_GET_XCOMP_SUPP, ARCH_GET_XCOMP_PERM, ARCH_REQ_XCOMP_PERM and their
//! _GUEST_ forms), answered for the task's XCR0 as Linux answers for the
//! CPU's, and the sandbox's ARCH_SET_XCR0 / ARCH_GET_XCR0 (the unmerged
//! patch's calls, per thread).

use vmm::xcr0::{AMX, TILEDATA, min_signal_stack_size, xsave_size};

use crate::host::{Errno, SysResult};
use crate::thread::Thread;
use crate::umem;

// arch/x86/include/uapi/asm/prctl.h: libc has none of these.
const ARCH_GET_XCOMP_SUPP: u64 = 0x1021;
const ARCH_GET_XCOMP_PERM: u64 = 0x1022;
const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
const ARCH_GET_XCOMP_GUEST_PERM: u64 = 0x1024;
const ARCH_REQ_XCOMP_GUEST_PERM: u64 = 0x1025;
// The sandbox's own codes for the unmerged patch's calls (0x1031 and
// 0x1032 are unused by mainline); the patch's ARCH_SET_XCR0 was 0x1021,
// which mainline gave ARCH_GET_XCOMP_SUPP (see --arch-prctl-compat).
const ARCH_SET_XCR0: u64 = 0x1031;
const ARCH_GET_XCR0: u64 = 0x1032;
const PATCH_SET_XCR0: u64 = 0x1021;

/// The components Linux enables for a process only on request
/// (XFEATURE_MASK_USER_DYNAMIC): AMX's tile data.
const DYNAMIC: u64 = TILEDATA;

/// What Linux keeps per process for the components it hands out on
/// request: inherited by fork, reset by exec (a re-executed sandbox starts
/// with none).
#[derive(Clone, Debug, Default)]
pub struct Permissions {
    /// Dynamic components granted (ARCH_REQ_XCOMP_PERM).
    pub granted: u64,
    /// The same for KVM guests the program makes (ARCH_REQ_XCOMP_GUEST_PERM).
    pub guest_granted: u64,
    /// Each thread's sigaltstack size: a permission whose signal frame
    /// would not fit one is refused (ENOSPC).
    pub altstacks: std::collections::HashMap<libc::pid_t, u64>,
}

/// The arch_prctl codes of this module; None for the others.
pub fn arch_prctl(thread: &mut Thread, a: [u64; 6]) -> Option<SysResult> {
    let code = if a[0] == PATCH_SET_XCR0 && thread.process.options.arch_prctl_compat {
        ARCH_SET_XCR0
    } else {
        a[0]
    };
    let xcr0 = thread.vcpu.xcr0().bits();
    let write = |value: u64| {
        let space = thread.process.vm.memory.lock().expect("address space");
        umem::write(&space, a[1], value).map(|_| 0)
    };
    let granted = |guest: bool| {
        let perms = thread.process.xcomp.lock().expect("xcomp");
        if guest {
            perms.guest_granted
        } else {
            perms.granted
        }
    };
    Some(match code {
        ARCH_SET_XCR0 => set_xcr0(thread, a[1]),
        ARCH_GET_XCR0 | ARCH_GET_XCOMP_SUPP => write(xcr0),
        ARCH_GET_XCOMP_PERM => write(permitted(xcr0, granted(false))),
        ARCH_GET_XCOMP_GUEST_PERM => write(permitted(xcr0, granted(true))),
        ARCH_REQ_XCOMP_PERM | ARCH_REQ_XCOMP_GUEST_PERM => {
            request(thread, a[1], code == ARCH_REQ_XCOMP_GUEST_PERM)
        }
        _ => return None,
    })
}

/// The components of `xcr0` a process may use: all but the dynamic ones,
/// and those it was granted.
pub fn permitted(xcr0: u64, granted: u64) -> u64 {
    xcr0 & (!DYNAMIC | granted)
}

/// The components a signal frame of `thread` holds, and their XSAVE size:
/// its XCR0 less the tile data until the thread has used them, as Linux
/// grows a task's buffer only at first use (xfd_enable_feature).
pub fn frame_features(thread: &Thread) -> (u64, u32) {
    let hv = &thread.process.vm.hv;
    let bits = thread.vcpu.xcr0().bits() & !(if thread.tiles_in_use { 0 } else { DYNAMIC });
    (bits, xsave_size(bits, |i| hv.xsave_component(i)))
}

/// The signal frame size Linux checks a sigaltstack against for a process
/// with `features` (sigaltstack_size_valid, validate_sigaltstack).
fn frame_size(thread: &Thread, features: u64) -> u64 {
    let hv = &thread.process.vm.hv;
    min_signal_stack_size(xsave_size(features, |i| hv.xsave_component(i)))
}

/// ARCH_REQ_XCOMP_PERM and ARCH_REQ_XCOMP_GUEST_PERM.
fn request(thread: &Thread, idx: u64, guest: bool) -> SysResult {
    let xcr0 = thread.vcpu.xcr0().bits();
    let mut perms = thread.process.xcomp.lock().expect("xcomp");
    let granted = if guest {
        perms.guest_granted
    } else {
        perms.granted
    };
    let frame = frame_size(thread, permitted(xcr0, granted | DYNAMIC));
    let altstacks = if guest {
        Vec::new()
    } else {
        perms.altstacks.values().copied().collect()
    };
    match decide_request(idx, xcr0, granted, frame, &altstacks) {
        Request::Host => {
            // Not a dynamic component: Linux answers EOPNOTSUPP below its
            // XFEATURE_MAX and EINVAL from there, which the host kernel
            // knows and the sandbox need not: it asks it. Nothing is
            // granted on such a request.
            // SAFETY: arch_prctl with integer arguments; see above.
            let r = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, idx) };
            if r == 0 {
                Ok(0)
            } else {
                Err(Errno(
                    std::io::Error::last_os_error()
                        .raw_os_error()
                        .unwrap_or(libc::EINVAL),
                ))
            }
        }
        Request::Refused(e) => Err(Errno(e)),
        Request::Granted(new) => {
            if guest {
                perms.guest_granted = new;
            } else {
                perms.granted = new;
            }
            Ok(0)
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// Not a component Linux hands out on request: the host's answer.
    Host,
    Refused(i32),
    /// Granted: the process's dynamic components from now on.
    Granted(u64),
}

/// xstate_request_perm (arch/x86/kernel/fpu/xstate.c) for a task with
/// `xcr0` in place of the CPU's features: AMX's two components are the
/// facility that can be asked for (both at once), EOPNOTSUPP where the
/// task's XCR0 lacks them, ENOSPC where a thread's sigaltstack cannot hold
/// the larger signal frame (`frame` bytes).
fn decide_request(idx: u64, xcr0: u64, granted: u64, frame: u64, altstacks: &[u64]) -> Request {
    if idx >= 64 || (1 << idx) & AMX == 0 {
        return Request::Host;
    }
    if xcr0 & AMX != AMX {
        return Request::Refused(libc::EOPNOTSUPP);
    }
    if granted & DYNAMIC == DYNAMIC {
        return Request::Granted(granted);
    }
    if altstacks.iter().any(|&size| size != 0 && size < frame) {
        return Request::Refused(libc::ENOSPC);
    }
    Request::Granted(granted | DYNAMIC)
}

/// What a #NM whose XFD_ERR says `xfd_err` means for a process granted
/// `granted` (handle_xfd_event, xfd_enable_feature).
#[derive(Debug, PartialEq, Eq)]
pub enum XfdEvent {
    /// Not XFD's: the exception is the CPU's own.
    NotXfd,
    /// Permitted: the thread may use the components from now on, and the
    /// instruction runs again.
    Enable,
    /// Used without ARCH_REQ_XCOMP_PERM: SIGILL (ILL_ILLOPC) at it.
    SigIll,
}

pub fn xfd_event(xfd_err: u64, granted: u64) -> XfdEvent {
    if xfd_err == 0 {
        XfdEvent::NotXfd
    } else if xfd_err & !granted == 0 {
        XfdEvent::Enable
    } else {
        XfdEvent::SigIll
    }
}

/// sigaltstack_size_valid: once a process may use a dynamic component, a
/// sigaltstack must be larger than the signal frame that could need it.
pub fn altstack_fits(thread: &Thread, perms: &Permissions, size: u64) -> bool {
    let xcr0 = thread.vcpu.xcr0().bits();
    if perms.granted & xcr0 & DYNAMIC == 0 {
        return true;
    }
    size > frame_size(thread, permitted(xcr0, perms.granted))
}

/// ARCH_SET_XCR0 as the patch defines it, for the calling thread only:
/// EINVAL for a value that breaks the architecture's rules, ENODEV for
/// components this KVM lacks, EPERM if a component being disabled is not
/// in its initial state; every bit set restores the program's default.
fn set_xcr0(thread: &mut Thread, value: u64) -> SysResult {
    let value = if value == u64::MAX {
        thread.process.options.default_xcr0
    } else {
        value
    };
    let new = vmm::Xcr0::new(value).map_err(|_| Errno(libc::EINVAL))?;
    if new.unsupported(thread.process.vm.hv.supported_xcr0()) != 0 {
        return Err(Errno(libc::ENODEV));
    }
    let old = thread.vcpu.xcr0();
    let disabled = old.bits() & !new.bits();
    if disabled != 0 {
        let xsave = thread.vcpu.xsave().map_err(|_| Errno(libc::EIO))?;
        if in_use(&xsave, disabled, |i| {
            thread.process.vm.hv.xsave_component(i)
        }) {
            return Err(Errno(libc::EPERM));
        }
    }
    thread.vcpu.set_xcr0(new).map_err(|e| {
        log::debug!("ARCH_SET_XCR0 {new}: {e}");
        Errno(libc::EINVAL)
    })?;
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    log::info!("thread {tid}: XCR0 {old} -> {new}");
    crate::trace::tracee::xcr0_changed(thread);
    Ok(0)
}

/// Whether any of the components `bits` (2 and up) is out of its initial
/// configuration in `xsave` (standard format): its XSTATE_BV bit set and
/// its bytes not all zero, the initial value of every such component. The
/// data, not XSTATE_BV alone: CPUs that do not track XINUSE (QEMU's TCG)
/// mark every enabled component in use; after VZEROUPPER the upper YMM
/// halves are zero either way.
fn in_use(xsave: &[u8], bits: u64, component: impl Fn(u32) -> (u32, u32)) -> bool {
    let bv = u64::from_le_bytes(xsave[512..520].try_into().expect("8 bytes"));
    (2..64).filter(|i| bits & bv & (1 << i) != 0).any(|i| {
        let (size, offset) = component(i);
        xsave
            .get(offset as usize..(offset + size) as usize)
            .is_none_or(|b| b.iter().any(|&x| x != 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMX_HOST: u64 = 0x600e7;

    #[test]
    fn tile_data_is_permitted_only_on_request() {
        assert_eq!(
            permitted(AMX_HOST, 0),
            0x200e7,
            "as natively on the AMX host"
        );
        assert_eq!(permitted(AMX_HOST, TILEDATA), AMX_HOST);
        assert_eq!(permitted(0x207, 0), 0x207);
        assert_eq!(permitted(0x3, TILEDATA), 0x3, "never beyond the XCR0");
    }

    #[test]
    fn a_first_use_of_tile_data_is_allowed_only_with_permission() {
        assert_eq!(xfd_event(0, TILEDATA), XfdEvent::NotXfd);
        assert_eq!(xfd_event(TILEDATA, TILEDATA), XfdEvent::Enable);
        assert_eq!(xfd_event(TILEDATA, 0), XfdEvent::SigIll);
    }

    #[test]
    fn requests_follow_linux() {
        // Only AMX can be asked for; anything else is the host kernel's
        // answer (EOPNOTSUPP or EINVAL by its XFEATURE_MAX).
        assert_eq!(decide_request(2, AMX_HOST, 0, 0, &[]), Request::Host);
        assert_eq!(decide_request(64, AMX_HOST, 0, 0, &[]), Request::Host);
        assert_eq!(decide_request(u64::MAX, AMX_HOST, 0, 0, &[]), Request::Host);
        // Either AMX index grants the tile data.
        for idx in [17, 18] {
            assert_eq!(
                decide_request(idx, AMX_HOST, 0, 11952, &[]),
                Request::Granted(TILEDATA)
            );
            // A task whose XCR0 has no AMX: as on a CPU without it.
            assert_eq!(
                decide_request(idx, 0xe7, 0, 11952, &[]),
                Request::Refused(libc::EOPNOTSUPP)
            );
        }
        // A thread's sigaltstack too small for the new frame: ENOSPC,
        // unless the permission is there already.
        assert_eq!(
            decide_request(18, AMX_HOST, 0, 11952, &[0, 8192]),
            Request::Refused(libc::ENOSPC)
        );
        assert_eq!(
            decide_request(18, AMX_HOST, 0, 11952, &[0, 16384]),
            Request::Granted(TILEDATA)
        );
        assert_eq!(
            decide_request(18, AMX_HOST, TILEDATA, 11952, &[8192]),
            Request::Granted(TILEDATA)
        );
    }
}
