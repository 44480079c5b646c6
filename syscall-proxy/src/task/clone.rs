//! clone(2), clone3(2), fork(2) and vfork(2): every thread and process the
//! program creates runs in the sandbox, with its creator's XCR0.
//!
//! - A thread (CLONE_THREAD) is a host thread of this process running a
//!   new vCPU of the same VM. It performs its own system calls, so its tid,
//!   signal mask and robust list are the kernel's.
//! - A process without CLONE_VM is a host fork; the child makes a VM of
//!   its own over its copy of the memory ([`vmm::Vm::fork`]).
//! - CLONE_VM|CLONE_VFORK (vfork, posix_spawn) is a host child sharing
//!   this address space, and so this VM, until it executes a program (the
//!   sandbox again, which gives it an address space of its own) or exits;
//!   the kernel suspends the parent meanwhile, as natively.
//!
//! Here the child's vCPU and state are made ready; the task loop
//! ([`crate::task`]) starts the host thread or process that runs it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use vmm::{Forked, ThreadState, Vcpu, VcpuError};

use crate::host::Errno;
use crate::mm::Brk;
use crate::seccomp;
use crate::signals::{Signals, arrival};
use crate::syscalls::Action;
use crate::thread::Thread;
use crate::trace::tracee::{self, NewTask};
use crate::umem;

/// What the program asked for, from any of the four calls.
#[derive(Clone, Copy, Debug, Default)]
struct Request {
    flags: u64,
    exit_signal: u64,
    /// The child's stack pointer, 0 to keep the creator's.
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    pidfd: u64,
    tls: u64,
}

impl Request {
    fn untraced(self) -> bool {
        self.flags & bit(libc::CLONE_UNTRACED) != 0
    }

    /// Where CLONE_PARENT_SETTID writes the new task's id (0: nowhere).
    fn parent_tid_at(self) -> u64 {
        if self.flags & bit(libc::CLONE_PARENT_SETTID) != 0 {
            self.parent_tid
        } else {
            0
        }
    }
}

const fn bit(f: libc::c_int) -> u64 {
    f as u32 as u64
}

/// CLONE_CLEAR_SIGHAND and CLONE_INTO_CGROUP (include/uapi/linux/sched.h):
/// libc's values are truncated to c_int.
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// The low byte of clone's flags: the exit signal.
const CSIGNAL: u64 = 0xff;

/// Flags a thread may come with; the host thread shares the rest of the
/// process anyway (descriptors, cwd, System V undo lists).
const THREAD_FLAGS: u64 = bit(libc::CLONE_VM)
    | bit(libc::CLONE_FS)
    | bit(libc::CLONE_FILES)
    | bit(libc::CLONE_SIGHAND)
    | bit(libc::CLONE_THREAD)
    | bit(libc::CLONE_SYSVSEM)
    | bit(libc::CLONE_SETTLS)
    | bit(libc::CLONE_PARENT_SETTID)
    | bit(libc::CLONE_CHILD_SETTID)
    | bit(libc::CLONE_CHILD_CLEARTID)
    | bit(libc::CLONE_DETACHED)
    | bit(libc::CLONE_UNTRACED)
    | bit(libc::CLONE_IO);

/// Flags a process may come with (CLONE_VM only with CLONE_VFORK).
const PROCESS_FLAGS: u64 = bit(libc::CLONE_VM)
    | bit(libc::CLONE_VFORK)
    | bit(libc::CLONE_SETTLS)
    | bit(libc::CLONE_PARENT_SETTID)
    | bit(libc::CLONE_CHILD_SETTID)
    | bit(libc::CLONE_CHILD_CLEARTID)
    | bit(libc::CLONE_PIDFD)
    | bit(libc::CLONE_SYSVSEM)
    | bit(libc::CLONE_UNTRACED)
    | bit(libc::CLONE_IO)
    | CLONE_CLEAR_SIGHAND;

