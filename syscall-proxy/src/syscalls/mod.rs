//! What each system call does: decoded once here, then forwarded to the
//! host (after its arguments are checked) or emulated.

pub mod args;
pub(crate) mod check;
pub mod memfile;
pub mod procfs;
pub mod tsc;
pub mod xstate;

use vmm::{Syscall, fds};

use crate::clone;
use crate::exec;
use crate::host::{self, Errno, SysResult, encode};
use crate::limits;
use crate::mm;
use crate::process::Outcome;
use crate::seccomp;
use crate::signals::{self, KernelSigaction};
use crate::thread::Thread;
use crate::trace;
use crate::umem;

/// What the task does after a system call.
pub enum Action {
    /// Resume the program with this value in RAX.
    Return(u64),
    /// Start a host thread or process for this new thread or vfork child,
    /// and return its id.
    Spawn(Box<clone::Child>),
    /// The vCPU was set up to continue elsewhere (a fork child's first
    /// instruction): leave its registers alone.
    Started,
    /// exit(2): the calling thread is over, with this status.
    ExitThread(i32),
    /// The process is over (exit_group, a fatal signal).
    End(Outcome),
}

fn ret(r: SysResult) -> Action {
    Action::Return(encode(r))
}

/// Handles one system call of `thread`.
pub fn handle(thread: &mut Thread, sc: Syscall) -> Action {
    let a = sc.args;
    let nr = sc.nr as i64;
    log::trace!("syscall {} ({}) {:x?}", name(nr), sc.nr, a);
    let action = match nr {
        libc::SYS_exit => Action::ExitThread(a[0] as i32 & 0xff),
        libc::SYS_exit_group => Action::End(Outcome::Exited(a[0] as i32 & 0xff)),
        libc::SYS_brk => {
            let mut space = thread.process.vm.memory.lock().expect("address space");
            let new = thread
                .process
                .brk
                .lock()
                .expect("brk")
                .set(&mut space, a[0]);
            Action::Return(new)
        }
        // Kept by the sandbox, which clears it when the thread exits: the
        // host thread's own belongs to its thread library.
        libc::SYS_set_tid_address => {
            thread.clear_child_tid = a[0];
            // SAFETY: gettid has no preconditions.
            Action::Return(unsafe { libc::gettid() } as u64)
        }
        libc::SYS_pkey_mprotect if a[3] as i32 != -1 => ret(Err(Errno(libc::EINVAL))),
        _ if is_memory_call(nr) => ret(memory(thread, nr, a)),
        libc::SYS_arch_prctl => ret(arch_prctl(thread, a)),
        libc::SYS_rt_sigaction => ret(sigaction(thread, a)),
        libc::SYS_rt_sigprocmask => ret(sigprocmask(thread, a)),
        libc::SYS_sigaltstack => ret(sigaltstack(thread, a)),
        libc::SYS_rt_sigreturn => match signals::deliver::sigreturn(thread) {
            Ok(()) => Action::Started,
            Err(outcome) => Action::End(outcome),
        },
        libc::SYS_close => ret(if fds::is_parked(a[0] as i32 as i64) {
            Err(Errno(libc::EBADF))
        } else {
            forward_raw(nr, a)
        }),
        libc::SYS_dup2 | libc::SYS_dup3 => ret(dup(nr, a)),
        libc::SYS_close_range => ret(close_range(a)),
        libc::SYS_ioctl => ret(checked(
            thread,
            nr,
            a,
            &[args::Arg::Fd(0)],
            Some(args::ioctl_arg(a[1])),
        )),
        libc::SYS_fcntl => ret(checked(
            thread,
            nr,
            a,
            &[args::Arg::Fd(0)],
            args::fcntl_arg(a[1]),
        )),
        libc::SYS_prctl => ret(prctl(thread, a)),
        // Filters would apply to the sandbox's own system calls (KVM_RUN).
        libc::SYS_seccomp => ret(seccomp::seccomp(thread, a[0], a[1], a[2])),
        libc::SYS_perf_event_open => ret(crate::perf::open(thread, a)),
        // rseq areas are updated for the host thread's context, not the
        // guest's; glibc works without (it registers only if this succeeds).
        libc::SYS_rseq => ret(Err(Errno(libc::ENOSYS))),
        // Returns only if it failed.
        libc::SYS_execve | libc::SYS_execveat => ret(Err(exec::execve(thread, nr, a))),
        libc::SYS_clone | libc::SYS_clone3 | libc::SYS_fork | libc::SYS_vfork => {
            clone::clone(thread, nr, a)
        }
        libc::SYS_ptrace => ret(trace::tracer::ptrace(thread, a)),
        // A tracer's waits report its tracees' stops as their sandboxes
        // describe them.
        libc::SYS_wait4 => ret(trace::tracer::wait4(thread, a)),
        libc::SYS_waitid => ret(trace::tracer::waitid(thread, a)),
        // Namespaces are not proxied; io_uring would act on the host
        // process behind the sandbox's back.
        libc::SYS_unshare
        | libc::SYS_setns
        | libc::SYS_io_uring_setup
        | libc::SYS_io_uring_enter
        | libc::SYS_io_uring_register => {
            log::debug!("{} is not supported yet: ENOSYS", name(nr));
            ret(Err(Errno(libc::ENOSYS)))
        }
        // The host kernel delivers them; a handler of the program's takes
        // them on the host (signals::arrival).
        libc::SYS_kill | libc::SYS_tkill | libc::SYS_tgkill => ret(forward_raw(nr, a)),
        libc::SYS_getrlimit | libc::SYS_setrlimit | libc::SYS_prlimit64 => {
            ret(rlimit(thread, nr, a))
        }
        libc::SYS_futex => ret(checked(thread, nr, a, args::futex_args(a[1]), None)),
        libc::SYS_restart_syscall => ret(signals::restart::resume(thread)),
        // Guest page-table entries carry no protection key: keys would
        // protect nothing, so none can be allocated (as on a CPU without PKU).
        libc::SYS_pkey_alloc => ret(Err(Errno(libc::ENOSPC))),
        libc::SYS_pkey_free => ret(Err(Errno(libc::EINVAL))),
        _ => match args::spec(nr) {
            Some(spec) => {
                let mut a = a;
                if let Err(e) = memfile::limit(thread, nr, &mut a) {
                    return ret(Err(e));
                }
                let r = match procfs::exe_path_arg(nr, &a) {
                    Some(i) => procfs::with_exe_alias(thread, nr, a, i, spec),
                    None if nr == libc::SYS_getdents64 => procfs::getdents64(thread, a, spec),
                    None if nr == libc::SYS_getrusage => {
                        crate::perf::rusage::getrusage(thread, a, spec)
                    }
                    None => checked(thread, nr, a, spec, None),
                };
                ret(match nr {
                    libc::SYS_open if procfs::may_open_mem(a[1]) => r.and_then(memfile::opened),
                    libc::SYS_openat if procfs::may_open_mem(a[2]) => r.and_then(memfile::opened),
                    // openat2's flags are behind a pointer: always looked at.
                    libc::SYS_openat2 | libc::SYS_creat => r.and_then(memfile::opened),
                    _ => r,
                })
            }
            None => {
                log::debug!("unknown system call {}: ENOSYS", sc.nr);
                ret(Err(Errno(libc::ENOSYS)))
            }
        },
    };
    if let Action::Return(v) = action {
        log::trace!("  -> {:#x}", v);
    }
    action
}

