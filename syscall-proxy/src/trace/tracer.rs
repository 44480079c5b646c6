//! The tracing side: the program's ptrace requests and its waits.
//!
//! The program's tracer thread is the host tracer of the tracee's host
//! thread: attaching, permissions, killing, memory (guest addresses are
//! host addresses) and the stops the host kernel makes are the host's.
//! What the host cannot know, the tracee's sandbox keeps in its trace page
//! (page.rs): the guest's registers, and the stops it raises itself at
//! system calls, signal delivery and events. A wait that reports a host
//! stop is judged here: a stop the tracee raised is reported as the page
//! describes it, one that is the sandbox's own business (its re-exec, a
//! signal on its way to the program's handler, whose delivery will stop)
//! is passed over, anything else is reported as the host made it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use libc::{PTRACE_EVENT_CLONE, PTRACE_EVENT_EXIT, PTRACE_EVENT_FORK};
use libc::{PTRACE_EVENT_VFORK, PTRACE_EVENT_VFORK_DONE, PTRACE_O_EXITKILL};
use libc::{PTRACE_O_SUSPEND_SECCOMP, PTRACE_O_TRACECLONE, PTRACE_O_TRACEEXIT};
use libc::{PTRACE_O_TRACEFORK, PTRACE_O_TRACEVFORK, PTRACE_O_TRACEVFORKDONE};
use vmm::kvm_regs;

use super::carry::{Stop, carry};
use super::hwbp;
use super::inject;
use super::page::{self, Found, Page, dirty, mode};
use super::regs::{self, FXSAVE_SIZE, NT_PRFPREG, NT_PRSTATUS, NT_X86_XSTATE};
use super::tracee::{self, MARK, STOP_SIGNAL};
use crate::host::{Errno, SysResult, has_cap_sys_admin};
use crate::seccomp::{self, AUDIT_ARCH_X86_64};
use crate::syscalls::procfs::is_sandbox;
use crate::syscalls::{ARCH_GET_FS, ARCH_GET_GS, ARCH_SET_FS, ARCH_SET_GS, forward_raw};
use crate::thread::Thread;
use crate::umem;

/// PTRACE_ARCH_PRCTL (arch/x86/include/uapi/asm/ptrace-abi.h), which
/// libc lacks.
const PTRACE_ARCH_PRCTL: u32 = 30;

/// Suspending the tracee's seccomp filters (checkpoint/restore's), which
/// the tracee's sandbox honours (`tracee::seccomp_suspended`).
const SUSPEND_SECCOMP: u32 = PTRACE_O_SUSPEND_SECCOMP as u32;

/// check_ptrace_options: suspending seccomp takes CAP_SYS_ADMIN, and a
/// tracer that is not under seccomp, nor suspended itself.
fn check_options(thread: &Thread, options: u32) -> Result<(), Errno> {
    if options & SUSPEND_SECCOMP == 0 {
        return Ok(());
    }
    let own_suspended = tracee::seccomp_suspended();
    if !has_cap_sys_admin() || seccomp::filtered(thread) || own_suspended {
        return Err(Errno(libc::EPERM));
    }
    Ok(())
}

/// Options the host applies too: EXITKILL; following new tasks, for
/// which the host attaches each new task of the tracee's to the tracer
/// and stops the creator at the PTRACE_EVENT (what it stops for, the
/// page describes: `tracee::creating`; a clone the sandbox makes for
/// itself is let go, `let_go_of_new`); and TRACEEXIT, whose stops only
/// the host can make where its exit_group, a fatal signal or an exec
/// ends the threads (`exit_shown`).
const HOST_OPTIONS: u32 = (PTRACE_O_EXITKILL
    | PTRACE_O_TRACEEXIT
    | PTRACE_O_TRACECLONE
    | PTRACE_O_TRACEFORK
    | PTRACE_O_TRACEVFORK
    | PTRACE_O_TRACEVFORKDONE) as u32;

/// Every option Linux knows (PTRACE_O_MASK): others are refused.
const O_MASK: u64 = libc::PTRACE_O_MASK as u64;

/// Options PTRACE_SEIZE set for tracees not stopped since: written into
/// their page at their first stop.
static SEIZED: Mutex<BTreeMap<i32, u32>> = Mutex::new(BTreeMap::new());

/// The host's ptrace.
pub(super) fn host(req: u32, pid: i32, addr: u64, data: u64) -> SysResult {
    // SAFETY: callers pass addresses of their own buffers, or of program
    // memory checked beforehand, or integers.
    let r = unsafe { libc::syscall(libc::SYS_ptrace, req as libc::c_long, pid, addr, data) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as u64)
    }
}

pub(super) fn host_regs(pid: i32) -> Result<libc::user_regs_struct, Errno> {
    // SAFETY: user_regs_struct is plain integers.
    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    host(
        libc::PTRACE_GETREGS,
        pid,
        0,
        &mut r as *mut libc::user_regs_struct as u64,
    )?;
    Ok(r)
}

fn host_event_msg(pid: i32) -> Result<u64, Errno> {
    let mut msg = 0u64;
    host(
        libc::PTRACE_GETEVENTMSG,
        pid,
        0,
        &mut msg as *mut u64 as u64,
    )?;
    Ok(msg)
}

fn host_siginfo(pid: i32) -> Result<[u8; 128], Errno> {
    let mut info = [0u8; 128];
    host(libc::PTRACE_GETSIGINFO, pid, 0, info.as_mut_ptr() as u64)?;
    Ok(info)
}

/// A stopped tracee, and what is behind it.
enum Target {
    Host,
    Sandboxed { addr: u64, page: Box<Page> },
}

/// The tracee `pid`, which must be in a ptrace stop of this thread's
/// (ESRCH otherwise, as the host says).
fn target(pid: i32) -> Result<Target, Errno> {
    let r = host_regs(pid)?;
    match page::find(pid, r.fs_base) {
        Found::Host => Ok(Target::Host),
        // Its stops are passed over until its page exists.
        Found::Starting => Err(Errno(libc::ESRCH)),
        Found::Sandboxed(addr) => {
            let page = page::read_page(pid, addr)?;
            if page.started != pid {
                // Its creator's copy (`judged`): as a sandbox starting.
                return Err(Errno(libc::ESRCH));
            }
            Ok(Target::Sandboxed { addr, page })
        }
    }
}

/// The program's registers in the stop: the page's, or, in a stop the
/// host made while the guest ran, those KVM left in kvm_run.
pub(super) fn regs_of(pid: i32, p: &Page) -> Result<libc::user_regs_struct, Errno> {
    if p.in_stop != 0 || p.fresh != 0 || p.regs_in_call != 0 {
        return Ok(p.regs);
    }
    let at = p.kvm_run + vmm::vcpu::SYNC_REGS_OFFSET;
    let mut r = kvm_regs::default();
    page::read_remote(pid, at, as_bytes_mut(&mut r))?;
    let mut orig_rax = u64::MAX;
    let at_stub = r.rip == p.syscall_stub;
    if at_stub {
        // At a system call: the program's RIP and RFLAGS are where the
        // stub's return takes them.
        r.rip = r.rcx;
        r.rflags = r.r11;
    }
    if at_stub && p.in_call != 0 {
        // In a system call the sandbox is making (outside one, RAX is a
        // finished call's result): as the kernel shows a task stopped in
        // one, its number in orig_rax and in RAX the code that says how
        // it restarts.
        orig_rax = r.rax;
        let args = [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9];
        let call = crate::signals::deliver::Interrupted::new(r.rax, args, false);
        r.rax = match host_regs(pid) {
            // The host call made for it has returned (the stop came after):
            // its result, as the kernel shows a task stopped after a call.
            Ok(h)
                if p.forward_rip.contains(&h.rip)
                    && h.orig_rax == orig_rax
                    && regs::restarts(&h).is_none() =>
            {
                h.rax
            }
            _ => call.kernel_code() as u64,
        };
    }
    Ok(regs::user_regs(
        &r,
        orig_rax,
        p.regs.fs_base,
        p.regs.gs_base,
    ))
}

/// Writes `bytes` at `addr` in the program's memory.
fn put(thread: &Thread, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    let space = thread.process.vm.memory.lock().expect("address space");
    umem::write_bytes(&space, addr, bytes)
}

fn get(thread: &Thread, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let space = thread.process.vm.memory.lock().expect("address space");
    umem::read_bytes(&space, addr, buf)
}

fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: the plain-data structs here (register sets, siginfo).
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

fn as_bytes_mut<T: Copy>(v: &mut T) -> &mut [u8] {
    // SAFETY: as above; every byte pattern is a valid value of them.
    unsafe { std::slice::from_raw_parts_mut((v as *mut T).cast::<u8>(), size_of::<T>()) }
}