/// Handles clone, clone3, fork and vfork for `task`.
pub fn clone(thread: &mut Thread, nr: i64, a: [u64; 6]) -> Action {
    let r = match read_request(thread, nr, a) {
        Ok(r) => r,
        Err(e) => return Action::Return(crate::host::encode(Err(e))),
    };
    let has = |f: libc::c_int| r.flags & bit(f) != 0;
    let result = if has(libc::CLONE_THREAD) {
        supported(r, THREAD_FLAGS).and_then(|()| new_thread(thread, r))
    } else if has(libc::CLONE_VM) {
        if has(libc::CLONE_VFORK) {
            supported(r, PROCESS_FLAGS).and_then(|()| shared_vm_child(thread, r))
        } else {
            // A process sharing memory that runs alongside its parent
            // (LinuxThreads): no program of today's libcs does this.
            log::debug!("clone: CLONE_VM without CLONE_THREAD or CLONE_VFORK: ENOSYS");
            Err(Errno(libc::ENOSYS))
        }
    } else {
        supported(r, PROCESS_FLAGS).and_then(|()| fork(thread, r))
    };
    match result {
        Ok(action) => action,
        Err(e) => Action::Return(crate::host::encode(Err(e))),
    }
}

/// The request as the kernel would read it, with its consistency checks
/// (kernel/fork.c: copy_process, clone3_args_valid).
fn read_request(thread: &Thread, nr: i64, a: [u64; 6]) -> Result<Request, Errno> {
    let r = match nr {
        libc::SYS_fork => Request {
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        },
        libc::SYS_vfork => Request {
            flags: bit(libc::CLONE_VM) | bit(libc::CLONE_VFORK),
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        },
        // x86-64 order: flags, stack, parent_tid, child_tid, tls.
        libc::SYS_clone => {
            let flags = a[0] & !CSIGNAL & 0xffff_ffff;
            Request {
                flags,
                exit_signal: a[0] & CSIGNAL,
                stack: a[1],
                parent_tid: a[2],
                child_tid: a[3],
                // The legacy call returns the pidfd through parent_tid.
                pidfd: if flags & bit(libc::CLONE_PIDFD) != 0 {
                    a[2]
                } else {
                    0
                },
                tls: a[4],
            }
        }
        _ => read_clone3(thread, a[0], a[1])?,
    };
    let has = |f: libc::c_int| r.flags & bit(f) != 0;
    if (has(libc::CLONE_THREAD) && !has(libc::CLONE_SIGHAND))
        || (has(libc::CLONE_SIGHAND) && !has(libc::CLONE_VM))
        || (has(libc::CLONE_NEWNS) && has(libc::CLONE_FS))
        || (has(libc::CLONE_NEWUSER) && has(libc::CLONE_FS))
        || (r.flags & CLONE_CLEAR_SIGHAND != 0 && has(libc::CLONE_SIGHAND))
        || (nr == libc::SYS_clone && has(libc::CLONE_PIDFD) && has(libc::CLONE_PARENT_SETTID))
    {
        return Err(Errno(libc::EINVAL));
    }
    Ok(r)
}

