//! What each forwarded system call does with its arguments, so that the
//! sandbox can check them before the host kernel acts on them.
//!
//! The host kernel sees the program's pointers as they are. A pointer into
//! the sandbox's own memory would let the program make the kernel read or
//! write it; natively that memory does not exist, so such a call fails with
//! EFAULT, and a call on one of the sandbox's descriptors with EBADF.

// libc spells system call numbers SYS_read etc.
#![allow(non_upper_case_globals)]

use libc::*;

const F_GETOWN_EX: i32 = 16;
const F_SETOWN_EX: i32 = 15;

/// How long a buffer is.
#[derive(Clone, Copy, Debug)]
pub enum Len {
    /// A fixed size in bytes.
    C(u64),
    /// The value of argument i.
    Arg(usize),
    /// Argument i times a size.
    ArgX(usize, u64),
    /// The u32 that argument i points to (socklen_t).
    Ptr(usize),
    /// An fd_set for nfds = argument i.
    Fds(usize),
}

/// One checked argument.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// Argument i points to memory the kernel reads.
    R(usize, Len),
    /// Argument i points to memory the kernel writes (and may read).
    W(usize, Len),
    /// Argument i is a NUL-terminated string.
    S(usize),
    /// Argument i is an iovec array with argument j elements; the kernel
    /// writes the buffers if the flag is set.
    Iov(usize, usize, bool),
    /// Argument i is a struct msghdr; the kernel writes (recvmsg) if set.
    Msg(usize, bool),
    /// Argument i is a file descriptor.
    Fd(usize),
    /// Argument i may be a pointer of unknown size (or an integer): refused
    /// if it points into the sandbox's own memory.
    Maybe(usize),
    /// Argument i points at { pointer, length } naming memory the kernel
    /// reads (pselect6's sigset argument).
    Indirect(usize),
    /// capget/capset data at argument i, sized by the header's version at
    /// argument 0; written if the flag is set.
    CapData(usize, bool),
    /// Argument i is a struct whose first u32 is its size (sched_attr);
    /// 0 means the first version's 48 bytes.
    SelfSized(usize),
}

use self::Arg::{CapData, Fd, Indirect, Iov, Maybe, Msg, R, S, SelfSized, W};
use self::Len::{Arg as A, ArgX, C, Fds, Ptr};

