//! Page faults a software counter on a program thread would miss, taken
//! again where the host counts them.
//!
//! KVM brings the program's memory in for the guest with get_user_pages:
//! the host kernel counts such a fault in the thread's rusage (min_flt,
//! maj_flt) but fires no perf event for it (mm_account_fault has no
//! registers for it), so a page-fault counter on a program thread counted
//! the sandbox's own faults only (4 of 1,000 pages first touched).
//!
//! Once the program opens a page-fault counter on one of its threads,
//! that thread compares, at each exit from the guest, the faults its
//! rusage gained with those a counter of its own saw, and takes the
//! difference again as minor faults on a scratch page of its own: every
//! page-fault counter on the thread then counts them before the program
//! can look. So do the threads and processes it creates from then on and
//! the images it executes, which such counters follow (attr.inherit, and
//! an exec keeps them). A sampled counter sees the sandbox's address, not
//! the program's; a major fault counts as a minor one.
//!
//! A counter opened on a thread of another sandbox (`perf stat` counts
//! the child it starts) is told to that sandbox through memory: the
//! opener writes the thread's id into `MARKED` of the other process, the
//! same executable (found through its maps), which that thread takes at
//! its next exit from the guest.

use std::alloc::Layout;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

use super::{FLAGS_AT, SIZE_VER0, TYPE_SOFTWARE};
use crate::host::Errno;
use crate::signals::arrival;
use crate::thread::Thread;

/// The software page-fault events (PERF_COUNT_SW_*,
/// include/uapi/linux/perf_event.h; libc lacks them).
const PAGE_FAULTS: u64 = 2;
const PAGE_FAULTS_MIN: u64 = 5;
const PAGE_FAULTS_MAJ: u64 = 6;

/// The exclude_kernel bit, needed where perf_event_paranoid keeps a
/// thread to its user-mode events.
const EXCLUDE_KERNEL: u64 = 1 << 5;

/// Whether an attr's type and config name a page-fault event.
pub fn is_page_faults(kind: u32, config: u64) -> bool {
    kind == TYPE_SOFTWARE && [PAGE_FAULTS, PAGE_FAULTS_MIN, PAGE_FAULTS_MAJ].contains(&config)
}

/// Whether a thread takes missed faults again.
#[derive(Default)]
pub enum Faults {
    #[default]
    Off,
    On(Replay),
    /// Its counter could not be opened.
    Failed,
}

/// A thread's comparison of its faults with those the host counted.
pub struct Replay {
    /// A counter of this host thread's page faults (parked).
    counter: RawFd,
    /// The thread's rusage faults and the counter's value at the last look.
    faults: u64,
    counted: u64,
    /// Faults missed and not yet taken again: a signal came meanwhile.
    owed: u64,
    /// The page its faults are taken again on (its address: a thread's
    /// state moves to its host thread).
    scratch: usize,
}

const SCRATCH: Layout = match Layout::from_size_align(4096, 4096) {
    Ok(l) => l,
    Err(_) => panic!("a page"),
};

impl Replay {
    /// For thread `tid` of this process (0: the caller), from now.
    fn new(tid: i32) -> Result<Replay, Errno> {
        super::rusage::ready();
        let counter = open_counter(tid)?;
        // SAFETY: a non-zero size.
        let scratch = unsafe { std::alloc::alloc_zeroed(SCRATCH) };
        let faults = if tid == 0 {
            Some(rusage_faults())
        } else {
            task_faults("self", tid)
        };
        let (Some(faults), false) = (faults, scratch.is_null()) else {
            vmm::fds::lock().close(&[counter]);
            if !scratch.is_null() {
                // SAFETY: allocated above with this layout.
                unsafe { std::alloc::dealloc(scratch, SCRATCH) };
            }
            return Err(Errno(libc::ENOMEM));
        };
        let mut r = Replay {
            counter,
            faults,
            counted: 0,
            owed: 0,
            scratch: scratch as usize,
        };
        r.counted = r.read_counter();
        Ok(r)
    }

    fn read_counter(&self) -> u64 {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into our own u64.
        unsafe { libc::read(self.counter, (&mut v as *mut u64).cast(), 8) };
        v
    }

