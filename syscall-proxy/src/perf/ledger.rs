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

use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

#[repr(C)]
struct Table {
    /// Slots ever claimed: while 0, no pid has a count to look for.
    claims: AtomicU32,
    _pad: u32,
    slots: [Slot; SLOTS],
}

#[repr(C)]
pub struct Slot {
    /// FREE, never used; GONE, reaped; CLAIMING; or the process's pid.
    pid: AtomicI32,
    /// The process's parent when it claimed the slot: only its wait frees
    /// it (a tracer's wait does not reap).
    parent: AtomicI32,
    pub taken: AtomicU64,
}

/// Open addressing over 4096 slots of 16 bytes: 64 KiB, touched only as
/// used; a process that finds none keeps its count in (as before the
/// ledger: its faults taken again show twice in its parent's wait).
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

/// As the sandbox starts: joins the ledger `inherited` an exec carried,
/// or makes one for a process tree starting here. Made at the start even
/// if no process will count (a descriptor that came at a first fork would
/// show as one gained in the program's /proc/self/fd).
pub fn join(inherited: Option<RawFd>) {
    let joined = match inherited {
        Some(fd) => {
            vmm::fds::adopt(fd);
            // SAFETY: our own descriptor; flags only.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            map(fd).map(|table| Ledger { table, fd })
        }
        None => make(),
    };
    let joined = joined.map_err(|e| log::debug!("no ledger of faults taken again: {e}"));
    let _ = LEDGER.set(joined.ok());
}

fn make() -> std::io::Result<Ledger> {
    // SAFETY: a NUL-terminated name and flags.
    let fd = unsafe { libc::memfd_create(c"xcr0-sandbox-ledger".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let parked = (|| {
        // SAFETY: a descriptor just made; sizes it.
        if unsafe { libc::ftruncate(fd, size_of::<Table>() as i64) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        vmm::fds::park(fd)
    })();
    // SAFETY: the original, no longer needed: the parked copy is kept.
    unsafe { libc::close(fd) };
    let fd = parked?;
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
    // SAFETY: page-aligned, the table's size, zero-filled at first (every
    // field's valid value), and only ever accessed through atomics.
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

/// The parent `pid` had when its slot was claimed.
pub fn parent(s: &Slot) -> i32 {
    s.parent.load(Ordering::Relaxed)
}

/// A slot for `pid` (child of `parent`) at `taken`: its own if it has one
/// (a predecessor's under a reused pid is taken over), else a new one.
pub fn claim(pid: i32, parent: i32, taken: u64) -> Option<&'static Slot> {
    if let Some(s) = find(pid) {
        s.parent.store(parent, Ordering::Relaxed);
        s.taken.store(taken, Ordering::Relaxed);
        return Some(s);
    }
    let t = table()?;
    t.claims.fetch_add(1, Ordering::AcqRel);
    for s in probe(t, pid) {
        let was = s.pid.load(Ordering::Relaxed);
        if was != FREE && was != GONE {
            continue;
        }
        if s.pid
            .compare_exchange(was, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            s.parent.store(parent, Ordering::Relaxed);
            s.taken.store(taken, Ordering::Relaxed);
            // Found by pid only once its count is written.
            s.pid.store(pid, Ordering::Release);
            return Some(s);
        }
    }
    log::debug!("the ledger of faults taken again is full");
    None
}

/// Frees `pid`'s slot `s`, reaped; false if another wait freed it first.
pub fn free(s: &Slot, pid: i32) -> bool {
    s.pid
        .compare_exchange(pid, GONE, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_found_by_pid_claimed_again_and_freed() {
        join(None);
        assert!(fd().is_some());
        assert!(find(4242).is_none());
        let s = claim(4242, 7, 5).expect("a slot");
        s.taken.fetch_add(3, Ordering::Relaxed);
        let found = find(4242).expect("found");
        assert_eq!(found.taken.load(Ordering::Relaxed), 8);
        assert_eq!(parent(found), 7);
        // A pid that collides probes on past it.
        let first = |p| probe(table().expect("a ledger"), p).next().expect("a slot");
        let other = (4243..1 << 22)
            .find(|&p| std::ptr::eq(first(p), s))
            .expect("a pid whose first slot is 4242's");
        let o = claim(other, 9, 1).expect("a slot");
        assert!(!std::ptr::eq(o, s));
        // Taken over, not doubled, under a reused pid.
        let again = claim(4242, 11, 0).expect("the same slot");
        assert!(std::ptr::eq(again, s));
        assert_eq!(parent(again), 11);
        assert!(free(s, 4242));
        assert!(!free(s, 4242));
        assert!(find(4242).is_none());
        assert_eq!(
            find(other).map(|s| s.taken.load(Ordering::Relaxed)),
            Some(1)
        );
    }
}
