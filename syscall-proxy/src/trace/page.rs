//! The trace page: what a traced thread's sandbox and its tracer's
//! sandbox share. Each thread of the program has one; the tracee writes
//! its registers and the stop it is in, the tracer its requests (resume
//! mode, signal, changed registers). The tracer reads and writes it with
//! process_vm_readv/writev, only while the host kernel holds the tracee in
//! a ptrace stop, so neither side ever sees it half-written.
//!
//! The tracer finds it through the tracee host thread's FS base (from the
//! host's PTRACE_GETREGS): the page's address sits in a thread-local of
//! the sandbox's executable, at the same distance from the FS base in
//! every thread and every process running that executable.

use std::cell::Cell;
use std::io::{IoSlice, IoSliceMut};

use crate::host::Errno;

/// The page's first word, checked by the tracer: "xcr0tra3", the third
/// layout (a tracer and a tracee of different layouts do not match).
pub const MAGIC: u64 = 0x3361_7274_3072_6378;

/// The largest XSAVE image a stop holds (AMX's tile data end at 11008
/// bytes in the standard format).
pub const XSAVE_MAX: usize = 12288;

/// How the tracer resumed the tracee: where it stops next.
pub mod mode {
    /// PTRACE_CONT: at signals and events only.
    pub const CONT: u32 = 0;
    /// PTRACE_SYSCALL: also at each system call's entry and exit.
    pub const SYSCALL: u32 = 1;
    /// PTRACE_SINGLESTEP: after one instruction.
    pub const SINGLESTEP: u32 = 2;
    /// PTRACE_SYSEMU: at each system call's entry, which is not made.
    pub const SYSEMU: u32 = 3;
    /// PTRACE_SYSEMU_SINGLESTEP: both.
    pub const SYSEMU_SINGLESTEP: u32 = 4;

    /// Whether the mode stops after each instruction.
    pub fn steps(mode: u32) -> bool {
        mode == SINGLESTEP || mode == SYSEMU_SINGLESTEP
    }

    /// Whether the mode stops at system calls' entries, which are not made.
    pub fn emulates(mode: u32) -> bool {
        mode == SYSEMU || mode == SYSEMU_SINGLESTEP
    }
}

/// What the tracer changed during a stop (`Page::dirty` bits).
pub mod dirty {
    pub const REGS: u32 = 1;
    pub const SIGINFO: u32 = 2;
    pub const XSAVE: u32 = 4;
    pub const SIGMASK: u32 = 8;
}

/// Where the thread is in its end (`Page::exit`). Its host thread's end
/// makes the host's PTRACE_EVENT_EXIT stop under the program's TRACEEXIT:
/// that stop is the program's, unless the thread made its own already.
pub mod exit {
    /// Not ending, or ending by the host's hand (exit_group, a fatal
    /// signal, another thread's exec): the host's stop is the program's.
    pub const NONE: u32 = 0;
    /// The thread made its PTRACE_EVENT_EXIT itself (its own exit(2)):
    /// the host's, as its host thread ends later, is passed over.
    pub const MADE: u32 = 1;
    /// In the host's PTRACE_EVENT_EXIT stop, which the tracer made the
    /// page describe (`tracer::exit_shown`).
    pub const SHOWN: u32 = 2;
    /// The same, the thread killed while the guest ran: its FPU and
    /// extended state were KVM's, out of the tracer's reach.
    pub const SHOWN_WITHOUT_FP: u32 = 3;
}

