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
/// it did, or one of the same kind waits there already (which this one
/// merges with, as the kernel merges a second SIGSTOP or interrupt that
/// comes before the first is taken): the caller then resumes the thread
/// with no signal, and its own stop follows.
pub(super) fn carry(pid: i32, p: &Page, stop: &Stop) -> bool {
    if p.traced == 0
        || p.tid != pid
        || p.in_stop != 0
        || p.in_clone != 0
        || p.slot_full == 0
        || p.kvm_run == 0
        || p.no_carry != 0
    {
        return false;
    }
    let sig = match stop {
        Stop::Sigstop(_) => libc::SIGSTOP,
        Stop::Interrupt => TRAP_STOP,
    };
    match waiting(pid, p) {
        Ok(None) => {}
        Ok(Some(w)) => return w == sig,
        Err(_) => return false,
    }
    let Ok(Some((mask, moved))) = prepare(pid, p) else {
        return false;
    };
    let info = match stop {
        Stop::Sigstop(info) => *info,
        Stop::Interrupt => [0; 128],
    };
    if fill(pid, p, sig, &info, mask).is_err() {
        return false;
    }
    if let Some(h) = moved
        && host(
            libc::PTRACE_SETREGS,
            pid,
            0,
            &h as *const libc::user_regs_struct as u64,
        )
        .is_err()
    {
        // Back as it was: the host's stop is reported.
        let _ = write_remote(pid, p.slot_full, &[0]);
        let _ = set_mask(pid, mask);
        return false;
    }
    // (A stop in KVM_RUN returns EINTR from it anyway; the slot is
    // looked at before the next.)
    let kick = p.kvm_run + vmm::vcpu::IMMEDIATE_EXIT_OFFSET;
    let _ = write_remote(pid, kick, &[1]);
    true
}

/// The signal waiting in the thread's slot, if one is.
fn waiting(pid: i32, p: &Page) -> Result<Option<i32>, Errno> {
    let mut full = [0u8];
    read_remote(pid, p.slot_full, &mut full)?;
    if full[0] == 0 {
        return Ok(None);
    }
    let mut sig = [0u8; 4];
    let at = p.slot_arrival + std::mem::offset_of!(Arrival, sig) as u64;
    read_remote(pid, at, &mut sig)?;
    Ok(Some(i32::from_le_bytes(sig)))
}

/// Checks that the thread can take the stop, and how its host registers
/// move it out of a forwarded call as the handler would: the mask the
/// handler would have saved and those registers (None: unchanged), or
/// None where the host's stop stays.
type Prepared = Option<(u64, Option<libc::user_regs_struct>)>;

fn prepare(pid: i32, p: &Page) -> Result<Prepared, Errno> {
    let mut mask = [0u8; 8];
    host(libc::PTRACE_GETSIGMASK, pid, 8, mask.as_mut_ptr() as u64)?;
    let mask = u64::from_le_bytes(mask);
    if mask | bit(libc::SIGKILL) | bit(libc::SIGSTOP) == !0 {
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
        return Ok(Some((mask, None)));
    }
    Ok(Some((mask, Some(h))))
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

/// The handler's work: every signal blocked until the sandbox takes the
/// arrival, which goes into the slot.
fn fill(pid: i32, p: &Page, sig: i32, info: &[u8; 128], mask: u64) -> Result<(), Errno> {
    set_mask(pid, !0)?;
    let mut bytes = [0u8; size_of::<Arrival>()];
    let at = |field: usize, len: usize| field..field + len;
    bytes[at(std::mem::offset_of!(Arrival, sig), 4)].copy_from_slice(&sig.to_le_bytes());
    bytes[at(std::mem::offset_of!(Arrival, info), 128)].copy_from_slice(info);
    bytes[at(std::mem::offset_of!(Arrival, mask), 8)].copy_from_slice(&mask.to_le_bytes());
    let filled = write_remote(pid, p.slot_arrival, &bytes)
        .and_then(|()| write_remote(pid, p.slot_full, &[1]));
    if filled.is_err() {
        let _ = set_mask(pid, mask);
    }
    filled
}

fn set_mask(pid: i32, mask: u64) -> Result<(), Errno> {
    host(libc::PTRACE_SETSIGMASK, pid, 8, &mask as *const u64 as u64).map(drop)
}
