//! The faults perf::faults takes again, left out of the program's rusage.
//!
//! Each fault taken again is a real one on the sandbox's scratch page, and
//! the host counts it in the thread's rusage on top of the fault KVM's
//! get_user_pages counted already: without this, a program counting its
//! page faults would see them twice in getrusage, wait4 and waitid.
//! They are counted here as they are taken (the thread's, the process's),
//! and taken off again wherever the program reads an rusage.
//!
//! A child process's count reaches its parent's sandbox through memory
//! (the same executable, as perf::faults marks threads): at its end it
//! writes its pid and count into `REAPED` of its parent, which takes them
//! off the rusage wait4 or waitid reports and adds them to its children's.
//! Where the host forbids a process to write its parent's memory (Yama's
//! ptrace_scope 1 and up) the count stays in. Not corrected either:
//! /proc/<pid>/stat, and the rusage a wait reports of a child stopped or
//! continued.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::host::{Errno, SysResult};
use crate::process::Process;
use crate::syscalls::{args, checked};
use crate::thread::Thread;
use crate::umem;

/// Faults taken again by this process's threads, live and gone.
static SELF_TAKEN: AtomicU64 = AtomicU64::new(0);
/// Those of the children it reaped (with those they reaped).
static CHILDREN_TAKEN: AtomicU64 = AtomicU64::new(0);

/// Where ended children leave their counts for their parent, by pid: two
/// unreaped children whose pids share a slot leave the later's only.
#[repr(C)]
struct Reaped {
    magic: u64,
    slots: [Slot; SLOTS],
}

#[repr(C)]
struct Slot {
    taken: AtomicU64,
    /// Written after `taken`; 0: free.
    pid: AtomicI32,
}

const SLOTS: usize = 256;

/// "xcr0rusg".
const REAPED_MAGIC: u64 = 0x6773_7572_3072_6378;

#[used]
static REAPED: Reaped = Reaped {
    magic: REAPED_MAGIC,
    slots: [const {
        Slot {
            taken: AtomicU64::new(0),
            pid: AtomicI32::new(0),
        }
    }; SLOTS],
};

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
}

/// In a fork child, whose rusage starts at zero.
pub fn forked(thread: &mut Thread) {
    SELF_TAKEN.store(0, Ordering::Relaxed);
    CHILDREN_TAKEN.store(0, Ordering::Relaxed);
    // (Written only where set: each page written is a fault of the child.)
    for s in REAPED
        .slots
        .iter()
        .filter(|s| s.pid.load(Ordering::Relaxed) != 0)
    {
        s.pid.store(0, Ordering::Relaxed);
    }
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

/// A wait of the program reports ended child `pid` with `ru` (its own
/// rusage and that of the children it reaped); `reaps` unless WNOWAIT
/// leaves it to be waited for again.
pub fn ended(thread: &Thread, pid: i32, ru: &mut libc::rusage, reaps: bool) {
    if thread.process.borrows_vm() {
        return;
    }
    let slot = &REAPED.slots[pid as usize % SLOTS];
    if slot.pid.load(Ordering::Acquire) != pid {
        return;
    }
    let taken = slot.taken.load(Ordering::Relaxed);
    if reaps {
        if slot
            .pid
            .compare_exchange(pid, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        CHILDREN_TAKEN.fetch_add(taken, Ordering::Relaxed);
    }
    ru.ru_minflt = (ru.ru_minflt as u64).saturating_sub(taken) as libc::c_long;
}

/// The program made child `pid`: a count left under its id by an earlier
/// process never waited for (SIGCHLD ignored) is not its.
pub fn new_child(pid: i32) {
    let slot = &REAPED.slots[pid as usize % SLOTS];
    let _ = slot
        .pid
        .compare_exchange(pid, 0, Ordering::Relaxed, Ordering::Relaxed);
}

/// As the process ends: its counts go to its parent, if that is a
/// sandbox of this executable, for its wait to take off.
pub fn ending(process: &Process) {
    let c = process_counts(process);
    let taken = c.process + c.children;
    if taken == 0 {
        return;
    }
    // SAFETY: getpid and getppid have no preconditions.
    let (me, parent) = unsafe { (libc::getpid(), libc::getppid()) };
    let ours = &REAPED as *const Reaped as u64;
    let Some(at) = super::faults::in_other(parent, ours, REAPED_MAGIC) else {
        return;
    };
    let slot = at
        + std::mem::offset_of!(Reaped, slots) as u64
        + (me as usize % SLOTS * size_of::<Slot>()) as u64;
    let taken_at = slot + std::mem::offset_of!(Slot, taken) as u64;
    let pid_at = slot + std::mem::offset_of!(Slot, pid) as u64;
    let told = crate::trace::page::write_remote(parent, taken_at, &taken.to_ne_bytes())
        .and_then(|()| crate::trace::page::write_remote(parent, pid_at, &me.to_ne_bytes()));
    if told.is_err() {
        log::debug!("the faults taken again in {me} stay in its parent's rusage");
    }
}