/// ptrace(2) for the program.
pub fn ptrace(thread: &mut Thread, a: [u64; 6]) -> SysResult {
    let r = request(thread, a);
    if let Err(e) = r {
        log::debug!("ptrace: request {:#x} of {}: {e:?}", a[0], a[1] as i32);
    }
    r
}

fn request(thread: &mut Thread, a: [u64; 6]) -> SysResult {
    let (req, pid, addr, data) = (a[0] as u32, a[1] as i32, a[2], a[3]);
    if req == libc::PTRACE_DETACH {
        // (A detach ends a pending interrupt: ptrace_unlink.)
        forget(pid);
    }
    match req {
        libc::PTRACE_TRACEME => {
            host(req, 0, 0, 0)?;
            page::own().traced = 1;
            Ok(0)
        }
        libc::PTRACE_ATTACH => host(req, pid, 0, 0),
        libc::PTRACE_SEIZE if addr != 0 || data & !O_MASK != 0 => {
            // Refused (EIO) after the host finds the task (ESRCH first).
            host(req, pid, addr, data)
        }
        libc::PTRACE_SEIZE if !is_sandbox(&pid.to_string()) => {
            // Not a sandbox: the host's seize, with every option.
            check_options(thread, data as u32)?;
            host(req, pid, 0, data)
        }
        libc::PTRACE_SEIZE => {
            let options = data as u32;
            check_options(thread, options)?;
            host(req, pid, 0, u64::from(options & HOST_OPTIONS))?;
            SEIZED.lock().expect("seized").insert(pid, options);
            claim_seized(pid);
            Ok(0)
        }
        libc::PTRACE_LISTEN => listen(pid),
        libc::PTRACE_INTERRUPT => {
            let r = host(req, pid, 0, 0)?;
            INTERRUPTED.lock().expect("interrupted").insert(pid, 0);
            Ok(r)
        }
        libc::PTRACE_KILL => host(req, pid, 0, 0),
        libc::PTRACE_PEEKTEXT | libc::PTRACE_PEEKDATA => {
            // The word lands in the sandbox first: `data` is the program's.
            let mut word = 0u64;
            host(req, pid, addr, &mut word as *mut u64 as u64)?;
            put(thread, data, &word.to_le_bytes())?;
            Ok(0)
        }
        // Guest addresses are host addresses: the host writes the tracee's
        // memory (breakpoints), whatever its sandbox.
        libc::PTRACE_POKETEXT | libc::PTRACE_POKEDATA => host(req, pid, addr, data),
        _ => match target(pid)? {
            Target::Host => host_request(thread, req, pid, addr, data),
            Target::Sandboxed { addr: at, mut page } => {
                sandboxed(thread, req, pid, addr, data, at, &mut page)
            }
        },
    }
}

/// PTRACE_LISTEN. In a PTRACE_INTERRUPT stop the tracee's sandbox made
/// (carry.rs), which the host holds as the signal-delivery stop of its
/// mark, the host would refuse it: the thread is moved into a host
/// interrupt stop first, in place (still inside the stop it raised, its
/// state in the page), which the host then lets listen.
fn listen(pid: i32) -> SysResult {
    if let Ok(Target::Sandboxed { page: p, .. }) = target(pid)
        && p.in_stop != 0
        && p.code == INTERRUPT_STOP
        && p.seized != 0
        && is_mark(pid)
    {
        host(libc::PTRACE_INTERRUPT, pid, 0, 0)?;
        host(libc::PTRACE_CONT, pid, 0, 0)?;
        match next_stop(pid, NEW_TASK_STOPS_WITHIN) {
            // The interrupt's trap, or a group stop's, which came first
            // and took the interrupt's place (any trap clears a pending
            // one, ptrace_stop): the host lets either listen.
            Some(code) if code >> 8 == libc::PTRACE_EVENT_STOP as u32 => take_stop(pid),
            // A stop of another kind: left to be waited for, as the host's
            // LISTEN would be refused there.
            _ => return Err(Errno(libc::EIO)),
        }
    }
    host(libc::PTRACE_LISTEN, pid, 0, 0)
}

/// A request about a tracee that is not a sandbox: the host's, with the
/// program's buffers copied through the sandbox's.
fn host_request(thread: &Thread, req: u32, pid: i32, addr: u64, data: u64) -> SysResult {
    let mut buf = [0u8; 4096];
    match req {
        libc::PTRACE_GETREGS | libc::PTRACE_GETFPREGS | libc::PTRACE_GETSIGINFO => {
            let n = match req {
                libc::PTRACE_GETREGS => size_of::<libc::user_regs_struct>(),
                libc::PTRACE_GETFPREGS => FXSAVE_SIZE,
                _ => 128,
            };
            host(req, pid, addr, buf.as_mut_ptr() as u64)?;
            put(thread, data, &buf[..n])?;
            Ok(0)
        }
        libc::PTRACE_GETEVENTMSG => {
            let mut msg = 0u64;
            host(req, pid, 0, &mut msg as *mut u64 as u64)?;
            put(thread, data, &msg.to_le_bytes())?;
            Ok(0)
        }
        libc::PTRACE_SETREGS | libc::PTRACE_SETFPREGS | libc::PTRACE_SETSIGINFO => {
            let n = match req {
                libc::PTRACE_SETREGS => size_of::<libc::user_regs_struct>(),
                libc::PTRACE_SETFPREGS => FXSAVE_SIZE,
                _ => 128,
            };
            get(thread, data, &mut buf[..n])?;
            host(req, pid, addr, buf.as_ptr() as u64)
        }
        libc::PTRACE_PEEKUSER => {
            let mut word = 0u64;
            host(req, pid, addr, &mut word as *mut u64 as u64)?;
            put(thread, data, &word.to_le_bytes())?;
            Ok(0)
        }
        libc::PTRACE_GET_SYSCALL_INFO | libc::PTRACE_GET_RSEQ_CONFIGURATION => {
            // `addr` bytes at most are written; the full size is returned.
            let room = (addr as usize).min(buf.len());
            let full = host(req, pid, room as u64, buf.as_mut_ptr() as u64)?;
            put(thread, data, &buf[..room.min(full as usize)])?;
            Ok(full)
        }
        libc::PTRACE_GETSIGMASK | libc::PTRACE_SETSIGMASK => {
            let mut mask = 0u64;
            if addr != 8 {
                return Err(Errno(libc::EINVAL));
            }
            if req == libc::PTRACE_SETSIGMASK {
                get(thread, data, as_bytes_mut(&mut mask))?;
            }
            host(req, pid, addr, &mut mask as *mut u64 as u64)?;
            if req == libc::PTRACE_GETSIGMASK {
                put(thread, data, &mask.to_le_bytes())?;
            }
            Ok(0)
        }
        libc::PTRACE_GETREGSET | libc::PTRACE_SETREGSET => {
            // The program's iovec, and the regset through a buffer of ours.
            let mut iov = [0u64; 2];
            get(thread, data, as_bytes_mut(&mut iov))?;
            let mut set = vec![0u8; (iov[1] as usize).min(REGSET_MAX)];
            if req == libc::PTRACE_SETREGSET {
                get(thread, iov[0], &mut set)?;
            }
            let mut ours = [set.as_mut_ptr() as u64, set.len() as u64];
            host(req, pid, addr, ours.as_mut_ptr() as u64)?;
            if req == libc::PTRACE_GETREGSET {
                put(thread, iov[0], &set[..ours[1] as usize])?;
                put(thread, data + 8, &ours[1].to_le_bytes())?;
            }
            Ok(0)
        }
        PTRACE_ARCH_PRCTL if data == ARCH_GET_FS || data == ARCH_GET_GS => {
            let mut base = 0u64;
            host(req, pid, &mut base as *mut u64 as u64, data)?;
            put(thread, addr, &base.to_le_bytes())?;
            Ok(0)
        }
        PTRACE_ARCH_PRCTL => host(req, pid, addr, data),
        libc::PTRACE_PEEKSIGINFO => {
            // struct ptrace_peeksiginfo_args: off, flags, nr.
            let mut args = [0u8; 16];
            get(thread, addr, &mut args)?;
            let nr = i32::from_le_bytes(args[12..16].try_into().expect("4 bytes"));
            if nr < 0 {
                return Err(Errno(libc::EINVAL));
            }
            // The host's queue: a sandboxed thread's pending signals wait
            // there, blocked by the program's mask.
            let room = (nr as usize).min(PEEK_MAX);
            args[12..16].copy_from_slice(&(room as i32).to_le_bytes());
            let mut infos = vec![0u8; room * 128];
            let n = host(req, pid, args.as_ptr() as u64, infos.as_mut_ptr() as u64)?;
            put(thread, data, &infos[..n as usize * 128])?;
            Ok(n)
        }
        libc::PTRACE_POKEUSER
        | libc::PTRACE_SETOPTIONS
        | libc::PTRACE_CONT
        | libc::PTRACE_SYSCALL
        | libc::PTRACE_SINGLESTEP
        | libc::PTRACE_SYSEMU
        | libc::PTRACE_SYSEMU_SINGLESTEP
        | libc::PTRACE_DETACH => host(req, pid, addr, data),
        _ => Err(Errno(libc::EIO)),
    }
}