/// The system call a stop is at (PTRACE_GET_SYSCALL_INFO's op).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SyscallAt {
    /// PTRACE_SYSCALL_INFO_NONE, _ENTRY or _EXIT.
    pub op: u32,
    pub nr: u64,
    pub args: [u64; 6],
    pub rval: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Page {
    pub magic: u64,
    /// Non-zero while a sandboxed tracer traces this thread: it raises the
    /// stops Linux would make.
    pub traced: u32,
    /// The PTRACE_O_* options the tracer set.
    pub options: u32,
    /// How the tracer last resumed the thread (`mode`).
    pub mode: u32,
    /// The signal the tracer resumed it with (0: none).
    pub sig: u32,
    /// What the tracer changed during the stop (`dirty`).
    pub dirty: u32,
    /// Non-zero while the thread is in a stop it raised itself: the fields
    /// below describe that stop.
    pub in_stop: u32,
    /// The stop as wait reports it (status >> 8): a signal, SIGTRAP|0x80
    /// at a system call, SIGTRAP | PTRACE_EVENT_x << 8 at an event.
    pub code: u32,
    /// A signal the thread re-raises for its default action, which the
    /// tracer lets through (it was reported already).
    pub passing: u32,
    /// Non-zero when `regs` are the thread's now (it is outside the guest);
    /// zero while the guest runs, whose registers KVM keeps in `kvm_run`.
    pub fresh: u32,
    /// The host thread the page belongs to (a fork child's copy does not).
    pub tid: i32,
    /// The host thread that started with this page (`tracee::start`): a
    /// fork or vfork child's copy names its creator until the child has
    /// started, even once a tracer named the child in `tid`.
    pub started: i32,
    /// Non-zero if the tracer attached with PTRACE_SEIZE.
    pub seized: u32,
    /// Non-zero while the thread creates a task its tracer follows: the
    /// host reports that clone's PTRACE_EVENT stops, during which this
    /// page holds the thread's state (`in_stop` is set too).
    pub in_clone: u32,
    /// Non-zero while the sandbox makes a system call for the thread
    /// (`tracee::making_call`).
    pub in_call: u32,
    /// Non-zero when a tracer set `regs` in a stop the host made while the
    /// thread was in a system call, whose host call it cut short: they
    /// replace the call's outcome (`tracee::call_made`).
    pub regs_in_call: u32,
    /// Non-zero while the thread is in a group stop that a call into it
    /// (inject.rs) turned into a SIGTRAP stop: the tracer still answers
    /// for a group stop (no siginfo, the resume signal ignored).
    pub held_group: u32,
    /// A signal whose delivery stop the host made in a system call, which
    /// the tracer handed back for the sandbox to deliver after the call's
    /// exit stop, with its siginfo in `siginfo` (`tracer::requeue`).
    pub requeued: u32,
    /// Non-zero when a tracer set the FS and GS bases in `regs` in a stop
    /// the host made while the guest ran: the sandbox loads them as KVM_RUN
    /// returns, before the guest runs again (`tracee::after_guest`).
    pub bases_set: u32,
    /// Non-zero when the tracer, resuming the thread under PTRACE_SYSCALL
    /// from a stop the host made in a system call it was not stopping at,
    /// cut the host call short: the call restarts as the program's own,
    /// its entry stop included, and makes no exit stop, as Linux restarts
    /// a call a stop interrupted (`tracer::restart_in_view`).
    pub restart_in_view: u32,
    /// Non-zero while the thread is held in the group stop of a stop
    /// signal's default action, raised by the sandbox with the thread's
    /// state in this page (`regs`, `xsave`, `sigmask`): a tracer changes
    /// them here, as in a stop the thread raised, and the sandbox takes
    /// them back as the stop ends (`tracee::holding`).
    pub held: u32,
    /// Where the thread is in its end (`exit`).
    pub exit: u32,
    pub event_msg: u64,
    /// While the thread creates a task its tracer follows: where the
    /// program's CLONE_PARENT_SETTID writes the new id, which the tracer
    /// writes at the clone's event stop, as Linux has by then (0: nowhere).
    pub parent_tid_at: u64,
    /// The program's blocked mask.
    pub sigmask: u64,
    pub regs: libc::user_regs_struct,
    pub siginfo: [u8; 128],
    pub syscall: SyscallAt,
    /// The vCPU's kvm_run (the guest's registers after an exit) and the
    /// runtime's syscall stub (where a system call's exit stops).
    pub kvm_run: u64,
    pub syscall_stub: u64,
    /// Where the runtime's stubs start (a page of them): a guest stopped
    /// there is between the program and the sandbox.
    pub stubs: u64,
    /// In a vfork child's page: its parent's, which the child displaced
    /// from the thread-local storage they share (`take_over`).
    pub up: u64,
    /// The thread's XCR0, and the size of its XSAVE image under it.
    pub xcr0: u64,
    pub xsave_len: u64,
    /// Non-zero when `xsave` is the thread's now, though `fresh` may not be
    /// (in a system call: `tracee::syscall_entered`).
    pub fp_fresh: u64,
    /// Non-zero while the thread is in KVM_RUN: a stop the host makes
    /// then finds it at the call's return, the guest's registers in
    /// kvm_run, which a tracer may change there.
    pub in_guest: u64,
    /// Where a call a tracer makes the thread run in a stop the host made
    /// enters, and what it returned (0, or -errno): inject.rs.
    pub call_entry: u64,
    pub call_result: i64,
    /// Where the stubs that make the program's host calls leave a thread
    /// stopped in one (after their `syscall`; the seccomp listener's copy
    /// second): only such a host call may be cut short (`tracer::cut_short`).
    pub forward_rip: [u64; 2],
    /// Where the thread's signal slot is (its flag and its arrival,
    /// signals::arrival), and the stubs' cancel windows (check, `syscall`,
    /// cancelled: host::cancel_windows): a tracer carrying a SIGSTOP to
    /// the thread does there what the sandbox's handler would (carry.rs).
    pub slot_full: u64,
    pub slot_arrival: u64,
    pub cancel: [[u64; 3]; 2],
    /// Non-zero while the thread creates a task (which copies its mask,
    /// and a vfork child its slot) or ends: no stop is carried into it
    /// then (`tracee::hold_off_carry`).
    pub no_carry: u64,
    /// The siginfo of `requeued`.
    pub requeued_info: [u8; 128],
    /// DR0-DR7 as a tracer set them (DR4 and DR5 unused, as in struct
    /// user), DR6 with its reserved bits flipped as the kernel keeps it
    /// (virtual_dr6); the thread takes them into effect before it next
    /// enters the guest (hwbp.rs).
    pub debugreg: [u64; 8],
    pub xsave: [u8; XSAVE_MAX],
}