fn read_clone3(thread: &Thread, addr: u64, size: u64) -> Result<Request, Errno> {
    // CLONE_ARGS_SIZE_VER0: the first version's size.
    const VER0: u64 = 64;
    let known = size_of::<libc::clone_args>() as u64;
    if size < VER0 {
        return Err(Errno(libc::EINVAL));
    }
    if size > mm_page() {
        return Err(Errno(libc::E2BIG));
    }
    let space = thread.process.vm.memory.lock().expect("address space");
    let mut bytes = vec![0u8; size as usize];
    umem::read_bytes(&space, addr, &mut bytes)?;
    drop(space);
    // A newer struct's fields the kernel would not know must be zero.
    if bytes.iter().skip(known as usize).any(|&b| b != 0) {
        return Err(Errno(libc::E2BIG));
    }
    let word = |i: usize| {
        bytes
            .get(8 * i..8 * i + 8)
            .map_or(0, |w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
    };
    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal,
    // stack, stack_size, tls, set_tid, set_tid_size, cgroup.
    let (flags, stack, stack_size) = (word(0), word(5), word(6));
    let exit_signal = word(4);
    if flags & !(0xffff_ffff & !CSIGNAL | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP) != 0
        || exit_signal & !CSIGNAL != 0
        || (stack == 0) != (stack_size == 0)
        || (word(9) != 0 && word(8) == 0)
    {
        return Err(Errno(libc::EINVAL));
    }
    if flags & bit(libc::CLONE_THREAD) != 0 && exit_signal != 0 {
        return Err(Errno(libc::EINVAL));
    }
    if word(9) != 0 || flags & CLONE_INTO_CGROUP != 0 {
        // Choosing pids or a cgroup needs privileges the sandbox does not
        // use on the program's behalf.
        return Err(Errno(libc::EPERM));
    }
    Ok(Request {
        flags,
        exit_signal,
        stack: if stack == 0 { 0 } else { stack + stack_size },
        parent_tid: word(3),
        child_tid: word(2),
        pidfd: word(1),
        tls: word(7),
    })
}

fn mm_page() -> u64 {
    crate::mm::PAGE
}

/// ENOSYS, with a trace, for what the sandbox cannot do: namespaces,
/// CLONE_PARENT, a fork sharing descriptors or cwd, a fork child that
/// reports to its parent with a signal other than SIGCHLD.
fn supported(r: Request, allowed: u64) -> Result<(), Errno> {
    let extra = r.flags & !allowed;
    let vfork = r.flags & bit(libc::CLONE_VFORK) != 0;
    let thread = r.flags & bit(libc::CLONE_THREAD) != 0;
    if extra != 0 || (!thread && !vfork && r.exit_signal != libc::SIGCHLD as u64) {
        log::debug!(
            "clone: flags {extra:#x} (exit signal {}) are not supported: ENOSYS",
            r.exit_signal
        );
        return Err(Errno(libc::ENOSYS));
    }
    Ok(())
}

/// EAGAIN, as pthread_create gets at a thread limit; a limit reached is
/// the program's business, anything else is reported.
fn kvm_failed(e: VcpuError) -> Errno {
    if e.is_exhaustion() {
        log::debug!("clone: {e}: EAGAIN");
    } else {
        log::error!("clone: {e}");
    }
    Errno(libc::EAGAIN)
}

/// The state the new task starts from: its creator's, with rax = 0 and
/// the stack and TLS it was given.
fn child_state(thread: &mut Thread, r: Request) -> Result<ThreadState, Errno> {
    let mut st = thread.vcpu.thread_state().map_err(kvm_failed)?;
    st.regs.rax = 0;
    if r.stack != 0 {
        st.regs.rsp = r.stack;
    }
    if r.flags & bit(libc::CLONE_SETTLS) != 0 {
        st.fs_base = r.tls;
    }
    Ok(st)
}

/// In the new task, before the program runs there: CLONE_PARENT_SETTID
/// (for threads and vfork children, which share memory with the parent),
/// CLONE_CHILD_SETTID and CLONE_CHILD_CLEARTID. The kernel ignores faults
/// on these addresses, and so does this.
fn settid(thread: &mut Thread, r: Request, parent_too: bool, started: Option<&AtomicI32>) {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    let space = thread.process.vm.memory.lock().expect("address space");
    if let Some(started) = started {
        // Under the lock: its creator's write of CLONE_PARENT_SETTID
        // (ChildIds::parent_settid) comes before, or not at all.
        started.store(tid as i32, Ordering::SeqCst);
    }
    if parent_too && r.flags & bit(libc::CLONE_PARENT_SETTID) != 0 {
        let _ = umem::write(&space, r.parent_tid, tid);
    }
    if r.flags & bit(libc::CLONE_CHILD_SETTID) != 0 {
        let _ = umem::write(&space, r.child_tid, tid);
    }
    drop(space);
    thread.clear_child_tid = if r.flags & bit(libc::CLONE_CHILD_CLEARTID) != 0 {
        r.child_tid
    } else {
        0
    };
}

/// In the parent of a process: CLONE_PARENT_SETTID and CLONE_PIDFD.
fn parent_side(thread: &Thread, r: Request, pid: libc::pid_t) -> Result<(), Errno> {
    crate::perf::rusage::new_child(pid);
    let space = thread.process.vm.memory.lock().expect("address space");
    if r.flags & bit(libc::CLONE_PARENT_SETTID) != 0 {
        let _ = umem::write(&space, r.parent_tid, pid as u32);
    }
    if r.flags & bit(libc::CLONE_PIDFD) != 0 {
        // SAFETY: pidfd_open on the child just made; the descriptor is
        // close-on-exec, as clone's is.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd >= 0 {
            umem::write(&space, r.pidfd, fd as i32)?;
        }
    }
    Ok(())
}

