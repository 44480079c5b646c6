//! A process of the program: what its threads share (the VM and its address
//! space, the heap break, signal dispositions, the executable, counters)
//! and how it ends.
//!
//! Each process of the program is one host process of the sandbox, with
//! the program's real pid; each of its threads is a host thread running
//! one vCPU of the process's VM ([`crate::task`]).

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use vmm::Vm;
use vmm::memory::MemoryStats;

use crate::mm::Brk;
use crate::signals::Signals;
use crate::syscalls::procfs::{self, TaskStat};

/// How a process of the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// exit/exit_group with this status (0..=255).
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// What the sandbox was asked for that a fork or an exec passes on.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `-v` count, for a re-executed sandbox.
    pub verbose: u8,
    /// Whether this process reports `--stats` when it ends: only the
    /// initial process (and what it execs) does.
    pub stats: bool,
    /// The sandbox's own stderr (parked), kept across an exec.
    pub report_fd: Option<RawFd>,
    /// The XCR0 the program was started with, which ARCH_SET_XCR0 with
    /// every bit set restores.
    pub default_xcr0: u64,
    /// `--arch-prctl-compat`: arch_prctl 0x1021 is ARCH_SET_XCR0, as in the
    /// unmerged patch, rather than mainline's ARCH_GET_XCOMP_SUPP.
    pub arch_prctl_compat: bool,
    /// `--cpuid`: what the program's CPUID answers.
    pub cpuid: crate::cpuid::Policy,
    /// `--explain`: report each #UD, and the first looks at XCR0 at exit.
    pub explain: bool,
}

/// Ends the host process as the program's process ended (or the sandbox
/// failed): provided by the binary, which owns the reporting.
pub type Finish = fn(&Process, Result<Outcome, String>) -> !;

/// Counts for `--stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub syscalls: u64,
    pub exceptions: u64,
    pub exits: u64,
    pub other_ioctls: u64,
    pub memory: MemoryStats,
}

/// What `--stats` counts above the vCPUs, kept with the VM's own counters:
/// a vfork child runs on this VM until it executes a program, and counts
/// here as its VM exits do.
#[derive(Debug, Default)]
struct Counters {
    syscalls: AtomicU64,
    exceptions: AtomicU64,
}

#[derive(Debug, Default)]
struct Live {
    threads: usize,
    /// How the thread that ended last ended (exit(2), or killed alone by
    /// seccomp), once the leader has: the process's status when the leader
    /// ended before the others, as Linux reports it (measured: the last
    /// thread's exit(2) status, the leader's own when it ends last).
    last_end: Option<Outcome>,
}

pub struct Process {
    pub vm: Arc<Vm>,
    pub brk: Mutex<Brk>,
    pub signals: Mutex<Signals>,
    /// The program's executable (the ELF mapped, absolute): what
    /// /proc/self/exe names for the program, rather than the sandbox.
    pub exe: PathBuf,
    pub options: Options,
    /// The XSAVE components granted on request, with what they depend on.
    pub xcomp: Mutex<crate::syscalls::xstate::Permissions>,
    /// Its threads' seccomp states, for TSYNC.
    pub seccomp: crate::seccomp::Threads,
    /// Its threads' first looks at XCR0, for `--explain`.
    pub looks: crate::explain::Looks,
    counters: Arc<Counters>,
    live: Mutex<Live>,
    alone: Condvar,
    reaper: Mutex<Reaper>,
    /// A host thread was handed to the reaper.
    adopted: Condvar,
    finish: Finish,
    /// The program opened a page-fault counter on one of its threads
    /// (perf::faults), or inherited it so.
    faults: AtomicBool,
    /// A vfork child's, on its parent's VM.
    borrowed_vm: bool,
}

/// How long an exec waits for KVM's worker to leave once the VM is
/// destroyed (it takes some 60 µs).
const WORKER_ENDS_WITHIN: std::time::Duration = std::time::Duration::from_millis(100);

/// KVM's host threads in this process (`kvm-nx-lpage-recovery`, in the
/// thread group of the thread that first ran a vCPU).
fn kvm_workers() -> usize {
    workers().count()
}