/// Whether the host makes call `nr` with the program's own arguments once
/// the sandbox has checked them, rather than the sandbox carrying it out
/// (or changing it): only such a call can be left to a seccomp listener,
/// whose CONTINUE has the host make it (seccomp::notify).
pub fn made_by_host(nr: i64) -> bool {
    !matches!(
        nr,
        libc::SYS_exit
            | libc::SYS_exit_group
            | libc::SYS_brk
            | libc::SYS_set_tid_address
            | libc::SYS_arch_prctl
            | libc::SYS_rt_sigaction
            | libc::SYS_rt_sigprocmask
            | libc::SYS_sigaltstack
            | libc::SYS_rt_sigreturn
            | libc::SYS_restart_syscall
            | libc::SYS_close_range
            | libc::SYS_prctl
            | libc::SYS_seccomp
            | libc::SYS_perf_event_open
            | libc::SYS_rseq
            | libc::SYS_execve
            | libc::SYS_execveat
            | libc::SYS_clone
            | libc::SYS_clone3
            | libc::SYS_fork
            | libc::SYS_vfork
            | libc::SYS_ptrace
            | libc::SYS_wait4
            | libc::SYS_waitid
            | libc::SYS_unshare
            | libc::SYS_setns
            | libc::SYS_io_uring_setup
            | libc::SYS_io_uring_enter
            | libc::SYS_io_uring_register
            | libc::SYS_getrlimit
            | libc::SYS_setrlimit
            | libc::SYS_prlimit64
            | libc::SYS_pkey_alloc
            | libc::SYS_pkey_free
    ) && !is_memory_call(nr)
        && args::spec(nr).is_some()
}