/// A vCPU of this VM with the creator's XCR0, set to continue from the
/// child's state.
fn child_vcpu(thread: &mut Thread, r: Request) -> Result<Vcpu, Errno> {
    let st = child_state(thread, r)?;
    let vm = &thread.process.vm;
    let mut vcpu = vm.create_vcpu(thread.vcpu.xcr0()).map_err(kvm_failed)?;
    if let Err(e) = vcpu.start_thread(&st) {
        vm.release_vcpu(vcpu);
        return Err(kvm_failed(e));
    }
    Ok(vcpu)
}

/// A new thread: a new vCPU of this VM, for a host thread the task loop
/// starts ([`Action::Spawn`]).
fn new_thread(thread: &mut Thread, r: Request) -> Result<Action, Errno> {
    let vcpu = child_vcpu(thread, r)?;
    let mut child = Thread::new(thread.process.clone(), vcpu, false);
    child.orig_rax = thread.orig_rax;
    child.seccomp = seccomp::inherit(&thread.seccomp);
    Ok(Action::Spawn(Box::new(Child {
        thread: child,
        ids: ChildIds(r, 0),
    })))
}

/// A new process by a host fork. The child continues here, in a VM of its
/// own, as the only thread of a new [`Process`].
fn fork(thread: &mut Thread, r: Request) -> Result<Action, Errno> {
    let st = child_state(thread, r)?;
    // Read before the fork: no lock another thread might hold can be
    // taken in the child.
    let (signals, cleared, brk) = inherited(thread, r);
    let filters = seccomp::inherit(&thread.seccomp);
    let creating = tracee::creating(thread, NewTask::Fork, r.untraced(), r.parent_tid_at());
    let follow = creating.as_ref().map(|c| c.follow);
    // A signal's kick writes into this vCPU's kvm_run, which the child
    // unmaps at once: none may kick until each side points it at its own.
    arrival::set_kick(std::ptr::null_mut());
    let forked = thread.process.vm.fork(&thread.vcpu);
    if let Ok(Forked::Parent(_)) | Err(_) = forked {
        arrival::set_kick(thread.vcpu.kick_flag());
        tracee::created(thread, creating);
    }
    match forked.map_err(kvm_failed)? {
        Forked::Parent(pid) => {
            parent_side(thread, r, pid)?;
            Ok(Action::Return(pid as u64))
        }
        Forked::Child(vm, mut vcpu) => {
            if let Err(e) = vcpu.start_thread(&st) {
                thread.process.end(Err(format!("fork child: {e}")));
            }
            Signals::install_cleared(cleared);
            let process = Arc::new(thread.process.child(vm, brk, signals));
            // The parent's objects are left as they are (other threads'
            // stacks, gone in the child, still point at them); their
            // descriptors were closed by Vm::fork.
            std::mem::forget(std::mem::replace(&mut thread.vcpu, *vcpu));
            arrival::set_kick(thread.vcpu.kick_flag());
            std::mem::forget(std::mem::replace(&mut thread.process, process));
            if let Err(e) = crate::cpuid::arm(thread) {
                thread.process.end(Err(format!("fork child: {e}")));
            }
            thread.leader = true;
            thread.tiles_in_use = false;
            // Its page-fault counter counts the parent's thread.
            crate::perf::faults::forked(thread);
            // A new state: another thread of the parent may have held the
            // old one's lock at the fork (TSYNC).
            thread.seccomp = filters;
            settid(thread, r, false, None);
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            thread.process.seccomp.enter(tid, &thread.seccomp);
            tracee::start(thread, follow);
            Ok(Action::Started)
        }
    }
}

/// What a child process starts with: its parent's dispositions (with
/// handlers cleared under CLONE_CLEAR_SIGHAND: the cleared signals are
/// returned, for the child to reset on its host) and heap break.
fn inherited(thread: &Thread, r: Request) -> (Signals, u64, Brk) {
    let mut signals = thread.process.signals.lock().expect("signals").clone();
    let cleared = if r.flags & CLONE_CLEAR_SIGHAND != 0 {
        signals.clear_handlers()
    } else {
        0
    };
    (signals, cleared, *thread.process.brk.lock().expect("brk"))
}