/// The checks for system call `nr`, or None for a call the sandbox does not
/// know (it is refused with ENOSYS).
pub fn spec(nr: i64) -> Option<&'static [Arg]> {
    const STAT: u64 = 144;
    const TS: u64 = 16;
    const SIGSET: u64 = 8;
    const SIGINFO: u64 = 128;
    const RUSAGE: u64 = 144;
    Some(match nr {
        SYS_read | SYS_getdents | SYS_getdents64 | SYS_pread64 => &[Fd(0), W(1, A(2))],
        SYS_write | SYS_pwrite64 => &[Fd(0), R(1, A(2))],
        SYS_open | SYS_creat | SYS_access | SYS_truncate | SYS_chdir | SYS_mkdir | SYS_rmdir
        | SYS_unlink | SYS_chmod | SYS_chown | SYS_lchown | SYS_mknod | SYS_chroot
        | SYS_memfd_create => &[S(0)],
        SYS_rename | SYS_link | SYS_symlink => &[S(0), S(1)],
        SYS_stat | SYS_lstat => &[S(0), W(1, C(STAT))],
        SYS_fstat => &[Fd(0), W(1, C(STAT))],
        SYS_poll => &[W(0, ArgX(1, 8))],
        SYS_ppoll => &[W(0, ArgX(1, 8)), W(2, C(TS)), R(3, C(SIGSET))],
        SYS_lseek | SYS_dup | SYS_flock | SYS_fsync | SYS_fdatasync | SYS_ftruncate
        | SYS_fchdir | SYS_fchmod | SYS_fchown | SYS_readahead | SYS_fadvise64 | SYS_shutdown
        | SYS_listen | SYS_syncfs | SYS_fallocate | SYS_sync_file_range | SYS_inotify_rm_watch => {
            &[Fd(0)]
        }
        SYS_rt_sigprocmask => &[R(1, C(SIGSET)), W(2, C(SIGSET))],
        SYS_readv | SYS_preadv | SYS_preadv2 => &[Fd(0), Iov(1, 2, true)],
        SYS_writev | SYS_pwritev | SYS_pwritev2 => &[Fd(0), Iov(1, 2, false)],
        SYS_pipe | SYS_pipe2 => &[W(0, C(8))],
        SYS_select => &[W(1, Fds(0)), W(2, Fds(0)), W(3, Fds(0)), W(4, C(16))],
        SYS_pselect6 => &[
            W(1, Fds(0)),
            W(2, Fds(0)),
            W(3, Fds(0)),
            W(4, C(TS)),
            R(5, C(16)),
            Indirect(5),
        ],
        SYS_sched_yield
        | SYS_pause
        | SYS_alarm
        | SYS_getpid
        | SYS_socket
        | SYS_getuid
        | SYS_getgid
        | SYS_setuid
        | SYS_setgid
        | SYS_geteuid
        | SYS_getegid
        | SYS_setpgid
        | SYS_getppid
        | SYS_getpgrp
        | SYS_setsid
        | SYS_setreuid
        | SYS_setregid
        | SYS_setresuid
        | SYS_setresgid
        | SYS_getpgid
        | SYS_setfsuid
        | SYS_setfsgid
        | SYS_getsid
        | SYS_umask
        | SYS_personality
        | SYS_getpriority
        | SYS_setpriority
        | SYS_sched_getscheduler
        | SYS_sched_get_priority_max
        | SYS_sched_get_priority_min
        | SYS_sync
        | SYS_gettid
        | SYS_set_tid_address
        | SYS_restart_syscall
        | SYS_timer_getoverrun
        | SYS_timer_delete
        | SYS_inotify_init
        | SYS_inotify_init1
        | SYS_timerfd_create
        | SYS_eventfd
        | SYS_eventfd2
        | SYS_epoll_create
        | SYS_epoll_create1
        | SYS_membarrier
        | SYS_pidfd_open
        | SYS_ioprio_get
        | SYS_ioprio_set
        | SYS_vhangup => &[],
        SYS_sched_setscheduler => &[R(2, C(4))],
        SYS_set_robust_list => &[R(0, A(1))],
        // KCMP_EPOLL_TFD takes a pointer in argument 4; other types an integer.
        SYS_kcmp => &[Maybe(4)],
        SYS_pidfd_getfd => &[Fd(1)],
        SYS_nanosleep => &[R(0, C(TS)), W(1, C(TS))],
        SYS_getitimer => &[W(1, C(32))],
        SYS_setitimer => &[R(1, C(32)), W(2, C(32))],
        SYS_sendfile => &[Fd(0), Fd(1), W(2, C(8))],
        SYS_connect | SYS_bind => &[Fd(0), R(1, A(2))],
        SYS_accept | SYS_accept4 | SYS_getsockname | SYS_getpeername => {
            &[Fd(0), W(2, C(4)), W(1, Ptr(2))]
        }
        SYS_sendto => &[Fd(0), R(1, A(2)), R(4, A(5))],
        SYS_recvfrom => &[Fd(0), W(1, A(2)), W(5, C(4)), W(4, Ptr(5))],
        SYS_sendmsg => &[Fd(0), Msg(1, false)],
        SYS_recvmsg => &[Fd(0), Msg(1, true)],
        SYS_socketpair => &[W(3, C(8))],
        SYS_setsockopt => &[Fd(0), R(3, A(4))],
        SYS_getsockopt => &[Fd(0), W(4, C(4)), W(3, Ptr(4))],
        SYS_wait4 => &[W(1, C(4)), W(3, C(STAT))],
        SYS_waitid => &[W(2, C(SIGINFO)), W(4, C(STAT))],
        SYS_uname => &[W(0, C(390))],
        SYS_getcwd => &[W(0, A(1))],
        SYS_readlink => &[S(0), W(1, A(2))],
        SYS_gettimeofday => &[W(0, C(16)), W(1, C(8))],
        SYS_settimeofday => &[R(0, C(16)), R(1, C(8))],
        SYS_getrlimit => &[W(1, C(16))],
        SYS_setrlimit => &[R(1, C(16))],
        SYS_prlimit64 => &[R(2, C(16)), W(3, C(16))],
        SYS_getrusage => &[W(1, C(RUSAGE))],
        SYS_sysinfo => &[W(0, C(112))],
        SYS_times => &[W(0, C(32))],
        SYS_getgroups => &[W(1, ArgX(0, 4))],
        SYS_setgroups => &[R(1, ArgX(0, 4))],
        SYS_getresuid | SYS_getresgid => &[W(0, C(4)), W(1, C(4)), W(2, C(4))],
        SYS_capget => &[W(0, C(8)), CapData(1, true)],
        SYS_capset => &[R(0, C(8)), CapData(1, false)],
        SYS_rt_sigpending => &[W(0, C(SIGSET))],
        SYS_rt_sigtimedwait => &[R(0, C(SIGSET)), W(1, C(SIGINFO)), R(2, C(TS))],
        SYS_rt_sigqueueinfo => &[R(2, C(SIGINFO))],
        SYS_rt_tgsigqueueinfo => &[R(3, C(SIGINFO))],
        SYS_rt_sigsuspend => &[R(0, C(SIGSET))],
        SYS_utime => &[S(0), R(1, C(16))],
        SYS_utimes => &[S(0), R(1, C(32))],
        SYS_statfs => &[S(0), W(1, C(120))],
        SYS_fstatfs => &[Fd(0), W(1, C(120))],
        SYS_sched_setparam => &[R(1, C(4))],
        SYS_sched_getparam => &[W(1, C(4))],
        SYS_sched_rr_get_interval => &[W(1, C(TS))],
        SYS_sched_setaffinity => &[R(2, A(1))],
        SYS_sched_getaffinity => &[W(2, A(1))],
        SYS_sched_setattr => &[SelfSized(1)],
        SYS_sched_getattr => &[W(1, A(2))],
        SYS_acct => &[S(0)],
        SYS_setxattr | SYS_lsetxattr => &[S(0), S(1), R(2, A(3))],
        SYS_fsetxattr => &[Fd(0), S(1), R(2, A(3))],
        SYS_getxattr | SYS_lgetxattr => &[S(0), S(1), W(2, A(3))],
        SYS_fgetxattr => &[Fd(0), S(1), W(2, A(3))],
        SYS_listxattr | SYS_llistxattr => &[S(0), W(1, A(2))],
        SYS_flistxattr => &[Fd(0), W(1, A(2))],
        SYS_removexattr | SYS_lremovexattr => &[S(0), S(1)],
        SYS_fremovexattr => &[Fd(0), S(1)],
        SYS_time => &[W(0, C(8))],
        SYS_get_robust_list => &[W(1, C(8)), W(2, C(8))],
        SYS_timer_create => &[R(1, C(64)), W(2, C(4))],
        SYS_timer_settime => &[R(2, C(32)), W(3, C(32))],
        SYS_timer_gettime => &[W(1, C(32))],
        SYS_clock_settime => &[R(1, C(TS))],
        SYS_clock_gettime | SYS_clock_getres => &[W(1, C(TS))],
        SYS_clock_nanosleep => &[R(2, C(TS)), W(3, C(TS))],
        SYS_epoll_wait => &[Fd(0), W(1, ArgX(2, 12))],
        SYS_epoll_pwait => &[Fd(0), W(1, ArgX(2, 12)), R(4, C(SIGSET))],
        SYS_epoll_pwait2 => &[Fd(0), W(1, ArgX(2, 12)), R(3, C(TS)), R(4, C(SIGSET))],
        SYS_epoll_ctl => &[Fd(0), Fd(2), R(3, C(12))],
        SYS_inotify_add_watch => &[Fd(0), S(1)],
        SYS_openat | SYS_mkdirat | SYS_mknodat | SYS_fchownat | SYS_unlinkat | SYS_fchmodat
        | SYS_faccessat | SYS_faccessat2 | SYS_fchmodat2 => &[Fd(0), S(1)],
        SYS_openat2 => &[Fd(0), S(1), R(2, A(3))],
        SYS_futimesat => &[Fd(0), S(1), R(2, C(32))],
        SYS_utimensat => &[Fd(0), S(1), R(2, C(32))],
        SYS_newfstatat => &[Fd(0), S(1), W(2, C(STAT))],
        SYS_statx => &[Fd(0), S(1), W(4, C(256))],
        SYS_renameat | SYS_renameat2 | SYS_linkat => &[Fd(0), S(1), Fd(2), S(3)],
        SYS_symlinkat => &[S(0), Fd(1), S(2)],
        SYS_readlinkat => &[Fd(0), S(1), W(2, A(3))],
        SYS_splice | SYS_copy_file_range => &[Fd(0), W(1, C(8)), Fd(2), W(3, C(8))],
        SYS_tee => &[Fd(0), Fd(1)],
        SYS_vmsplice => &[Fd(0), Iov(1, 2, false)],
        SYS_signalfd | SYS_signalfd4 => &[R(1, C(SIGSET))],
        SYS_timerfd_settime => &[Fd(0), R(2, C(32)), W(3, C(32))],
        SYS_timerfd_gettime => &[Fd(0), W(1, C(32))],
        SYS_getcpu => &[W(0, C(4)), W(1, C(4))],
        SYS_getrandom => &[W(0, A(1))],
        SYS_pidfd_send_signal => &[R(2, C(SIGINFO))],
        _ => return None,
    })
}

