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

// fcntl commands libc lacks (include/uapi/asm-generic/fcntl.h).
const F_SETOWN_EX: i32 = 15;
const F_GETOWN_EX: i32 = 16;

/// `size_of::<T>()` as a buffer length.
const fn size<T>() -> u64 {
    size_of::<T>() as u64
}

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
    // The structs the kernel reads or writes, sized by libc's definitions
    // (the kernel's layout on x86-64); where libc's type is not the
    // kernel's, a size of its own further down names the header.
    const STAT: u64 = size::<stat>();
    const TS: u64 = size::<timespec>();
    const TV: u64 = size::<timeval>();
    const INT: u64 = size::<c_int>();
    const FD_PAIR: u64 = size::<[c_int; 2]>();
    const SOCKLEN: u64 = size::<socklen_t>();
    const ITIMERSPEC: u64 = size::<itimerspec>();
    const EPOLL_EVENT: u64 = size::<epoll_event>();
    const SIGINFO: u64 = size::<siginfo_t>();
    const RUSAGE: u64 = size::<rusage>();
    const POLLFD: u64 = size::<pollfd>();
    const SCHED_PARAM: u64 = size::<sched_param>();
    const ITIMERVAL: u64 = size::<itimerval>();
    const OFF_T: u64 = size::<off_t>();
    const UTSNAME: u64 = size::<utsname>();
    const RLIMIT: u64 = size::<rlimit>();
    const RLIMIT64: u64 = size::<rlimit64>();
    const SYSINFO: u64 = size::<sysinfo>();
    const TMS: u64 = size::<tms>();
    const GID: u64 = size::<gid_t>();
    const UID: u64 = size::<uid_t>();
    const UTIMBUF: u64 = size::<utimbuf>();
    const TV2: u64 = size::<[timeval; 2]>();
    const STATFS: u64 = size::<statfs>();
    const TIME_T: u64 = size::<time_t>();
    const PTR: u64 = size::<*mut c_void>();
    const SIZE_T: u64 = size::<size_t>();
    const SIGEVENT: u64 = size::<sigevent>();
    const TS2: u64 = size::<[timespec; 2]>();
    const STATX: u64 = size::<statx>();
    const LOFF_T: u64 = size::<loff_t>();
    const UINT: u64 = size::<c_uint>();
    // The kernel's sigset_t, 64 signals (include/uapi/asm-generic/signal.h);
    // libc::sigset_t is glibc's 128 bytes.
    const SIGSET: u64 = 8;
    // struct timezone, two ints (include/uapi/linux/time.h): opaque in libc.
    const TIMEZONE: u64 = 8;
    // struct __user_cap_header_struct (include/uapi/linux/capability.h).
    const CAP_HEADER: u64 = 8;
    // __kernel_timer_t is an int (include/uapi/asm-generic/posix_types.h);
    // libc::timer_t is glibc's pointer.
    const KERNEL_TIMER_T: u64 = 4;
    // pselect6's { const sigset_t *ss; size_t ss_len; } (fs/select.c).
    const SIGSET_ARGPACK: u64 = 16;
    Some(match nr {
        SYS_read | SYS_getdents | SYS_getdents64 | SYS_pread64 => &[Fd(0), W(1, A(2))],
        SYS_write | SYS_pwrite64 => &[Fd(0), R(1, A(2))],
        SYS_open | SYS_creat | SYS_access | SYS_truncate | SYS_chdir | SYS_mkdir | SYS_rmdir
        | SYS_unlink | SYS_chmod | SYS_chown | SYS_lchown | SYS_mknod | SYS_chroot
        | SYS_memfd_create => &[S(0)],
        SYS_rename | SYS_link | SYS_symlink => &[S(0), S(1)],
        SYS_stat | SYS_lstat => &[S(0), W(1, C(STAT))],
        SYS_fstat => &[Fd(0), W(1, C(STAT))],
        SYS_poll => &[W(0, ArgX(1, POLLFD))],
        SYS_ppoll => &[W(0, ArgX(1, POLLFD)), W(2, C(TS)), R(3, C(SIGSET))],
        SYS_lseek | SYS_dup | SYS_flock | SYS_fsync | SYS_fdatasync | SYS_ftruncate
        | SYS_fchdir | SYS_fchmod | SYS_fchown | SYS_readahead | SYS_fadvise64 | SYS_shutdown
        | SYS_listen | SYS_syncfs | SYS_fallocate | SYS_sync_file_range | SYS_inotify_rm_watch => {
            &[Fd(0)]
        }
        SYS_rt_sigprocmask => &[R(1, C(SIGSET)), W(2, C(SIGSET))],
        SYS_readv | SYS_preadv | SYS_preadv2 => &[Fd(0), Iov(1, 2, true)],
        SYS_writev | SYS_pwritev | SYS_pwritev2 => &[Fd(0), Iov(1, 2, false)],
        SYS_pipe | SYS_pipe2 => &[W(0, C(FD_PAIR))],
        SYS_select => &[W(1, Fds(0)), W(2, Fds(0)), W(3, Fds(0)), W(4, C(TV))],
        SYS_pselect6 => &[
            W(1, Fds(0)),
            W(2, Fds(0)),
            W(3, Fds(0)),
            W(4, C(TS)),
            R(5, C(SIGSET_ARGPACK)),
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
        SYS_sched_setscheduler => &[R(2, C(SCHED_PARAM))],
        SYS_set_robust_list => &[R(0, A(1))],
        // KCMP_EPOLL_TFD takes a pointer in argument 4; other types an integer.
        SYS_kcmp => &[Maybe(4)],
        SYS_pidfd_getfd => &[Fd(1)],
        SYS_nanosleep => &[R(0, C(TS)), W(1, C(TS))],
        SYS_getitimer => &[W(1, C(ITIMERVAL))],
        SYS_setitimer => &[R(1, C(ITIMERVAL)), W(2, C(ITIMERVAL))],
        SYS_sendfile => &[Fd(0), Fd(1), W(2, C(OFF_T))],
        SYS_connect | SYS_bind => &[Fd(0), R(1, A(2))],
        SYS_accept | SYS_accept4 | SYS_getsockname | SYS_getpeername => {
            &[Fd(0), W(2, C(SOCKLEN)), W(1, Ptr(2))]
        }
        SYS_sendto => &[Fd(0), R(1, A(2)), R(4, A(5))],
        SYS_recvfrom => &[Fd(0), W(1, A(2)), W(5, C(SOCKLEN)), W(4, Ptr(5))],
        SYS_sendmsg => &[Fd(0), Msg(1, false)],
        SYS_recvmsg => &[Fd(0), Msg(1, true)],
        SYS_socketpair => &[W(3, C(FD_PAIR))],
        SYS_setsockopt => &[Fd(0), R(3, A(4))],
        SYS_getsockopt => &[Fd(0), W(4, C(SOCKLEN)), W(3, Ptr(4))],
        SYS_wait4 => &[W(1, C(INT)), W(3, C(RUSAGE))],
        SYS_waitid => &[W(2, C(SIGINFO)), W(4, C(RUSAGE))],
        SYS_uname => &[W(0, C(UTSNAME))],
        SYS_getcwd => &[W(0, A(1))],
        SYS_readlink => &[S(0), W(1, A(2))],
        SYS_gettimeofday => &[W(0, C(TV)), W(1, C(TIMEZONE))],
        SYS_settimeofday => &[R(0, C(TV)), R(1, C(TIMEZONE))],
        SYS_getrlimit => &[W(1, C(RLIMIT))],
        SYS_setrlimit => &[R(1, C(RLIMIT))],
        SYS_prlimit64 => &[R(2, C(RLIMIT64)), W(3, C(RLIMIT64))],
        SYS_getrusage => &[W(1, C(RUSAGE))],
        SYS_sysinfo => &[W(0, C(SYSINFO))],
        SYS_times => &[W(0, C(TMS))],
        SYS_getgroups => &[W(1, ArgX(0, GID))],
        SYS_setgroups => &[R(1, ArgX(0, GID))],
        SYS_sethostname | SYS_setdomainname => &[R(0, A(1))],
        SYS_getresuid | SYS_getresgid => &[W(0, C(UID)), W(1, C(UID)), W(2, C(UID))],
        SYS_capget => &[W(0, C(CAP_HEADER)), CapData(1, true)],
        SYS_capset => &[R(0, C(CAP_HEADER)), CapData(1, false)],
        SYS_rt_sigpending => &[W(0, C(SIGSET))],
        SYS_rt_sigtimedwait => &[R(0, C(SIGSET)), W(1, C(SIGINFO)), R(2, C(TS))],
        SYS_rt_sigqueueinfo => &[R(2, C(SIGINFO))],
        SYS_rt_tgsigqueueinfo => &[R(3, C(SIGINFO))],
        SYS_rt_sigsuspend => &[R(0, C(SIGSET))],
        SYS_utime => &[S(0), R(1, C(UTIMBUF))],
        SYS_utimes => &[S(0), R(1, C(TV2))],
        SYS_statfs => &[S(0), W(1, C(STATFS))],
        SYS_fstatfs => &[Fd(0), W(1, C(STATFS))],
        SYS_sched_setparam => &[R(1, C(SCHED_PARAM))],
        SYS_sched_getparam => &[W(1, C(SCHED_PARAM))],
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
        SYS_time => &[W(0, C(TIME_T))],
        SYS_get_robust_list => &[W(1, C(PTR)), W(2, C(SIZE_T))],
        SYS_timer_create => &[R(1, C(SIGEVENT)), W(2, C(KERNEL_TIMER_T))],
        SYS_timer_settime => &[R(2, C(ITIMERSPEC)), W(3, C(ITIMERSPEC))],
        SYS_timer_gettime => &[W(1, C(ITIMERSPEC))],
        SYS_clock_settime => &[R(1, C(TS))],
        SYS_clock_gettime | SYS_clock_getres => &[W(1, C(TS))],
        SYS_clock_nanosleep => &[R(2, C(TS)), W(3, C(TS))],
        // struct futex_waitv { u64 val, uaddr; u32 flags, __reserved; }:
        // the array and the absolute timeout (the futex words themselves
        // are looked at by the kernel only, as for futex).
        SYS_futex_waitv => &[R(0, ArgX(1, 24)), R(3, C(TS))],
        SYS_epoll_wait => &[Fd(0), W(1, ArgX(2, EPOLL_EVENT))],
        SYS_epoll_pwait => &[Fd(0), W(1, ArgX(2, EPOLL_EVENT)), R(4, C(SIGSET))],
        SYS_epoll_pwait2 => &[
            Fd(0),
            W(1, ArgX(2, EPOLL_EVENT)),
            R(3, C(TS)),
            R(4, C(SIGSET)),
        ],
        SYS_epoll_ctl => &[Fd(0), Fd(2), R(3, C(EPOLL_EVENT))],
        SYS_inotify_add_watch => &[Fd(0), S(1)],
        SYS_openat | SYS_mkdirat | SYS_mknodat | SYS_fchownat | SYS_unlinkat | SYS_fchmodat
        | SYS_faccessat | SYS_faccessat2 | SYS_fchmodat2 => &[Fd(0), S(1)],
        SYS_openat2 => &[Fd(0), S(1), R(2, A(3))],
        SYS_futimesat => &[Fd(0), S(1), R(2, C(TV2))],
        SYS_utimensat => &[Fd(0), S(1), R(2, C(TS2))],
        SYS_newfstatat => &[Fd(0), S(1), W(2, C(STAT))],
        SYS_statx => &[Fd(0), S(1), W(4, C(STATX))],
        SYS_renameat | SYS_renameat2 | SYS_linkat => &[Fd(0), S(1), Fd(2), S(3)],
        SYS_symlinkat => &[S(0), Fd(1), S(2)],
        SYS_readlinkat => &[Fd(0), S(1), W(2, A(3))],
        SYS_splice | SYS_copy_file_range => &[Fd(0), W(1, C(LOFF_T)), Fd(2), W(3, C(LOFF_T))],
        SYS_tee => &[Fd(0), Fd(1)],
        SYS_vmsplice => &[Fd(0), Iov(1, 2, false)],
        SYS_signalfd | SYS_signalfd4 => &[R(1, C(SIGSET))],
        SYS_timerfd_settime => &[Fd(0), R(2, C(ITIMERSPEC)), W(3, C(ITIMERSPEC))],
        SYS_timerfd_gettime => &[Fd(0), W(1, C(ITIMERSPEC))],
        SYS_getcpu => &[W(0, C(UINT)), W(1, C(UINT))],
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
    // The kernel's struct termios (NCCS 19) and struct termio
    // (include/uapi/asm-generic/termbits.h, termios.h): libc::termios is
    // glibc's larger one, and libc has no termio.
    const TERMIOS: u64 = 36;
    const TERMIO: u64 = 18;
    const INT: u64 = size::<c_int>();
    // include/uapi/linux/sockios.h, which libc lacks.
    const FIOSETOWN: Ioctl = 0x8901;
    const SIOCSPGRP: Ioctl = 0x8902;
    const FIOGETOWN: Ioctl = 0x8903;
    const SIOCGPGRP: Ioctl = 0x8904;
    const SIOCATMARK: Ioctl = 0x8905;
    // SIOCDEVPRIVATE + 15: the last of the socket ioctls.
    const SIOCDEVPRIVATE_LAST: Ioctl = 0x89ff;
    let cmd = cmd as u32;
    match Ioctl::from(cmd) {
        TCGETS => W(2, C(TERMIOS)),
        TCSETS | TCSETSW | TCSETSF => R(2, C(TERMIOS)),
        TCGETA => W(2, C(TERMIO)),
        TCSETA | TCSETAW | TCSETAF => R(2, C(TERMIO)),
        // Integer arguments or none.
        TCSBRK | TCXONC | TCFLSH | TIOCEXCL | TIOCNXCL | TIOCSCTTY | TIOCNOTTY | TCSBRKP
        | TIOCSBRK | TIOCCBRK | TIOCVHANGUP | FIONCLEX | FIOCLEX => Maybe(2),
        TIOCGPGRP | TIOCOUTQ | TIOCMGET | TIOCGSOFTCAR | FIONREAD | TIOCGETD | TIOCGSID => {
            W(2, C(INT))
        }
        TIOCSPGRP | TIOCPKT | TIOCMBIS | TIOCMBIC | TIOCMSET | TIOCSSOFTCAR | FIONBIO
        | TIOCSETD | FIOASYNC => R(2, C(INT)),
        TIOCSTI => R(2, C(1)),
        // Its flags are the argument itself.
        SECCOMP_IOCTL_NOTIF_SET_FLAGS => Maybe(2),
        TIOCGWINSZ => W(2, C(size::<winsize>())),
        TIOCSWINSZ => R(2, C(size::<winsize>())),
        FIOQSIZE => W(2, C(size::<loff_t>())),
        FIOSETOWN | SIOCSPGRP => R(2, C(INT)),
        FIOGETOWN | SIOCGPGRP | SIOCATMARK => W(2, C(INT)),
        // SIOC*IF*: struct ifreq in and out.
        SIOCGIFNAME..=SIOCDEVPRIVATE_LAST => W(2, C(size::<ifreq>())),
        // The _IOC layout (include/uapi/asm-generic/ioctl.h; libc keeps its
        // shifts private): direction in bits 30-31, size in bits 16-29.
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
    const FLOCK: u64 = size::<flock>();
    // struct f_owner_ex { int type; pid_t pid; } (include/uapi/asm-generic/fcntl.h).
    const F_OWNER_EX: u64 = 8;
    // Write-life hints, a u64 each (include/uapi/linux/fcntl.h); libc lacks them.
    const F_GET_RW_HINT: i32 = 1035;
    const F_SET_RW_HINT: i32 = 1036;
    const F_GET_FILE_RW_HINT: i32 = 1037;
    const F_SET_FILE_RW_HINT: i32 = 1038;
    match cmd as i32 {
        F_GETLK | F_OFD_GETLK => Some(W(2, C(FLOCK))),
        F_SETLK | F_SETLKW | F_OFD_SETLK | F_OFD_SETLKW => Some(R(2, C(FLOCK))),
        F_GETOWN_EX => Some(W(2, C(F_OWNER_EX))),
        F_SETOWN_EX => Some(R(2, C(F_OWNER_EX))),
        F_GET_RW_HINT | F_GET_FILE_RW_HINT => Some(W(2, C(size::<u64>()))),
        F_SET_RW_HINT | F_SET_FILE_RW_HINT => Some(R(2, C(size::<u64>()))),
        _ => None,
    }
}

/// The checks for futex(uaddr, op, val, timeout|val2, uaddr2, val3), by op.
pub fn futex_args(op: u64) -> &'static [Arg] {
    const TS: u64 = size::<timespec>();
    const WORD: u64 = size::<u32>();
    const PENDING_OP: u64 = size::<u64>();
    let op = op as c_int;
    // FUTEX_ROBUST_UNLOCK (Linux 7.2): the kernel releases the futex word
    // itself and clears the robust list's pending-op pointer at uaddr2, a
    // u64 (a u32 with FUTEX_ROBUST_LIST32). Other commands refuse the flag.
    let robust = op & FUTEX_ROBUST_UNLOCK != 0;
    match op & FUTEX_CMD_MASK {
        FUTEX_WAKE | FUTEX_WAKE_BITSET | FUTEX_UNLOCK_PI if robust => {
            if op & FUTEX_ROBUST_LIST32 != 0 {
                &[W(0, C(WORD)), W(4, C(WORD))]
            } else {
                &[W(0, C(WORD)), W(4, C(PENDING_OP))]
            }
        }
        FUTEX_WAIT | FUTEX_WAIT_BITSET => &[R(0, C(WORD)), R(3, C(TS))],
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => &[R(0, C(WORD)), R(4, C(WORD))],
        FUTEX_WAKE_OP => &[R(0, C(WORD)), W(4, C(WORD))],
        FUTEX_LOCK_PI | FUTEX_LOCK_PI2 => &[W(0, C(WORD)), R(3, C(TS))],
        FUTEX_UNLOCK_PI | FUTEX_TRYLOCK_PI => &[W(0, C(WORD))],
        FUTEX_WAIT_REQUEUE_PI => &[R(0, C(WORD)), R(3, C(TS)), W(4, C(WORD))],
        FUTEX_CMP_REQUEUE_PI => &[W(0, C(WORD)), W(4, C(WORD))],
        _ => &[R(0, C(WORD))], // WAKE, WAKE_BITSET, others
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
        assert_eq!(len_of(ioctl_arg(0x5413)), Some((true, 8)), "TIOCGWINSZ");
        assert_eq!(len_of(ioctl_arg(0x5412)), Some((false, 1)), "TIOCSTI");
        assert_eq!(len_of(ioctl_arg(0x5421)), Some((false, 4)), "FIONBIO");
        assert_eq!(
            len_of(ioctl_arg(0x5420)),
            Some((false, 4)),
            "TIOCPKT reads an int"
        );
        assert_eq!(len_of(ioctl_arg(0x5460)), Some((true, 8)), "FIOQSIZE");
        assert_eq!(len_of(ioctl_arg(0x8905)), Some((true, 4)), "SIOCATMARK");
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
        const WAIT_PRIVATE: u64 = (FUTEX_WAIT | FUTEX_PRIVATE_FLAG) as u64;
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
        let robust = |op: c_int| futex_args((op | FUTEX_ROBUST_UNLOCK) as u64);
        assert!(
            matches!(robust(FUTEX_WAKE), [W(0, C(4)), W(4, C(8))]),
            "robust unlock writes the word and clears the pending op"
        );
        assert!(matches!(
            robust(FUTEX_UNLOCK_PI | FUTEX_PRIVATE_FLAG | FUTEX_ROBUST_LIST32),
            [W(0, C(4)), W(4, C(4))]
        ));
        assert!(
            matches!(robust(FUTEX_WAIT), [R(0, C(4)), R(3, C(16))]),
            "ENOSYS from the kernel: checked as WAIT"
        );
    }

    /// The length `spec(nr)` gives argument `i`.
    fn spec_len(nr: i64, i: usize) -> Option<u64> {
        spec(nr)?.iter().find_map(|a| match *a {
            R(j, C(n)) | W(j, C(n)) if j == i => Some(n),
            _ => None,
        })
    }

    #[test]
    fn buffer_sizes_are_the_x86_64_kernels() {
        // The sizes the kernel ABI fixes, whatever libc's types say.
        assert_eq!(spec_len(SYS_fstat, 1), Some(144), "struct stat");
        assert_eq!(spec_len(SYS_statx, 4), Some(256), "struct statx");
        assert_eq!(spec_len(SYS_uname, 0), Some(390), "struct utsname");
        assert_eq!(spec_len(SYS_sysinfo, 0), Some(112), "struct sysinfo");
        assert_eq!(spec_len(SYS_statfs, 1), Some(120), "struct statfs");
        assert_eq!(spec_len(SYS_epoll_ctl, 3), Some(12), "packed epoll_event");
        assert_eq!(spec_len(SYS_wait4, 3), Some(144), "struct rusage");
        assert_eq!(spec_len(SYS_waitid, 2), Some(128), "siginfo_t");
        assert_eq!(spec_len(SYS_timer_create, 1), Some(64), "struct sigevent");
        assert_eq!(spec_len(SYS_timer_create, 2), Some(4), "kernel timer_t");
        assert_eq!(spec_len(SYS_rt_sigprocmask, 1), Some(8), "kernel sigset_t");
        assert_eq!(spec_len(SYS_timerfd_gettime, 1), Some(32), "itimerspec");
        assert_eq!(spec_len(SYS_utimensat, 2), Some(32), "timespec[2]");
        assert_eq!(spec_len(SYS_prlimit64, 2), Some(16), "rlimit64");
        assert_eq!(fcntl_arg(F_GETLK as u64).and_then(len_of), Some((true, 32)));
        assert_eq!(
            len_of(ioctl_arg(0x8915)),
            Some((true, 40)),
            "SIOCGIFADDR: ifreq"
        );
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
