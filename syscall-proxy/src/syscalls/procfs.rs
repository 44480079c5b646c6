//! /proc/self/exe names the sandbox on the host; for the program it must
//! name the program (ld.so resolves $ORIGIN with it, programs re-execute
//! themselves through it). Calls that take that path get the program's
//! executable instead. So does /proc/<pid>/exe of another sandboxed
//! process (debuggers and tracers find their tracee's symbols through it).

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::args::Arg;
use super::{check, checked};
use crate::host::{Errno, SysResult};
use crate::thread::Thread;
use crate::umem;
use vmm::fds;

/// What a /proc name of an executable stands for in the sandbox.
#[derive(Debug, PartialEq, Eq)]
pub enum Alias {
    /// This process's program.
    Own,
    /// The program another sandboxed process runs.
    Other(PathBuf),
}

/// Whether `path` is one of the names of the running program's executable.
pub fn is_exe_alias(path: &[u8]) -> bool {
    exe_alias(path) == Some(Alias::Own)
}

/// Whether `path` names a program's executable: this process's
/// (/proc/self/exe and the like), or another sandbox's (/proc/<pid>/exe,
/// which on the host names the sandbox).
pub fn exe_alias(path: &[u8]) -> Option<Alias> {
    if path == b"/proc/self/exe" || path == b"/proc/thread-self/exe" {
        return Some(Alias::Own);
    }
    // Only a numeric /proc entry needs the pid, a host system call.
    let pid = path
        .strip_prefix(b"/proc/")
        .and_then(|p| p.strip_suffix(b"/exe"))
        .filter(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))?;
    if is_this_process(pid) {
        return Some(Alias::Own);
    }
    other_program(std::str::from_utf8(pid).ok()?).map(Alias::Other)
}

