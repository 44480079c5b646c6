//! The faults perf::faults takes again, left out of the program's rusage.
//!
//! Each fault taken again is a real one on the sandbox's scratch page, and
//! the host counts it in the thread's rusage on top of the fault KVM's
//! get_user_pages counted already: without this, a program counting its
//! page faults would see them twice in getrusage, wait4 and waitid.
//! They are counted here as they are taken (the thread's, the process's),
//! and taken off again wherever the program reads an rusage.
//!
//! A process keeps its count (its own and its reaped children's) in the
//! ledger (perf::ledger) as it takes them; a wait reporting a child takes
//! the child's off the rusage it reports, and a reaping wait adds it to
//! the children's. Not corrected: /proc/<pid>/stat, a child whose parent
//! is not a sandbox, and a wait reporting a stop of a thread other than a
//! process's first.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use super::ledger;

use crate::host::{Errno, SysResult};
use crate::process::Process;
use crate::syscalls::{args, checked};
use crate::thread::Thread;
use crate::umem;

/// Faults taken again by this process's threads, live and gone.
static SELF_TAKEN: AtomicU64 = AtomicU64::new(0);
/// Those of the children it reaped (with those they reaped).
static CHILDREN_TAKEN: AtomicU64 = AtomicU64::new(0);

/// This process's slot in the ledger, once it took a fault again.
static MINE: OnceSlot = OnceSlot::new();

/// Held while a thread claims this process's slot: two threads claiming
/// at once would take two slots, or one reset the other's count. A flag,
/// not a Mutex, so that a fork child can let go of it (`forked`).
static CLAIMING: AtomicBool = AtomicBool::new(false);

/// The ledger had no slot for this process (full): not looked for again
/// until its next fork or exec.
static NO_SLOT: AtomicBool = AtomicBool::new(false);

/// A slot found once (a process's pid does not change), cleared in a fork
/// child.
struct OnceSlot(AtomicPtr<ledger::Slot>);

impl OnceSlot {
    const fn new() -> Self {
        OnceSlot(AtomicPtr::new(std::ptr::null_mut()))
    }

    fn get(&self) -> Option<&'static ledger::Slot> {
        // SAFETY: null or a slot of the ledger, mapped for the process's life.
        unsafe { self.0.load(Ordering::Acquire).as_ref() }
    }

    fn set(&self, s: Option<&'static ledger::Slot>) {
        let p = s.map_or(std::ptr::null_mut(), |s| s as *const _ as *mut _);
        self.0.store(p, Ordering::Release);
    }
}

/// What an exec keeps: the host's rusage survives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carried {
    pub process: u64,
    pub children: u64,
    /// The exec'ing thread's own.
    pub thread: u64,
}

/// `thread` took `n` faults again.
pub fn took(thread: &mut Thread, n: u64) {
    thread.faults_taken += n;
    SELF_TAKEN.fetch_add(n, Ordering::Relaxed);
    post(n);
}

/// The process is about to count: its slot is claimed now, not at the
/// first fault taken again, inside the program's counting, where the
/// claim's first touches showed as a major fault of the program's thread
/// (in the real-KVM lane).
pub fn ready() {
    post(0);
}

/// Adds `n` to this process's count in the ledger, claiming its slot at
/// the first.
fn post(n: u64) {
    if MINE.get().is_none() && !NO_SLOT.load(Ordering::Relaxed) {
        while CLAIMING
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
        if MINE.get().is_none() {
            // Every count so far was posted (a fork child's start at zero,
            // an exec's carried ones as it began), none under this slot.
            claim_mine(0);
        }
        CLAIMING.store(false, Ordering::Release);
    }
    if let Some(s) = MINE.get() {
        s.taken.fetch_add(n, Ordering::Relaxed);
    }
}

/// Claims this process's slot at `total`: a slot under its pid that is
/// not its own (a predecessor's, never reaped) is taken over.
fn claim_mine(total: u64) {
    // SAFETY: getpid and getppid have no preconditions.
    let (me, parent) = unsafe { (libc::getpid(), libc::getppid()) };
    let s = ledger::claim(me, parent, total);
    NO_SLOT.store(s.is_none(), Ordering::Relaxed);
    MINE.set(s);
}