/// The calls on the address space, which the guest's page tables follow
/// (`memory`).
fn is_memory_call(nr: i64) -> bool {
    matches!(
        nr,
        libc::SYS_mmap
            | libc::SYS_munmap
            | libc::SYS_mprotect
            | libc::SYS_pkey_mprotect
            | libc::SYS_mremap
            | libc::SYS_madvise
            | libc::SYS_mlock
            | libc::SYS_mlock2
            | libc::SYS_munlock
            | libc::SYS_msync
            | libc::SYS_mincore
    )
}

/// Forwards without checks: for calls whose arguments are all integers or
/// were checked by the caller.
pub(crate) fn forward_raw(nr: i64, a: [u64; 6]) -> SysResult {
    // SAFETY: callers pass calls whose pointer arguments were checked
    // against the program's memory, or that take none.
    unsafe { host::forward(nr as u64, a, signals::arrival::waiting_flag()) }
}

/// Checks `spec` (and `extra`) against the program's memory, then forwards.
pub(crate) fn checked(
    thread: &Thread,
    nr: i64,
    a: [u64; 6],
    spec: &[args::Arg],
    extra: Option<args::Arg>,
) -> SysResult {
    check_args(thread, a, spec.iter().chain(extra.as_ref()).copied())?;
    forward_raw(nr, a)
}

/// Checks the arguments `specs` name against the program's memory.
pub(crate) fn check_args(
    thread: &Thread,
    a: [u64; 6],
    specs: impl Iterator<Item = args::Arg> + Clone,
) -> Result<(), Errno> {
    if specs.clone().all(|s| matches!(s, args::Arg::Fd(_))) {
        // Descriptors or nothing: no need of the address-space lock, which
        // other threads' calls and memory changes take.
        specs.into_iter().try_for_each(|s| match s {
            args::Arg::Fd(i) => check::fd(&a, i),
            _ => Ok(()),
        })
    } else {
        let space = thread.process.vm.memory.lock().expect("address space");
        specs
            .into_iter()
            .try_for_each(|s| check::check(&space, &a, s))
    }
}

/// The memory calls; a mapping narrowed for one vCPU is flushed for all
/// before the lock is released.
fn memory(thread: &mut Thread, nr: i64, a: [u64; 6]) -> SysResult {
    let mut space = thread.process.vm.memory.lock().expect("address space");
    let r = memory_locked(&mut space, nr, a);
    if let Err(e) = space.flush() {
        log::error!("flushing the guest's translations: {e}");
        thread.process.end(Err(e.to_string()));
    }
    r
}

fn memory_locked(space: &mut vmm::AddressSpace, nr: i64, a: [u64; 6]) -> SysResult {
    match nr {
        libc::SYS_mmap => {
            if a[3] as i32 & libc::MAP_ANONYMOUS == 0 && fds::is_parked(a[4] as i32 as i64) {
                return Err(Errno(libc::EBADF));
            }
            mm::mmap(
                space,
                a[0],
                a[1],
                a[2] as i32,
                a[3] as i32,
                a[4] as i32,
                a[5],
            )
        }
        libc::SYS_munmap => mm::munmap(space, a[0], a[1]),
        libc::SYS_mprotect | libc::SYS_pkey_mprotect => mm::mprotect(space, nr as u64, a),
        libc::SYS_mremap => mm::mremap(space, a),
        libc::SYS_mincore => {
            let pages = a[1].div_ceil(mm::PAGE);
            check::check(space, &a, args::Arg::W(2, args::Len::C(pages)))?;
            mm::ranged(space, nr as u64, a)
        }
        _ => mm::ranged(space, nr as u64, a),
    }
}