/// Whether process `pid` runs this very executable: a sandbox.
pub fn is_sandbox(pid: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let theirs = std::fs::metadata(format!("/proc/{pid}/exe"));
    let ours = std::fs::metadata("/proc/self/exe");
    matches!((theirs, ours), (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino())
}

/// The program sandbox `pid` runs: the file mapped where its program
/// headers are (AT_PHDR of its auxv, which is the program's:
/// identity::present).
fn other_program(pid: &str) -> Option<PathBuf> {
    if !is_sandbox(pid) {
        return None;
    }
    let auxv = std::fs::read(format!("/proc/{pid}/auxv")).ok()?;
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
    let phdr = auxv
        .chunks_exact(16)
        .find_map(|e| (word(&e[..8]) == libc::AT_PHDR).then(|| word(&e[8..])))?;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines().find_map(|l| {
        let mut f = l.splitn(6, ' ');
        let (start, end) = f.next()?.split_once('-')?;
        let (start, end) = (
            u64::from_str_radix(start, 16).ok()?,
            u64::from_str_radix(end, 16).ok()?,
        );
        let path = f.nth(4)?.trim_start();
        ((start..end).contains(&phdr) && path.starts_with('/')).then(|| PathBuf::from(path))
    })
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

/// The alias the string at `addr` is, if any: its first ALIAS_MAX bytes
/// tell, read at once where they are all readable program memory (one
/// host system call whatever the path's length). Unreadable: no alias,
/// and the call's own checks report it.
fn alias_at(thread: &Thread, addr: u64) -> Option<Alias> {
    let space = thread.process.vm.memory.lock().expect("address space");
    let mut head = [0u8; ALIAS_MAX];
    if space.program_can_access(addr, ALIAS_MAX as u64, false)
        && umem::read_bytes(&space, addr, &mut head).is_ok()
    {
        let n = head.iter().position(|&b| b == 0)?;
        drop(space);
        exe_alias(&head[..n])
    } else {
        // Near the end of what can be read: up to the NUL, if it is there.
        let path = umem::read_cstr(&space, addr, ALIAS_MAX as u64).ok()?;
        drop(space);
        exe_alias(&path)
    }
}

/// Performs `nr` with the program's executable in place of an alias at
/// argument `i`; other calls go through unchanged.
pub fn with_exe_alias(thread: &Thread, nr: i64, a: [u64; 6], i: usize, spec: &[Arg]) -> SysResult {
    let other;
    let exe = match alias_at(thread, a[i]) {
        None => return checked(thread, nr, a, spec, None),
        Some(Alias::Own) => thread.process.exe.as_os_str().as_bytes(),
        Some(Alias::Other(path)) => {
            other = path;
            other.as_os_str().as_bytes()
        }
    };
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

/// The name prefix of the sandbox's own host threads (its reaper): not the
/// program's, so not listed to it.
pub const OWN_THREAD_PREFIX: &str = "xcr0sbx-";

/// PF_USER_WORKER (include/linux/sched.h): a worker thread the kernel
/// runs in a user process, such as KVM's NX huge page recovery.
pub(crate) const PF_USER_WORKER: u64 = 0x4000;

/// getdents64 for the program, without what a listing shows of the
/// sandbox: a sandbox's /proc/<pid>/task lists host threads that are not
/// the program's (KVM's worker, the sandbox's own), which debuggers would
/// attach to, and the program's own /proc/<pid>/fd and fdinfo list the
/// sandbox's parked descriptors. A batch left empty is read again, not
/// taken for the end.
pub fn getdents64(thread: &Thread, a: [u64; 6], spec: &[Arg]) -> SysResult {
    loop {
        let n = checked(thread, libc::SYS_getdents64, a, spec, None)?;
        let Some(listing) = listing_of(a[0]) else {
            return Ok(n);
        };
        if n == 0 {
            return Ok(0);
        }
        let space = thread.process.vm.memory.lock().expect("address space");
        let mut buf = vec![0u8; n as usize];
        umem::read_bytes(&space, a[1], &mut buf)?;
        let kept = match &listing {
            Listing::Tasks(pid) => without(&buf, |tid| is_sandbox_thread(pid, tid)),
            Listing::OwnFds => without(&buf, |fd| fd.parse::<i64>().is_ok_and(fds::is_parked)),
        };
        if kept.len() == buf.len() {
            return Ok(n);
        }
        umem::write_bytes(&space, a[1], &kept)?;
        if !kept.is_empty() {
            return Ok(kept.len() as u64);
        }
    }
}

/// A /proc directory whose listing shows something of the sandbox's.
enum Listing {
    /// /proc/<pid>/task of a sandbox.
    Tasks(String),
    /// /proc/<pid>/fd or fdinfo (or /proc/<pid>/task/<tid>/...) of this
    /// process.
    OwnFds,
}

/// The listing `fd` is open on, if it is such a directory.
fn listing_of(fd: u64) -> Option<Listing> {
    let mut buf = [0u8; MEM_LINK_MAX];
    let link = fd_link(fd, &mut buf)?;
    let rest = link.strip_prefix(b"/proc/")?;
    let (pid, rest) = rest.split_at(rest.iter().position(|&c| c == b'/')?);
    let pid = std::str::from_utf8(pid).ok()?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if rest == b"/task" {
        return is_sandbox(pid).then(|| Listing::Tasks(pid.to_string()));
    }
    // A thread's descriptors are its process's (no CLONE_FILES-less
    // threads here).
    let rest = match rest.strip_prefix(b"/task/") {
        Some(t) => &t[t.iter().position(|&c| c == b'/')?..],
        None => rest,
    };
    (matches!(rest, b"/fd" | b"/fdinfo") && is_this_process(pid.as_bytes()))
        .then_some(Listing::OwnFds)
}

/// linux_dirent64 records without those whose name `hide` says (the
/// record before a removed one takes over its d_off, so that telldir and
/// seekdir still agree).
fn without(records: &[u8], hide: impl Fn(&str) -> bool) -> Vec<u8> {
    let mut kept: Vec<u8> = Vec::with_capacity(records.len());
    let mut last: Option<usize> = None;
    let mut at = 0;
    // d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
    while at + 19 <= records.len() {
        let len = u16::from_ne_bytes([records[at + 16], records[at + 17]]) as usize;
        if len < 19 || at + len > records.len() {
            break;
        }
        let record = &records[at..at + len];
        let name = &record[19..];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        if std::str::from_utf8(name).is_ok_and(&hide) {
            if let Some(l) = last {
                kept[l + 8..l + 16].copy_from_slice(&record[8..16]);
            }
        } else {
            last = Some(kept.len());
            kept.extend_from_slice(record);
        }
        at += len;
    }
    kept
}

/// Whether thread `tid` of sandbox `pid` is not the program's: a kernel
/// worker, or one of the sandbox's own (named so).
fn is_sandbox_thread(pid: &str, tid: &str) -> bool {
    if tid.is_empty() || !tid.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    task_stat(pid, tid)
        .is_some_and(|t| t.flags & PF_USER_WORKER != 0 || t.comm.starts_with(OWN_THREAD_PREFIX))
}

/// Whether thread `tid` of process `pid` (a /proc name) is a worker the
/// kernel made in it (KVM's `kvm-nx-lpage-recovery`).
pub fn is_user_worker(pid: &str, tid: &str) -> bool {
    task_stat(pid, tid).is_some_and(|t| t.flags & PF_USER_WORKER != 0)
}

/// What a task's /proc stat says that the sandbox looks at.
pub struct TaskStat {
    pub comm: String,
    /// R, S, D, T (stopped), t (in a ptrace stop)...
    pub state: char,
    pub flags: u64,
    /// Minor and major faults.
    pub faults: u64,
}

impl TaskStat {
    /// Held in a group stop ('T'; a ptrace stop is 't').
    pub fn group_stopped(&self) -> bool {
        self.state == 'T'
    }
}

/// Thread `tid` of process `pid` (a /proc name), from its stat.
pub fn task_stat(pid: &str, tid: &str) -> Option<TaskStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    // pid (comm) state ppid ...: the name may hold anything, so the
    // fields are counted from its last ')', field 3 first.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(TaskStat {
        comm,
        state: fields.first()?.chars().next()?,
        flags: field(9)?,
        faults: field(10)? + field(12)?,
    })
}