/// The most siginfos one PTRACE_PEEKSIGINFO returns (a tracer asks again
/// from the next offset for more, as it must of the kernel's too).
const PEEK_MAX: usize = 1024;

/// Offsets in struct user (sys/user.h): the registers, then u_debugreg.
const USER_REGS_END: u64 = size_of::<libc::user_regs_struct>() as u64;
const USER_DEBUGREG: u64 = std::mem::offset_of!(libc::user, u_debugreg) as u64;
/// The kernel's struct user (asm/user_64.h) ends with error_code and
/// fault_address after u_debugreg, which glibc's and libc's lack: PEEKUSER
/// reads them as 0.
const USER_SIZE: u64 = USER_DEBUGREG + 64 + 16;

/// A request about a sandboxed tracee whose page is `p`, at `at` in it.
fn sandboxed(
    thread: &Thread,
    req: u32,
    pid: i32,
    addr: u64,
    data: u64,
    at: u64,
    p: &mut Page,
) -> SysResult {
    let in_stop = p.in_stop != 0;
    // The FPU and extended state are in the page in the thread's own stops
    // and while it is in a system call; in other stops the host made, a
    // call into the thread fetches them (inject.rs).
    let fp_readable = |p: &mut Page| {
        if p.exit == page::exit::SHOWN_WITHOUT_FP {
            // Killed in the guest: its state went with KVM's vCPU.
            Err(Errno(libc::EIO))
        } else if in_stop || p.fp_fresh != 0 {
            Ok(())
        } else {
            inject::fp(pid, at, p, false)
        }
    };
    match req {
        libc::PTRACE_GETREGS => {
            let r = regs_of(pid, p)?;
            put(thread, data, as_bytes(&r))?;
            Ok(0)
        }
        libc::PTRACE_SETREGS => {
            // SAFETY: user_regs_struct is plain integers.
            let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
            get(thread, data, as_bytes_mut(&mut r))?;
            set_regs(pid, at, p, r)
        }
        libc::PTRACE_PEEKUSER => {
            if !addr.is_multiple_of(8) || addr >= USER_SIZE {
                return Err(Errno(libc::EIO));
            }
            let word = if addr < USER_REGS_END {
                let r = regs_of(pid, p)?;
                u64::from_le_bytes(
                    as_bytes(&r)[addr as usize..addr as usize + 8]
                        .try_into()
                        .expect("8 bytes"),
                )
            } else if (USER_DEBUGREG..USER_DEBUGREG + 64).contains(&addr) {
                match (addr - USER_DEBUGREG) / 8 {
                    6 => p.debugreg[6] ^ hwbp::DR6_RESERVED,
                    n => p.debugreg[n as usize],
                }
            } else {
                0
            };
            put(thread, data, &word.to_le_bytes())?;
            Ok(0)
        }
        libc::PTRACE_POKEUSER => {
            if !addr.is_multiple_of(8) || addr >= USER_SIZE {
                return Err(Errno(libc::EIO));
            }
            if addr < USER_REGS_END {
                let mut r = regs_of(pid, p)?;
                as_bytes_mut(&mut r)[addr as usize..addr as usize + 8]
                    .copy_from_slice(&data.to_le_bytes());
                return set_regs(pid, at, p, r);
            }
            if !(USER_DEBUGREG..USER_DEBUGREG + 64).contains(&addr) {
                // The rest of struct user is not writable.
                return Err(Errno(libc::EIO));
            }
            // In any stop: gdb clears them as it detaches from the stop
            // ATTACH made. The thread takes them up as it next enters the
            // guest (hwbp.rs).
            let n = ((addr - USER_DEBUGREG) / 8) as usize;
            let mut dr = p.debugreg;
            dr[n] = if n == 6 {
                data ^ hwbp::DR6_RESERVED
            } else {
                data
            };
            match n {
                // DR4 and DR5 do not exist (ptrace_set_debugreg).
                4 | 5 => return Err(Errno(libc::EIO)),
                0..=3 if data >= hwbp::TASK_SIZE_MAX => return Err(Errno(libc::EINVAL)),
                // What an enabled breakpoint must be (the old DR7 stays).
                0..=3 | 7 => {
                    hwbp::decode(&dr)?;
                }
                _ => {}
            }
            p.debugreg = dr;
            page::write_part(pid, at, p, std::mem::offset_of!(Page, debugreg), 64)?;
            page::write_control(pid, at, p)?;
            Ok(0)
        }
        libc::PTRACE_GETFPREGS => {
            fp_readable(p)?;
            put(thread, data, &p.xsave[..FXSAVE_SIZE])?;
            Ok(0)
        }
        libc::PTRACE_SETFPREGS => {
            fp_readable(p)?;
            let mut fx = [0u8; FXSAVE_SIZE];
            get(thread, data, &mut fx)?;
            let mut image = p.xsave[..p.xsave_len as usize].to_vec();
            // The legacy area only; the software-reserved bytes stay.
            image[..regs::XSTATE_XCR0_OFFSET].copy_from_slice(&fx[..regs::XSTATE_XCR0_OFFSET]);
            set_xsave(pid, at, p, &image)
        }
        libc::PTRACE_GETREGSET | libc::PTRACE_SETREGSET => {
            let mut iov = [0u8; 16];
            get(thread, data, &mut iov)?;
            let base = u64::from_le_bytes(iov[..8].try_into().expect("8 bytes"));
            let len = u64::from_le_bytes(iov[8..].try_into().expect("8 bytes")) as usize;
            if !len.is_multiple_of(REGSET_UNIT) {
                return Err(Errno(libc::EINVAL));
            }
            let set = match addr {
                NT_PRSTATUS => as_bytes(&regs_of(pid, p)?).to_vec(),
                NT_PRFPREG => {
                    fp_readable(p)?;
                    p.xsave[..FXSAVE_SIZE].to_vec()
                }
                NT_X86_XSTATE => {
                    fp_readable(p)?;
                    regs::xstate(&p.xsave, p.xsave_len as usize, p.xcr0)
                }
                _ => return Err(Errno(libc::EINVAL)),
            };
            let n = len.min(set.len());
            if req == libc::PTRACE_GETREGSET {
                put(thread, base, &set[..n])?;
                put(thread, data + 8, &(n as u64).to_le_bytes())?;
                return Ok(0);
            }
            let mut new = set.clone();
            get(thread, base, &mut new[..n])?;
            match addr {
                NT_PRSTATUS => {
                    // SAFETY: user_regs_struct is plain integers.
                    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
                    as_bytes_mut(&mut r).copy_from_slice(&new);
                    set_regs(pid, at, p, r)
                }
                NT_PRFPREG => {
                    let mut image = p.xsave[..p.xsave_len as usize].to_vec();
                    image[..regs::XSTATE_XCR0_OFFSET]
                        .copy_from_slice(&new[..regs::XSTATE_XCR0_OFFSET]);
                    set_xsave(pid, at, p, &image)
                }
                _ => {
                    let mut image = p.xsave[..p.xsave_len as usize].to_vec();
                    regs::set_xstate(&mut image, &new[..n], p.xcr0).map_err(Errno)?;
                    set_xsave(pid, at, p, &image)
                }
            }
        }
        libc::PTRACE_GETSIGINFO => {
            let info = if in_stop {
                stop_siginfo(pid, p)
            } else if p.held_group != 0 {
                // A group stop has none.
                return Err(Errno(libc::EINVAL));
            } else {
                host_siginfo(pid)?
            };
            put(thread, data, &info)?;
            Ok(0)
        }
        libc::PTRACE_SETSIGINFO => {
            let mut info = [0u8; 128];
            get(thread, data, &mut info)?;
            if !in_stop && p.held_group != 0 {
                return Err(Errno(libc::EINVAL));
            }
            if !in_stop {
                return host(req, pid, 0, info.as_ptr() as u64);
            }
            p.siginfo = info;
            p.dirty |= dirty::SIGINFO;
            page::write_part(pid, at, p, std::mem::offset_of!(Page, siginfo), 128)?;
            page::write_control(pid, at, p)?;
            Ok(0)
        }
        libc::PTRACE_GETEVENTMSG => {
            // A clone's event is the host's (the new task's id).
            let msg = if in_stop && p.in_clone == 0 {
                p.event_msg
            } else {
                let mut m = 0u64;
                host(req, pid, 0, &mut m as *mut u64 as u64)?;
                m
            };
            put(thread, data, &msg.to_le_bytes())?;
            Ok(0)
        }
        libc::PTRACE_SETOPTIONS => {
            let options = data as u32;
            if data & !O_MASK != 0 {
                return Err(Errno(libc::EINVAL));
            }
            check_options(thread, options)?;
            host(req, pid, 0, u64::from(options & HOST_OPTIONS))?;
            p.options = options;
            page::write_control(pid, at, p)?;
            Ok(0)
        }
        libc::PTRACE_GETSIGMASK | libc::PTRACE_SETSIGMASK => {
            if addr != 8 {
                return Err(Errno(libc::EINVAL));
            }
            if !in_stop && p.fresh == 0 {
                // The host thread's mask is the program's while it runs.
                let mut m = 0u64;
                if req == libc::PTRACE_SETSIGMASK {
                    get(thread, data, as_bytes_mut(&mut m))?;
                }
                host(req, pid, 8, &mut m as *mut u64 as u64)?;
                if req == libc::PTRACE_GETSIGMASK {
                    put(thread, data, &m.to_le_bytes())?;
                }
                return Ok(0);
            }
            if req == libc::PTRACE_GETSIGMASK {
                put(thread, data, &p.sigmask.to_le_bytes())?;
                return Ok(0);
            }
            if !in_stop && p.held == 0 {
                // Outside the guest the sandbox keeps the mask itself.
                return Err(Errno(libc::EIO));
            }
            let mut m = 0u64;
            get(thread, data, as_bytes_mut(&mut m))?;
            p.sigmask = m & !(1 << (libc::SIGKILL - 1) | 1 << (libc::SIGSTOP - 1));
            p.dirty |= dirty::SIGMASK;
            page::write_part(pid, at, p, std::mem::offset_of!(Page, sigmask), 8)?;
            page::write_control(pid, at, p)?;
            Ok(0)
        }
        libc::PTRACE_GET_SYSCALL_INFO => {
            let info = syscall_info(pid, p)?;
            let full = match u32::from(info.op) {
                x if x == u32::from(libc::PTRACE_SYSCALL_INFO_ENTRY) => 24 + 56,
                x if x == u32::from(libc::PTRACE_SYSCALL_INFO_EXIT) => 24 + 9,
                // nr, args, ret_data.
                x if x == u32::from(libc::PTRACE_SYSCALL_INFO_SECCOMP) => 24 + 60,
                _ => 24,
            };
            let n = (addr as usize).min(full);
            put(thread, data, &as_bytes(&info)[..n])?;
            Ok(full as u64)
        }
        PTRACE_ARCH_PRCTL => {
            let r = regs_of(pid, p)?;
            match data {
                ARCH_GET_FS => put(thread, addr, &r.fs_base.to_le_bytes()).map(|()| 0),
                ARCH_GET_GS => put(thread, addr, &r.gs_base.to_le_bytes()).map(|()| 0),
                ARCH_SET_FS | ARCH_SET_GS => {
                    let mut r = r;
                    if data == ARCH_SET_FS {
                        r.fs_base = addr;
                    } else {
                        r.gs_base = addr;
                    }
                    set_regs(pid, at, p, r)
                }
                _ => Err(Errno(libc::EINVAL)),
            }
        }
        libc::PTRACE_CONT
        | libc::PTRACE_SYSCALL
        | libc::PTRACE_SYSEMU
        | libc::PTRACE_DETACH
        | libc::PTRACE_SINGLESTEP
        | libc::PTRACE_SYSEMU_SINGLESTEP => resume(req, pid, data, at, p),
        libc::PTRACE_GET_RSEQ_CONFIGURATION => {
            // rseq is ENOSYS for the program, so it has none registered
            // (the host thread's is the sandbox's own glibc's).
            let none = [0u8; size_of::<libc::ptrace_rseq_configuration>()];
            put(thread, data, &none[..(addr as usize).min(none.len())])?;
            Ok(none.len() as u64)
        }
        // The program's filters are the sandbox's to run, not the host
        // thread's: as a kernel without CONFIG_CHECKPOINT_RESTORE.
        PTRACE_SECCOMP_GET_FILTER | PTRACE_SECCOMP_GET_METADATA => Err(Errno(libc::EINVAL)),
        _ => host_request(thread, req, pid, addr, data),
    }
}

