//! A call the tracer makes a tracee's host thread run, in a stop the host
//! made (ATTACH's SIGSTOP, a group stop, PTRACE_INTERRUPT): the one way to
//! reach the thread's vCPU then. KVM answers a vCPU's ioctls only in the
//! process that made it, and in such a stop none of the tracee sandbox's
//! own code runs; its FPU and extended state are KVM's alone.
//!
//! The tracer, the host's tracer of that thread, saves its host registers,
//! extended state, signal mask and siginfo, points it at `fp_call` below
//! on its own stack (below the red zone) with every signal but SIGTRAP
//! blocked, and resumes it. The call moves the vCPU's XSAVE area between
//! KVM and the trace page, then traps (int3); the tracer takes that stop
//! and puts everything back, so the thread resumes where it was stopped,
//! an interrupted system call restarting as it would have.
//!
//! The call allocates nothing and takes no lock (the thread may have been
//! stopped holding one), hence the legacy 4096-byte XSAVE area: every
//! component but AMX's tile data, which read as initial; where the vCPU
//! has them, writes are refused (EIO).

use std::cell::Cell;

use vmm::vcpu::FpPort;

use super::page::{self, Page};
use super::tracer::{host, next_stop, take_stop, waiting_stop};
use crate::host::Errno;

thread_local! {
    /// The port of the vCPU this host thread runs, set as its task starts
    /// (the vCPU does not move while its thread runs it) and given back to
    /// a vfork parent.
    static PORT: Cell<Option<FpPort>> = const { Cell::new(None) };
}

/// Where the call finds the vCPU of the task this thread runs.
pub fn set_port(port: Option<FpPort>) {
    PORT.set(port);
}

/// Where the call enters, for the page (`Page::call_entry`).
pub fn entry() -> u64 {
    fp_call as extern "C" fn(*mut Page, u64) -> ! as usize as u64
}

/// The call: loads the page's XSAVE image into the vCPU if `store`, then
/// reads the vCPU's into the page. Never returns: the tracer takes the
/// breakpoint trap at its end and puts the thread's registers back.
extern "C" fn fp_call(page: *mut Page, store: u64) -> ! {
    // SAFETY: the tracer passes the page of this thread, which it holds
    // in no other use while the thread runs this call.
    let p = unsafe { &mut *page };
    // (Not `fp_fresh`: the guest may run again before the thread next
    // clears it; the tracer marks its own copy.)
    p.call_result = match transfer(p, store != 0) {
        Ok(()) => 0,
        Err(e) => -i64::from(e.0),
    };
    loop {
        // SAFETY: a breakpoint trap, which the tracer takes as the host's
        // tracer of this thread; it never resumes the thread here.
        unsafe { std::arch::asm!("int3") };
    }
}

fn transfer(p: &mut Page, store: bool) -> Result<(), Errno> {
    let port = PORT.get().ok_or(Errno(libc::EIO))?;
    let area: &mut [u8; FpPort::SIZE] = (&mut p.xsave[..FpPort::SIZE])
        .try_into()
        .expect("the page holds the legacy area");
    if store && port.larger() {
        // AMX's tile data would be lost (and KVM would read past the area).
        return Err(Errno(libc::EIO));
    }
    if store {
        // SAFETY: the port of the vCPU this thread runs; its own code is
        // stopped outside any KVM call (the host stopped it at a system
        // call's return or between instructions).
        unsafe { port.set(area) }.map_err(|_| Errno(libc::EINVAL))?;
    }
    // SAFETY: as above.
    unsafe { port.get(area) }.map_err(|_| Errno(libc::EIO))?;
    // Past the legacy area (AMX's tile data): their initial value.
    let len = (p.xsave_len as usize).min(page::XSAVE_MAX);
    if len > FpPort::SIZE {
        p.xsave[FpPort::SIZE..len].fill(0);
    }
    Ok(())
}

