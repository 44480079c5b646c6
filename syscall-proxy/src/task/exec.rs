//! execve(2) and execveat(2) inside the sandbox. The new program needs
//! a fresh address space, which only the kernel's own execve gives a
//! process, so the sandbox executes itself again (/proc/self/exe) with the
//! new program, the thread's XCR0 and the options it runs with. The kernel
//! does the rest as for any exec: the pid stays, other threads end,
//! close-on-exec descriptors close (the sandbox's own among them), handlers
//! revert to the default while ignored signals and the signal mask stay.
//!
//! Every error execve would return before its point of no return is found
//! first, so a failed call leaves the caller running with the right errno.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use vmm::fds;

use crate::host::Errno;
use crate::limits;
use crate::loader::{elf, resolve, room};
use crate::perf::rusage;
use crate::seccomp;
use crate::signals::arrival;
use crate::syscalls::procfs;
use crate::task::process::Outcome;
use crate::thread::Thread;
use crate::trace::tracee;
use crate::umem::PageReader;

/// Longest argv + envp accepted (the kernel's limit is a quarter of the
/// stack rlimit; the loader checks that too).
const MAX_STRINGS: u64 = 2 << 20;

/// What a re-executed sandbox carries over from the one that executed it,
/// as one command-line word (`--reexec=`): the sandbox's stderr, the
/// RLIMIT_CORE the program sees, whether to report `--stats`, the
/// program's default XCR0, whether arch_prctl follows the patch, and the
/// /dev/kvm descriptor (a program that dropped its privileges could not
/// open it again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried {
    pub report_fd: Option<i32>,
    pub kvm_fd: Option<i32>,
    pub core: Option<(u64, u64)>,
    pub stats: bool,
    pub default_xcr0: u64,
    pub arch_prctl_compat: bool,
    /// The program's tracing, if a sandboxed tracer traces it.
    pub trace: Option<tracee::Carried>,
    /// rdtsc trapping, which an exec keeps (PR_SET_TSC).
    pub tsc_trapping: bool,
    /// The memfd holding the program's seccomp filters, which an exec
    /// keeps.
    pub seccomp_fd: Option<i32>,
    /// Whether the program counts its page faults (perf::faults), which
    /// an exec keeps counting.
    pub faults_counted: bool,
    /// The faults taken again so far, which the host's rusage keeps
    /// across the exec (perf::rusage).
    pub faults_taken: rusage::Carried,
    /// The ledger of faults taken again (perf::ledger), which the
    /// program's processes share.
    pub ledger_fd: Option<i32>,
    /// What the sandbox changed to execute itself out of a native
    /// layout's way (loader::room), to be put back.
    pub room: Option<room::Room>,
}

impl Carried {
    pub fn to_arg(self) -> String {
        let fd = |f: Option<i32>| f.map_or("-".to_string(), |f| f.to_string());
        let core = self
            .core
            .map_or("-".to_string(), |(c, m)| format!("{c:x}/{m:x}"));
        let trace = self.trace.map_or("-".to_string(), |t| {
            format!(
                "{:x}/{:x}/{}/{}",
                t.options,
                t.mode,
                u8::from(t.seized),
                t.former_tid
            )
        });
        let room = self.room.map_or("-".to_string(), |r| r.to_word());
        format!(
            "{},{},{core},{},{:x},{},{trace},{},{},{},{:x}/{:x}/{:x},{},{room}",
            fd(self.report_fd),
            fd(self.kvm_fd),
            u8::from(self.stats),
            self.default_xcr0,
            u8::from(self.arch_prctl_compat),
            u8::from(self.tsc_trapping),
            fd(self.seccomp_fd),
            u8::from(self.faults_counted),
            self.faults_taken.process,
            self.faults_taken.children,
            self.faults_taken.thread,
            fd(self.ledger_fd),
        )
    }

