//! seccomp for the program (seccomp(2), PR_SET_SECCOMP, PR_GET_SECCOMP).
//!
//! The program's filters cannot go to the host kernel: its host thread is
//! the sandbox's, and the filters would judge the sandbox's own calls
//! (KVM_RUN among them). Every system call of the program reaches the
//! sandbox anyway, so the sandbox keeps each thread's filters and runs
//! them on the call's `seccomp_data` (the program's number, arguments and
//! instruction pointer), after the tracer's syscall-enter stop, as Linux
//! does since 4.8. The verdict is acted on in the task loop.
//!
//! What Linux keeps per thread is kept per thread: the mode and the chain
//! of filters, shared by reference between the threads and children that
//! inherited it. The process lists its threads' states for TSYNC.
//!
//! User notification goes through the host kernel (`notify`).

pub mod bpf;
mod carry;
mod notify;

pub use carry::{adopt, carry, drop_carried};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use libc::{SECCOMP_RET_ACTION_FULL, SECCOMP_RET_DATA, sock_filter};

use crate::host::{self, Errno, SysResult};
use crate::syscalls::tsc;
use crate::thread::Thread;
use crate::umem;

/// AUDIT_ARCH_X86_64 (include/uapi/linux/audit.h), which libc lacks.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// MAX_INSNS_PER_PATH: a thread's filters hold at most 256 KiB of eBPF
/// instructions, counting 4 more per filter.
const MAX_PATH_INSNS: usize = (1 << 18) / size_of::<sock_filter>();

/// The largest errno SECCOMP_RET_ERRNO returns (MAX_ERRNO).
const MAX_ERRNO: u32 = 4095;

/// SECCOMP_FILTER_FLAG_*, as c_ulong in libc; the call takes an unsigned int.
const TSYNC: u32 = libc::SECCOMP_FILTER_FLAG_TSYNC as u32;
const LOG: u32 = libc::SECCOMP_FILTER_FLAG_LOG as u32;
const SPEC_ALLOW: u32 = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;
const TSYNC_ESRCH: u32 = libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32;
const NEW_LISTENER: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
const WAIT_KILLABLE_RECV: u32 = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32;
/// Every flag Linux knows.
const FLAGS: u32 = TSYNC | LOG | SPEC_ALLOW | TSYNC_ESRCH | NEW_LISTENER | WAIT_KILLABLE_RECV;

/// One installed filter and the one installed before it.
pub struct Filter {
    insns: Box<[sock_filter]>,
    /// Its length as the kernel counts it (`bpf::converted_len`).
    len: usize,
    /// SECCOMP_FILTER_FLAG_LOG.
    log: bool,
    /// Installed with a listener (SECCOMP_FILTER_FLAG_NEW_LISTENER).
    listener: bool,
    prev: Option<Arc<Filter>>,
}

impl Filter {
    fn chain(self: &Arc<Filter>) -> impl Iterator<Item = &Arc<Filter>> {
        std::iter::successors(Some(self), |f| f.prev.as_ref())
    }
}

/// A thread's seccomp mode (PR_GET_SECCOMP's 0, 1, 2).
#[derive(Clone, Default)]
pub enum Mode {
    #[default]
    Disabled,
    Strict,
    Filter(Arc<Filter>),
}

/// A thread's mode, which another thread's TSYNC may set.
pub type Shared = Arc<Mutex<Mode>>;

/// The state a new thread or child starts with: its creator's.
pub fn inherit(from: &Shared) -> Shared {
    Arc::new(Mutex::new(from.lock().expect("seccomp").clone()))
}

/// The process's threads' states, by thread id, for TSYNC.
#[derive(Default)]
pub struct Threads(Mutex<Listed>);

#[derive(Default)]
struct Listed {
    live: HashMap<libc::pid_t, Entry>,
    /// New threads that ended before their creator listed them.
    gone_unlisted: HashSet<libc::pid_t>,
}

struct Entry {
    state: Shared,
    /// A new thread listed by itself, which its creator lists too (each
    /// as soon as it can, neither waiting for the other).
    creator_to_list: bool,
}

impl Threads {
    /// A thread starts to run: listed unless it already is.
    pub fn enter(&self, tid: libc::pid_t, s: &Shared) {
        self.list(tid, s, false);
    }

    /// A new thread, first thing, before its creator has listed it.
    pub fn enter_new(&self, tid: libc::pid_t, s: &Shared) {
        self.list(tid, s, true);
    }

