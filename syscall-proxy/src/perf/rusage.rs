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

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

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

/// Adds `n` to this process's count in the ledger, claiming its slot at
/// the first.
fn post(n: u64) {
    if let Some(s) = MINE.get() {
        s.taken.fetch_add(n, Ordering::Relaxed);
        return;
    }
    let total = SELF_TAKEN.load(Ordering::Relaxed) + CHILDREN_TAKEN.load(Ordering::Relaxed);
    // SAFETY: getpid and getppid have no preconditions.
    let (me, parent) = unsafe { (libc::getpid(), libc::getppid()) };
    MINE.set(ledger::claim(me, parent, total));
}

/// Sets this process's count in the ledger: a slot under its pid that is
/// not its own (a predecessor's never reaped) is taken over.
fn reset_mine(total: u64) {
    // SAFETY: getpid and getppid have no preconditions.
    let (me, parent) = unsafe { (libc::getpid(), libc::getppid()) };
    let s = if total > 0 {
        ledger::claim(me, parent, total)
    } else {
        ledger::find(me).and_then(|_| ledger::claim(me, parent, 0))
    };
    MINE.set(s);
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
    reset_mine(c.process + c.children);
}

/// In a fork child, whose rusage starts at zero.
pub fn forked(thread: &mut Thread) {
    SELF_TAKEN.store(0, Ordering::Relaxed);
    CHILDREN_TAKEN.store(0, Ordering::Relaxed);
    reset_mine(0);
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
/// again come off. `reaped` if the wait reaped it (an exit's report
/// without WNOWAIT: only the real parent's reaps, a tracer's does not),
/// which adds them to this process's children's.
pub fn reported(thread: &Thread, pid: i32, ru: &mut libc::rusage, reaped: bool) {
    if thread.process.borrows_vm() {
        return;
    }
    let Some(slot) = ledger::find(pid) else {
        return;
    };
    let taken = slot.taken.load(Ordering::Relaxed);
    ru.ru_minflt = (ru.ru_minflt as u64).saturating_sub(taken) as libc::c_long;
    // SAFETY: getpid has no preconditions.
    if reaped && ledger::parent(slot) == unsafe { libc::getpid() } && ledger::free(slot, pid) {
        CHILDREN_TAKEN.fetch_add(taken, Ordering::Relaxed);
        post(taken);
    }
}

/// The program made child `pid`: a count left under its pid by a process
/// of another parent, never reaped, is not its (the child takes such a
/// slot over as it starts, `forked`; this covers a child killed before).
pub fn new_child(pid: i32) {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if let Some(s) = ledger::find(pid).filter(|s| ledger::parent(s) != me) {
        ledger::free(s, pid);
    }
}