/// Whether an open with `flags` can give a descriptor that reads or writes
/// a mem file. O_DIRECTORY fails on one; an O_PATH descriptor reads and
/// writes nothing, and reopening it goes through /proc/self/fd, an open
/// looked at in turn. Such opens (most of a directory walk's) need no look.
pub fn may_open_mem(flags: u64) -> bool {
    flags as i32 & (libc::O_DIRECTORY | libc::O_PATH) == 0
}

/// Whether descriptor `fd` is the program's own /proc/<pid>/mem (or a
/// thread's): one readlink.
pub fn is_own_mem_fd(fd: u64) -> bool {
    let mut buf = [0u8; MEM_LINK_MAX];
    fd_link(fd, &mut buf).is_some_and(is_own_mem)
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

    /// linux_dirent64 records named `names`, d_off i+1 each.
    fn records(names: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let len = (19 + name.len() + 1).next_multiple_of(8);
            let mut r = vec![0u8; len];
            r[8..16].copy_from_slice(&(i as i64 + 1).to_ne_bytes());
            r[16..18].copy_from_slice(&(len as u16).to_ne_bytes());
            r[19..19 + name.len()].copy_from_slice(name.as_bytes());
            out.extend(r);
        }
        out
    }

    fn names_and_offsets(records: &[u8]) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < records.len() {
            let len = u16::from_ne_bytes([records[at + 16], records[at + 17]]) as usize;
            let name = &records[at + 19..at + len];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap()];
            let off = i64::from_ne_bytes(records[at + 8..at + 16].try_into().unwrap());
            out.push((String::from_utf8(name.to_vec()).unwrap(), off));
            at += len;
        }
        out
    }

    #[test]
    fn this_processs_descriptor_listings_leave_out_the_parked_ones() {
        use std::os::fd::AsRawFd;
        let dir = |path: &str| std::fs::File::open(path).unwrap();
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        for path in [
            "/proc/self/fd".to_string(),
            "/proc/self/fdinfo".to_string(),
            format!("/proc/self/task/{tid}/fd"),
        ] {
            let d = dir(&path);
            assert!(
                matches!(listing_of(d.as_raw_fd() as u64), Some(Listing::OwnFds)),
                "{path}"
            );
        }
        for path in ["/proc/self", "/proc/1/fd", "/proc/self/task", "/dev"] {
            let d = dir(path);
            assert!(
                !matches!(listing_of(d.as_raw_fd() as u64), Some(Listing::OwnFds)),
                "{path}"
            );
        }
        let null = dir("/dev/null");
        let parked = fds::park(null.as_raw_fd()).unwrap();
        let listed = records(&[".", "0", &parked.to_string(), "3"]);
        let kept = names_and_offsets(&without(&listed, |fd| {
            fd.parse::<i64>().is_ok_and(fds::is_parked)
        }));
        fds::lock().close(&[parked]);
        assert_eq!(
            kept,
            [
                (".".to_string(), 1),
                ("0".to_string(), 3),
                ("3".to_string(), 4)
            ]
        );
    }

    #[test]
    fn a_task_listing_leaves_out_the_sandboxs_own_threads() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::Builder::new()
            .name(format!("{OWN_THREAD_PREFIX}test"))
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                tx.send(unsafe { libc::gettid() }).unwrap();
                let _ = done_rx.recv();
            })
            .unwrap();
        let own = rx.recv().unwrap().to_string();
        // SAFETY: getpid and gettid have no preconditions.
        let (pid, me) = unsafe { (libc::getpid().to_string(), libc::gettid().to_string()) };
        let listed = records(&[".", "..", &me, &own, "4194305"]);
        let kept = names_and_offsets(&without(&listed, |tid| is_sandbox_thread(&pid, tid)));
        drop(done_tx);
        helper.join().unwrap();
        assert_eq!(
            kept,
            [
                (".".to_string(), 1),
                ("..".to_string(), 2),
                // Its successor's offset, for telldir after it.
                (me, 4),
                ("4194305".to_string(), 5)
            ]
        );
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