/// What a regset's length must be a multiple of: the size of each of its
/// elements, 8 bytes for all three (arch/x86/kernel/ptrace.c's regsets).
const REGSET_UNIT: usize = 8;

/// The largest regset copied for a tracee that is not a sandbox (an XSAVE
/// image with AMX's tile data is 11008 bytes).
const REGSET_MAX: usize = 64 << 10;

/// Requests libc lacks for Linux (include/uapi/linux/ptrace.h).
const PTRACE_SECCOMP_GET_FILTER: u32 = 0x420c;
const PTRACE_SECCOMP_GET_METADATA: u32 = 0x420d;

/// New registers for the tracee: into the page in a stop it raised, to
/// take effect as it resumes; in a stop the host made, into kvm_run while
/// the guest ran (KVM takes them at the next KVM_RUN) or into the page
/// while the sandbox makes a call for it (`set_regs_in_call`). Elsewhere
/// (the sandbox's own code between those) they are out of reach: EIO.
fn set_regs(pid: i32, at: u64, p: &mut Page, r: libc::user_regs_struct) -> SysResult {
    if !regs::acceptable(&r) {
        return Err(Errno(libc::EIO));
    }
    if p.in_stop == 0 && p.held == 0 {
        return set_guest_regs(pid, at, p, r);
    }
    p.regs = regs::sanitize(&r, &p.regs);
    p.dirty |= dirty::REGS;
    write_regs(pid, at, p)?;
    Ok(0)
}

/// The page's registers and control words into the tracee's page.
fn write_regs(pid: i32, at: u64, p: &Page) -> Result<(), Errno> {
    let len = size_of::<libc::user_regs_struct>();
    page::write_part(pid, at, p, std::mem::offset_of!(Page, regs), len)?;
    page::write_control(pid, at, p)
}

fn set_guest_regs(pid: i32, page_at: u64, p: &mut Page, r: libc::user_regs_struct) -> SysResult {
    let now = regs_of(pid, p)?;
    let host_now = host_regs(pid)?;
    let in_call = p.in_call != 0 && p.in_guest == 0 && now.orig_rax != u64::MAX;
    if p.regs_in_call != 0 || in_call {
        return set_regs_in_call(pid, page_at, p, r, &now, host_now);
    }
    let at_run = host_now.orig_rax == libc::SYS_ioctl as u64
        && host_now.rax == -i64::from(libc::EINTR) as u64;
    // The FS and GS bases are KVM's segment registers, not in kvm_run.
    let bases_kept = r.fs_base == now.fs_base && r.gs_base == now.gs_base;
    let at = p.kvm_run + vmm::vcpu::SYNC_REGS_OFFSET;
    let mut raw = kvm_regs::default();
    page::read_remote(pid, at, as_bytes_mut(&mut raw))?;
    let in_stubs = (p.stubs..p.stubs + 4096).contains(&raw.rip);
    if p.in_guest == 0 || !at_run || in_stubs {
        return Err(Errno(libc::EIO));
    }
    let sane = regs::sanitize(&r, &now);
    if !bases_kept {
        // KVM's segment registers: loaded by the sandbox as KVM_RUN
        // returns (`tracee::after_guest`).
        (p.regs.fs_base, p.regs.gs_base) = (sane.fs_base, sane.gs_base);
        p.bases_set = 1;
        write_regs(pid, page_at, p)?;
    }
    let new = regs::kvm(&sane);
    page::write_remote(pid, at, as_bytes(&new))?;
    let mut dirty = [0u8; 8];
    let at = p.kvm_run + vmm::vcpu::SYNC_DIRTY_OFFSET;
    page::read_remote(pid, at, &mut dirty)?;
    let dirty = u64::from_le_bytes(dirty) | vmm::vcpu::SYNC_DIRTY_REGS;
    page::write_remote(pid, at, &dirty.to_le_bytes())?;
    Ok(0)
}

/// New registers for a thread the host stopped in a system call the
/// sandbox is making for it, in the host call of the same number,
/// interrupted and about to restart: that call returns EINTR to the
/// sandbox instead, and the registers, kept in the page, replace its
/// outcome (a call they leave to restart restarts, as the kernel's
/// would): gdb's calls into a thread it attached in a system call. Where
/// the host call cannot be cut short so (the stop came before it began,
/// after it ended, or in another call), they are out of reach: EIO.
fn set_regs_in_call(
    pid: i32,
    at: u64,
    p: &mut Page,
    r: libc::user_regs_struct,
    now: &libc::user_regs_struct,
    host_now: libc::user_regs_struct,
) -> SysResult {
    // (Cut short already if registers were set earlier in this stop.)
    if p.regs_in_call == 0 {
        cut_short(pid, p, now, host_now)?;
    }
    p.regs = regs::sanitize(&r, now);
    p.regs_in_call = 1;
    write_regs(pid, at, p)?;
    Ok(0)
}