    pub fn parse(s: &str) -> Option<Carried> {
        let mut it = s.split(',');
        let fd = |w: &str| match w {
            "-" => Some(None),
            f => Some(Some(f.parse().ok()?)),
        };
        let report_fd = fd(it.next()?)?;
        let kvm_fd = fd(it.next()?)?;
        let core = match it.next()? {
            "-" => None,
            c => {
                let (cur, max) = c.split_once('/')?;
                Some((
                    u64::from_str_radix(cur, 16).ok()?,
                    u64::from_str_radix(max, 16).ok()?,
                ))
            }
        };
        let flag = |w: &str| match w {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        };
        let stats = flag(it.next()?)?;
        let default_xcr0 = u64::from_str_radix(it.next()?, 16).ok()?;
        let arch_prctl_compat = flag(it.next()?)?;
        let trace = match it.next()? {
            "-" => None,
            t => {
                let mut words = t.split('/');
                let mut hex = || u32::from_str_radix(words.next()?, 16).ok();
                let (options, mode, seized) = (hex()?, hex()?, hex()?);
                let former_tid = words.next()?.parse().ok()?;
                Some(tracee::Carried {
                    options,
                    mode,
                    seized: seized != 0,
                    former_tid,
                })
            }
        };
        let tsc_trapping = flag(it.next()?)?;
        let seccomp_fd = fd(it.next()?)?;
        let faults_counted = flag(it.next()?)?;
        let faults_taken = {
            let mut words = it.next()?.split('/');
            let mut hex = || u64::from_str_radix(words.next()?, 16).ok();
            let taken = rusage::Carried {
                process: hex()?,
                children: hex()?,
                thread: hex()?,
            };
            words.next().is_none().then_some(taken)?
        };
        let ledger_fd = fd(it.next()?)?;
        let room = match it.next()? {
            "-" => None,
            r => Some(room::Room::parse(r)?),
        };
        it.next().is_none().then_some(Carried {
            report_fd,
            kvm_fd,
            core,
            stats,
            default_xcr0,
            arch_prctl_compat,
            trace,
            tsc_trapping,
            seccomp_fd,
            faults_counted,
            faults_taken,
            ledger_fd,
            room,
        })
    }
}

fn read_cstr(mem: &mut PageReader, addr: u64, budget: &mut u64) -> Result<OsString, Errno> {
    let s = mem.read_cstr(addr, *budget).map_err(|e| match e.0 {
        libc::ENAMETOOLONG => Errno(libc::E2BIG),
        _ => e,
    })?;
    *budget = budget
        .checked_sub(s.len() as u64 + 1)
        .ok_or(Errno(libc::E2BIG))?;
    Ok(OsString::from_vec(s))
}

/// A NULL-terminated array of string pointers (argv, envp); NULL is empty.
fn read_strings(mem: &mut PageReader, addr: u64, budget: &mut u64) -> Result<Vec<OsString>, Errno> {
    let mut v = Vec::new();
    if addr == 0 {
        return Ok(v);
    }
    for i in 0.. {
        let p = mem.read_u64(addr + 8 * i)?;
        if p == 0 {
            break;
        }
        *budget = budget.checked_sub(8).ok_or(Errno(libc::E2BIG))?;
        v.push(read_cstr(mem, p, budget)?);
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
        return Ok(fd_path(dirfd));
    }
    if path.as_bytes().starts_with(b"/") || dirfd == libc::AT_FDCWD {
        return Ok(PathBuf::from(path));
    }
    Ok(fd_path(dirfd).join(path))
}

/// What descriptor `fd` names, as a path that outlives the exec (the
/// descriptor may be close-on-exec); its /proc/self/fd link where the file
/// has no name any more.
fn fd_path(fd: i32) -> PathBuf {
    let link = PathBuf::from(format!("/proc/self/fd/{fd}"));
    match std::fs::read_link(&link) {
        Ok(p) if p.is_absolute() && p.exists() => p,
        _ => link,
    }
}

/// execve (nr SYS_execve) or execveat (SYS_execveat) for `thread`: returns
/// only if it failed.
pub fn execve(thread: &mut Thread, nr: i64, a: [u64; 6]) -> Errno {
    match prepare(thread, nr, a) {
        Ok((path, argv, envp)) => reexec(thread, path, argv, envp),
        Err(e) => e,
    }
}