    /// Takes again the faults the counter missed since the last look, one
    /// at a time until a signal comes (an overflow's: delivered before the
    /// rest, as each would natively be at its own fault).
    fn catch_up(&mut self) -> u64 {
        let faults = rusage_faults();
        let counted = self.read_counter();
        self.owed += (faults.saturating_sub(self.faults))
            .saturating_sub(counted.saturating_sub(self.counted));
        self.faults = faults;
        self.counted = counted;
        let mut taken = 0;
        while self.owed > 0 {
            // SAFETY: the scratch page is ours alone; dropped, its next
            // write faults a zeroed page in.
            unsafe {
                libc::madvise(
                    self.scratch as *mut libc::c_void,
                    SCRATCH.size(),
                    libc::MADV_DONTNEED,
                );
                std::ptr::write_volatile(self.scratch as *mut u8, 1);
            }
            // Counted in both.
            self.faults += 1;
            self.counted += 1;
            self.owed -= 1;
            taken += 1;
            if arrival::pending() {
                break;
            }
        }
        taken
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        vmm::fds::lock().close(&[self.counter]);
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.scratch as *mut u8, SCRATCH) };
    }
}

/// A counter of host thread `tid`'s page faults (0: the caller's),
/// parked: user and kernel mode (a fault in a system call counts in rusage
/// too), or user mode only where perf_event_paranoid refuses more.
fn open_counter(tid: i32) -> Result<RawFd, Errno> {
    let mut last = Errno(libc::ENOENT);
    for flags in [0, EXCLUDE_KERNEL] {
        let mut attr = [0u8; SIZE_VER0 as usize];
        attr[0..4].copy_from_slice(&TYPE_SOFTWARE.to_ne_bytes());
        attr[4..8].copy_from_slice(&SIZE_VER0.to_ne_bytes());
        attr[8..16].copy_from_slice(&PAGE_FAULTS.to_ne_bytes());
        attr[FLAGS_AT..FLAGS_AT + 8].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: a complete first-version attr of ours; one thread, any
        // CPU, no group, close-on-exec.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr.as_ptr(),
                tid,
                -1,
                -1,
                libc::c_ulong::from(PERF_FLAG_FD_CLOEXEC),
            )
        } as RawFd;
        if fd < 0 {
            last = Errno(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO),
            );
            continue;
        }
        let high = vmm::fds::park(fd);
        // SAFETY: the descriptor just opened, parked above or not at all.
        unsafe { libc::close(fd) };
        return high.map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EMFILE)));
    }
    Err(last)
}

/// PERF_FLAG_FD_CLOEXEC.
const PERF_FLAG_FD_CLOEXEC: u32 = 8;

/// The calling thread's faults in its rusage, minor and major.
fn rusage_faults() -> u64 {
    // SAFETY: rusage is plain integers.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    (ru.ru_minflt + ru.ru_majflt) as u64
}

/// Thread `tid` of process `pid` (a /proc name)'s faults.
fn task_faults(pid: &str, tid: i32) -> Option<u64> {
    crate::syscalls::procfs::task_stat(pid, &tid.to_string()).map(|t| t.faults)
}

/// A thread of this process that another sandbox's program counts the
/// page faults of, written there by that sandbox (`Counting::begin`); its
/// magic tells the writer it found the place.
#[repr(C)]
struct Marked {
    magic: u64,
    /// Its faults (rusage) when marked: those it takes before it looks
    /// count too.
    faults: AtomicU64,
    /// Written last.
    tid: AtomicI32,
}

/// "xcr0pfmk".
const MARKED_MAGIC: u64 = 0x6b6d_6670_3072_6378;

#[used]
static MARKED: Marked = Marked {
    magic: MARKED_MAGIC,
    faults: AtomicU64::new(0),
    tid: AtomicI32::new(0),
};

/// Where `ours`, a static of this executable's image beginning with
/// `magic`, is in process `pid` if that runs the same executable: at the
/// same address in a fork's parent or child neither of which executed
/// since, else as far from the start of the image as here.
fn in_other(pid: i32, ours: u64, magic: u64) -> Option<u64> {
    if crate::syscalls::procfs::is_sandbox(&pid.to_string()) && has_magic(pid, ours, magic) {
        return Some(ours);
    }
    let (base, theirs) = (exe_base("self")?, exe_base(&pid.to_string())?);
    Some(theirs + (ours - base)).filter(|&at| has_magic(pid, at, magic))
}