/// Makes the host call a thread stopped in (`host_now`) return EINTR to
/// the sandbox rather than restart, if it is the call the sandbox makes
/// for the program's (`now`: the guest's registers) and was interrupted;
/// EIO otherwise.
fn cut_short(
    pid: i32,
    p: &Page,
    now: &libc::user_regs_struct,
    mut host_now: libc::user_regs_struct,
) -> Result<(), Errno> {
    let restart_syscall = libc::SYS_restart_syscall as u64;
    // restart_syscall's host call is the sleep it resumes (signals::restart);
    // a sleep the host itself restarted once is its restart_syscall.
    let sleep = |nr: u64| {
        matches!(
            nr as i64,
            libc::SYS_nanosleep
                | libc::SYS_clock_nanosleep
                | libc::SYS_poll
                | libc::SYS_ppoll
                | libc::SYS_futex
        )
    };
    let same = host_now.orig_rax == now.orig_rax
        || (now.orig_rax == restart_syscall && sleep(host_now.orig_rax))
        || (host_now.orig_rax == restart_syscall && sleep(now.orig_rax));
    // Made through the stub that makes the program's calls, not one of
    // the sandbox's own (a lock's futex wait) of the same number.
    if !same || !p.forward_rip.contains(&host_now.rip) || regs::restarts(&host_now).is_none() {
        return Err(Errno(libc::EIO));
    }
    host_now.orig_rax = u64::MAX;
    host_now.rax = -i64::from(libc::EINTR) as u64;
    host(
        libc::PTRACE_SETREGS,
        pid,
        0,
        &host_now as *const libc::user_regs_struct as u64,
    )?;
    Ok(())
}

/// A signal-delivery stop the host made for `sig` while the thread was in
/// a system call, under PTRACE_SYSCALL: Linux reports the call's exit stop
/// (its ERESTART code in RAX) first. The host call is cut short, the
/// signal handed to the sandbox with its siginfo and taken from the host;
/// the sandbox makes the exit stop, then delivers it (`tracee::requeued`).
/// None where that cannot be done (the call was not interrupted, or this
/// is a group stop): the host's stop is reported.
fn requeue(pid: i32, at: u64, p: &mut Page, sig: i32) -> Option<Verdict> {
    if p.mode != mode::SYSCALL {
        return None;
    }
    // EINVAL in a group stop.
    let info = host_siginfo(pid).ok()?;
    if !cut_program_call(pid, p) {
        return None;
    }
    p.requeued = sig as u32;
    p.requeued_info = info;
    let written = page::write_part(pid, at, p, std::mem::offset_of!(Page, requeued_info), 128)
        .and_then(|()| page::write_control(pid, at, p));
    if written.is_err() {
        // Cut short with nothing to deliver: as if it were ignored.
        log::warn!("ptrace: signal {sig} of {pid} could not be handed back");
    }
    Some(Verdict::PassOver(0))
}

/// PTRACE_INTERRUPT's stop as wait reports it (status >> 8).
pub(super) const INTERRUPT_STOP: u32 = libc::SIGTRAP as u32 | (libc::PTRACE_EVENT_STOP as u32) << 8;

/// PTRACE_INTERRUPT of a thread in a system call under PTRACE_SYSCALL:
/// Linux interrupts the call and reports its exit stop instead (ptrace(2)),
/// where the host stopped the thread in its host call. That call is cut
/// short and the host's stop passed over: the sandbox makes the exit stop,
/// with the call's ERESTART code, and restarts it when resumed.
fn interrupt_at_exit(pid: i32, p: &Page) -> Option<Verdict> {
    (p.mode == mode::SYSCALL && cut_program_call(pid, p)).then_some(Verdict::PassOver(0))
}

/// Whether a thread resumed in `mode` stops at system calls.
fn at_calls(m: u32) -> bool {
    m == mode::SYSCALL || mode::emulates(m)
}

/// Resuming, to stop at system calls, a thread the host stopped in a
/// system call the sandbox makes for it, which the host would restart
/// unseen: the host call is cut short instead, and the sandbox restarts
/// the program's call itself, so that the tracer sees it made again (or
/// restart_syscall) as under Linux, where the restart happens on the way
/// back to user mode. The interrupted call makes its exit stop only if
/// the thread was stopping at calls when the stop came (`was_at_calls`),
/// as Linux's would have (before that stop, there).
fn restart_in_view(pid: i32, p: &mut Page, was_at_calls: bool) {
    if at_calls(p.mode) && cut_program_call(pid, p) {
        p.restart_in_view = u32::from(!was_at_calls);
    }
}

/// In a stop the host made while the thread waited in a system call the
/// sandbox makes for it (not already cut short by registers a tracer
/// set): cuts that host call short (`cut_short`). Whether it did.
fn cut_program_call(pid: i32, p: &Page) -> bool {
    if p.in_call == 0 || p.in_guest != 0 || p.regs_in_call != 0 {
        return false;
    }
    let (Ok(now), Ok(host_now)) = (regs_of(pid, p), host_regs(pid)) else {
        return false;
    };
    now.orig_rax != u64::MAX && cut_short(pid, p, &now, host_now).is_ok()
}

fn set_xsave(pid: i32, at: u64, p: &mut Page, image: &[u8]) -> SysResult {
    p.xsave[..image.len()].copy_from_slice(image);
    if p.in_stop == 0 && p.held == 0 {
        // A stop the host made: a call into the thread loads it now.
        let n = image.len().min(vmm::vcpu::FpPort::SIZE);
        page::write_part(pid, at, p, std::mem::offset_of!(Page, xsave), n)?;
        inject::fp(pid, at, p, true)?;
        return Ok(0);
    }
    p.dirty |= dirty::XSAVE;
    page::write_part(pid, at, p, std::mem::offset_of!(Page, xsave), image.len())?;
    page::write_control(pid, at, p)?;
    Ok(0)
}

/// The siginfo of a stop the tracee raised: the signal's at a
/// signal-delivery stop, the SIGTRAP Linux describes the stop with
/// otherwise (ptrace_report_syscall, ptrace_event: si_code is the code).
fn stop_siginfo(pid: i32, p: &Page) -> [u8; 128] {
    if p.code < 0x80 && p.code != 0 {
        return p.siginfo;
    }
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&libc::SIGTRAP.to_le_bytes());
    info[8..12].copy_from_slice(&(p.code as i32).to_le_bytes());
    // From the stopped thread (ptrace_do_notify): its id, and its uid,
    // which the mark of the stop it raised carries.
    info[16..20].copy_from_slice(&pid.to_le_bytes());
    if let Ok(mark) = host_siginfo(pid) {
        info[20..24].copy_from_slice(&mark[20..24]);
    }
    info
}

fn syscall_info(pid: i32, p: &Page) -> Result<libc::ptrace_syscall_info, Errno> {
    let r = regs_of(pid, p)?;
    // SAFETY: ptrace_syscall_info is plain integers and a union of them.
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    info.arch = AUDIT_ARCH_X86_64;
    info.instruction_pointer = r.rip;
    info.stack_pointer = r.rsp;
    if p.in_stop != 0 {
        let s = p.syscall;
        info.op = s.op as u8;
        let bytes = as_bytes_mut(&mut info);
        let entry = u32::from(libc::PTRACE_SYSCALL_INFO_ENTRY) == s.op;
        let seccomp = u32::from(libc::PTRACE_SYSCALL_INFO_SECCOMP) == s.op;
        if entry || seccomp {
            bytes[24..32].copy_from_slice(&s.nr.to_le_bytes());
            for (i, a) in s.args.iter().enumerate() {
                bytes[32 + 8 * i..40 + 8 * i].copy_from_slice(&a.to_le_bytes());
            }
            if seccomp {
                bytes[80..84].copy_from_slice(&(s.rval as u32).to_le_bytes());
            }
        } else if u32::from(libc::PTRACE_SYSCALL_INFO_EXIT) == s.op {
            bytes[24..32].copy_from_slice(&s.rval.to_le_bytes());
            bytes[32] = u8::from((-4095..0).contains(&s.rval));
        }
    }
    Ok(info)
}