/// Everything that can fail with an errno, before anything is torn down:
/// the path to execute, argv and envp.
fn prepare(
    thread: &Thread,
    nr: i64,
    a: [u64; 6],
) -> Result<(PathBuf, Vec<OsString>, Vec<OsString>), Errno> {
    let (dirfd, path_ptr, argv_ptr, envp_ptr, flags) = if nr == libc::SYS_execveat {
        (a[0] as i32, a[1], a[2], a[3], a[4] as i32)
    } else {
        (libc::AT_FDCWD, a[0], a[1], a[2], 0)
    };
    let (path, argv, envp) = {
        let space = thread.process.vm.memory.lock().expect("address space");
        // A page at a time: argv and the environment are mostly on a few.
        let mem = &mut PageReader::new(&space);
        let mut budget = MAX_STRINGS;
        let path = read_cstr(mem, path_ptr, &mut budget)?;
        let argv = read_strings(mem, argv_ptr, &mut budget)?;
        let envp = read_strings(mem, envp_ptr, &mut budget)?;
        (path, argv, envp)
    };
    let path = match procfs::exe_alias(path.as_bytes()) {
        Some(procfs::Alias::Own) => thread.process.exe.clone(),
        Some(procfs::Alias::Other(other)) => other,
        None => at_path(dirfd, path, flags)?,
    };
    let exe = resolve::executable(path.clone(), argv.clone()).map_err(|e| Errno(e.errno()))?;
    // A missing interpreter is ENOENT before the point of no return.
    if let Some(interp) = elf::interpreter(&exe.path).map_err(|_| Errno(libc::ENOEXEC))? {
        resolve::check_interpreter(OsStr::new(&interp)).map_err(|e| Errno(e.errno()))?;
    }
    Ok((path, argv, envp))
}

/// Whether the kernel's execve finds room for `argv`, `envp` and the
/// path it is given (/proc/self/exe) on the new stack (bprm_stack_limits,
/// copy_strings): known before the sandbox gives anything up.
fn fits_stack(argv: &[CString], envp: &[CString]) -> bool {
    // _STK_LIM / 4 * 3, and ARG_MAX: 32 pages whatever the stack limit.
    const MOST: u64 = (8 << 20) / 4 * 3;
    const LEAST: u64 = 32 * 4096;
    // MAX_ARG_STRLEN.
    const LONGEST: usize = 32 * 4096;
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut r) } != 0 {
        return true;
    }
    let limit = MOST.min(r.rlim_cur / 4).max(LEAST);
    let pointers = (argv.len().max(1) + envp.len()) as u64 * 8;
    let strings = || argv.iter().chain(envp).map(|s| s.as_bytes_with_nul().len());
    if strings().any(|n| n > LONGEST) {
        return false;
    }
    // The path is copied too, and the stack's top word is kept.
    let bytes =
        strings().sum::<usize>() as u64 + c"/proc/self/exe".to_bytes_with_nul().len() as u64;
    pointers < limit && bytes + 8 <= limit - pointers
}

fn cstring(s: impl Into<Vec<u8>>) -> Result<CString, Errno> {
    // Strings read up to their NUL have none inside.
    CString::new(s).map_err(|_| Errno(libc::EINVAL))
}

