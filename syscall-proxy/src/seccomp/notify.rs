//! User notification (SECCOMP_RET_USER_NOTIF with a listener).
//!
//! The listener is the host kernel's own: when the program installs a
//! filter with SECCOMP_FILTER_FLAG_NEW_LISTENER, its host thread installs a
//! host filter that sends to a listener only the calls made at one address,
//! the copy of the forwarding stub the sandbox keeps for them
//! (`host::notify_next`), and lets every other call through, the sandbox's
//! own among them. The listener's descriptor is the program's: RECV, SEND,
//! ID_VALID, ADDFD and poll act on the host's, so a supervisor may be any
//! thread or process, sandboxed or not, and CONTINUE makes the host make
//! the call, as the sandbox would have.
//!
//! A call the program's filters leave to the listener is made through that
//! copy once the sandbox has checked it, so the notification shows the
//! program's thread id, number and arguments, and a CONTINUE is safe. The
//! instruction pointer the supervisor sees is the copy's. Calls the sandbox
//! carries out itself (exec, clone, the memory and signal calls...) cannot
//! be handed to the host on a CONTINUE, so they fail with ENOSYS, Linux's
//! answer when no listener exists.
//!
//! The host filter stays with the host thread as the program's stays with
//! the program's thread: threads are host threads started by their creator,
//! children are host forks, and both filters survive exec.

use std::os::fd::RawFd;

use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, sock_filter, sock_fprog};

use super::{AUDIT_ARCH_X86_64, TSYNC, TSYNC_ESRCH, WAIT_KILLABLE_RECV};
use crate::host::{self, Errno};

/// Installs the host filter on the calling host thread (on all of the
/// process's with TSYNC) and returns its listener.
pub fn listen(flags: u32) -> Result<RawFd, Errno> {
    let ip = host::notify_call_ip();
    let prog = host_filter(ip);
    let fprog = sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    let mut host_flags = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
    host_flags |= flags & (WAIT_KILLABLE_RECV | TSYNC);
    if flags & TSYNC != 0 {
        host_flags |= TSYNC_ESRCH;
    }
    // SAFETY: seccomp reads the program, which outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            host_flags,
            &fprog as *const sock_fprog,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    log::debug!("seccomp: listener {r} for calls made at {ip:#x}");
    Ok(r as RawFd)
}

/// USER_NOTIF for x86-64 calls whose instruction pointer is `ip`, ALLOW for
/// every other.
fn host_filter(ip: u64) -> [sock_filter; 8] {
    // struct seccomp_data: nr, arch, instruction_pointer (low word first).
    const ARCH: u32 = 4;
    const IP_LOW: u32 = 8;
    const IP_HIGH: u32 = 12;
    let ld = |k| sock_filter {
        code: (BPF_LD | BPF_W | BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k,
    };
    // Equal: on to the next; else to the last instruction, `to` ahead.
    let jeq = |k, to| sock_filter {
        code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
        jt: 0,
        jf: to,
        k,
    };
    let ret = |k| sock_filter {
        code: (BPF_RET | BPF_K) as u16,
        jt: 0,
        jf: 0,
        k,
    };
    [
        ld(ARCH),
        jeq(AUDIT_ARCH_X86_64, 5),
        ld(IP_LOW),
        jeq(ip as u32, 3),
        ld(IP_HIGH),
        jeq((ip >> 32) as u32, 1),
        ret(libc::SECCOMP_RET_USER_NOTIF),
        ret(libc::SECCOMP_RET_ALLOW),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::bpf;

    fn data(arch: u32, ip: u64) -> libc::seccomp_data {
        libc::seccomp_data {
            nr: libc::SYS_getpid as i32,
            arch,
            instruction_pointer: ip,
            args: [0; 6],
        }
    }

    #[test]
    fn the_host_filter_notifies_only_calls_made_at_the_stub() {
        let ip = 0x2a2a_0000_0012;
        let f = host_filter(ip);
        assert!(bpf::check(&f).is_ok());
        let run = |d| bpf::run(&f, &d);
        assert_eq!(
            run(data(AUDIT_ARCH_X86_64, ip)),
            libc::SECCOMP_RET_USER_NOTIF
        );
        for other in [ip + 1, ip - 2, ip ^ (1 << 40), 0x5555_5555_0012] {
            assert_eq!(run(data(AUDIT_ARCH_X86_64, other)), libc::SECCOMP_RET_ALLOW);
        }
        // AUDIT_ARCH_I386: int 0x80 from the same address.
        assert_eq!(run(data(0x4000_0003, ip)), libc::SECCOMP_RET_ALLOW);
    }
}