/// How long the call may take before the tracer gives up on it: two
/// ioctls, so only a thread the host cannot schedule takes long.
const CALL_TAKES_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The tracer's side: runs the call in tracee `pid` (host-stopped, its
/// page `p` at `at`), storing the page's XSAVE image first if `store`
/// (written there by the caller); `p` then holds the thread's extended
/// state (`fp_fresh`, in this copy only).
pub fn fp(pid: i32, at: u64, p: &mut Page, store: bool) -> Result<(), Errno> {
    if p.call_entry == 0 {
        return Err(Errno(libc::EIO));
    }
    let saved = Saved::take(pid)?;
    let mut call = saved.regs;
    call.rip = p.call_entry;
    call.rdi = at;
    call.rsi = u64::from(store);
    // Below the red zone, aligned as at a function's entry.
    call.rsp = ((saved.regs.rsp - 128 - 64) & !15) - 8;
    // No restart of an interrupted call on the way out of the stop: the
    // registers put back afterwards restart it.
    call.orig_rax = u64::MAX;
    call.rax = 0;
    // TF and DF clear, as for a function call.
    call.eflags &= !(super::tracee::TF | 0x400);
    // SIGTRAP stays unblocked: the kernel forces a blocked one through by
    // resetting its disposition, which is the sandbox's handler.
    let mask = !crate::signals::arrival::bit(libc::SIGTRAP);
    let mut took_sigstop = false;
    let ran = set_host(pid, libc::PTRACE_SETSIGMASK, 8, &mask.to_le_bytes())
        .and_then(|()| set_regs(pid, &call))
        .and_then(|()| host(libc::PTRACE_CONT, pid, 0, 0).map(drop))
        .and_then(|()| await_trap(pid, &mut took_sigstop));
    if let Err(e) = ran {
        log::warn!("ptrace: call into task {pid} failed: {e:?}");
        stop_again(pid);
    }
    // Back as it was, whatever happened.
    let group = saved.info.is_none();
    saved.put_back(pid);
    if took_sigstop {
        // Waiting again, for the tracer to see when it resumes the thread.
        // SAFETY: tkill on a thread this thread traces.
        unsafe { libc::syscall(libc::SYS_tkill, pid, libc::SIGSTOP) };
    }
    ran?;
    if group && p.held_group == 0 {
        p.held_group = 1;
        page::write_control(pid, at, p)?;
    }
    let mut result = [0u8; 8];
    let from = std::mem::offset_of!(Page, call_result);
    page::read_remote(pid, at + from as u64, &mut result)?;
    let result = i64::from_le_bytes(result);
    if result != 0 {
        return Err(Errno(-result as i32));
    }
    p.fp_fresh = 1;
    let len = (p.xsave_len as usize).clamp(FpPort::SIZE, page::XSAVE_MAX);
    let from = std::mem::offset_of!(Page, xsave);
    page::read_remote(pid, at + from as u64, &mut p.xsave[..len])
}

/// The thread's host state the call changes.
struct Saved {
    regs: libc::user_regs_struct,
    mask: [u8; 8],
    /// The siginfo of a signal-delivery stop (none in a group stop or a
    /// PTRACE_EVENT stop).
    info: Option<[u8; 128]>,
    xstate: Vec<u8>,
}

/// Room for the host's XSAVE area (AMX's ends at 11008 bytes).
const HOST_XSTATE_MAX: usize = 16384;

