//! Resource limits the program sees differently from the sandbox.
//!
//! RLIMIT_CORE: the sandbox must never leave a core file (it would be the
//! sandbox's, hundreds of MiB, not the program's), so the host limit is 0
//! while the program sees and sets the limit it inherited.

use std::sync::Mutex;

use crate::host::Errno;

static CORE_VIEW: Mutex<Option<libc::rlimit>> = Mutex::new(None);

/// `resource`'s limits as they are now.
pub fn current(resource: libc::__rlimit_resource_t) -> Option<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a struct we own.
    (unsafe { libc::getrlimit(resource, &mut r) } == 0).then_some(r)
}

/// Takes the inherited RLIMIT_CORE as the program's, and sets the host's
/// soft limit to 0. Call once, before the program runs.
pub fn init() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_CORE, &mut r) == 0 {
            *CORE_VIEW.lock().expect("rlimit view") = Some(r);
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: r.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
        }
    }
}

/// The RLIMIT_CORE the program sees, if emulated.
pub fn core_view() -> Option<libc::rlimit> {
    *CORE_VIEW.lock().expect("rlimit view")
}

/// In a sandbox executed by the sandbox: the view the program had (the
/// host limit is the sandbox's 0 by now).
pub fn carry_core_view(cur: u64, max: u64) {
    *CORE_VIEW.lock().expect("rlimit view") = Some(libc::rlimit {
        rlim_cur: cur,
        rlim_max: max,
    });
}

/// Whether prlimit64(pid, resource, ..) is answered from the program's
/// view rather than by the host.
pub fn emulated(pid: u64, resource: u64) -> bool {
    // SAFETY: getpid has no preconditions.
    let me = pid == 0 || pid as i32 == unsafe { libc::getpid() };
    me && resource == libc::RLIMIT_CORE as u64 && CORE_VIEW.lock().expect("rlimit view").is_some()
}

/// prlimit64 on the program's RLIMIT_CORE (see `emulated`): sets `new` if
/// given and returns the previous value.
pub fn prlimit_core(new: Option<libc::rlimit>) -> Result<libc::rlimit, Errno> {
    let mut view = CORE_VIEW.lock().expect("rlimit view");
    let old = view.ok_or(Errno(libc::EINVAL))?;
    if let Some(n) = new {
        if n.rlim_cur > n.rlim_max {
            return Err(Errno(libc::EINVAL));
        }
        // SAFETY: geteuid has no preconditions.
        if n.rlim_max > old.rlim_max && unsafe { libc::geteuid() } != 0 {
            return Err(Errno(libc::EPERM));
        }
        *view = Some(n);
    }
    Ok(old)
}