/// CONT, SYSCALL, SYSEMU, DETACH: where the tracee stops next goes into
/// its page; a stop it raised ends with its mark suppressed, a host stop
/// with the signal the tracer gave.
fn resume(req: u32, pid: i32, data: u64, at: u64, p: &mut Page) -> SysResult {
    let sig = data as i32;
    if !(0..=64).contains(&sig) {
        return Err(Errno(libc::EIO));
    }
    let was_at_calls = at_calls(p.mode);
    p.mode = match req {
        libc::PTRACE_SYSCALL => mode::SYSCALL,
        libc::PTRACE_SYSEMU => mode::SYSEMU,
        libc::PTRACE_SINGLESTEP => mode::SINGLESTEP,
        libc::PTRACE_SYSEMU_SINGLESTEP => mode::SYSEMU_SINGLESTEP,
        _ => mode::CONT,
    };
    if req == libc::PTRACE_DETACH {
        p.traced = 0;
    }
    let in_stop = p.in_stop != 0;
    // A group stop ignores the signal it is resumed with; the thread leaves
    // it (a stop it makes before it runs the guest again, as for a SIGSTOP
    // carried into its sandbox, is another).
    let sig = if p.held_group != 0 { 0 } else { sig };
    p.held_group = 0;
    if in_stop {
        p.sig = sig as u32;
        let stop_sig = if p.code < 0x80 { p.code as i32 } else { 0 };
        if sig != 0 && sig != stop_sig && p.dirty & dirty::SIGINFO == 0 {
            // A signal the tracer chose comes from it (ptrace_signal).
            let mut info = [0u8; 128];
            info[0..4].copy_from_slice(&sig.to_le_bytes());
            // SAFETY: getpid and getuid have no preconditions.
            let (me, uid) = unsafe { (libc::getpid(), libc::getuid()) };
            info[16..20].copy_from_slice(&me.to_le_bytes());
            info[20..24].copy_from_slice(&uid.to_le_bytes());
            p.siginfo = info;
            p.dirty |= dirty::SIGINFO;
            page::write_part(pid, at, p, std::mem::offset_of!(Page, siginfo), 128)?;
        }
    }
    if !in_stop && req != libc::PTRACE_DETACH {
        restart_in_view(pid, p, was_at_calls);
    }
    // Let go with SIGSTOP from a signal-delivery stop it raised: the host
    // stops the process as the thread leaves that stop, at once as under
    // Linux, rather than once its sandbox has delivered the signal (a
    // SIGCONT sent right after the detach, as a shell's `fg`, would come
    // first and the process stay stopped).
    let host_stops = in_stop
        && req == libc::PTRACE_DETACH
        && sig == libc::SIGSTOP
        && p.code < 0x80
        && p.code != libc::SIGTRAP as u32;
    if host_stops {
        p.sig = 0;
    }
    page::write_control(pid, at, p)?;
    if in_stop && p.exit == page::exit::MADE && req != libc::PTRACE_DETACH {
        // Resumed from the exit stop the thread made itself: its host
        // thread's end is to make none, which would hold the thread (and
        // the program's join of it) until the tracer next waits.
        let options = p.options & HOST_OPTIONS & !(PTRACE_O_TRACEEXIT as u32);
        let _ = host(libc::PTRACE_SETOPTIONS, pid, 0, u64::from(options));
    }
    let host_req = if req == libc::PTRACE_DETACH {
        libc::PTRACE_DETACH
    } else {
        libc::PTRACE_CONT
    };
    let host_sig = match (host_stops, in_stop) {
        (true, _) => libc::SIGSTOP,
        (false, true) => 0,
        (false, false) => sig,
    };
    host(host_req, pid, 0, host_sig as u64)
}

/// What a wait does with a host ptrace stop of `pid` (`code`: status >> 8).
enum Verdict {
    /// Report it to the program with this code.
    Report(u32),
    /// The sandbox's own: resume the tracee with this signal, wait on.
    PassOver(i32),
    /// Carried into the tracee's sandbox (carry.rs): resume it, and give
    /// its own stop, which follows at once, time to come, so that a wait
    /// with WNOHANG finds it as it would have found the host's.
    Carried,
    /// The program's SIGSTOP (Some) or PTRACE_INTERRUPT (None) found a
    /// sandbox starting, with no page yet to describe the stop, or a
    /// thread leaving a stop it raised: resume it and stop it so again a
    /// moment later, once its page can describe the stop.
    Again(Option<i32>),
}

/// The pids the program interrupted (PTRACE_INTERRUPT) whose stop has not
/// been reported yet, with how often the stop was made again (`Again`).
static INTERRUPTED: Mutex<BTreeMap<i32, u32>> = Mutex::new(BTreeMap::new());

/// How often a stop is made again for a sandbox starting (a millisecond
/// apart) before it is let go as the host would: an exec's start takes
/// about 5 ms.
const AGAIN_AT_MOST: u32 = 2000;

/// The SIGSTOPs made again, per pid (`Again`).
static STOPPED_AGAIN: Mutex<BTreeMap<i32, u32>> = Mutex::new(BTreeMap::new());

/// Forgets the interrupt and the stops made again for `pid` (detached, or
/// gone: its id may name another task next).
fn forget(pid: i32) {
    FIRST_STOPS_PASSED.lock().expect("first stops").remove(&pid);
    INTERRUPTED.lock().expect("interrupted").remove(&pid);
    STOPPED_AGAIN.lock().expect("stopped again").remove(&pid);
}

/// Counts one more `Again` for `pid` in `tries`: whether it may be made.
fn may_again(tries: &Mutex<BTreeMap<i32, u32>>, pid: i32) -> bool {
    let mut t = tries.lock().expect("tries");
    let n = t.entry(pid).or_insert(0);
    *n += 1;
    *n <= AGAIN_AT_MOST
}

/// How long a carried stop takes to be made, at most (the thread runs to
/// its next return to the program).
const CARRIED_STOPS_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Resumes a tracee whose host stop a wait passed over or carried.
fn resume_passed(pid: i32, v: Verdict) {
    match v {
        Verdict::PassOver(sig) => {
            let _ = host(libc::PTRACE_CONT, pid, 0, sig as u64);
        }
        Verdict::Carried => {
            if host(libc::PTRACE_CONT, pid, 0, 0).is_ok() {
                let _ = next_stop(pid, CARRIED_STOPS_WITHIN);
            }
        }
        Verdict::Again(sig) => {
            if host(libc::PTRACE_CONT, pid, 0, 0).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            match sig {
                // SAFETY: tkill of a tracee of this thread's.
                Some(sig) => unsafe {
                    libc::syscall(libc::SYS_tkill, pid, sig);
                },
                None => {
                    let _ = host(libc::PTRACE_INTERRUPT, pid, 0, 0);
                }
            }
        }
        Verdict::Report(_) => {}
    }
}

fn judge(pid: i32, code: u32) -> Verdict {
    let v = judged(pid, code);
    if matches!(v, Verdict::Report(_) | Verdict::Carried) {
        // Any stop reported ends a pending interrupt (ptrace_stop), and the
        // stops made again for a sandbox starting.
        forget(pid);
    }
    match v {
        Verdict::Report(c) => {
            log::debug!("ptrace: host stop {code:#x} of {pid}: reported as {c:#x}")
        }
        Verdict::PassOver(s) => {
            log::debug!("ptrace: host stop {code:#x} of {pid}: passed over, signal {s}")
        }
        Verdict::Carried => log::debug!("ptrace: host stop {code:#x} of {pid}: carried"),
        Verdict::Again(s) => {
            log::debug!("ptrace: host stop {code:#x} of {pid}: starting, again ({s:?})")
        }
    }
    v
}

fn judged(pid: i32, code: u32) -> Verdict {
    let Ok(r) = host_regs(pid) else {
        // Not a tracee of this thread's (a stopped child under WUNTRACED).
        return Verdict::Report(code);
    };
    let sig = (code & 0x7f) as i32;
    match page::find(pid, r.fs_base) {
        Found::Host => Verdict::Report(code),
        Found::Starting => starting(pid, code),
        Found::Sandboxed(at) => {
            let Ok(mut p) = page::read_page(pid, at) else {
                return Verdict::Report(code);
            };
            if p.started != pid {
                // A new task with its creator's copy of the page (a fork
                // child) or storage (a vfork child), before it started,
                // whether its creator was traced or not (or a tracer
                // claimed the copy already): the copy describes the
                // creator, down to its vCPU's kvm_run.
                return starting(pid, code);
            }
            // (A started thread's page names it: `tid` is `started`.)
            if p.traced == 0 {
                claim(pid, at, &mut p);
            }
            if code == EXIT_STOP {
                return exit_shown(pid, at, &mut p);
            }
            if sig == STOP_SIGNAL && p.in_stop != 0 && is_mark(pid) {
                return Verdict::Report(p.code);
            }
            if p.exit == page::exit::MADE {
                // Past the exit event it made, its host thread lingering
                // (a leader waits for the other threads): a zombie to
                // Linux, in no group stop; its signals are the sandbox's
                // to route.
                let delivering = host_siginfo(pid).is_ok();
                return Verdict::PassOver(if delivering { sig } else { 0 });
            }
            if p.in_stop != 0
                && p.held == 0
                && let Some(v) = leaving_stop(pid, code)
            {
                return v;
            }
            if is_clone_event(code) {
                if p.in_clone == 0 {
                    // A host thread of the sandbox's own.
                    if makes_new_task(code) {
                        let_go_of_new(pid);
                    }
                    return Verdict::PassOver(0);
                }
                // The program's: the page holds its state.
                if p.parent_tid_at != 0
                    && let Ok(tid) = host_event_msg(pid)
                {
                    // The new task has not run: it starts in a stop.
                    let _ = page::write_remote(pid, p.parent_tid_at, &(tid as u32).to_le_bytes());
                }
                p.code = code;
                let _ = page::write_control(pid, at, &p);
                return Verdict::Report(code);
            }
            if code == INTERRUPT_STOP
                && let Some(v) = interrupt_at_exit(pid, &p)
            {
                return v;
            }
            if code == INTERRUPT_STOP && carry(pid, &p, &Stop::Interrupt) {
                return Verdict::Carried;
            }
            if code >> 8 != 0 {
                // PTRACE_EVENT_STOP (INTERRUPT, a group stop of a seized
                // tracee): the host's.
                return Verdict::Report(code);
            }
            if p.passing as i32 == sig {
                p.passing = 0;
                let _ = page::write_control(pid, at, &p);
                return Verdict::PassOver(sig);
            }
            if caught(pid, sig) {
                // On its way to the program's handler, whose delivery stops.
                return Verdict::PassOver(sig);
            }
            if sig != 0
                && let Some(v) = requeue(pid, at, &mut p, sig)
            {
                return v;
            }
            if sig == libc::SIGSTOP
                && let Ok(info) = host_siginfo(pid)
                && carry(pid, &p, &Stop::Sigstop(info))
            {
                return Verdict::Carried;
            }
            Verdict::Report(code)
        }
    }
}