/// The id of a host thread just spawned, whether or not it has run: glibc
/// set it (CLONE_PARENT_SETTID) before pthread_create returned, and the
/// thread's CPU clock names it (the kernel's encoding of a thread's clock,
/// ~tid << 3 with the clock's type in the low bits). None once the thread
/// has ended (glibc's tid is cleared then).
pub(crate) fn host_tid(h: &JoinHandle<()>) -> Option<libc::pid_t> {
    use std::os::unix::thread::JoinHandleExt;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the handle's thread is not joined yet, so its pthread_t is
    // valid; the call writes the clockid_t we own.
    let r = unsafe { libc::pthread_getcpuclockid(h.as_pthread_t(), &mut clock) };
    // (glibc reads the id twice: 0 if the thread ended in between.)
    Some(!(clock >> 3)).filter(|&tid| r == 0 && tid > 0)
}

/// Joins the host thread of `h` if it returns within `limit` (polled
/// every `poll`): whether it did. A thread held in a group stop may not
/// return until a SIGCONT.
pub(crate) fn join_within(
    h: JoinHandle<()>,
    limit: std::time::Duration,
    poll: std::time::Duration,
) -> bool {
    let start = std::time::Instant::now();
    while !h.is_finished() && start.elapsed() < limit {
        std::thread::sleep(poll);
    }
    let done = h.is_finished();
    if done {
        let _ = h.join();
    }
    done
}

/// Whether the host thread of `h` is held in a group stop (`kvm_worker_stopped`).
fn held_in_stop(h: &JoinHandle<()>) -> bool {
    host_tid(h)
        .and_then(|tid| procfs::task_stat("self", &tid.to_string()))
        .is_some_and(|t| t.group_stopped())
}

/// KVM's worker threads (user workers) of this process, from /proc.
fn workers() -> impl Iterator<Item = TaskStat> {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| procfs::task_stat("self", t.file_name().to_str()?))
        .filter(|t| t.flags & procfs::PF_USER_WORKER != 0)
}

/// Whether KVM's worker is held in a group stop: in a process a tracer
/// resumed from one, its threads run on while the stop lasts for the
/// threads it does not trace (until a SIGCONT), the worker among them.
/// Destroying the VM then waits for the worker (vhost_task_stop), in
/// uninterruptible sleep, until the stop ends: the VM is left to go with
/// the process, whose end kills the worker.
fn kvm_worker_stopped() -> bool {
    workers().any(|t| t.group_stopped())
}

/// How long the end of a process waits for an idle reaper to return.
const REAPER_ENDS_WITHIN: std::time::Duration = std::time::Duration::from_millis(200);

/// Waits for ended threads' host threads to be gone before their
/// CLONE_CHILD_CLEARTID is cleared, as the kernel clears it at the very
/// end of a thread: a joiner then finds the thread gone, as natively.
#[derive(Default)]
struct Reaper {
    handles: HashMap<libc::pid_t, JoinHandle<()>>,
    ended: Option<Sender<(libc::pid_t, u64)>>,
    /// The reaper's own host thread.
    thread: Option<JoinHandle<()>>,
}

impl Process {
    pub fn new(
        vm: Arc<Vm>,
        brk: Brk,
        signals: Signals,
        exe: PathBuf,
        options: Options,
        finish: Finish,
    ) -> Process {
        Process {
            vm,
            brk: Mutex::new(brk),
            signals: Mutex::new(signals),
            exe,
            options,
            xcomp: Mutex::default(),
            seccomp: Default::default(),
            looks: Default::default(),
            counters: Arc::default(),
            live: Mutex::new(Live {
                threads: 1,
                last_end: None,
            }),
            alone: Condvar::new(),
            reaper: Mutex::default(),
            adopted: Condvar::new(),
            finish,
            faults: AtomicBool::new(false),
            borrowed_vm: false,
        }
    }

    /// The process of a child (fork, vfork) that starts with `signals`
    /// and `brk`, read from this one: the same executable and options, over
    /// `vm` (its own after a fork, this one's for vfork), one thread, no
    /// `--stats`.
    pub fn child(&self, vm: Arc<Vm>, brk: Brk, signals: Signals) -> Process {
        let options = Options {
            stats: false,
            ..self.options.clone()
        };
        let shared = Arc::ptr_eq(&vm, &self.vm);
        let mut child = Process::new(vm, brk, signals, self.exe.clone(), options, self.finish);
        if shared {
            child.counters = self.counters.clone();
        }
        child.borrowed_vm = shared;
        // Counters follow children (attr.inherit) and outlive an exec.
        child.faults = AtomicBool::new(self.faults_counted());
        // Fork inherits the permissions (fpu_inherit_perms).
        let perms = self.xcomp.lock().expect("xcomp");
        let inherited = child.xcomp.get_mut().expect("xcomp");
        inherited.granted = perms.granted;
        inherited.guest_granted = perms.guest_granted;
        child
    }

