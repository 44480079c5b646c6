//! /proc/self/exe names the sandbox on the host; for the program it must
//! name the program (ld.so resolves $ORIGIN with it, programs re-execute
//! themselves through it). Calls that take that path get the program's
//! executable instead.

use std::ffi::CString;
use std::io::Write;
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
    // Only a numeric /proc entry needs the pid, a host system call.
    path.strip_prefix(b"/proc/")
        .and_then(|p| p.strip_suffix(b"/exe"))
        .filter(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
        .is_some_and(is_this_process)
}

/// Whether `pid`, a /proc entry's name, is this process's.
fn is_this_process(pid: &[u8]) -> bool {
    // SAFETY: getpid has no preconditions.
    pid == unsafe { libc::getpid() }.to_string().as_bytes()
}

/// The argument that is a path, for the calls that honour the alias: those
/// that follow a final symlink. The others (lstat, O_NOFOLLOW,
/// AT_SYMLINK_NOFOLLOW) act on /proc/self/exe itself, which natively too is
/// a symlink, and go through as they are; readlink reads it.
pub fn exe_path_arg(nr: i64, a: &[u64; 6]) -> Option<usize> {
    let follows = |flags: u64| flags as i32 & libc::AT_SYMLINK_NOFOLLOW == 0;
    let opens_target = |flags: u64| flags as i32 & libc::O_NOFOLLOW == 0;
    match nr {
        libc::SYS_readlink | libc::SYS_stat | libc::SYS_access => Some(0),
        libc::SYS_open if opens_target(a[1]) => Some(0),
        libc::SYS_readlinkat | libc::SYS_faccessat => Some(1),
        libc::SYS_openat if opens_target(a[2]) => Some(1),
        libc::SYS_newfstatat | libc::SYS_faccessat2 if follows(a[3]) => Some(1),
        libc::SYS_statx if follows(a[2]) => Some(1),
        _ => None,
    }
}

/// Longer than any alias: "/proc/thread-self/exe", or "/proc/<pid>/exe"
/// with the longest pid (PID_MAX_LIMIT, 4194304), and the NUL.
const ALIAS_MAX: usize = 24;

/// Whether the string at `addr` is an alias: its first ALIAS_MAX bytes
/// tell, read at once where they are all readable program memory (one
/// host system call whatever the path's length). Unreadable: no alias,
/// and the call's own checks report it.
fn is_alias_at(thread: &Thread, addr: u64) -> bool {
    let space = thread.process.vm.memory.lock().expect("address space");
    let mut head = [0u8; ALIAS_MAX];
    if space.program_can_access(addr, ALIAS_MAX as u64, false)
        && umem::read_bytes(&space, addr, &mut head).is_ok()
    {
        head.iter()
            .position(|&b| b == 0)
            .is_some_and(|n| is_exe_alias(&head[..n]))
    } else {
        // Near the end of what can be read: up to the NUL, if it is there.
        umem::read_cstr(&space, addr, ALIAS_MAX as u64).is_ok_and(|p| is_exe_alias(&p))
    }
}

/// Performs `nr` with the program's executable in place of an alias at
/// argument `i`; other calls go through unchanged.
pub fn with_exe_alias(thread: &Thread, nr: i64, a: [u64; 6], i: usize, spec: &[Arg]) -> SysResult {
    if !is_alias_at(thread, a[i]) {
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

/// Whether an open with `flags` can give a descriptor that reads or writes
/// a mem file. O_DIRECTORY fails on one; an O_PATH descriptor reads and
/// writes nothing, and reopening it goes through /proc/self/fd, an open
/// looked at in turn. Such opens (most of a directory walk's) need no look.
pub fn may_open_mem(flags: u64) -> bool {
    flags as i32 & (libc::O_DIRECTORY | libc::O_PATH) == 0
}

/// After an open: the program's own /proc/<pid>/mem would reach the whole
/// host process, the sandbox and the guest page tables included. Natively
/// it reaches only the program; here it is refused.
pub fn refuse_own_mem(fd: u64) -> SysResult {
    let mut buf = [0u8; MEM_LINK_MAX];
    let Some(link) = fd_link(fd, &mut buf).filter(|l| is_own_mem(l)) else {
        return Ok(fd);
    };
    log::debug!("refused an open of {}", String::from_utf8_lossy(link));
    // SAFETY: closes the descriptor the refused open just created.
    unsafe { libc::close(fd as i32) };
    Err(Errno(libc::EACCES))
}

/// Longer than any name of a mem file: "/proc/<pid>/task/<tid>/mem" with
/// the longest ids (PID_MAX_LIMIT, 4194304).
const MEM_LINK_MAX: usize = 48;

/// What descriptor `fd` names, if it fits in `buf` (a longer name is no
/// mem file's): one readlink, without allocating.
fn fd_link(fd: u64, buf: &mut [u8]) -> Option<&[u8]> {
    let mut path = [0u8; 32];
    write!(&mut path[..], "/proc/self/fd/{fd}\0").ok()?;
    // SAFETY: `path` is NUL-terminated and readlink writes at most
    // `buf.len()` bytes into `buf`.
    let n = unsafe { libc::readlink(path.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).ok().filter(|&n| n < buf.len())?;
    Some(&buf[..n])
}

/// Whether `link` is this process's mem file or one of its threads'.
fn is_own_mem(link: &[u8]) -> bool {
    let Some((pid, file)) = link
        .strip_prefix(b"/proc/")
        .and_then(|rest| Some(rest.split_at(rest.iter().position(|&c| c == b'/')?)))
    else {
        return false;
    };
    let mem = file == b"/mem"
        || file
            .strip_prefix(b"/task/")
            .and_then(|t| t.strip_suffix(b"/mem"))
            .is_some_and(|tid| !tid.contains(&b'/'));
    mem && is_this_process(pid)
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
        assert!(!is_exe_alias(b"/proc//exe"));
        assert!(!is_exe_alias(b"/proc/1x/exe"));
    }

    #[test]
    fn only_this_processs_mem_files_are_refused() {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        for ok in [
            format!("/proc/{pid}/mem"),
            format!("/proc/{pid}/task/7/mem"),
        ] {
            assert!(is_own_mem(ok.as_bytes()), "{ok}");
        }
        for other in [
            format!("/proc/{}/mem", pid + 1),
            format!("/proc/{pid}/maps"),
            format!("/proc/{pid}/task/7/x/mem"),
            format!("/proc/{pid}/task/mem"),
            "/tmp/mem".to_string(),
        ] {
            assert!(!is_own_mem(other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn a_descriptors_name_is_read_without_allocating() {
        let f = std::fs::File::open("/proc/self/mem").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f) as u64;
        let mut buf = [0u8; MEM_LINK_MAX];
        let link = fd_link(fd, &mut buf).expect("a short name");
        assert!(is_own_mem(link), "{}", String::from_utf8_lossy(link));
        let mut tiny = [0u8; 4];
        assert_eq!(fd_link(fd, &mut tiny), None, "too long for the buffer");
    }
}
