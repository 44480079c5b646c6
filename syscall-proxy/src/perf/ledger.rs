//! The ledger: one table, shared by every sandbox of a program's process
//! tree, where each process keeps its count of faults taken again (its
//! own and its reaped children's, perf::rusage) under its pid, as it
//! takes them.
//!
//! It is a memfd mapped shared, made as the sandbox starts: a fork child
//! inherits the mapping, and an exec carries the descriptor (parked, in
//! exec::Carried). A waiter reads a child's count there however the child
//! ended (killed outright, reaped by its parent's new image, by a tracer)
//! and without leave to read or write another process's memory (Yama).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

#[repr(C)]
struct Table {
    /// Claims ever made: while 0, no pid has a count to look for.
    claims: AtomicU32,
    _pad: u32,
    slots: [Slot; SLOTS],
}

#[repr(C)]
pub struct Slot {
    /// FREE, never used; GONE, reaped; CLAIMING while its owner changes
    /// (whoever swapped it in writes the rest alone); or the owner's pid.
    pid: AtomicI32,
    /// The owner's parent when it took the slot.
    parent: AtomicI32,
    pub taken: AtomicU64,
}

/// Open addressing over 4096 slots of 16 bytes: 64 KiB, touched only as
/// used; a process that finds none keeps its count in the rusage its
/// parent's wait reports.
const SLOTS: usize = 4096;
const FREE: i32 = 0;
const GONE: i32 = -1;
const CLAIMING: i32 = -2;

struct Ledger {
    table: &'static Table,
    fd: RawFd,
}

/// Set as the process starts (None if it could not be made).
static LEDGER: OnceLock<Option<Ledger>> = OnceLock::new();

/// As a process tree's first sandbox starts: a new ledger. Made at the
/// start even if no process will count (a descriptor and mapping that
/// came at a first fork would show as gained in the program's
/// /proc/self/maps).
pub fn start() {
    let made = make().map_err(|e| log::debug!("no ledger of faults taken again: {e}"));
    let _ = LEDGER.set(made.ok());
}

/// As a new image starts: the ledger `fd` the exec carried, if the old
/// image had one.
pub fn join(fd: Option<RawFd>) {
    let joined = fd.and_then(|fd| {
        vmm::fds::adopt(fd);
        // SAFETY: our own descriptor; flags only.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        map(fd)
            .map(|table| Ledger { table, fd })
            .map_err(|e| log::debug!("the ledger of faults taken again: {e}"))
            .ok()
    });
    let _ = LEDGER.set(joined);
}

fn make() -> std::io::Result<Ledger> {
    let file = vmm::fds::memfd(c"xcr0-sandbox-ledger")?;
    file.set_len(size_of::<Table>() as u64)?;
    let fd = vmm::fds::park(file.as_raw_fd())?;
    match map(fd) {
        Ok(table) => Ok(Ledger { table, fd }),
        Err(e) => {
            vmm::fds::lock().close(&[fd]);
            Err(e)
        }
    }
}

fn map(fd: RawFd) -> std::io::Result<&'static Table> {
    // SAFETY: a new shared mapping of the memfd, at an address the kernel
    // picks; never unmapped, so the reference lives as long as the process.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size_of::<Table>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if at == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: page-aligned and the table's size; every bit pattern is a
    // valid table (integers, only ever accessed through atomics).
    Ok(unsafe { &*(at as *const Table) })
}

/// The descriptor an exec carries.
pub fn fd() -> Option<RawFd> {
    LEDGER.get()?.as_ref().map(|l| l.fd)
}

fn table() -> Option<&'static Table> {
    LEDGER.get()?.as_ref().map(|l| l.table)
}

/// The slots `pid` may occupy, in probing order.
fn probe(t: &Table, pid: i32) -> impl Iterator<Item = &Slot> {
    let start = ((pid as u32).wrapping_mul(0x9e37_79b1) >> 20) as usize % SLOTS;
    (0..SLOTS).map(move |i| &t.slots[(start + i) % SLOTS])
}