/// A vfork child: a new process over this address space (CLONE_VM) on a
/// vCPU of this VM, for the host process the task loop starts
/// ([`Action::Spawn`]).
fn shared_vm_child(thread: &mut Thread, r: Request) -> Result<Action, Errno> {
    let vcpu = child_vcpu(thread, r)?;
    let vm = thread.process.vm.clone();
    let (signals, cleared, brk) = inherited(thread, r);
    let process = Arc::new(thread.process.child(vm, brk, signals));
    let mut child = Thread::new(process, vcpu, true);
    child.altstack = thread.altstack;
    child.orig_rax = thread.orig_rax;
    child.seccomp = seccomp::inherit(&thread.seccomp);
    Ok(Action::Spawn(Box::new(Child {
        thread: child,
        ids: ChildIds(r, cleared),
    })))
}

/// A thread or vfork child, ready to run, that needs a host thread or
/// process.
pub struct Child {
    pub thread: Thread,
    pub ids: ChildIds,
}

/// What the child's creation asked for that is done as it starts: the
/// request, and the signals CLONE_CLEAR_SIGHAND cleared (a vfork child
/// resets them on its host).
#[derive(Clone, Copy, Debug)]
pub struct ChildIds(Request, u64);

impl ChildIds {
    /// A thread of the creating process (else a vfork child).
    pub fn is_thread(self) -> bool {
        self.0.flags & bit(libc::CLONE_THREAD) != 0
    }

    /// What the child is, as a tracer's options name it.
    pub fn kind(self) -> NewTask {
        if self.is_thread() {
            NewTask::Thread
        } else {
            NewTask::Vfork
        }
    }

    /// CLONE_UNTRACED: no tracer follows the child.
    pub fn untraced(self) -> bool {
        self.0.untraced()
    }

    /// Where CLONE_PARENT_SETTID writes the child's id (0: nowhere).
    pub fn parent_tid_at(self) -> u64 {
        self.0.parent_tid_at()
    }

    /// The host clone flags of a vfork child.
    pub fn host_flags(self) -> libc::c_int {
        libc::CLONE_VM | libc::CLONE_VFORK | self.0.exit_signal as libc::c_int
    }

    /// In the child, before the program runs there: CLONE_PARENT_SETTID,
    /// CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID (the memory is shared),
    /// and, in a vfork child's own process, the host side of
    /// CLONE_CLEAR_SIGHAND. A thread sets `started` to its id meanwhile.
    pub fn settid(self, child: &mut Thread, started: Option<&AtomicI32>) {
        settid(child, self.0, true, started);
        Signals::install_cleared(self.1);
    }

    /// In the creator of thread `tid`, before its clone returns:
    /// CLONE_PARENT_SETTID, unless the thread has `started` and so written
    /// it (it may have ended since and cleared it, CLONE_CHILD_CLEARTID
    /// naming the same word, as glibc's do).
    pub fn parent_settid(self, creator: &Thread, tid: libc::pid_t, started: &AtomicI32) {
        if self.0.flags & bit(libc::CLONE_PARENT_SETTID) != 0 {
            let space = creator.process.vm.memory.lock().expect("address space");
            if started.load(Ordering::SeqCst) == 0 {
                let _ = umem::write(&space, self.0.parent_tid, tid as u32);
            }
        }
    }

    /// In the parent of a vfork child: CLONE_PARENT_SETTID and CLONE_PIDFD.
    pub fn parent_side(self, parent: &Thread, pid: libc::pid_t) -> Result<(), Errno> {
        parent_side(parent, self.0, pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_and_process_flags_are_disjoint_where_they_must_be() {
        assert_eq!(PROCESS_FLAGS & bit(libc::CLONE_THREAD), 0);
        assert_eq!(PROCESS_FLAGS & bit(libc::CLONE_SIGHAND), 0);
        assert_eq!(THREAD_FLAGS & bit(libc::CLONE_VFORK), 0);
        assert_eq!(bit(libc::CLONE_PIDFD), 0x1000);
    }
}