    /// The creator of thread `tid`, before its clone returns: listed
    /// unless it has already ended.
    pub fn created(&self, tid: libc::pid_t, s: &Shared) {
        let mut l = self.0.lock().expect("seccomp");
        if !l.gone_unlisted.remove(&tid) {
            l.live
                .entry(tid)
                .or_insert_with(|| Entry {
                    state: s.clone(),
                    creator_to_list: false,
                })
                .creator_to_list = false;
        }
    }

    fn list(&self, tid: libc::pid_t, s: &Shared, creator_to_list: bool) {
        let mut l = self.0.lock().expect("seccomp");
        l.live.entry(tid).or_insert_with(|| Entry {
            state: s.clone(),
            creator_to_list,
        });
    }

    pub fn leave(&self, tid: libc::pid_t) {
        let mut l = self.0.lock().expect("seccomp");
        if let Some(e) = l.live.remove(&tid)
            && e.creator_to_list
        {
            l.gone_unlisted.insert(tid);
        }
    }

    /// Whether the calling thread is the only one left (a thread counts
    /// from its creation until its run ends, before its CLONE_CHILD_CLEARTID
    /// is cleared, as Linux's signal->live).
    pub fn alone(&self) -> bool {
        self.0.lock().expect("seccomp").live.len() <= 1
    }
}

/// What the thread's seccomp decided for a system call.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Fail the call with this errno, without making it.
    Errno(i32),
    /// SIGSYS with this data in si_errno, without making the call.
    Trap(u16),
    /// PTRACE_EVENT_SECCOMP with this data as its message.
    Trace(u16),
    /// Leave the call to the filter's listener (`notify`).
    Notify,
    /// End the thread, or the whole process, with this signal.
    Kill {
        process: bool,
        sig: i32,
    },
}

/// The verdict on system call `nr` with `args`, made at `rip` (the
/// address after the `syscall` instruction).
pub fn verdict(t: &Thread, nr: u64, args: [u64; 6], rip: u64) -> Verdict {
    let mode = t.seccomp.lock().expect("seccomp").clone();
    // The kernel's syscall_get_nr: the low 32 bits, signed.
    let nr = nr as i32;
    match mode {
        Mode::Disabled => Verdict::Allow,
        Mode::Strict => {
            let allowed = [
                libc::SYS_read,
                libc::SYS_write,
                libc::SYS_exit,
                libc::SYS_rt_sigreturn,
            ];
            if allowed.contains(&i64::from(nr)) {
                Verdict::Allow
            } else {
                log::debug!("seccomp: strict mode kills the thread at syscall {nr}");
                Verdict::Kill {
                    process: false,
                    sig: libc::SIGKILL,
                }
            }
        }
        Mode::Filter(f) => {
            let data = libc::seccomp_data {
                nr,
                arch: AUDIT_ARCH_X86_64,
                instruction_pointer: rip,
                args,
            };
            let (ret, by) = run_filters(&f, &data);
            let v = action(ret, by.is_some_and(|f| f.listener));
            if by.is_some_and(|f| f.log) || ret & SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_LOG {
                log::info!("seccomp: syscall {nr} at {rip:#x}: {ret:#x}");
            } else {
                log::trace!("seccomp: syscall {nr}: {ret:#x}");
            }
            v
        }
    }
}

/// Every filter's verdict, the most restrictive action winning (the
/// newest among equals), and the filter that gave it (none for ALLOW).
fn run_filters<'a>(
    newest: &'a Arc<Filter>,
    data: &libc::seccomp_data,
) -> (u32, Option<&'a Arc<Filter>>) {
    let rank = |r: u32| (r & SECCOMP_RET_ACTION_FULL) as i32;
    let mut best = (libc::SECCOMP_RET_ALLOW, None);
    for f in newest.chain() {
        let r = bpf::run(&f.insns, data);
        if rank(r) < rank(best.0) {
            best = (r, Some(f));
        }
    }
    best
}

