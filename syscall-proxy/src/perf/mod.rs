//! perf_event_open for the program, which profilers and rr use to count
//! a thread's work (rr's ticks are its retired conditional branches).
//!
//! A program thread is its host thread, so a counter opened on it (pid 0,
//! or a sandboxed task's id) counts that host thread. For a software event
//! (task-clock, context switches) that is the thread as the host kernel
//! sees it, the program's work with the sandbox's for it. A hardware event
//! (the CPU's PMU) would also count the sandbox's own instructions and
//! branches, which the program never executed: it is asked for the guest's
//! work only (exclude_host), as the program runs as its host thread's
//! guest; the program's exclude_guest (rr sets it: a process has no guests
//! of its own) would exclude everything it did, and is dropped. The
//! program's exclude_user and exclude_kernel then apply to the guest's CPL3
//! and CPL0 (the PMU filters on the privilege level in guest mode too); its
//! system calls' work in the host kernel is not counted.
//!
//! Overflow signals need nothing more: the counter's file is the host's,
//! and F_SETOWN_EX names the host thread, which is the program's.

pub mod faults;
pub mod ledger;
pub mod rusage;

use crate::host::{Errno, SysResult};
use crate::syscalls::{args, check, checked, forward_raw, procfs};
use crate::thread::Thread;
use crate::umem;

/// perf_event_attr's first version's size (PERF_ATTR_SIZE_VER0), what a
/// size of 0 means.
const SIZE_VER0: u32 = 64;
/// The largest attr the kernel reads (a page; more is E2BIG).
const SIZE_MAX: u32 = 4096;
/// Where perf_event_attr's bit fields are, and two of them.
const FLAGS_AT: usize = 40;
const EXCLUDE_HOST: u64 = 1 << 19;
const EXCLUDE_GUEST: u64 = 1 << 20;
/// perf_event_attr.type values (PERF_TYPE_*, include/uapi/linux/
/// perf_event.h; libc lacks them): those that name the CPU's PMU, and the
/// kernel's software events.
const TYPE_HARDWARE: u32 = 0;
const TYPE_SOFTWARE: u32 = 1;
const TYPE_HW_CACHE: u32 = 3;
const TYPE_RAW: u32 = 4;
const TYPE_BREAKPOINT: u32 = 5;

/// perf_event_open(attr, pid, cpu, group_fd, flags).
pub fn open(thread: &mut Thread, a: [u64; 6]) -> SysResult {
    let (at, pid) = (a[0], a[1] as i32);
    let size = {
        let space = thread.process.vm.memory.lock().expect("address space");
        let size: u32 = umem::read(&space, at + 4)?;
        size
    };
    let len = if size == 0 { SIZE_VER0 } else { size };
    if !(SIZE_VER0..=SIZE_MAX).contains(&len) {
        // The kernel answers E2BIG and writes its own size back: as is.
        return checked(thread, libc::SYS_perf_event_open, a, &SPEC_VER0, None);
    }
    let spec = [
        args::Arg::W(0, args::Len::C(u64::from(len))),
        args::Arg::Fd(3),
    ];
    let mut attr = vec![0u8; len as usize];
    {
        let space = thread.process.vm.memory.lock().expect("address space");
        check::check_all(&space, &a, &spec)?;
        umem::read_bytes(&space, at, &mut attr)?;
    }
    let kind = u32::from_ne_bytes(attr[0..4].try_into().expect("4 bytes"));
    let config = u64::from_ne_bytes(attr[8..16].try_into().expect("8 bytes"));
    // (Asks /proc for another task: once.)
    let program = counts_program(pid);
    if program && faults::is_page_faults(kind, config) {
        let process = if in_this_process(pid) {
            // SAFETY: getpid has no preconditions.
            unsafe { libc::getpid() }
        } else {
            tgid(pid).unwrap_or(pid)
        };
        let counting = faults::Counting::prepare(thread, process, pid).inspect_err(|_| {
            log::debug!("perf_event_open: page faults of {pid}: cannot be taken again");
        })?;
        let fd = checked(thread, libc::SYS_perf_event_open, a, &spec, None)?;
        if let Err(e) = counting.begin(thread) {
            log::debug!("perf_event_open: page faults of {pid}, another sandbox: not told");
            // SAFETY: the program's descriptor just opened, not yet returned.
            unsafe { libc::close(fd as i32) };
            return Err(e);
        }
        return Ok(fd);
    }
    if program && kind == TYPE_BREAKPOINT {
        // A host breakpoint is the host thread's debug registers, which
        // the guest never runs under: it would count nothing (0 of 10
        // writes, measured on PVM). As a kernel without the breakpoint
        // PMU: no such event.
        log::debug!("perf_event_open: a breakpoint on {pid}: not offered");
        return Err(Errno(libc::ENOENT));
    }
    if !program || !is_pmu(kind) {
        return checked(thread, libc::SYS_perf_event_open, a, &spec, None);
    }
    let flags = u64::from_ne_bytes(attr[FLAGS_AT..FLAGS_AT + 8].try_into().expect("8 bytes"));
    let guest_only = translate(flags);
    attr[FLAGS_AT..FLAGS_AT + 8].copy_from_slice(&guest_only.to_ne_bytes());
    log::debug!("perf_event_open: type {kind} on {pid}: flags {flags:#x} -> {guest_only:#x}");
    let r = forward_raw(
        libc::SYS_perf_event_open,
        [attr.as_mut_ptr() as u64, a[1], a[2], a[3], a[4], 0],
    );
    if r == Err(Errno(libc::E2BIG)) {
        // The kernel wrote its size into the copy: the program's gets it.
        let space = thread.process.vm.memory.lock().expect("address space");
        umem::write_bytes(&space, at + 4, &attr[4..8])?;
    }
    r
}