// arch/x86/include/uapi/asm/prctl.h: libc has none of these.
pub(crate) const ARCH_SET_GS: u64 = 0x1001;
pub(crate) const ARCH_SET_FS: u64 = 0x1002;
pub(crate) const ARCH_GET_FS: u64 = 0x1003;
pub(crate) const ARCH_GET_GS: u64 = 0x1004;
pub const ARCH_GET_CPUID: u64 = 0x1011;
pub const ARCH_SET_CPUID: u64 = 0x1012;

/// arch_prctl(2): FS/GS bases live in the vCPU; the XSAVE and XCR0 calls
/// are `xstate`'s.
fn arch_prctl(thread: &mut Thread, a: [u64; 6]) -> SysResult {
    if let Some(r) = xstate::arch_prctl(thread, a) {
        return r;
    }
    // The first non-canonical address under 4-level paging.
    const CANONICAL_TOP: u64 = 0x0000_8000_0000_0000;
    let space = || thread.process.vm.memory.lock().expect("address space");
    // KVM failing on its own vCPU: reported, and EIO for the program.
    let kvm_failed = |e: vmm::VcpuError| {
        log::error!("arch_prctl: {e}");
        Errno(libc::EIO)
    };
    match a[0] {
        ARCH_SET_FS | ARCH_SET_GS => {
            if a[1] >= CANONICAL_TOP {
                return Err(Errno(libc::EPERM));
            }
            thread
                .vcpu
                .set_segment_base(a[0] == ARCH_SET_GS, a[1])
                .map_err(kvm_failed)?;
            trace::tracee::bases_changed(thread);
            Ok(0)
        }
        ARCH_GET_FS => {
            let base = thread.vcpu.fs_base().map_err(kvm_failed)?;
            umem::write(&space(), a[1], base).map(|_| 0)
        }
        ARCH_GET_GS => {
            let base = thread.vcpu.gs_base().map_err(kvm_failed)?;
            umem::write(&space(), a[1], base).map(|_| 0)
        }
        ARCH_GET_CPUID => Ok(u64::from(!thread.vcpu.cpuid_faulting())),
        // CPUID faulting, which KVM offers on any vendor: ENODEV where it
        // does not, as Linux on a CPU without it.
        ARCH_SET_CPUID => match thread.vcpu.set_cpuid_faulting(a[1] == 0) {
            Ok(()) => Ok(0),
            Err(e) => {
                log::debug!("ARCH_SET_CPUID: {e}: ENODEV");
                Err(Errno(libc::ENODEV))
            }
        },
        _ => Err(Errno(libc::EINVAL)),
    }
}

fn sigaction(thread: &mut Thread, a: [u64; 6]) -> SysResult {
    // sigsetsize must be the kernel's sigset_t: one bit per signal.
    if a[3] != (signals::NSIG / 8) as u64 {
        return Err(Errno(libc::EINVAL));
    }
    let space = thread.process.vm.memory.lock().expect("address space");
    let new = match a[1] {
        0 => None,
        p => Some(umem::read::<KernelSigaction>(&space, p)?),
    };
    if a[2] != 0 && !space.program_can_access(a[2], size_of::<KernelSigaction>() as u64, true) {
        return Err(Errno(libc::EFAULT));
    }
    let old = thread
        .process
        .signals
        .lock()
        .expect("signals")
        .set(a[0], new)?;
    if a[2] != 0 {
        umem::write(&space, a[2], old)?;
    }
    Ok(0)
}

/// stack_t is { void *ss_sp; int ss_flags; size_t ss_size; }: three
/// 8-byte words.
const STACK_T: u64 = size_of::<libc::stack_t>() as u64;