/// `pid`'s slot, if it has one.
pub fn find(pid: i32) -> Option<&'static Slot> {
    let t = table()?;
    if t.claims.load(Ordering::Acquire) == 0 || pid <= 0 {
        return None;
    }
    for s in probe(t, pid) {
        match s.pid.load(Ordering::Acquire) {
            FREE => return None,
            p if p == pid => return Some(s),
            _ => {}
        }
    }
    None
}

/// What `pid`'s slot `s` holds, if it is still `pid`'s.
pub fn taken(s: &Slot, pid: i32) -> Option<u64> {
    let taken = s.taken.load(Ordering::Acquire);
    (s.pid.load(Ordering::Acquire) == pid).then_some(taken)
}

/// Makes `s` (now `was`) `pid`'s, child of `parent`, at `taken`; false if
/// another changed it first.
fn own(s: &Slot, was: i32, pid: i32, parent: i32, taken: u64) -> bool {
    if s.pid
        .compare_exchange(was, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    s.parent.store(parent, Ordering::Relaxed);
    s.taken.store(taken, Ordering::Relaxed);
    // Found by pid only once its count is written.
    s.pid.store(pid, Ordering::Release);
    true
}

/// A slot for `pid` (child of `parent`) at `taken`: the one under its pid
/// (a predecessor's, never reaped, is taken over), else a new one. None
/// if the table is full, or others kept changing the slots it tried.
pub fn claim(pid: i32, parent: i32, taken: u64) -> Option<&'static Slot> {
    let t = table()?;
    t.claims.fetch_add(1, Ordering::AcqRel);
    for _ in 0..8 {
        let mut reusable = None;
        let mut under_pid = None;
        for s in probe(t, pid) {
            match s.pid.load(Ordering::Acquire) {
                p if p == pid => {
                    under_pid = Some(s);
                    break;
                }
                FREE => {
                    reusable = reusable.or(Some((s, FREE)));
                    break;
                }
                GONE => reusable = reusable.or(Some((s, GONE))),
                _ => {}
            }
        }
        let (s, was) = match under_pid {
            Some(s) => (s, pid),
            None => reusable?,
        };
        if own(s, was, pid, parent, taken) {
            return Some(s);
        }
        std::hint::spin_loop();
    }
    None
}

/// Frees `pid`'s slot `s` if `whose` says so of its parent, and returns
/// what it held; None if it is not `pid`'s any more, or `whose` said no.
pub fn free(s: &Slot, pid: i32, whose: impl Fn(i32) -> bool) -> Option<u64> {
    s.pid
        .compare_exchange(pid, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
        .ok()?;
    if !whose(s.parent.load(Ordering::Relaxed)) {
        s.pid.store(pid, Ordering::Release);
        return None;
    }
    let taken = s.taken.load(Ordering::Relaxed);
    s.pid.store(GONE, Ordering::Release);
    Some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_found_by_pid_claimed_again_and_freed() {
        start();
        // Above any pid_max (2^22): no process of the test's.
        let pid = (1 << 23) + 4242;
        assert!(find(pid).is_none());
        let s = claim(pid, 7, 5).expect("a slot");
        s.taken.fetch_add(3, Ordering::Relaxed);
        let found = find(pid).expect("found");
        assert_eq!(taken(found, pid), Some(8));
        assert_eq!(taken(found, pid + 1), None);
        // A pid that collides probes on past it.
        let first = |p| probe(table().expect("a ledger"), p).next().expect("a slot");
        let other = (pid + 1..1 << 30)
            .find(|&p| std::ptr::eq(first(p), s))
            .expect("a pid whose first slot is the first's");
        let o = claim(other, 9, 1).expect("a slot");
        assert!(!std::ptr::eq(o, s));
        // Taken over, not doubled, under a reused pid.
        let again = claim(pid, 11, 0).expect("the same slot");
        assert!(std::ptr::eq(again, s));
        // Freed only as `whose` says of its parent, once.
        assert_eq!(free(s, pid, |p| p != 11), None);
        assert_eq!(free(s, pid, |p| p == 11), Some(0));
        assert_eq!(free(s, pid, |_| true), None);
        assert!(find(pid).is_none());
        // Past the freed slot, the other is still found.
        assert_eq!(find(other).and_then(|s| taken(s, other)), Some(1));
    }
}