/// What a filter's return value asks, of a filter with a listener or not.
fn action(ret: u32, listener: bool) -> Verdict {
    let data = (ret & SECCOMP_RET_DATA) as u16;
    match ret & SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG => Verdict::Allow,
        libc::SECCOMP_RET_ERRNO => Verdict::Errno(u32::from(data).min(MAX_ERRNO) as i32),
        libc::SECCOMP_RET_TRAP => Verdict::Trap(data),
        libc::SECCOMP_RET_TRACE => Verdict::Trace(data),
        libc::SECCOMP_RET_USER_NOTIF if listener => Verdict::Notify,
        libc::SECCOMP_RET_USER_NOTIF => Verdict::Errno(libc::ENOSYS),
        libc::SECCOMP_RET_KILL_THREAD => Verdict::Kill {
            process: false,
            sig: libc::SIGSYS,
        },
        // KILL_PROCESS, and any action Linux does not know.
        _ => Verdict::Kill {
            process: true,
            sig: libc::SIGSYS,
        },
    }
}

/// seccomp(2).
pub fn seccomp(t: &mut Thread, op: u64, flags: u64, uargs: u64) -> SysResult {
    // The call takes unsigned ints.
    let (op, flags) = (op as u32, flags as u32);
    match op {
        libc::SECCOMP_SET_MODE_STRICT if flags == 0 && uargs == 0 => set_strict(t),
        libc::SECCOMP_SET_MODE_FILTER => set_filter(t, flags, uargs),
        libc::SECCOMP_GET_ACTION_AVAIL if flags == 0 => {
            let space = t.process.vm.memory.lock().expect("address space");
            let a: u32 = umem::read(&space, uargs)?;
            let known = [
                libc::SECCOMP_RET_KILL_PROCESS,
                libc::SECCOMP_RET_KILL_THREAD,
                libc::SECCOMP_RET_TRAP,
                libc::SECCOMP_RET_ERRNO,
                libc::SECCOMP_RET_USER_NOTIF,
                libc::SECCOMP_RET_TRACE,
                libc::SECCOMP_RET_LOG,
                libc::SECCOMP_RET_ALLOW,
            ];
            if known.contains(&a) {
                Ok(0)
            } else {
                Err(Errno(libc::EOPNOTSUPP))
            }
        }
        // The host's listeners are the program's: their sizes too.
        libc::SECCOMP_GET_NOTIF_SIZES if flags == 0 => {
            let mut sizes = [0u16; 3];
            // SAFETY: the call writes struct seccomp_notif_sizes, three
            // u16, into our array.
            let r = unsafe { libc::syscall(libc::SYS_seccomp, op, 0, sizes.as_mut_ptr()) };
            if r < 0 {
                return Err(Errno::last());
            }
            let space = t.process.vm.memory.lock().expect("address space");
            umem::write(&space, uargs, sizes)?;
            Ok(0)
        }
        _ => Err(Errno(libc::EINVAL)),
    }
}

/// PR_SET_SECCOMP: the older form, without flags.
pub fn prctl_set(t: &mut Thread, mode: u64, filter: u64) -> SysResult {
    match mode as u32 {
        // The filter argument was always ignored here.
        libc::SECCOMP_MODE_STRICT => seccomp(t, libc::SECCOMP_SET_MODE_STRICT.into(), 0, 0),
        libc::SECCOMP_MODE_FILTER => seccomp(t, libc::SECCOMP_SET_MODE_FILTER.into(), 0, filter),
        _ => Err(Errno(libc::EINVAL)),
    }
}

/// PR_GET_SECCOMP.
pub fn prctl_get(t: &Thread) -> SysResult {
    Ok(match *t.seccomp.lock().expect("seccomp") {
        Mode::Disabled => libc::SECCOMP_MODE_DISABLED,
        Mode::Strict => libc::SECCOMP_MODE_STRICT,
        Mode::Filter(_) => libc::SECCOMP_MODE_FILTER,
    }
    .into())
}

fn set_strict(t: &mut Thread) -> SysResult {
    {
        let mut mode = t.seccomp.lock().expect("seccomp");
        if let Mode::Filter(_) = *mode {
            return Err(Errno(libc::EINVAL));
        }
        *mode = Mode::Strict;
    }
    // Strict mode also disables the TSC (disable_TSC): trapped where the
    // KVM can, as PR_SET_TSC.
    let _ = tsc::set(t, libc::PR_TSC_SIGSEGV as u64);
    Ok(0)
}