/// sigaltstack(2), recorded for the signal delivery to come.
/// rt_sigprocmask(2) through the arrival slot: while a signal waits in
/// it, every signal stays blocked on the host and the program's mask is
/// the one its frame will restore (a mask set on the host then would let
/// a second signal overwrite the first).
fn sigprocmask(thread: &Thread, a: [u64; 6]) -> SysResult {
    let (how, set_at, old_at, size) = (a[0] as i32, a[1], a[2], a[3]);
    if size != 8 {
        return Err(Errno(libc::EINVAL));
    }
    let set = if set_at != 0 {
        let space = thread.process.vm.memory.lock().expect("address space");
        Some(umem::read::<u64>(&space, set_at)?)
    } else {
        None
    };
    let old = signals::arrival::mask();
    if let Some(set) = set {
        let new = match how {
            libc::SIG_BLOCK => old | set,
            libc::SIG_UNBLOCK => old & !set,
            libc::SIG_SETMASK => set,
            _ => return Err(Errno(libc::EINVAL)),
        };
        signals::arrival::set_mask(new);
    }
    if old_at != 0 {
        let space = thread.process.vm.memory.lock().expect("address space");
        umem::write(&space, old_at, old)?;
    }
    Ok(0)
}

fn sigaltstack(thread: &mut Thread, a: [u64; 6]) -> SysResult {
    use signals::deliver::{SS_AUTODISARM, altstack_flags, on_altstack};
    let sp = thread.vcpu.user_regs(&thread.process.vm.memory).rsp;
    let space = thread.process.vm.memory.lock().expect("address space");
    let old = thread.altstack;
    let old_flags = altstack_flags(thread, sp) | (old.1 & SS_AUTODISARM);
    if a[1] != 0 && !space.program_can_access(a[1], STACK_T, true) {
        return Err(Errno(libc::EFAULT));
    }
    if a[0] != 0 {
        let [ss_sp, flags, size] = umem::read::<[u64; 3]>(&space, a[0])?;
        let flags = flags as i32;
        if on_altstack(thread, sp) {
            return Err(Errno(libc::EPERM));
        }
        let mode = flags & !SS_AUTODISARM;
        if mode != libc::SS_DISABLE && mode != libc::SS_ONSTACK && mode != 0 {
            return Err(Errno(libc::EINVAL));
        }
        // Held from the check to the change, as Linux holds siglock
        // against a concurrent ARCH_REQ_XCOMP_PERM.
        let mut perms = thread.process.xcomp.lock().expect("xcomp");
        thread.altstack = if mode == libc::SS_DISABLE {
            (0, flags, 0)
        } else if size < libc::MINSIGSTKSZ as u64 || !xstate::altstack_fits(thread, &perms, size) {
            return Err(Errno(libc::ENOMEM));
        } else {
            (ss_sp, flags, size)
        };
        // SAFETY: gettid has no preconditions.
        perms
            .altstacks
            .insert(unsafe { libc::gettid() }, thread.altstack.2);
    }
    if a[1] != 0 {
        umem::write(&space, a[1], [old.0, old_flags as u32 as u64, old.2])?;
    }
    Ok(0)
}

/// dup2/dup3 onto a sandbox descriptor would close it under the sandbox.
fn dup(nr: i64, a: [u64; 6]) -> SysResult {
    if fds::is_parked(a[0] as i32 as i64) || fds::is_parked(a[1] as i32 as i64) {
        return Err(Errno(libc::EBADF));
    }
    forward_raw(nr, a)
}

/// close_range(first, last, flags) around the sandbox's descriptors.
fn close_range(a: [u64; 6]) -> SysResult {
    let (first, last) = (a[0] as u32 as u64, a[1] as u32 as u64);
    if first > last {
        return Err(Errno(libc::EINVAL));
    }
    let mut from = first;
    for fd in fds::parked_in(first, last) {
        let fd = fd as u64;
        if fd > from {
            forward_raw(libc::SYS_close_range, [from, fd - 1, a[2], 0, 0, 0])?;
        }
        from = fd + 1;
    }
    if from <= last {
        forward_raw(libc::SYS_close_range, [from, last, a[2], 0, 0, 0])?;
    }
    Ok(0)
}