/// The checks for ioctl(fd, cmd, arg). The kernel takes `cmd` as 32 bits.
/// Classic requests (include/uapi/asm-generic/ioctls.h, sockios.h) are
/// listed; `_IOC` requests carry their size and direction; anything else
/// is refused only if its argument points into the sandbox.
pub fn ioctl_arg(cmd: u64) -> Arg {
    const TERMIOS: u64 = 36; // the kernel's struct termios (NCCS 19)
    const TERMIO: u64 = 18;
    const IFREQ: u64 = 40;
    let cmd = cmd as u32;
    match cmd {
        0x5401 => W(2, C(TERMIOS)),          // TCGETS
        0x5402..=0x5404 => R(2, C(TERMIOS)), // TCSETS, TCSETSW, TCSETSF
        0x5405 => W(2, C(TERMIO)),           // TCGETA
        0x5406..=0x5408 => R(2, C(TERMIO)),  // TCSETA, TCSETAW, TCSETAF
        0x5409..=0x540e | 0x5420 | 0x5422 | 0x5425 | 0x5427 | 0x5428 | 0x5437 | 0x5450 | 0x5451 => {
            Maybe(2) // integer arguments or none: TCSBRK.., TIOCSCTTY, TIOCPKT, TIOCNOTTY, FIONCLEX, FIOCLEX
        }
        0x540f | 0x5411 | 0x5415 | 0x5419 | 0x541b | 0x5424 | 0x5429 => W(2, C(4)), // TIOCGPGRP, TIOCOUTQ, TIOCMGET, TIOCGSOFTCAR, FIONREAD, TIOCGETD, TIOCGSID
        0x5410 | 0x5416..=0x5418 | 0x541a | 0x5421 | 0x5423 | 0x5452 => R(2, C(4)), // TIOCSPGRP, TIOCMBIS.., TIOCSSOFTCAR, FIONBIO, TIOCSETD, FIOASYNC
        0x5412 => R(2, C(1)),                                                       // TIOCSTI
        0x5413 => W(2, C(8)),                                                       // TIOCGWINSZ
        0x5414 => R(2, C(8)),                                                       // TIOCSWINSZ
        0x5460 => W(2, C(8)),                                                       // FIOQSIZE
        0x8901 | 0x8902 => R(2, C(4)),     // FIOSETOWN, SIOCSPGRP
        0x8903..=0x8905 => W(2, C(4)),     // FIOGETOWN, SIOCGPGRP, SIOCATMARK
        0x8910..=0x89ff => W(2, C(IFREQ)), // SIOC*IF*: struct ifreq in and out
        _ => {
            let dir = cmd >> 30;
            let size = u64::from((cmd >> 16) & 0x3fff);
            match (dir, size) {
                (0, _) | (_, 0) => Maybe(2),
                (1, s) => R(2, C(s)), // _IOC_WRITE: the kernel reads
                (_, s) => W(2, C(s)), // _IOC_READ (and read-write)
            }
        }
    }
}