/// Installs the filter `uargs` points to (a sock_fprog), checking in the
/// kernel's order: flags, the copy, the length, the right to, the program,
/// the mode, the total length, TSYNC.
fn set_filter(t: &mut Thread, flags: u32, uargs: u64) -> SysResult {
    if flags & !FLAGS != 0 {
        return Err(Errno(libc::EINVAL));
    }
    // With TSYNC a failure returns a thread id, which a listener's
    // descriptor could not be told from, unless TSYNC_ESRCH; and waiting
    // killably is a listener's.
    let has = |f| flags & f != 0;
    if (has(TSYNC) && has(NEW_LISTENER) && !has(TSYNC_ESRCH))
        || (has(WAIT_KILLABLE_RECV) && !has(NEW_LISTENER))
    {
        return Err(Errno(libc::EINVAL));
    }
    let insns = {
        let space = t.process.vm.memory.lock().expect("address space");
        let prog: [u64; 2] = umem::read(&space, uargs)?;
        let len = prog[0] as u16 as usize;
        if len == 0 || len > libc::BPF_MAXINSNS as usize {
            return Err(Errno(libc::EINVAL));
        }
        if !may_filter() {
            return Err(Errno(libc::EACCES));
        }
        if prog[1] == 0 {
            // bpf_check_basics_ok: a NULL program is invalid, not a fault.
            return Err(Errno(libc::EINVAL));
        }
        let mut bytes = vec![0u8; len * size_of::<sock_filter>()];
        umem::read_bytes(&space, prog[1], &mut bytes)?;
        decode(&bytes)
    };
    if let Err(why) = bpf::check(&insns) {
        log::debug!("seccomp: filter refused: {why:?}");
        return Err(Errno(libc::EINVAL));
    }
    let threads = t.process.seccomp.0.lock().expect("seccomp");
    let mut mode = t.seccomp.lock().expect("seccomp");
    let current = match &*mode {
        Mode::Strict => return Err(Errno(libc::EINVAL)),
        Mode::Disabled => None,
        Mode::Filter(f) => Some(f.clone()),
    };
    // One listener to a thread's chain.
    if has(NEW_LISTENER) && current.iter().flat_map(|f| f.chain()).any(|f| f.listener) {
        return Err(Errno(libc::EBUSY));
    }
    let len = bpf::converted_len(&insns);
    let total = len
        + current
            .iter()
            .flat_map(|f| f.chain())
            .map(|f| f.len + 4)
            .sum::<usize>();
    if total > MAX_PATH_INSNS {
        return Err(Errno(libc::ENOMEM));
    }
    // SAFETY: gettid has no preconditions.
    let own = unsafe { libc::gettid() };
    let others = || {
        threads
            .live
            .iter()
            .filter(|(tid, _)| **tid != own)
            .map(|(tid, e)| (tid, &e.state))
    };
    if flags & TSYNC != 0 {
        for (tid, s) in others() {
            let ok = match &*s.lock().expect("seccomp") {
                Mode::Disabled => true,
                Mode::Strict => false,
                Mode::Filter(theirs) => current
                    .as_ref()
                    .is_some_and(|c| c.chain().any(|f| Arc::ptr_eq(f, theirs))),
            };
            if !ok {
                return if flags & TSYNC_ESRCH != 0 {
                    Err(Errno(libc::ESRCH))
                } else {
                    Ok(*tid as u64)
                };
            }
        }
    }
    // The host's checks are the program's: its filter is the last thing
    // that may fail.
    let listener = if has(NEW_LISTENER) {
        Some(notify::listen(flags)?)
    } else {
        None
    };
    let new = Arc::new(Filter {
        len,
        insns: insns.into_boxed_slice(),
        log: has(LOG),
        listener: listener.is_some(),
        prev: current,
    });
    *mode = Mode::Filter(new.clone());
    if flags & TSYNC != 0 {
        for (_, s) in others() {
            *s.lock().expect("seccomp") = Mode::Filter(new.clone());
        }
    }
    Ok(listener.map_or(0, |fd| fd as u64))
}

/// Instructions from their bytes (struct sock_filter: code, jt, jf, k).
fn decode(bytes: &[u8]) -> Vec<sock_filter> {
    bytes
        .chunks_exact(size_of::<sock_filter>())
        .map(|b| sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect()
}

/// Whether the thread may install a filter: no_new_privs, or
/// CAP_SYS_ADMIN. Both are the host thread's, which are the program's
/// (PR_SET_NO_NEW_PRIVS and the credential calls go to the host).
fn may_filter() -> bool {
    // SAFETY: prctl with integer arguments only.
    let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } == 1;
    nnp || host::has_cap_sys_admin()
}