/// As the process starts again (a fork child, a new image), alone: its
/// count is `total`, and a predecessor's slot under its pid is not its.
fn restart(total: u64) {
    CLAIMING.store(false, Ordering::Relaxed);
    MINE.set(None);
    NO_SLOT.store(false, Ordering::Relaxed);
    // SAFETY: getpid has no preconditions.
    if total > 0 || ledger::find(unsafe { libc::getpid() }).is_some() {
        claim_mine(total);
    }
}

/// `thread`'s counts, which its exec keeps.
pub fn carried(thread: &Thread) -> Carried {
    Carried {
        thread: thread.faults_taken,
        ..process_counts(&thread.process)
    }
}

/// A vfork child has none: its parent's memory holds the parent's.
fn process_counts(process: &Process) -> Carried {
    if process.borrows_vm() {
        return Carried::default();
    }
    Carried {
        process: SELF_TAKEN.load(Ordering::Relaxed),
        children: CHILDREN_TAKEN.load(Ordering::Relaxed),
        thread: 0,
    }
}

/// In the new image: the counts the exec kept.
pub fn adopt(thread: &mut Thread, c: Carried) {
    SELF_TAKEN.store(c.process, Ordering::Relaxed);
    CHILDREN_TAKEN.store(c.children, Ordering::Relaxed);
    thread.faults_taken = c.thread;
    restart(c.process.saturating_add(c.children));
}

/// In a fork child, whose rusage starts at zero.
pub fn forked(thread: &mut Thread) {
    SELF_TAKEN.store(0, Ordering::Relaxed);
    CHILDREN_TAKEN.store(0, Ordering::Relaxed);
    restart(0);
    thread.faults_taken = 0;
}

/// getrusage(2) for the program, whose arguments `spec` describes.
pub fn getrusage(thread: &Thread, a: [u64; 6], spec: &[args::Arg]) -> SysResult {
    let r = checked(thread, libc::SYS_getrusage, a, spec, None)?;
    let c = carried(thread);
    let taken = match a[0] as i32 {
        libc::RUSAGE_SELF => c.process,
        libc::RUSAGE_CHILDREN => c.children,
        libc::RUSAGE_THREAD => c.thread,
        _ => 0,
    };
    if taken > 0 {
        take_off(thread, a[1], taken)?;
    }
    Ok(r)
}

/// Takes `taken` off ru_minflt of the rusage at `at` in the program.
fn take_off(thread: &Thread, at: u64, taken: u64) -> Result<(), Errno> {
    let field = at + std::mem::offset_of!(libc::rusage, ru_minflt) as u64;
    let space = thread.process.vm.memory.lock().expect("address space");
    let minflt: u64 = umem::read(&space, field)?;
    umem::write(&space, field, minflt.saturating_sub(taken))
}

/// A wait of the program reports child `pid` (ended, stopped, continued)
/// with `ru`, its rusage with its reaped children's: their faults taken
/// again come off. `reaping` if it reports an end without WNOWAIT: if the
/// wait did reap the child (a parent's or subreaper's does, a tracer's
/// does not), they go to this process's children's.
pub fn reported(thread: &Thread, pid: i32, ru: &mut libc::rusage, reaping: bool) {
    if thread.process.borrows_vm() {
        return;
    }
    let Some(slot) = ledger::find(pid) else {
        return;
    };
    let Some(taken) = ledger::taken(slot, pid) else {
        return;
    };
    ru.ru_minflt = (ru.ru_minflt as u64).saturating_sub(taken) as libc::c_long;
    if reaping
        && gone(pid)
        && let Some(taken) = ledger::free(slot, pid, |_| true)
    {
        CHILDREN_TAKEN.fetch_add(taken, Ordering::Relaxed);
        post(taken);
    }
}

/// Whether process `pid` is gone, its zombie reaped.
fn gone(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// The program made child `pid`: a count left under its pid by a process
/// of another parent, never reaped, is not its (the child takes such a
/// slot over as it starts, `forked`; this covers a child killed before).
pub fn new_child(pid: i32) {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if let Some(s) = ledger::find(pid) {
        ledger::free(s, pid, |parent| parent != me);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_posting_at_once_share_one_slot_and_lose_no_count() {
        ledger::start();
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| (0..50).for_each(|_| post(1)));
            }
        });
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let slot = ledger::find(me).expect("this process's slot");
        assert!(std::ptr::eq(slot, MINE.get().expect("claimed")));
        assert_eq!(ledger::taken(slot, me), Some(200));
        // Reaped, it is gone; the count is no one's.
        assert_eq!(ledger::free(slot, me, |_| true), Some(200));
        assert!(ledger::find(me).is_none());
    }
}