    /// Its threads take the page faults the host does not count again.
    pub fn count_faults(&self) {
        self.faults.store(true, Ordering::Relaxed);
    }

    pub fn faults_counted(&self) -> bool {
        self.faults.load(Ordering::Relaxed)
    }

    /// Whether this is a vfork child's, on its parent's VM.
    pub fn borrows_vm(&self) -> bool {
        self.borrowed_vm
    }

    pub fn count_syscall(&self) {
        self.counters.syscalls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_exception(&self) {
        self.counters.exceptions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> Stats {
        let c = &self.vm.counters;
        Stats {
            syscalls: self.counters.syscalls.load(Ordering::Relaxed),
            exceptions: self.counters.exceptions.load(Ordering::Relaxed),
            exits: c.exits.load(Ordering::Relaxed),
            other_ioctls: c.other_ioctls.load(Ordering::Relaxed),
            // Another thread may be ending mid-update: then no memory counts.
            memory: self
                .vm
                .memory
                .try_lock()
                .map(|m| m.stats)
                .unwrap_or_default(),
        }
    }

    /// A thread was created.
    pub fn thread_started(&self) {
        self.live.lock().expect("threads").threads += 1;
    }

    /// A thread's host thread `tid` was made: the reaper joins it once it
    /// has ended.
    pub fn adopt_thread(&self, tid: libc::pid_t, handle: JoinHandle<()>) {
        self.reaper
            .lock()
            .expect("reaper")
            .handles
            .insert(tid, handle);
        self.adopted.notify_all();
    }

    /// Before the first thread of the program's is made: the reaper, the
    /// sandbox's own host thread, whose host clone a tracer following the
    /// creator's clones then sees (and lets go) before the program's, not
    /// after it, when the tracer may be waiting for the new thread alone.
    pub fn ensure_reaper(self: &Arc<Self>) {
        let mut reaper = self.reaper.lock().expect("reaper");
        if reaper.ended.is_none() {
            let (tx, rx) = mpsc::channel();
            let me = self.clone();
            // Created with every signal blocked: they are the program's
            // threads' to take.
            let mask = crate::signals::arrival::mask();
            crate::signals::arrival::set_mask(!0);
            let spawned = std::thread::Builder::new()
                .name(format!(
                    "{}reaper",
                    crate::syscalls::procfs::OWN_THREAD_PREFIX
                ))
                .stack_size(64 << 10)
                .spawn(move || {
                    for (tid, ctid) in rx {
                        me.reap(tid, ctid);
                    }
                });
            crate::signals::arrival::set_mask(mask);
            match spawned {
                Ok(h) => {
                    reaper.ended = Some(tx);
                    reaper.thread = Some(h);
                }
                Err(e) => log::error!("no reaper thread: {e}"),
            }
        }
    }

    /// A thread other than the leader ends (its host thread `tid` is about
    /// to return) as `how` says, with `ctid` its CLONE_CHILD_CLEARTID
    /// address. A `traced` thread may end while a group stop its tracer
    /// resumed it from holds the reaper (`kvm_worker_stopped`): its end is
    /// then made seen at once, its host thread not yet gone, rather than
    /// once a SIGCONT lets the reaper run.
    pub fn thread_ending(&self, tid: libc::pid_t, ctid: u64, how: Outcome, traced: bool) {
        {
            let mut live = self.live.lock().expect("threads");
            if live.last_end.is_some() {
                live.last_end = Some(how);
            }
        }
        let mut reaper = self.reaper.lock().expect("reaper");
        let held = traced && reaper.thread.as_ref().is_some_and(held_in_stop);
        if let Some(tx) = reaper.ended.as_ref().filter(|_| !held) {
            let _ = tx.send((tid, ctid));
            return;
        }
        if held {
            // Left unjoined (detached as it is dropped).
            reaper.handles.remove(&tid);
        }
        drop(reaper);
        self.clear_child_tid(ctid);
        self.thread_ended();
    }

    fn reap(&self, tid: libc::pid_t, ctid: u64) {
        let mut reaper = self.reaper.lock().expect("reaper");
        let handle = loop {
            if let Some(h) = reaper.handles.remove(&tid) {
                break h;
            }
            // The thread ended before its creator handed it over.
            reaper = self.adopted.wait(reaper).expect("reaper");
        };
        drop(reaper);
        let _ = handle.join();
        self.clear_child_tid(ctid);
        self.thread_ended();
    }

    /// CLONE_CHILD_CLEARTID at a thread's end: what the kernel does in
    /// mm_release, so that pthread_join wakes.
    pub fn clear_child_tid(&self, ctid: u64) {
        if ctid == 0 {
            return;
        }
        let space = self.vm.memory.lock().expect("address space");
        if crate::umem::write(&space, ctid, 0u32).is_ok() {
            drop(space);
            // SAFETY: FUTEX_WAKE on a program address checked writable
            // above; shared waiters, as mm_release wakes.
            unsafe { libc::syscall(libc::SYS_futex, ctid, libc::FUTEX_WAKE, 1) };
        }
    }

    /// A thread counted by `thread_started` could not be started.
    pub fn thread_failed(&self) {
        self.thread_ended();
    }

    fn thread_ended(&self) {
        let mut live = self.live.lock().expect("threads");
        live.threads -= 1;
        if live.threads == 0 {
            self.alone.notify_all();
        }
    }

    /// The leader called exit(2): the process lives on until its last
    /// thread ends, then exits with the leader's status, as Linux reports
    /// a thread group whose leader exited first.
    pub fn leader_exited(&self, how: Outcome) -> ! {
        let mut live = self.live.lock().expect("threads");
        live.last_end = Some(how);
        live.threads -= 1;
        while live.threads > 0 {
            live = self.alone.wait(live).expect("threads");
        }
        let how = live.last_end.unwrap_or(how);
        drop(live);
        self.end(Ok(how))
    }

    /// Just before the host process exits: the sandbox's own host threads
    /// end here, the reaper and (with the VM, if no other thread runs)
    /// KVM's worker, while the calling thread lives. Left to the exit,
    /// they could outlive every thread of the program, the leader then a
    /// zombie its tracer cannot yet reap, which gdb takes for a process
    /// gone ("No unwaited-for children left"); natively the leader's exit
    /// can be reaped as soon as its last other thread is.
    pub fn wind_down(&self) {
        self.end_reaper();
        // No signal may kick the vCPU once its kvm_run is unmapped: the
        // exit owes the program none (a fatal one is raised after, by
        // itself).
        crate::signals::arrival::stop_taking();
        if kvm_worker_stopped() || !self.vm.shut_down() {
            log::debug!("other vCPUs run at the exit: the VM goes with the process");
        }
    }

    /// Just before an exec by the program's only thread: the sandbox's
    /// own host threads end here, the reaper and, with the VM, KVM's
    /// worker, so that the host process is as alone as the program. With
    /// other threads the kernel's exec ends them, and drops the job control
    /// the exec'ing thread has pending too (zap_other_threads, on kernels
    /// with commit 90918794a4e2 of 2026, 6.18.44 among them): a tracer's
    /// PTRACE_INTERRUPT that has not made its stop yet would be lost,
    /// where natively the program's new image stops at once. Returns whether it did: the VM is then
    /// gone, and the thread must not run in it again.
    pub fn alone_for_exec(&self) -> bool {
        if self.live.lock().expect("threads").threads > 1
            || !self.vm.alone()
            || kvm_worker_stopped()
        {
            return false;
        }
        self.end_reaper();
        // A signal arriving from now on waits in the slot: it must not
        // kick a kvm_run that is unmapped.
        crate::signals::arrival::set_kick(std::ptr::null_mut());
        if !self.vm.shut_down() {
            return false;
        }
        // Destroying the VM stops KVM's worker; it leaves the thread group
        // a moment later.
        let start = std::time::Instant::now();
        while kvm_workers() > 0 && start.elapsed() < WORKER_ENDS_WITHIN {
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
        true
    }

    fn end_reaper(&self) {
        let reaper = {
            let mut r = self.reaper.lock().expect("reaper");
            // Its channel closed, the reaper returns once idle.
            r.ended = None;
            r.thread.take()
        };
        let poll = std::time::Duration::from_micros(100);
        if let Some(h) = reaper
            && !join_within(h, REAPER_ENDS_WITHIN, poll)
        {
            log::debug!("the reaper is still busy at the exit");
        }
    }

    /// Ends the whole process (exit_group, a fatal signal, an internal
    /// error), whichever thread asks.
    pub fn end(&self, r: Result<Outcome, String>) -> ! {
        (self.finish)(self, r)
    }
}