/// Executes the sandbox itself on `path` with `argv` and `envp`.
fn reexec(thread: &Thread, path: PathBuf, argv: Vec<OsString>, envp: Vec<OsString>) -> Errno {
    if arrival::pending() {
        // A signal waits to be delivered (a handler's, or a stop a tracer
        // carried in): the new image would lose it and start with every
        // signal blocked. Delivered first, then the call is made again
        // (ERESTARTNOINTR, deliver.rs).
        return Errno(libc::EINTR);
    }
    let options = &thread.process.options;
    let kvm_fd = thread.process.vm.hv.kvm.as_raw_fd();
    let seccomp_fd = match seccomp::carry(thread) {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!("exec: cannot carry the seccomp filters: {e}");
            return Errno(libc::ENOMEM);
        }
    };
    let carried = Carried {
        report_fd: options.report_fd,
        kvm_fd: Some(kvm_fd),
        core: limits::core_view().map(|r| (r.rlim_cur, r.rlim_max)),
        stats: options.stats,
        default_xcr0: options.default_xcr0,
        arch_prctl_compat: options.arch_prctl_compat,
        trace: tracee::carried(),
        tsc_trapping: thread.vcpu.tsc_trapping(),
        seccomp_fd,
        faults_counted: thread.process.faults_counted(),
        faults_taken: rusage::carried(thread),
        ledger_fd: crate::perf::ledger::fd(),
        room: room::wanted(),
    };
    let mut words: Vec<Vec<u8>> = vec![
        b"xcr0-sandbox".to_vec(),
        format!("--reexec={}", carried.to_arg()).into_bytes(),
        format!("--xcr0={:#x}", thread.vcpu.xcr0().bits()).into_bytes(),
        format!("--cpuid={}", options.cpuid.to_arg()).into_bytes(),
    ];
    if options.explain {
        words.push(b"--explain".to_vec());
    }
    if options.verbose > 0 {
        words.push(format!("-{}", "v".repeat(options.verbose.into())).into_bytes());
    }
    words.push(b"--".to_vec());
    words.push(path.into_os_string().into_vec());
    // argv[0] travels apart from the path: a program may be given any.
    words.push(
        argv.first()
            .map_or_else(Vec::new, |a| a.as_bytes().to_vec()),
    );
    words.extend(argv.into_iter().skip(1).map(OsStringExt::into_vec));
    let Ok(words) = words
        .into_iter()
        .map(cstring)
        .collect::<Result<Vec<_>, _>>()
    else {
        return Errno(libc::EINVAL);
    };
    let Ok(env) = envp
        .into_iter()
        .map(|e| cstring(e.into_vec()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return Errno(libc::EINVAL);
    };
    if !fits_stack(&words, &env) {
        return Errno(libc::E2BIG);
    }
    // The sandbox's parked stderr, /dev/kvm and ledger, kept open across
    // the exec.
    let kept = || {
        options
            .report_fd
            .into_iter()
            .chain([kvm_fd])
            .chain(carried.ledger_fd)
    };
    for fd in kept() {
        // SAFETY: a descriptor of the sandbox's own; flags only.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    let signals = thread.process.signals.lock().expect("signals").clone();
    let ignored = arrival::ignore_for_exec(&signals);
    // Traced, the host process must be as alone as the program for a
    // pending PTRACE_INTERRUPT to outlive the exec (Process::alone_for_exec).
    let alone = tracee::traced().is_some() && thread.process.alone_for_exec();
    if alone {
        tracee::vcpu_gone();
    }
    if carried.room.is_some() {
        room::enter();
    }
    let err = crate::host::execute_self(&words, &env)
        .raw_os_error()
        .unwrap_or(libc::ENOEXEC);
    if alone {
        // Past the sandbox's point of no return (its VM is gone): the
        // kernel kills a process whose exec fails past its own with
        // SIGSEGV (bprm_execve), and so does this.
        log::warn!(
            "exec: executing the sandbox again failed with errno {err} after its VM was let go"
        );
        thread.process.end(Ok(Outcome::Signaled(libc::SIGSEGV)));
    }
    if let Some(r) = carried.room {
        room::exec_failed(r);
    }
    arrival::exec_failed(&signals, &ignored);
    for fd in kept() {
        // SAFETY: as above, back to close-on-exec.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    if let Some(fd) = seccomp_fd {
        seccomp::drop_carried(fd);
    }
    log::debug!("exec: executing the sandbox again failed: errno {err}");
    Errno(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_exec_carries_reads_back_as_written() {
        let c = Carried {
            report_fd: Some(1023),
            kvm_fd: None,
            core: Some((0, u64::MAX)),
            stats: true,
            default_xcr0: 0x207,
            arch_prctl_compat: false,
            trace: Some(tracee::Carried {
                options: 0x5,
                mode: 1,
                seized: true,
                former_tid: 4242,
            }),
            tsc_trapping: true,
            seccomp_fd: Some(1000),
            faults_counted: true,
            faults_taken: rusage::Carried {
                process: 1004,
                children: 0x10,
                thread: 7,
            },
            ledger_fd: Some(1001),
            room: Some(room::Room {
                data_cur: u64::MAX,
                compat: false,
            }),
        };
        assert_eq!(Carried::parse(&c.to_arg()), Some(c));
        let other = Carried {
            faults_counted: false,
            ledger_fd: None,
            faults_taken: Default::default(),
            trace: None,
            room: None,
            ..c
        };
        assert_eq!(Carried::parse(&other.to_arg()), Some(other));
        let cut = c.to_arg();
        assert_eq!(Carried::parse(cut.rsplit_once(',').unwrap().0), None);
    }

    #[test]
    fn the_stack_limits_an_exec_meets_are_found_before() {
        let words = |n: usize, len: usize| vec![CString::new(vec![b'a'; len]).unwrap(); n];
        assert!(fits_stack(&words(3, 10), &words(3, 10)));
        // One string longer than MAX_ARG_STRLEN.
        assert!(!fits_stack(&words(1, 32 * 4096), &[]));
        // More than 6 MiB in all, whatever the stack limit.
        assert!(!fits_stack(&words(60, 100_000), &words(4, 100_000)));
    }
}