/// PTRACE_EVENT_EXIT's stop as wait reports it (status >> 8).
const EXIT_STOP: u32 = libc::SIGTRAP as u32 | (PTRACE_EVENT_EXIT as u32) << 8;

/// The host's PTRACE_EVENT_EXIT stop of a sandboxed thread: the program's
/// (its TRACEEXIT) unless the thread made its own already, its state
/// written into the page as if the thread had raised it (the thread is
/// gone from the sandbox: only the host's exit remains), so that every
/// request answers for it as for the stops the thread raises. Its
/// registers are where the sandbox left them (a stop, a call, the page at
/// `tracee::ending`) or, in the guest, in kvm_run; its FPU state is known
/// likewise, except in the guest (KVM's).
fn exit_shown(pid: i32, at: u64, p: &mut Page) -> Verdict {
    if p.exit == page::exit::MADE || p.options & PTRACE_O_TRACEEXIT as u32 == 0 {
        return Verdict::PassOver(0);
    }
    let (Ok(regs), Ok(msg), Ok(info)) = (regs_of(pid, p), host_event_msg(pid), host_siginfo(pid))
    else {
        return Verdict::Report(EXIT_STOP);
    };
    let fp_known = p.in_stop != 0 || p.fp_fresh != 0;
    p.exit = if fp_known {
        page::exit::SHOWN
    } else {
        page::exit::SHOWN_WITHOUT_FP
    };
    p.regs = regs;
    p.in_stop = 1;
    p.code = EXIT_STOP;
    p.held = 0;
    p.held_group = 0;
    p.event_msg = msg;
    p.siginfo = info;
    p.syscall = page::SyscallAt::default();
    let rest = std::mem::offset_of!(Page, event_msg);
    let len = std::mem::offset_of!(Page, kvm_run) - rest;
    if page::write_part(pid, at, p, rest, len).is_err() || page::write_control(pid, at, p).is_err()
    {
        log::debug!("ptrace: exit of {pid}: its page is gone");
    }
    Verdict::Report(EXIT_STOP)
}

/// A SIGSTOP or PTRACE_INTERRUPT that stopped a thread on its way out of
/// a stop it raised, which its tracer ended (a DETACH, then at once an
/// ATTACH): the host stopped it in the kernel as that stop's signal was
/// taken, before its sandbox ran again, and the page still describes the
/// old stop. Let go and made again a moment later, once the thread has
/// left it, so that its sandbox makes the stop with its state in the page.
fn leaving_stop(pid: i32, code: u32) -> Option<Verdict> {
    // (A signal-delivery stop has a siginfo; a group stop has none.)
    again(pid, code, || host_siginfo(pid).is_ok())
}

/// The program's PTRACE_INTERRUPT, or a SIGSTOP that `programs` says is
/// the program's, found where its stop cannot be shown yet: made again a
/// moment later (`Verdict::Again`), at most AGAIN_AT_MOST times.
fn again(pid: i32, code: u32, programs: impl FnOnce() -> bool) -> Option<Verdict> {
    if code == INTERRUPT_STOP
        && INTERRUPTED.lock().expect("interrupted").contains_key(&pid)
        && may_again(&INTERRUPTED, pid)
    {
        return Some(Verdict::Again(None));
    }
    (code == libc::SIGSTOP as u32 && programs() && may_again(&STOPPED_AGAIN, pid))
        .then_some(Verdict::Again(Some(libc::SIGSTOP)))
}

/// The first stop since TRACEME, ATTACH or SEIZE: the tracee raises its
/// stops from now on.
fn claim(pid: i32, at: u64, p: &mut Page) {
    p.traced = 1;
    let seized = SEIZED.lock().expect("seized").remove(&pid);
    p.options = seized.unwrap_or(0);
    p.seized = u32::from(seized.is_some());
    // Named as this thread's: a fork child caught before its task started
    // keeps it (tracee::start).
    p.tid = pid;
    let _ = page::write_control(pid, at, p);
}

/// Right after PTRACE_SEIZE, which makes no stop: the tracee is stopped
/// once (PTRACE_INTERRUPT, a stop the program does not see) for its page
/// to say it is traced and with what options, so that a clone it makes
/// before its first stop is followed. A stop already waiting (SEIZE of a
/// stopped task), or another one coming first, is the program's to see,
/// and claims the page then.
fn claim_seized(pid: i32) {
    if waiting_stop(pid).is_some() || host(libc::PTRACE_INTERRUPT, pid, 0, 0).is_err() {
        return;
    }
    let Some(code) = next_stop(pid, NEW_TASK_STOPS_WITHIN) else {
        log::warn!("ptrace: seized task {pid} did not stop to be claimed");
        return;
    };
    if code != libc::SIGTRAP as u32 | (libc::PTRACE_EVENT_STOP as u32) << 8 {
        // A signal came first: the program sees that stop (and, later,
        // the interrupt's), and the page is claimed then.
        log::debug!("ptrace: seized task {pid} stopped first with {code:#x}");
        return;
    }
    take_stop(pid);
    if let Ok(r) = host_regs(pid)
        && let Found::Sandboxed(at) = page::find(pid, r.fs_base)
        && let Ok(mut p) = page::read_page(pid, at)
        && (p.tid == pid || p.in_clone == 0)
    {
        claim(pid, at, &mut p);
    }
    let ran = run_time(pid);
    if host(libc::PTRACE_CONT, pid, 0, 0).is_ok() {
        settle(pid, ran);
    }
}

/// How long a thread resumed from the claim's stop takes to run, at most.
const RESUMED_RUNS_WITHIN: std::time::Duration = std::time::Duration::from_millis(20);