thread_local! {
    /// This host thread's page: its address is what the tracer reads.
    static PAGE: Cell<u64> = const { Cell::new(0) };
}

/// The page of the thread running this host thread, made on first use.
pub fn own() -> &'static mut Page {
    let mut p = PAGE.get();
    if p == 0 {
        // SAFETY: Page is plain integers and arrays, valid all zero.
        let mut page: Box<Page> = unsafe { Box::new_zeroed().assume_init() };
        page.magic = MAGIC;
        p = Box::into_raw(page) as u64;
        PAGE.set(p);
    }
    // SAFETY: allocated above for this thread only and never freed while
    // the thread runs; the tracer writes it only while the thread is held
    // in a host ptrace stop, when this reference is not being used.
    unsafe { &mut *(p as *mut Page) }
}

/// The page's fields as the tracer may have left them during a stop.
pub fn reload(page: &mut Page) {
    // SAFETY: a valid page; the volatile read keeps the compiler from
    // reusing values from before the stop.
    *page = unsafe { std::ptr::read_volatile(page) };
}

/// Frees this thread's page (the thread ends, or a vfork child's
/// borrowed storage goes back to its parent).
pub fn release() {
    let p = PAGE.replace(0);
    if p != 0 {
        // SAFETY: allocated by `own` with Box and no longer referenced.
        drop(unsafe { Box::from_raw(p as *mut Page) });
    }
}

/// The address of this thread's page (0: none yet).
pub fn own_addr() -> u64 {
    PAGE.get()
}

/// In a vfork child, which shares its parent's thread-local storage: a
/// page of its own there, linked to the parent's so that the tracer still
/// finds the parent's (the parent stops in PTRACE_EVENT_VFORK and
/// _VFORK_DONE while the child holds the storage).
pub fn take_over() {
    let parent = PAGE.replace(0);
    own().up = parent;
}

/// In the vfork parent once the child has executed a program or exited:
/// its own page back, the child's freed (nothing uses it any more).
pub fn give_back(own: u64) {
    let child = PAGE.replace(own);
    if child != 0 && child != own {
        // SAFETY: the child's page, allocated by `own` with Box; the child
        // is gone from this address space.
        drop(unsafe { Box::from_raw(child as *mut Page) });
    }
}

/// This thread's FS base.
fn fs_base() -> u64 {
    let mut base = 0u64;
    // SAFETY: ARCH_GET_FS writes the base to the u64 we own.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            crate::syscalls::ARCH_GET_FS,
            &mut base,
        )
    };
    base
}

/// Where the page's address is in a thread whose FS base is `fs`.
fn slot_in(fs: u64) -> u64 {
    let own = PAGE.with(|c| c as *const Cell<u64> as u64);
    fs.wrapping_add(own.wrapping_sub(fs_base()))
}