/// A zero or too large size: the kernel reads the first version's bytes
/// at most before it answers, and writes the size back.
const SPEC_VER0: [args::Arg; 2] = [
    args::Arg::W(0, args::Len::C(SIZE_VER0 as u64)),
    args::Arg::Fd(3),
];

/// Whether a counter for `pid` counts a program thread: the caller (0), or
/// a task of a sandbox (its host thread is the program's). -1 counts every
/// task on a CPU, the host's too: left as asked.
fn counts_program(pid: i32) -> bool {
    pid == 0 || (pid > 0 && procfs::is_sandbox(&pid.to_string()))
}

/// Whether `pid` (0: the caller) is a thread of the calling process.
fn in_this_process(pid: i32) -> bool {
    pid == 0 || std::path::Path::new(&format!("/proc/self/task/{pid}")).exists()
}

/// The process thread `tid` belongs to.
fn tgid(tid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// Whether an attr type is the CPU's PMU: the generic hardware types, or
/// the core PMU's own (its number in sysfs; hybrid CPUs have two).
fn is_pmu(kind: u32) -> bool {
    if [TYPE_HARDWARE, TYPE_HW_CACHE, TYPE_RAW].contains(&kind) {
        return true;
    }
    ["cpu", "cpu_core", "cpu_atom"].iter().any(|pmu| {
        std::fs::read_to_string(format!("/sys/bus/event_source/devices/{pmu}/type"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            == Some(kind)
    })
}

/// The bit fields of a program's PMU counter as the host is asked for
/// them: the guest's work only.
fn translate(flags: u64) -> u64 {
    (flags | EXCLUDE_HOST) & !EXCLUDE_GUEST
}

#[cfg(test)]
mod tests {
    use super::*;

    /// exclude_user (bit 4), exclude_kernel (5), disabled (0),
    /// precise_ip (15-16) as rr sets its ticks counter.
    const RR_TICKS: u64 = 1 | (1 << 5) | EXCLUDE_GUEST;

    #[test]
    fn a_program_counter_counts_the_guest_only() {
        let t = translate(RR_TICKS);
        assert_eq!(t & EXCLUDE_HOST, EXCLUDE_HOST);
        assert_eq!(t & EXCLUDE_GUEST, 0);
        assert_eq!(
            t & !(EXCLUDE_HOST | EXCLUDE_GUEST),
            RR_TICKS & !EXCLUDE_GUEST
        );
        let perf = (1 << 4) | (3 << 15);
        assert_eq!(translate(perf), perf | EXCLUDE_HOST, "the rest as asked");
    }

    #[test]
    fn which_types_are_the_pmu() {
        assert!(is_pmu(TYPE_HARDWARE) && is_pmu(TYPE_HW_CACHE) && is_pmu(TYPE_RAW));
        // PERF_TYPE_SOFTWARE, _TRACEPOINT, _BREAKPOINT.
        assert!(!is_pmu(TYPE_SOFTWARE) && !is_pmu(2) && !is_pmu(5));
    }

    #[test]
    fn the_caller_is_a_program_thread_and_minus_one_is_not() {
        assert!(counts_program(0));
        assert!(!counts_program(-1));
    }
}