impl Saved {
    fn take(pid: i32) -> Result<Saved, Errno> {
        // SAFETY: user_regs_struct is plain integers.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        host(libc::PTRACE_GETREGS, pid, 0, &mut regs as *mut _ as u64)?;
        let mut mask = [0u8; 8];
        host(libc::PTRACE_GETSIGMASK, pid, 8, mask.as_mut_ptr() as u64)?;
        let mut info = [0u8; 128];
        let info = host(libc::PTRACE_GETSIGINFO, pid, 0, info.as_mut_ptr() as u64)
            .ok()
            .map(|_| info);
        let mut xstate = vec![0u8; HOST_XSTATE_MAX];
        let mut iov = libc::iovec {
            iov_base: xstate.as_mut_ptr().cast(),
            iov_len: xstate.len(),
        };
        host(
            libc::PTRACE_GETREGSET,
            pid,
            super::regs::NT_X86_XSTATE,
            &mut iov as *mut libc::iovec as u64,
        )?;
        xstate.truncate(iov.iov_len);
        Ok(Saved {
            regs,
            mask,
            info,
            xstate,
        })
    }

    fn put_back(mut self, pid: i32) {
        let _ = set_regs(pid, &self.regs);
        let mut iov = libc::iovec {
            iov_base: self.xstate.as_mut_ptr().cast(),
            iov_len: self.xstate.len(),
        };
        let _ = host(
            libc::PTRACE_SETREGSET,
            pid,
            super::regs::NT_X86_XSTATE,
            &mut iov as *mut libc::iovec as u64,
        );
        let _ = set_host(pid, libc::PTRACE_SETSIGMASK, 8, &self.mask);
        if let Some(info) = self.info {
            let _ = set_host(pid, libc::PTRACE_SETSIGINFO, 0, &info);
        }
    }
}

/// Waits, bounded, for the call's breakpoint trap and takes it. A SIGSTOP
/// waiting to be delivered stops the thread first, as nothing blocks it:
/// ATTACH's, where the thread was already in a group stop (gdb -p on a
/// stopped job). It is taken and suppressed, and `took_sigstop` says to
/// send it again once the thread is put back. Any other stop is left for
/// the program's wait.
fn await_trap(pid: i32, took_sigstop: &mut bool) -> Result<(), Errno> {
    loop {
        match next_stop(pid, CALL_TAKES_WITHIN) {
            Some(code) if code == libc::SIGTRAP as u32 && from_int3(pid) => {
                take_stop(pid);
                return Ok(());
            }
            Some(code) if code == libc::SIGSTOP as u32 && !*took_sigstop => {
                take_stop(pid);
                *took_sigstop = true;
                host(libc::PTRACE_CONT, pid, 0, 0)?;
            }
            _ => return Err(Errno(libc::EIO)),
        }
    }
}

/// After a call that did not end in its trap within the bound: the thread
/// stopped again (SIGSTOP, which nothing blocks, taken here), so that its
/// registers can be put back; a stop of another kind is left waiting.
fn stop_again(pid: i32) {
    if waiting_stop(pid).is_none() {
        // SAFETY: tkill on a thread this thread traces.
        unsafe { libc::syscall(libc::SYS_tkill, pid, libc::SIGSTOP) };
    }
    match next_stop(pid, CALL_TAKES_WITHIN) {
        Some(code)
            if code == libc::SIGSTOP as u32 || (code == libc::SIGTRAP as u32 && from_int3(pid)) =>
        {
            take_stop(pid)
        }
        Some(_) => {}
        None => log::warn!("ptrace: task {pid} did not stop again after a call into it"),
    }
}

/// Whether the SIGTRAP stop of `pid` is a breakpoint trap's (si_code
/// SI_KERNEL), not one another task sent.
fn from_int3(pid: i32) -> bool {
    let mut info = [0u8; 128];
    host(libc::PTRACE_GETSIGINFO, pid, 0, info.as_mut_ptr() as u64).is_ok()
        && i32::from_le_bytes(info[8..12].try_into().expect("4 bytes")) == libc::SI_KERNEL
}

fn set_regs(pid: i32, r: &libc::user_regs_struct) -> Result<(), Errno> {
    host(libc::PTRACE_SETREGS, pid, 0, r as *const _ as u64).map(drop)
}

fn set_host(pid: i32, req: u32, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    host(req, pid, addr, bytes.as_ptr() as u64).map(drop)
}