fn prctl(thread: &mut Thread, a: [u64; 6]) -> SysResult {
    use args::Arg::{Maybe, S, W};
    use args::Len::C;
    // include/uapi/linux/prctl.h; libc lacks it.
    const PR_GET_AUXV: i32 = 0x41555856;
    // TASK_COMM_LEN (include/linux/sched.h).
    const TASK_COMM_LEN: u64 = 16;
    const INT: u64 = size_of::<libc::c_int>() as u64;
    let spec: &[args::Arg] = match a[0] as i32 {
        libc::PR_SET_SECCOMP => return seccomp::prctl_set(thread, a[1], a[2]),
        libc::PR_GET_SECCOMP => return seccomp::prctl_get(thread),
        // Would rewrite the host process's memory map bookkeeping, or show
        // the sandbox's own auxiliary vector.
        libc::PR_SET_MM | PR_GET_AUXV => return Err(Errno(libc::EPERM)),
        libc::PR_SET_NAME => &[S(1)],
        libc::PR_GET_NAME => &[W(1, C(TASK_COMM_LEN))],
        libc::PR_SET_TSC => return tsc::set(thread, a[1]),
        libc::PR_GET_TSC => return tsc::get(thread, a[1]),
        libc::PR_GET_PDEATHSIG
        | libc::PR_GET_CHILD_SUBREAPER
        | libc::PR_GET_UNALIGN
        | libc::PR_GET_FPEMU
        | libc::PR_GET_FPEXC
        | libc::PR_GET_ENDIAN => &[W(1, C(INT))],
        // The host thread's is its thread library's, in the sandbox: the
        // program's is the one its set_tid_address or clone gave.
        libc::PR_GET_TID_ADDRESS => {
            let space = thread.process.vm.memory.lock().expect("address space");
            return umem::write(&space, a[1], thread.clear_child_tid).map(|_| 0);
        }
        libc::PR_SET_VMA => {
            let space = thread.process.vm.memory.lock().expect("address space");
            if !space.program_can_access(a[2], a[3], false) {
                return Err(Errno(libc::EINVAL));
            }
            &[S(4)]
        }
        // Integer arguments elsewhere; a pointer into the sandbox is refused.
        _ => &[Maybe(1), Maybe(2), Maybe(3), Maybe(4)],
    };
    checked(thread, libc::SYS_prctl, a, spec, None)
}

/// getrlimit, setrlimit, prlimit64: `limits` answers where the program's
/// view differs from the host's.
fn rlimit(thread: &Thread, nr: i64, a: [u64; 6]) -> SysResult {
    let (pid, resource, new, old) = match nr {
        libc::SYS_getrlimit => (0, a[0], 0, a[1]),
        libc::SYS_setrlimit => (0, a[0], a[1], 0),
        _ => (a[0], a[1], a[2], a[3]),
    };
    let spec = args::spec(libc::SYS_prlimit64).expect("prlimit64 is known");
    let p = [pid, resource, new, old, 0, 0];
    if !limits::emulated(pid, resource) {
        return checked(thread, libc::SYS_prlimit64, p, spec, None);
    }
    let space = thread.process.vm.memory.lock().expect("address space");
    check::check_all(&space, &p, spec)?;
    let new = if new != 0 {
        Some(umem::read::<[u64; 2]>(&space, new)?)
    } else {
        None
    };
    let new = new.map(|[cur, max]| libc::rlimit {
        rlim_cur: cur,
        rlim_max: max,
    });
    let prev = limits::prlimit_core(new)?;
    if old != 0 {
        umem::write(&space, old, [prev.rlim_cur, prev.rlim_max])?;
    }
    Ok(0)
}

/// A system call's name for the trace: the kernel's x86-64 table as the
/// `syscalls` crate keeps it; `syscall_N` for a number it does not name.
pub fn name(nr: i64) -> String {
    usize::try_from(nr)
        .ok()
        .and_then(syscalls::Sysno::new)
        .map_or_else(|| format!("syscall_{nr}"), |s| s.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::name;

    #[test]
    fn every_system_call_has_its_name() {
        assert_eq!(name(0), "read");
        assert_eq!(name(58), "vfork");
        assert_eq!(name(230), "clock_nanosleep");
        assert_eq!(name(libc::SYS_rseq), "rseq");
        assert_eq!(name(libc::SYS_clone3), "clone3");
        assert_eq!(name(libc::SYS_futex_waitv), "futex_waitv");
        assert_eq!(name(libc::SYS_mseal), "mseal");
        assert_eq!(name(400), "syscall_400", "no call there on x86-64");
        assert_eq!(name(-1), "syscall_-1");
        // The 64-bit table has no holes below 337 and from 424 on.
        for nr in (0..337).chain(424..=syscalls::Sysno::last().id().into()) {
            assert!(!name(nr).starts_with("syscall_"), "{nr}");
        }
    }
}