/// Whether process `pid` has `magic` at `at`.
fn has_magic(pid: i32, at: u64, magic: u64) -> bool {
    let mut word = [0u8; 8];
    crate::trace::page::read_remote(pid, at, &mut word).is_ok() && u64::from_ne_bytes(word) == magic
}

/// Where process `pid` (a /proc name) maps this executable from its start.
fn exe_base(pid: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    let id = format!(
        "{:02x}:{:02x} {}",
        libc::major(exe.dev()),
        libc::minor(exe.dev()),
        exe.ino()
    );
    // Read a line at a time, up to the executable's: a whole sandbox's maps
    // would be a large allocation, whose first touches count as faults of
    // a thread the program may be counting.
    let maps = std::fs::File::open(format!("/proc/{pid}/maps")).ok()?;
    std::io::BufRead::lines(std::io::BufReader::new(maps)).find_map(|l| {
        let l = l.ok()?;
        // start-end perms offset dev inode path
        let f: Vec<&str> = l.split_whitespace().collect();
        let (range, offset) = (f.first()?, f.get(2)?);
        (u64::from_str_radix(offset, 16).ok()? == 0 && f.get(3..5)?.join(" ") == id)
            .then(|| u64::from_str_radix(range.split_once('-')?.0, 16).ok())
            .flatten()
    })
}

/// A marked thread found to be one of this process's.
static MARK_ALIVE: AtomicI32 = AtomicI32::new(0);