/// Whether the thread is under seccomp (strict or filters).
pub fn filtered(t: &Thread) -> bool {
    !matches!(*t.seccomp.lock().expect("seccomp"), Mode::Disabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_thread_is_listed_once_whoever_lists_it_first_and_never_after_its_end() {
        let s = Shared::default();
        let listed = |t: &Threads| t.0.lock().unwrap().live.len();
        // The creator first, then the thread, which ends.
        let t = Threads::default();
        t.enter(1, &s);
        t.created(2, &s);
        t.enter_new(2, &s);
        assert_eq!(listed(&t), 2);
        t.leave(2);
        assert!(t.alone());
        // The thread first, then the creator.
        t.enter_new(3, &s);
        t.created(3, &s);
        t.leave(3);
        assert!(t.alone());
        // The thread ends before its creator lists it: not listed after.
        t.enter_new(4, &s);
        assert!(!t.alone(), "listed from its start");
        t.leave(4);
        t.created(4, &s);
        assert!(t.alone());
        assert!(t.0.lock().unwrap().gone_unlisted.is_empty());
    }

    #[test]
    fn actions_and_their_data() {
        use libc::*;
        assert_eq!(action(SECCOMP_RET_ALLOW, false), Verdict::Allow);
        assert_eq!(action(SECCOMP_RET_LOG, false), Verdict::Allow);
        assert_eq!(action(SECCOMP_RET_ERRNO | 13, false), Verdict::Errno(13));
        assert_eq!(
            action(SECCOMP_RET_ERRNO | 0xffff, false),
            Verdict::Errno(4095)
        );
        assert_eq!(action(SECCOMP_RET_TRAP | 7, false), Verdict::Trap(7));
        assert_eq!(action(SECCOMP_RET_TRACE | 9, false), Verdict::Trace(9));
        assert_eq!(
            action(SECCOMP_RET_USER_NOTIF, false),
            Verdict::Errno(ENOSYS)
        );
        assert_eq!(action(SECCOMP_RET_USER_NOTIF, true), Verdict::Notify);
        let thread = Verdict::Kill {
            process: false,
            sig: SIGSYS,
        };
        let process = Verdict::Kill {
            process: true,
            sig: SIGSYS,
        };
        assert_eq!(action(SECCOMP_RET_KILL_THREAD | 5, false), thread);
        assert_eq!(action(SECCOMP_RET_KILL_PROCESS, false), process);
        assert_eq!(action(0x0004_0000, false), process, "unknown actions kill");
    }

    fn ret(k: u32) -> Arc<Filter> {
        Arc::new(Filter {
            insns: vec![sock_filter {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k,
            }]
            .into_boxed_slice(),
            len: 5,
            log: false,
            listener: false,
            prev: None,
        })
    }

    fn on(older: Arc<Filter>, newer: Arc<Filter>) -> Arc<Filter> {
        let mut n = Arc::into_inner(newer).unwrap();
        n.prev = Some(older);
        Arc::new(n)
    }

    #[test]
    fn the_most_restrictive_action_wins_the_newest_among_equals() {
        use libc::*;
        let d = seccomp_data {
            nr: 39,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0,
            args: [0; 6],
        };
        let f = on(ret(SECCOMP_RET_ERRNO | 1), ret(SECCOMP_RET_TRACE | 2));
        assert_eq!(run_filters(&f, &d).0, SECCOMP_RET_ERRNO | 1);
        let f = on(ret(SECCOMP_RET_ERRNO | 1), ret(SECCOMP_RET_ERRNO | 2));
        assert_eq!(run_filters(&f, &d).0, SECCOMP_RET_ERRNO | 2);
        let f = on(ret(SECCOMP_RET_KILL_PROCESS), ret(SECCOMP_RET_KILL_THREAD));
        assert_eq!(run_filters(&f, &d).0, SECCOMP_RET_KILL_PROCESS);
        let f = on(ret(SECCOMP_RET_ALLOW), ret(SECCOMP_RET_LOG));
        assert_eq!(run_filters(&f, &d).0, SECCOMP_RET_LOG);
        // USER_NOTIF is the listener's only from the filter that has it.
        let mut listening = Arc::into_inner(ret(SECCOMP_RET_ALLOW)).unwrap();
        listening.listener = true;
        let f = on(Arc::new(listening), ret(SECCOMP_RET_USER_NOTIF));
        let (r, by) = run_filters(&f, &d);
        assert_eq!(r, SECCOMP_RET_USER_NOTIF);
        assert!(by.is_some_and(|f| !f.listener));
    }
}
