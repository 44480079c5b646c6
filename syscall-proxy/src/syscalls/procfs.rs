//! /proc/self/exe names the sandbox on the host; for the program it must
//! name the program (ld.so resolves $ORIGIN with it, programs re-execute
//! themselves through it). Calls that take that path get the program's
//! executable instead.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use super::args::Arg;
use super::{check, checked};
use crate::host::{Errno, SysResult};
use crate::thread::Thread;
use crate::umem;

/// Whether `path` is one of the names of the running program's executable.
pub fn is_exe_alias(path: &[u8]) -> bool {
    if path == b"/proc/self/exe" || path == b"/proc/thread-self/exe" {
        return true;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    path == format!("/proc/{pid}/exe").as_bytes()
}

/// The argument that is a path, for the calls that honour the alias.
pub fn exe_path_arg(nr: i64) -> Option<usize> {
    match nr {
        libc::SYS_readlink
        | libc::SYS_open
        | libc::SYS_stat
        | libc::SYS_lstat
        | libc::SYS_access => Some(0),
        libc::SYS_readlinkat
        | libc::SYS_openat
        | libc::SYS_newfstatat
        | libc::SYS_statx
        | libc::SYS_faccessat
        | libc::SYS_faccessat2 => Some(1),
        _ => None,
    }
}

/// The NUL-terminated path at `addr`, if it is readable program memory.
fn path_at(thread: &Thread, addr: u64) -> Option<Vec<u8>> {
    let space = thread.process.vm.memory.lock().expect("address space");
    umem::read_cstr(&space, addr, libc::PATH_MAX as u64).ok()
}

/// Performs `nr` with the program's executable in place of an alias at
/// argument `i`; other calls go through unchanged.
pub fn with_exe_alias(thread: &Thread, nr: i64, a: [u64; 6], i: usize, spec: &[Arg]) -> SysResult {
    let is_alias = path_at(thread, a[i]).is_some_and(|p| is_exe_alias(&p));
    if !is_alias {
        return checked(thread, nr, a, spec, None);
    }
    let exe = thread.process.exe.as_os_str().as_bytes();
    if nr == libc::SYS_readlink || nr == libc::SYS_readlinkat {
        let (buf, size) = (a[i + 1], a[i + 2]);
        if (size as i64) <= 0 {
            return Err(Errno(libc::EINVAL));
        }
        let n = exe.len().min(size as usize);
        {
            let space = thread.process.vm.memory.lock().expect("address space");
            check::check(
                &space,
                &[buf, n as u64, 0, 0, 0, 0],
                Arg::W(0, super::args::Len::Arg(1)),
            )?;
        }
        // SAFETY: [buf, buf + n) is writable program memory, checked above.
        unsafe { std::ptr::copy_nonoverlapping(exe.as_ptr(), buf as *mut u8, n) };
        return Ok(n as u64);
    }
    // Check the program's own arguments, then let the kernel read the
    // substitute path from the sandbox's memory.
    {
        let space = thread.process.vm.memory.lock().expect("address space");
        check::check_all(&space, &a, spec)?;
    }
    let path = CString::new(exe).map_err(|_| Errno(libc::ENOENT))?;
    let mut b = a;
    b[i] = path.as_ptr() as u64;
    // SAFETY: the same call with one path replaced by a valid C string that
    // outlives it; the other pointers were checked above.
    unsafe { crate::host::syscall(nr as u64, b) }
}

/// After an open: the program's own /proc/<pid>/mem would reach the whole
/// host process, the sandbox and the guest page tables included. Natively
/// it reaches only the program; here it is refused.
pub fn refuse_own_mem(fd: u64) -> SysResult {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let l = link.as_os_str().as_bytes();
    let mem = l
        .strip_prefix(format!("/proc/{pid}/").as_bytes())
        .is_some_and(|rest| {
            rest == b"mem"
                || (rest.starts_with(b"task/")
                    && rest.ends_with(b"/mem")
                    && rest.iter().filter(|&&c| c == b'/').count() == 2)
        });
    if mem {
        // SAFETY: closes the descriptor the refused open just created.
        unsafe { libc::close(fd as i32) };
        log::debug!("refused an open of {}", link.display());
        return Err(Errno(libc::EACCES));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_of_the_running_executable() {
        assert!(is_exe_alias(b"/proc/self/exe"));
        assert!(is_exe_alias(b"/proc/thread-self/exe"));
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        assert!(is_exe_alias(format!("/proc/{pid}/exe").as_bytes()));
        assert!(!is_exe_alias(format!("/proc/{}/exe", pid + 1).as_bytes()));
        assert!(!is_exe_alias(b"/proc/self/exe/"));
    }
}