/// Whether another sandbox marked a thread of this process, and this is
/// it: it counts from now. A mark for no thread of ours (a fork child's
/// copy, a thread gone) is dropped; one for a thread that ends after it
/// was found stays, unused.
#[cold]
fn take_mark(thread: &mut Thread, marked: i32) {
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    if marked != me {
        // Looked for once: a thread busy in the guest may take long to
        // come out and take it.
        if MARK_ALIVE.load(Ordering::Relaxed) == marked {
            return;
        }
        if std::path::Path::new(&format!("/proc/self/task/{marked}")).exists() {
            MARK_ALIVE.store(marked, Ordering::Relaxed);
        } else {
            let _ = MARKED
                .tid
                .compare_exchange(marked, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        return;
    }
    if MARKED
        .tid
        .compare_exchange(me, 0, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        let since = MARKED.faults.load(Ordering::Relaxed);
        thread.process.count_faults();
        if !matches!(thread.faults, Faults::On(_)) {
            start(thread);
            if let Faults::On(r) = &mut thread.faults {
                // Taken in the guest since the mark (the sandbox's own
                // are few there: it was on its way back to the guest).
                r.owed += r.faults.saturating_sub(since);
            }
        }
    }
}

/// Replays made by the thread that opened a counter on another thread of
/// the process, for that thread to take at its next exit from the guest.
static HANDED: Mutex<Vec<(i32, Replay)>> = Mutex::new(Vec::new());
static HANDED_COUNT: AtomicUsize = AtomicUsize::new(0);

/// A page-fault counter the program opens on a thread: what it needs is
/// made ready before the open is forwarded, and begins only if that
/// succeeds.
pub enum Counting {
    /// On thread `tid` of this process (0: the caller), with the replay
    /// made for it (none if it has one).
    Here(i32, Option<Replay>),
    /// On thread `tid` of process `pid`, another sandbox running this
    /// executable, whose `MARKED` is at `at`.
    There { pid: i32, tid: i32, at: u64 },
}

impl Counting {
    /// For a counter on `tid` of process `pid` (0, 0: the caller). A
    /// sandbox that cannot be told (not the same executable, memory that
    /// cannot be written: ptrace_scope) makes ENOENT, as a kernel without
    /// the event, rather than a counter that counts almost nothing. The
    /// sandbox's own counter's error is the program's.
    pub fn prepare(thread: &Thread, pid: i32, tid: i32) -> Result<Counting, Errno> {
        // SAFETY: getpid and gettid have no preconditions.
        let (us, me) = unsafe { (libc::getpid(), libc::gettid()) };
        if tid == 0 || pid == us {
            let own = tid == 0 || tid == me;
            let replay = match (own, &thread.faults) {
                (true, Faults::On(_)) => None,
                (true, _) => Some(Replay::new(0)?),
                (false, _) => Some(Replay::new(tid)?),
            };
            return Ok(Counting::Here(if own { 0 } else { tid }, replay));
        }
        let refused = Errno(libc::ENOENT);
        let at = in_other(pid, &MARKED as *const Marked as u64, MARKED_MAGIC).ok_or(refused)?;
        Ok(Counting::There { pid, tid, at })
    }

    /// The program's counter is open: the thread takes the faults the host
    /// misses again from now on, and so does what its process creates
    /// after.
    pub fn begin(self, thread: &mut Thread) -> Result<(), Errno> {
        match self {
            Counting::Here(_, None) => {}
            Counting::Here(0, Some(r)) => thread.faults = Faults::On(r),
            Counting::Here(tid, Some(r)) => {
                let mut handed = HANDED.lock().expect("handed replays");
                handed.retain(|(t, _)| *t != tid);
                handed.push((tid, r));
                HANDED_COUNT.store(handed.len(), Ordering::Release);
            }
            Counting::There { pid, tid, at } => {
                let refused = Errno(libc::ENOENT);
                // Still there: the process may have executed meanwhile.
                if !has_magic(pid, at, MARKED_MAGIC) {
                    return Err(refused);
                }
                let faults = task_faults(&pid.to_string(), tid).ok_or(refused)?;
                let faults_at = at + std::mem::offset_of!(Marked, faults) as u64;
                let tid_at = at + std::mem::offset_of!(Marked, tid) as u64;
                crate::trace::page::write_remote(pid, faults_at, &faults.to_ne_bytes())
                    .and_then(|()| {
                        crate::trace::page::write_remote(pid, tid_at, &tid.to_ne_bytes())
                    })
                    .map_err(|_| refused)?;
                return Ok(());
            }
        }
        thread.process.count_faults();
        Ok(())
    }
}

/// As a task starts (a new thread, a fork child, a new image): it counts
/// from its first instruction if its process does.
pub fn start(thread: &mut Thread) {
    if !thread.process.faults_counted() || thread.process.borrows_vm() {
        // (A vfork child is on its parent's memory and registry of
        // descriptors until it executes: it counts from its exec.)
        return;
    }
    thread.faults = match Replay::new(0) {
        Ok(r) => Faults::On(r),
        Err(e) => {
            log::warn!("page faults this thread takes in the guest go uncounted: {e:?}");
            Faults::Failed
        }
    };
}

/// In a fork child: the parent's replays count the parent's threads.
pub fn forked(thread: &mut Thread) {
    thread.faults = Faults::Off;
    super::rusage::forked(thread);
    MARK_ALIVE.store(0, Ordering::Relaxed);
    HANDED.lock().expect("handed replays").clear();
    HANDED_COUNT.store(0, Ordering::Release);
    start(thread);
}

/// Whether the thread has missed faults not yet taken again.
#[inline]
pub fn owed(thread: &Thread) -> bool {
    matches!(&thread.faults, Faults::On(r) if r.owed > 0)
}

/// After each exit from the guest.
#[inline]
pub fn after_guest(thread: &mut Thread) {
    let marked = MARKED.tid.load(Ordering::Relaxed);
    if marked != 0 {
        take_mark(thread, marked);
    }
    if thread.process.faults_counted() {
        catch_up(thread);
    }
}

#[cold]
fn catch_up(thread: &mut Thread) {
    if matches!(thread.faults, Faults::Off) && HANDED_COUNT.load(Ordering::Acquire) > 0 {
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        let mut handed = HANDED.lock().expect("handed replays");
        if let Some(i) = handed.iter().position(|(t, _)| *t == me) {
            thread.faults = Faults::On(handed.swap_remove(i).1);
            HANDED_COUNT.store(handed.len(), Ordering::Release);
        }
    }
    let taken = match &mut thread.faults {
        Faults::On(r) => r.catch_up(),
        _ => 0,
    };
    if taken > 0 {
        super::rusage::took(thread, taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_fault_events_are_software_ones() {
        for config in [PAGE_FAULTS, PAGE_FAULTS_MIN, PAGE_FAULTS_MAJ] {
            assert!(is_page_faults(TYPE_SOFTWARE, config));
            assert!(!is_page_faults(0, config), "hardware {config}");
        }
        // task-clock, context switches.
        assert!(!is_page_faults(TYPE_SOFTWARE, 1) && !is_page_faults(TYPE_SOFTWARE, 3));
    }
}