/// After the claim's stop, until the thread has run again: the host still
/// counts a signal as pending for it then, and gives a SIGSTOP sent to its
/// process to another of the process's threads, which here is KVM's
/// worker: that would stop the process with no delivery stop for the
/// tracer to see, where natively the program's one thread takes it. Waits,
/// bounded, until the thread has run (its run time grew), so that SEIZE
/// returns as natively with nothing of its own pending.
fn settle(pid: i32, before: Option<u64>) {
    let Some(before) = before else { return };
    let start = std::time::Instant::now();
    while run_time(pid).is_some_and(|now| now == before) && start.elapsed() < RESUMED_RUNS_WITHIN {
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

/// The time thread `tid` has run, in ns (its schedstat).
fn run_time(tid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{tid}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The stop `pid` has waiting or makes within `within` (polled, left
/// waiting), as status >> 8; None if none comes.
pub(super) fn next_stop(pid: i32, within: std::time::Duration) -> Option<u32> {
    let start = std::time::Instant::now();
    loop {
        if let Some(code) = waiting_stop(pid) {
            return Some(code);
        }
        if start.elapsed() > within {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

/// Takes the stop `pid` has waiting (seen by `waiting_stop`).
pub(super) fn take_stop(pid: i32) {
    let mut status = 0;
    // SAFETY: waits for a tracee of this thread's, into our status.
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL | libc::WNOHANG) };
}

/// The stop `pid` has waiting to be reported (left waiting), as status >> 8.
pub(super) fn waiting_stop(pid: i32) -> Option<u32> {
    let mut info = [0u8; 128];
    // SAFETY: waitid into our own siginfo, leaving the stop waiting.
    let r = unsafe {
        libc::syscall(
            libc::SYS_waitid,
            libc::P_PID,
            pid,
            info.as_mut_ptr(),
            libc::WSTOPPED | libc::WNOWAIT | libc::WNOHANG | libc::__WALL,
            std::ptr::null_mut::<libc::rusage>(),
        )
    };
    let word = |i: usize| i32::from_le_bytes(info[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    (r == 0 && word(4) == pid && word(2) == libc::CLD_TRAPPED).then_some(word(6) as u32)
}

/// A stop of a sandbox that is starting, with no page of its own yet (after
/// the program's exec, or a new task): its own stops follow once it runs.
/// What the host stopped it for is the sandbox's: the exec's SIGTRAP or
/// event, the first stop of a task the host attached as it was made
/// (SIGSTOP queued without a sender, or PTRACE_EVENT_STOP), a clone of
/// its own. A signal sent to it goes on.
fn starting(pid: i32, code: u32) -> Verdict {
    let sig = (code & 0x7f) as i32;
    if makes_new_task(code) {
        let_go_of_new(pid);
    }
    let kernels = || host_siginfo(pid).is_ok_and(|i| queued_by_kernel(&i));
    // The program's interrupt, which its sandbox is to show, or its
    // SIGSTOP (ATTACH's, a kill), which would stop the process unseen.
    if let Some(v) = again(pid, code, || !kernels()) {
        return v;
    }
    // A new task's first stop: attached, a SIGSTOP queued without a
    // sender; seized, a PTRACE_EVENT_STOP no interrupt asked for (with
    // the stop signal where a group stop is under way).
    let event_stop = (code >> 8) as i32 == libc::PTRACE_EVENT_STOP;
    let first = (sig == libc::SIGSTOP && code >> 8 == 0 && kernels())
        || (event_stop && !INTERRUPTED.lock().expect("interrupted").contains_key(&pid));
    if first {
        let mut run = FIRST_STOPS_PASSED.lock().expect("first stops");
        if run.len() >= FIRST_STOPS_KEPT {
            run.clear();
        }
        run.insert(pid);
    }
    let own = sig == libc::SIGTRAP || code >> 8 != 0 || first;
    Verdict::PassOver(if own { 0 } else { sig })
}

/// New tasks whose first stop a wait found (and passed over, `starting`)
/// before their creator's clone event: `let_go_of_new` finds them running
/// already, and does not wait for a stop that has been.
static FIRST_STOPS_PASSED: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// How many such tasks are kept at most (a program's own new threads are
/// noted too and forgotten at their first reported stop).
const FIRST_STOPS_KEPT: usize = 4096;

/// Whether a siginfo is that of a signal queued without a sender (the
/// SIGSTOP a task the host attached as it was made starts with): SI_USER
/// from pid 0.
fn queued_by_kernel(info: &[u8; 128]) -> bool {
    let word = |i: usize| i32::from_le_bytes(info[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    word(2) == libc::SI_USER && word(4) == 0
}

/// Whether a wait status's stop is a clone's PTRACE_EVENT.
fn is_clone_event(code: u32) -> bool {
    let event = (code >> 8) as i32;
    code & 0x7f == libc::SIGTRAP as u32
        && [
            PTRACE_EVENT_CLONE,
            PTRACE_EVENT_FORK,
            PTRACE_EVENT_VFORK,
            PTRACE_EVENT_VFORK_DONE,
        ]
        .contains(&event)
}

/// Whether a clone's event stop comes with a new task (not VFORK_DONE).
fn makes_new_task(code: u32) -> bool {
    is_clone_event(code) && (code >> 8) as i32 != PTRACE_EVENT_VFORK_DONE
}

/// How long a new task the host attached takes to reach its first stop,
/// at most: it stops as it first returns to user space.
const NEW_TASK_STOPS_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Detaches the task the host attached at `creator`'s clone event, a
/// thread the sandbox made for itself (its first stop comes at once).
fn let_go_of_new(creator: i32) {
    let mut msg = 0u64;
    if host(
        libc::PTRACE_GETEVENTMSG,
        creator,
        0,
        &mut msg as *mut u64 as u64,
    )
    .is_err()
        || msg == 0
    {
        return;
    }
    let new = msg as i32;
    let start = std::time::Instant::now();
    loop {
        if FIRST_STOPS_PASSED.lock().expect("first stops").remove(&new) {
            // Its first stop came first and was passed over: it runs on,
            // followed (a stop now would be one of its own).
            log::debug!("ptrace: the sandbox's own thread {new} runs already");
            return;
        }
        let mut status = 0;
        // SAFETY: waits for a tracee of this thread's, into our status.
        let r = unsafe { libc::waitpid(new, &mut status, libc::__WALL | libc::WNOHANG) };
        if r == new || r < 0 {
            break;
        }
        if start.elapsed() > NEW_TASK_STOPS_WITHIN {
            log::warn!("ptrace: the sandbox's new thread {new} never stopped");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = host(libc::PTRACE_DETACH, new, 0, 0);
    log::debug!("ptrace: let go of the sandbox's own thread {new}");
}

/// Whether the stop's siginfo is a tracee's mark.
fn is_mark(pid: i32) -> bool {
    let Ok(info) = host_siginfo(pid) else {
        return false;
    };
    let word = |i: usize| i32::from_le_bytes(info[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    word(0) == STOP_SIGNAL && word(1) == MARK && word(2) == -1
}

/// Whether `sig` has a handler in `pid`'s sandbox (its SigCgt).
fn caught(pid: i32, sig: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

/// wait4(2) for the program.
pub fn wait4(thread: &Thread, a: [u64; 6]) -> SysResult {
    let (pid, status_at, options, rusage_at) = (a[0] as i32, a[1], a[2] as i32, a[3]);
    loop {
        let mut status = 0i32;
        // SAFETY: rusage is plain integers.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let ru_at = if rusage_at != 0 {
            &mut ru as *mut libc::rusage as u64
        } else {
            0
        };
        let args = [
            pid as i64 as u64,
            &mut status as *mut i32 as u64,
            options as i64 as u64,
            ru_at,
            0,
            0,
        ];
        let r = forward_raw(libc::SYS_wait4, args)?;
        let child = r as i32;
        if child > 0 && status & 0xff == 0x7f {
            match judge(child, (status >> 8) as u32 & 0xffff) {
                Verdict::Report(code) => status = ((code as i32) << 8) | 0x7f,
                v => {
                    resume_passed(child, v);
                    continue;
                }
            }
        }
        // As the kernel writes them: only for a child found.
        if child > 0 {
            if status & 0xff != 0x7f {
                forget(child);
            }
            let reaping = libc::WIFEXITED(status) || libc::WIFSIGNALED(status);
            crate::perf::rusage::reported(thread, child, &mut ru, reaping);
            if status_at != 0 {
                put(thread, status_at, &status.to_le_bytes())?;
            }
            if rusage_at != 0 {
                put(thread, rusage_at, as_bytes(&ru))?;
            }
        }
        return Ok(r);
    }
}

/// waitid(2) for the program.
pub fn waitid(thread: &Thread, a: [u64; 6]) -> SysResult {
    let (idtype, id, info_at, options, rusage_at) = (a[0], a[1], a[2], a[3] as i32, a[4]);
    loop {
        let mut info = [0u8; 128];
        // SAFETY: rusage is plain integers.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let ru_at = if rusage_at != 0 {
            &mut ru as *mut libc::rusage as u64
        } else {
            0
        };
        let args = [
            idtype,
            id,
            info.as_mut_ptr() as u64,
            options as i64 as u64,
            ru_at,
            0,
        ];
        forward_raw(libc::SYS_waitid, args)?;
        let word =
            |i: usize| i32::from_le_bytes(info[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        let (code, child, status) = (word(2), word(4), word(6));
        if child > 0 && code == libc::CLD_TRAPPED {
            match judge(child, status as u32) {
                Verdict::Report(c) => info[24..28].copy_from_slice(&(c as i32).to_le_bytes()),
                v => {
                    if options & libc::WNOWAIT != 0 {
                        // Taken off the tracee before it goes on.
                        let mut gone = [0u8; 128];
                        // SAFETY: our own siginfo.
                        unsafe {
                            libc::syscall(
                                libc::SYS_waitid,
                                libc::P_PID,
                                child,
                                gone.as_mut_ptr(),
                                libc::WSTOPPED | libc::__WALL | libc::WNOHANG,
                                std::ptr::null_mut::<libc::rusage>(),
                            )
                        };
                    }
                    resume_passed(child, v);
                    continue;
                }
            }
        }
        if child > 0 {
            let ended = matches!(code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED);
            if ended {
                forget(child);
            }
            let reaping = ended && options & libc::WNOWAIT == 0;
            crate::perf::rusage::reported(thread, child, &mut ru, reaping);
        }
        // As the kernel writes them: the rusage of a child found, and of
        // the siginfo only signo, errno, code, pid, uid and status.
        if child > 0 && rusage_at != 0 {
            put(thread, rusage_at, as_bytes(&ru))?;
        }
        if info_at != 0 {
            put(thread, info_at, &info[..12])?;
            put(thread, info_at + 16, &info[16..28])?;
        }
        return Ok(0);
    }
}
