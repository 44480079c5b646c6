//! execve(2) and execveat(2) inside the sandbox: the task stays on its vCPU
//! (same XCR0) and a new program image replaces the old one, as the kernel's
//! begin_new_exec does: mappings, signal handlers, close-on-exec descriptors
//! and CPU state go; the descriptor table, signal mask, ignored signals and
//! the process stay.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use vmm::{AddressSpace, fds};

use crate::host::Errno;
use crate::launch::cpu_facts;
use crate::loader::{self, elf, resolve};
use crate::mm::{self, Brk};
use crate::syscalls::procfs;
use crate::task::Task;
use crate::umem;

/// Longest argv + envp accepted (the kernel's limit is a quarter of the
/// stack rlimit; the loader checks that too).
const MAX_STRINGS: u64 = 2 << 20;

/// What the task does after execve.
pub enum ExecResult {
    /// The call failed before the point of no return: the old program
    /// continues and sees this errno.
    Failed(Errno),
    /// The new program is in place; the vCPU starts at its entry point.
    Replaced,
    /// The old image was gone when loading the new one failed: the process
    /// dies by SIGSEGV, as Linux kills it past the point of no return.
    Lost,
}

fn read_cstr(space: &AddressSpace, addr: u64, budget: &mut u64) -> Result<OsString, Errno> {
    let s = umem::read_cstr(space, addr, *budget).map_err(|e| match e.0 {
        libc::ENAMETOOLONG => Errno(libc::E2BIG),
        _ => e,
    })?;
    *budget = budget
        .checked_sub(s.len() as u64 + 1)
        .ok_or(Errno(libc::E2BIG))?;
    Ok(OsString::from_vec(s))
}

/// A NULL-terminated array of string pointers (argv, envp); NULL is empty.
fn read_strings(space: &AddressSpace, addr: u64, budget: &mut u64) -> Result<Vec<OsString>, Errno> {
    let mut v = Vec::new();
    if addr == 0 {
        return Ok(v);
    }
    for i in 0.. {
        let p = umem::read::<u64>(space, addr + 8 * i)?;
        if p == 0 {
            break;
        }
        *budget = budget.checked_sub(8).ok_or(Errno(libc::E2BIG))?;
        v.push(read_cstr(space, p, budget)?);
    }
    Ok(v)
}

/// The path execveat means by (dirfd, path, flags).
fn at_path(dirfd: i32, path: OsString, flags: i32) -> Result<PathBuf, Errno> {
    if flags & !(libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) != 0 {
        return Err(Errno(libc::EINVAL));
    }
    if fds::is_parked(i64::from(dirfd)) {
        return Err(Errno(libc::EBADF));
    }
    if path.is_empty() {
        if flags & libc::AT_EMPTY_PATH == 0 {
            return Err(Errno(libc::ENOENT));
        }
        return Ok(PathBuf::from(format!("/proc/self/fd/{dirfd}")));
    }
    if path.as_bytes().starts_with(b"/") || dirfd == libc::AT_FDCWD {
        return Ok(PathBuf::from(path));
    }
    Ok(PathBuf::from(format!("/proc/self/fd/{dirfd}")).join(path))
}

/// execve (nr SYS_execve) or execveat (SYS_execveat) for `task`.
pub fn execve(task: &mut Task, nr: i64, a: [u64; 6]) -> ExecResult {
    match prepare(task, nr, a) {
        Ok((exe, envp)) => replace(task, exe, envp),
        Err(e) => ExecResult::Failed(e),
    }
}

/// Everything that can fail with an errno, before anything is torn down.
fn prepare(
    task: &Task,
    nr: i64,
    a: [u64; 6],
) -> Result<(resolve::Executable, Vec<OsString>), Errno> {
    let (dirfd, path_ptr, argv_ptr, envp_ptr, flags) = if nr == libc::SYS_execveat {
        (a[0] as i32, a[1], a[2], a[3], a[4] as i32)
    } else {
        (libc::AT_FDCWD, a[0], a[1], a[2], 0)
    };
    let (path, argv, envp) = {
        let space = task.vm.memory.lock().expect("address space");
        let mut budget = MAX_STRINGS;
        let path = read_cstr(&space, path_ptr, &mut budget)?;
        let argv = read_strings(&space, argv_ptr, &mut budget)?;
        let envp = read_strings(&space, envp_ptr, &mut budget)?;
        (path, argv, envp)
    };
    let path = if procfs::is_exe_alias(path.as_bytes()) {
        task.exe.clone()
    } else {
        at_path(dirfd, path, flags)?
    };
    let exe = resolve::executable(path, argv).map_err(|e| Errno(e.errno()))?;
    // A missing interpreter is ENOENT before the point of no return.
    if let Some(interp) = elf::interpreter(&exe.path).map_err(|_| Errno(libc::ENOEXEC))? {
        resolve::check_interpreter(OsStr::new(&interp)).map_err(|e| Errno(e.errno()))?;
    }
    Ok((exe, envp))
}

/// Past the point of no return: drop the old image, load the new one.
fn replace(task: &mut Task, exe: resolve::Executable, envp: Vec<OsString>) -> ExecResult {
    let vm = task.vm.clone();
    let mut space = vm.memory.lock().expect("address space");
    let old: Vec<(u64, u64)> = space.program().iter().map(|(s, e, _)| (s, e)).collect();
    for (s, e) in old {
        if let Err(err) = mm::munmap(&mut space, s, e - s) {
            log::error!("exec: unmapping {s:#x}-{e:#x}: {err:?}");
            return ExecResult::Lost;
        }
    }
    task.signals.reset_for_exec();
    close_on_exec();
    let cpu = cpu_facts(&vm.hv, task.vcpu.xcr0());
    let image = match loader::load(&mut space, &exe, envp, cpu) {
        Ok(image) => image,
        Err(e) => {
            log::warn!("exec {}: {e}", exe.path.display());
            return ExecResult::Lost;
        }
    };
    drop(space);
    crate::identity::present(exe.execfn.as_os_str(), &image);
    task.brk = Brk::new(image.brk);
    task.exe = std::fs::canonicalize(&exe.path).unwrap_or(exe.path.clone());
    if let Err(e) = task.vcpu.reset_for_exec(image.entry, image.sp) {
        log::error!("exec: resetting the vCPU: {e}");
        return ExecResult::Lost;
    }
    log::debug!(
        "exec {}: entry {:#x} sp {:#x}",
        exe.path.display(),
        image.entry,
        image.sp
    );
    ExecResult::Replaced
}

/// Closes the program's close-on-exec descriptors (the host kernel would
/// only on a real exec, which the sandbox never does).
fn close_on_exec() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fds::is_parked(i64::from(fd)) {
            continue;
        }
        // SAFETY: F_GETFD reads flags; close drops a program descriptor the
        // program marked close-on-exec. The listing's own descriptor is
        // closed already and fails F_GETFD.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
                libc::close(fd);
            }
        }
    }
}
