//! A SIGSTOP or a PTRACE_INTERRUPT for a traced thread, carried into its
//! sandbox.
//!
//! No handler can take SIGSTOP, and PTRACE_INTERRUPT is no signal, so the
//! host stops a thread for either wherever its host thread is: often in
//! the sandbox's own code between two guest exits, where the program's
//! registers are neither in kvm_run nor in the trace page and a tracer
//! could not change them (gdb calling a function in a process it attached
//! to, rr setting registers where it interrupted a task). Every other
//! signal of a traced thread reaches the sandbox's handler first, and the
//! sandbox stops at its delivery with the thread's whole state in the
//! page.
//!
//! So the tracer's sandbox does what that handler does (signals::arrival):
//! it puts the signal in the thread's slot (for PTRACE_INTERRUPT, an
//! arrival that is no signal: `arrival::TRAP_STOP`), blocks every signal,
//! moves a thread about to start a forwarded call to the stub's cancelled
//! exit, cuts short a forwarded call being made, and makes a KVM_RUN being
//! entered return at once. It then resumes the thread with no signal, and
//! the sandbox delivers the SIGSTOP to the program as any other signal, or
//! makes PTRACE_INTERRUPT's stop: a stop the thread raises.
//!
//! Where the thread might not get there soon, the host's stop is reported
//! as it is: every signal blocked (the handler or a delivery under way, or
//! a program that blocks them all), its slot full, in a host wait of the
//! sandbox's own within a program's call (a signal would end that wait; no
//! signal is sent here), or in a call that replaces or copies the process
//! (exec, fork, exit).

use super::page::{Page, read_remote, write_remote};
use super::regs;
use super::tracer::{host, host_regs, regs_of};
use crate::host::{Errno, cancelled_at};
use crate::signals::arrival::{Arrival, TRAP_STOP, bit};

/// What a thread's host stop is for.
pub(super) enum Stop {
    /// SIGSTOP, with its siginfo.
    Sigstop([u8; 128]),
    /// PTRACE_INTERRUPT.
    Interrupt,
}

/// Carries the stop `pid` (its page `p`) is in into its sandbox. Whether
/// it did: the caller then resumes the thread with no signal.
pub(super) fn carry(pid: i32, p: &Page, stop: &Stop) -> bool {
    if p.traced == 0
        || p.tid != pid
        || p.in_stop != 0
        || p.in_clone != 0
        || p.slot_full == 0
        || p.kvm_run == 0
    {
        return false;
    }
    match prepare(pid, p) {
        Ok(Some(mask)) => fill(pid, p, stop, mask).is_ok(),
        _ => false,
    }
}

/// Checks that the thread can take the signal and moves it out of a
/// forwarded call as the handler would. The mask the handler would have
/// saved, or None where the host's stop stays.
fn prepare(pid: i32, p: &Page) -> Result<Option<u64>, Errno> {
    let mut mask = [0u8; 8];
    host(libc::PTRACE_GETSIGMASK, pid, 8, mask.as_mut_ptr() as u64)?;
    let mask = u64::from_le_bytes(mask);
    if mask | bit(libc::SIGKILL) | bit(libc::SIGSTOP) == !0 {
        return Ok(None);
    }
    let mut full = [0u8];
    read_remote(pid, p.slot_full, &mut full)?;
    if full[0] != 0 {
        return Ok(None);
    }
    let mut h = host_regs(pid)?;
    let waits = regs::restarts(&h).is_some();
    if let Some(to) = cancelled_at(&p.cancel, h.rip) {
        // About to start a forwarded call: it is not made.
        h.rip = to;
    } else if waits && p.forward_rip.contains(&h.rip) {
        // In one: it returns EINTR to the sandbox, which restarts the
        // program's call as Linux would after the stop.
        h.orig_rax = u64::MAX;
        h.rax = -i64::from(libc::EINTR) as u64;
    } else if p.in_call != 0 && (waits || replaces_or_copies(regs_of(pid, p)?.orig_rax)) {
        return Ok(None);
    } else {
        return Ok(Some(mask));
    }
    host(
        libc::PTRACE_SETREGS,
        pid,
        0,
        &h as *const libc::user_regs_struct as u64,
    )?;
    Ok(Some(mask))
}

/// Calls after which the thread's slot is another's or gone.
fn replaces_or_copies(nr: u64) -> bool {
    matches!(
        nr as i64,
        libc::SYS_execve
            | libc::SYS_execveat
            | libc::SYS_clone
            | libc::SYS_clone3
            | libc::SYS_fork
            | libc::SYS_vfork
            | libc::SYS_exit
            | libc::SYS_exit_group
    )
}

/// The handler's work: the arrival in the slot, every signal blocked
/// until the sandbox delivers it, KVM_RUN made to return.
fn fill(pid: i32, p: &Page, stop: &Stop, mask: u64) -> Result<(), Errno> {
    let (sig, info) = match stop {
        Stop::Sigstop(info) => (libc::SIGSTOP, *info),
        Stop::Interrupt => (TRAP_STOP, [0; 128]),
    };
    let all = !0u64;
    host(libc::PTRACE_SETSIGMASK, pid, 8, &all as *const u64 as u64)?;
    let mut bytes = [0u8; size_of::<Arrival>()];
    let at = |field: usize, len: usize| field..field + len;
    bytes[at(std::mem::offset_of!(Arrival, sig), 4)].copy_from_slice(&sig.to_le_bytes());
    bytes[at(std::mem::offset_of!(Arrival, info), 128)].copy_from_slice(&info);
    bytes[at(std::mem::offset_of!(Arrival, mask), 8)].copy_from_slice(&mask.to_le_bytes());
    let filled = write_remote(pid, p.slot_arrival, &bytes)
        .and_then(|()| write_remote(pid, p.slot_full, &[1]));
    if let Err(e) = filled {
        let _ = host(libc::PTRACE_SETSIGMASK, pid, 8, &mask as *const u64 as u64);
        return Err(e);
    }
    // (A stop in KVM_RUN returns EINTR from it anyway; the slot is
    // looked at before the next.)
    let kick = p.kvm_run + vmm::vcpu::IMMEDIATE_EXIT_OFFSET;
    let _ = write_remote(pid, kick, &[1]);
    Ok(())
}