/// The checks for fcntl(fd, cmd, arg).
pub fn fcntl_arg(cmd: u64) -> Option<Arg> {
    const FLOCK: u64 = 32;
    const F_GET_RW_HINT: i32 = 1035;
    const F_SET_RW_HINT: i32 = 1036;
    const F_GET_FILE_RW_HINT: i32 = 1037;
    const F_SET_FILE_RW_HINT: i32 = 1038;
    match cmd as i32 {
        F_GETLK | F_OFD_GETLK => Some(W(2, C(FLOCK))),
        F_SETLK | F_SETLKW | F_OFD_SETLK | F_OFD_SETLKW => Some(R(2, C(FLOCK))),
        F_GETOWN_EX | F_GET_RW_HINT | F_GET_FILE_RW_HINT => Some(W(2, C(8))),
        F_SETOWN_EX | F_SET_RW_HINT | F_SET_FILE_RW_HINT => Some(R(2, C(8))),
        _ => None,
    }
}

/// The checks for futex(uaddr, op, val, timeout|val2, uaddr2, val3), by op.
pub fn futex_args(op: u64) -> &'static [Arg] {
    const TS: u64 = 16;
    match op & 0x7f {
        0 | 9 => &[R(0, C(4)), R(3, C(TS))],  // WAIT, WAIT_BITSET
        3 | 4 => &[R(0, C(4)), R(4, C(4))],   // REQUEUE, CMP_REQUEUE
        5 => &[R(0, C(4)), W(4, C(4))],       // WAKE_OP
        6 | 13 => &[W(0, C(4)), R(3, C(TS))], // LOCK_PI, LOCK_PI2
        7 | 8 => &[W(0, C(4))],               // UNLOCK_PI, TRYLOCK_PI
        11 => &[R(0, C(4)), R(3, C(TS)), W(4, C(4))], // WAIT_REQUEUE_PI
        12 => &[W(0, C(4)), W(4, C(4))],      // CMP_REQUEUE_PI
        _ => &[R(0, C(4))],                   // WAKE, WAKE_BITSET, others
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_of(a: Arg) -> Option<(bool, u64)> {
        match a {
            R(2, C(n)) => Some((false, n)),
            W(2, C(n)) => Some((true, n)),
            _ => None,
        }
    }

    #[test]
    fn ioctl_requests_decode_as_the_kernel_does() {
        assert_eq!(
            len_of(ioctl_arg(0x5401)),
            Some((true, 36)),
            "TCGETS: kernel termios"
        );
        assert_eq!(len_of(ioctl_arg(0x5414)), Some((false, 8)), "TIOCSWINSZ");
        // The kernel takes cmd as 32 bits: high bits change nothing.
        assert_eq!(
            len_of(ioctl_arg(0x1_0000_541b)),
            Some((true, 4)),
            "FIONREAD"
        );
        // _IOR('T', 0x30, unsigned int) = TIOCGPTN: the kernel writes 4 bytes.
        assert_eq!(len_of(ioctl_arg(0x8004_5430)), Some((true, 4)));
        // _IOW('T', 0x31, int) = TIOCSPTLCK: the kernel reads 4 bytes.
        assert_eq!(len_of(ioctl_arg(0x4004_5431)), Some((false, 4)));
        assert!(
            matches!(ioctl_arg(0x5451), Maybe(2)),
            "FIOCLEX takes no pointer"
        );
        assert!(
            matches!(ioctl_arg(0x1234), Maybe(2)),
            "unknown: refused only into the sandbox"
        );
    }

    #[test]
    fn futex_ops_name_what_the_kernel_touches() {
        const WAIT_PRIVATE: u64 = 128; // FUTEX_WAIT | FUTEX_PRIVATE_FLAG
        assert!(
            matches!(futex_args(WAIT_PRIVATE), [R(0, C(4)), R(3, C(16))]),
            "WAIT"
        );
        assert!(
            matches!(futex_args(5), [R(0, C(4)), W(4, C(4))]),
            "WAKE_OP writes uaddr2"
        );
        assert!(
            matches!(futex_args(6), [W(0, C(4)), R(3, C(16))]),
            "LOCK_PI writes uaddr"
        );
        assert!(matches!(futex_args(1), [R(0, C(4))]), "WAKE");
    }

    #[test]
    fn every_forwarded_call_has_its_fd_checked() {
        for nr in [
            SYS_read,
            SYS_write,
            SYS_fstat,
            SYS_lseek,
            SYS_getdents64,
            SYS_openat,
            SYS_statx,
        ] {
            let spec = spec(nr).expect("known");
            assert!(spec.iter().any(|a| matches!(a, Fd(_))), "{nr}");
        }
        assert!(
            spec(SYS_io_uring_setup).is_none(),
            "io_uring stays unknown here"
        );
    }
}