/// Reads `buf.len()` bytes at `addr` in task `tid`.
pub fn read_remote(tid: i32, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let len = buf.len();
    let local = [IoSliceMut::new(buf)];
    let remote = [libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    }];
    // SAFETY: one local buffer we own, one remote range the kernel checks.
    let n = unsafe { libc::process_vm_readv(tid, local.as_ptr().cast(), 1, remote.as_ptr(), 1, 0) };
    if n == len as isize {
        Ok(())
    } else if n < 0 {
        Err(Errno::last())
    } else {
        Err(Errno(libc::EIO))
    }
}

/// Writes `bytes` at `addr` in task `tid`.
pub fn write_remote(tid: i32, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    let local = [IoSlice::new(bytes)];
    let remote = [libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: bytes.len(),
    }];
    // SAFETY: one local buffer we own, one remote range the kernel checks.
    let n =
        unsafe { libc::process_vm_writev(tid, local.as_ptr().cast(), 1, remote.as_ptr(), 1, 0) };
    if n == bytes.len() as isize {
        Ok(())
    } else if n < 0 {
        Err(Errno::last())
    } else {
        Err(Errno(libc::EIO))
    }
}

/// What the tracer finds behind a stopped tracee.
pub enum Found {
    /// Not a sandbox: the host's ptrace applies unchanged.
    Host,
    /// A sandbox that has no page yet (it is starting, after an exec).
    Starting,
    /// A sandboxed thread, its page at this address.
    Sandboxed(u64),
}

/// Finds the page of `tid`, which must be in a ptrace stop of this
/// thread's (`fs_base` is the FS base its host registers hold): the one
/// its thread-local storage names, or, for a vfork parent whose child
/// holds that storage, the one the child's page links to.
pub fn find(tid: i32, fs_base: u64) -> Found {
    if !crate::syscalls::procfs::is_sandbox(&tid.to_string()) {
        return Found::Host;
    }
    let mut word = [0u8; 8];
    if fs_base == 0 || read_remote(tid, slot_in(fs_base), &mut word).is_err() {
        return Found::Starting;
    }
    let addr = u64::from_le_bytes(word);
    let mut magic = [0u8; 8];
    if addr == 0
        || read_remote(tid, addr, &mut magic).is_err()
        || u64::from_le_bytes(magic) != MAGIC
    {
        return Found::Starting;
    }
    if let Ok(p) = read_head(tid, addr)
        && p.tid != tid
        && p.up != 0
        && read_head(tid, p.up).is_ok_and(|up| up.magic == MAGIC && up.tid == tid)
    {
        return Found::Sandboxed(p.up);
    }
    Found::Sandboxed(addr)
}

/// A whole page of task `tid` at `addr`.
pub fn read_page(tid: i32, addr: u64) -> Result<Box<Page>, Errno> {
    read_prefix(tid, addr, size_of::<Page>())
}

/// A page without its XSAVE image (zero there).
fn read_head(tid: i32, addr: u64) -> Result<Box<Page>, Errno> {
    read_prefix(tid, addr, std::mem::offset_of!(Page, xsave))
}

fn read_prefix(tid: i32, addr: u64, len: usize) -> Result<Box<Page>, Errno> {
    // SAFETY: Page is plain integers and arrays, valid all zero.
    let mut page: Box<Page> = unsafe { Box::new_zeroed().assume_init() };
    // SAFETY: the first `len` bytes of the page, overwritten by the read.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut((&mut *page as *mut Page).cast::<u8>(), len) };
    read_remote(tid, addr, bytes)?;
    Ok(page)
}

/// Writes the part of `page` from field offset `from` for `len` bytes.
pub fn write_part(tid: i32, addr: u64, page: &Page, from: usize, len: usize) -> Result<(), Errno> {
    // SAFETY: a range inside the page's bytes.
    let bytes =
        unsafe { std::slice::from_raw_parts((page as *const Page).cast::<u8>().add(from), len) };
    write_remote(tid, addr + from as u64, bytes)
}

/// Writes the page's control words (traced .. held_group): what the
/// tracer changes at every resume.
pub fn write_control(tid: i32, addr: u64, page: &Page) -> Result<(), Errno> {
    let from = std::mem::offset_of!(Page, traced);
    let to = std::mem::offset_of!(Page, event_msg);
    write_part(tid, addr, page, from, to - from)
}
