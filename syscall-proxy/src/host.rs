//! Raw host system calls, with Linux's own return convention.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

/// A Linux errno value (positive).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

impl Errno {
    /// The errno the last failed libc call left (EIO if none).
    pub fn last() -> Errno {
        Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }
}

/// Whether the host thread, whose credentials are the program's, has
/// CAP_SYS_ADMIN in effect.
pub fn has_cap_sys_admin() -> bool {
    // _LINUX_CAPABILITY_VERSION_3 (include/uapi/linux/capability.h): two
    // words of (effective, permitted, inheritable).
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_SYS_ADMIN: u32 = 21;
    let mut header = [VERSION_3, 0];
    let mut data = [[0u32; 3]; 2];
    // SAFETY: capget writes two data words into our array.
    let r = unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) };
    r == 0 && data[0][0] & (1 << CAP_SYS_ADMIN) != 0
}

/// A system call's result: the value, or the errno it failed with.
pub type SysResult = Result<u64, Errno>;

/// Encodes a result as the kernel returns it in RAX.
pub fn encode(r: SysResult) -> u64 {
    match r {
        Ok(v) => v,
        Err(Errno(e)) => (-(e as i64)) as u64,
    }
}

/// Issues system call `nr` on the host thread with the program's arguments.
///
/// # Safety
/// The arguments go to the kernel as they are: pointers in them must be
/// valid for what `nr` does with them, and the call must not disturb the
/// sandbox's own state (its memory, descriptors, signal handling).
pub unsafe fn syscall(nr: u64, a: [u64; 6]) -> SysResult {
    let ret: i64;
    // SAFETY: the caller vouches for the call; SYSCALL clobbers only RCX and
    // R11 besides RAX, and touches no stack.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    decode(ret)
}

/// A raw return value as the kernel gives it in RAX: -4095..-1 an errno.
fn decode(ret: i64) -> SysResult {
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as u64)
    }
}

/// mmap on the host.
///
/// # Safety
/// With MAP_FIXED, [addr, addr + len) must hold nothing the sandbox uses:
/// only program mappings or placeholders claimed for them.
pub unsafe fn mmap(addr: u64, len: u64, prot: i32, flags: i32, fd: i32, off: u64) -> SysResult {
    let a = [addr, len, prot as u64, flags as u64, fd as i64 as u64, off];
    // SAFETY: the caller vouches for the range (see above).
    unsafe { syscall(libc::SYS_mmap as u64, a) }
}

/// Executes the sandbox itself (/proc/self/exe) with `argv` and `env`;
/// returns only if that fails, with why.
pub fn execute_self(argv: &[std::ffi::CString], env: &[std::ffi::CString]) -> std::io::Error {
    let pointers = |words: &[std::ffi::CString]| -> Vec<*const libc::c_char> {
        words
            .iter()
            .map(|w| w.as_ptr())
            .chain([std::ptr::null()])
            .collect()
    };
    let (argv, env) = (pointers(argv), pointers(env));
    // SAFETY: NUL-terminated strings and NULL-terminated arrays that live
    // until the call returns; on success it does not.
    unsafe { libc::execve(c"/proc/self/exe".as_ptr(), argv.as_ptr(), env.as_ptr()) };
    std::io::Error::last_os_error()
}

/// munmap on the host.
///
/// # Safety
/// [addr, addr + len) must hold only program mappings or placeholders.
pub unsafe fn munmap(addr: u64, len: u64) -> SysResult {
    // SAFETY: the caller vouches for the range (see above).
    unsafe { syscall(libc::SYS_munmap as u64, [addr, len, 0, 0, 0, 0]) }
}

// A forwarded call and a signal that arrives just before it. The host
// handler takes a signal for the program whenever it comes (arrival.rs),
// and blocks every signal until the task loop delivers it. Natively a
// signal that comes while a task is in the kernel makes a wait it is about
// to start return at once (EINTR, or a restart); here the signal is
// already taken and blocked, and the wait would sleep with nothing to end
// it (a tracer's poll for the SIGCHLD of the stop it just resumed its
// tracee into, every few runs). So a forwarded call goes through this stub:
// it does not start if a signal is waiting (`waiting` is the slot's flag),
// and the handler moves a thread interrupted between that check and the
// `syscall` instruction to the cancelled exit (`cancel_window`).
std::arch::global_asm!(
    ".globl xcr0_sandbox_forward",
    ".globl xcr0_sandbox_forward_check",
    ".globl xcr0_sandbox_forward_syscall",
    ".globl xcr0_sandbox_forward_cancelled",
    ".globl xcr0_sandbox_forward_end",
    "xcr0_sandbox_forward:",
    // (waiting: *const u8 in rdi, nr in rsi, args: *const [u64; 6] in rdx)
    "mov rax, rsi",
    "mov r11, rdi",
    "mov rcx, rdx",
    "mov rdi, [rcx]",
    "mov rsi, [rcx + 8]",
    "mov rdx, [rcx + 16]",
    "mov r10, [rcx + 24]",
    "mov r8, [rcx + 32]",
    "mov r9, [rcx + 40]",
    "xcr0_sandbox_forward_check:",
    "cmp byte ptr [r11], 0",
    "jne xcr0_sandbox_forward_cancelled",
    "xcr0_sandbox_forward_syscall:",
    "syscall",
    "ret",
    "xcr0_sandbox_forward_cancelled:",
    "mov rax, -4096",
    "ret",
    "xcr0_sandbox_forward_end:",
);

unsafe extern "C" {
    fn xcr0_sandbox_forward(waiting: *const u8, nr: u64, args: *const u64) -> i64;
    static xcr0_sandbox_forward_check: u8;
    static xcr0_sandbox_forward_syscall: u8;
    static xcr0_sandbox_forward_cancelled: u8;
    static xcr0_sandbox_forward_end: u8;
}

/// The stub's signature.
type Stub = unsafe extern "C" fn(waiting: *const u8, nr: u64, args: *const u64) -> i64;

/// Where a copy of the stub makes the calls a seccomp listener of the
/// program's judges: the host filter behind the listener picks them out by
/// the address of their `syscall` (seccomp::notify). The address is fixed
/// because that filter outlives the sandbox's own re-exec, and the new
/// image must put its copy where the filter looks; it is far from where
/// Linux places binaries, heaps, mappings and stacks.
pub(crate) const NOTIFY_STUB: u64 = 0x2a2a_0000_0000;

/// An offset into the stub.
fn stub_offset(label: &u8) -> u64 {
    label as *const u8 as u64 - xcr0_sandbox_forward as *const () as u64
}

thread_local! {
    /// Whether the thread's next forwarded call goes through the copy.
    static NOTIFY: Cell<bool> = const { Cell::new(false) };
}

/// Sends the thread's next forwarded call (`forward`) through the stub
/// the listener's filter picks out, or no longer.
pub fn notify_next(on: bool) {
    NOTIFY.set(on);
}

/// Whether the thread's next forwarded call goes to the listener.
pub fn notifying() -> bool {
    NOTIFY.get()
}

/// The instruction pointer the kernel gives a filter for a call made by
/// the copy: the address after its `syscall`.
pub fn notify_call_ip() -> u64 {
    // SAFETY: only the label's address is taken.
    NOTIFY_STUB + stub_offset(unsafe { &xcr0_sandbox_forward_syscall }) + 2
}

/// Where a thread making a call through the stub is stopped in it (after
/// its `syscall`).
pub fn forward_call_ip() -> u64 {
    &raw const xcr0_sandbox_forward_syscall as u64 + 2
}

/// The copy, mapped on first use in this image; None if the address is
/// taken (then the call fails with ENOSYS, as with no listener).
fn notify_stub() -> Option<Stub> {
    static MAPPED: OnceLock<bool> = OnceLock::new();
    let mapped = *MAPPED.get_or_init(|| {
        // SAFETY: only the labels' addresses are taken.
        let len = stub_offset(unsafe { &xcr0_sandbox_forward_end }) as usize;
        let page = 4096;
        // SAFETY: a fresh anonymous page where nothing is mapped
        // (MAP_FIXED_NOREPLACE fails otherwise).
        let p = unsafe {
            libc::mmap(
                NOTIFY_STUB as *mut libc::c_void,
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p as u64 != NOTIFY_STUB {
            log::warn!(
                "seccomp listener: {NOTIFY_STUB:#x} is taken ({}); the program's notified calls fail with ENOSYS",
                std::io::Error::last_os_error()
            );
            return false;
        }
        // SAFETY: the stub's code (position-independent: its one jump is
        // relative) into the page just mapped, then made executable.
        unsafe {
            std::ptr::copy_nonoverlapping(xcr0_sandbox_forward as *const u8, p.cast(), len);
            libc::mprotect(p, page, libc::PROT_READ | libc::PROT_EXEC) == 0
        }
    });
    // SAFETY: the page holds a copy of the stub, which has its signature.
    mapped.then(|| unsafe { std::mem::transmute::<u64, Stub>(NOTIFY_STUB) })
}

/// What the stub returns when it did not make the call.
const CANCELLED: i64 = -4096;

/// The cancel windows of the stub and of its copy at NOTIFY_STUB: where
/// the check for a waiting signal starts, the `syscall` instruction, and
/// where the stub returns without the call.
pub fn cancel_windows() -> [[u64; 3]; 2] {
    let (check, call, cancelled) = (
        &raw const xcr0_sandbox_forward_check as u64,
        &raw const xcr0_sandbox_forward_syscall as u64,
        &raw const xcr0_sandbox_forward_cancelled as u64,
    );
    let base = xcr0_sandbox_forward as *const () as u64;
    [base, NOTIFY_STUB].map(|at| [check, call, cancelled].map(|x| x - base + at))
}

/// For the host handler (and a tracer doing its work, trace/carry.rs):
/// where a thread interrupted at `rip` must resume so that the call it was
/// about to make is not made (None: elsewhere).
pub fn cancel_window(rip: u64) -> Option<u64> {
    cancelled_at(&cancel_windows(), rip)
}

/// Where `rip` resumes if it is in one of `windows` (`cancel_windows`).
pub fn cancelled_at(windows: &[[u64; 3]; 2], rip: u64) -> Option<u64> {
    windows
        .iter()
        .find_map(|&[check, call, cancelled]| (check..=call).contains(&rip).then_some(cancelled))
}

/// Forwards a call of the program's as `syscall` does, unless a signal
/// for the program is waiting to be delivered and the call is one that
/// would wait (`may_wait`): then EINTR, as the kernel's wait returns when
/// a signal is pending. Calls that never wait are made.
///
/// # Safety
/// As for [`syscall`].
pub unsafe fn forward(nr: u64, a: [u64; 6], waiting: *const u8) -> SysResult {
    let stub: Stub = if NOTIFY.take() {
        notify_stub().ok_or(Errno(libc::ENOSYS))?
    } else {
        xcr0_sandbox_forward
    };
    // SAFETY: the stub makes the call as `syscall` does (the caller
    // vouches for it) or none; `waiting` is the thread's slot flag.
    let ret = unsafe { stub(waiting, nr, a.as_ptr()) };
    if ret == CANCELLED {
        if may_wait(nr as i64, &a) {
            return Err(Errno(libc::EINTR));
        }
        // SAFETY: as above, with no signal to wait for.
        return decode(unsafe { stub(&0, nr, a.as_ptr()) });
    }
    decode(ret)
}

/// Whether call `nr` may wait for something a signal interrupts (sleeps,
/// polls, locks, child waits, I/O on anything but a regular file or a
/// block device).
fn may_wait(nr: i64, a: &[u64; 6]) -> bool {
    match nr {
        libc::SYS_read
        | libc::SYS_readv
        | libc::SYS_write
        | libc::SYS_writev
        | libc::SYS_recvfrom
        | libc::SYS_recvmsg
        | libc::SYS_recvmmsg
        | libc::SYS_sendto
        | libc::SYS_sendmsg
        | libc::SYS_sendmmsg
        | libc::SYS_accept
        | libc::SYS_accept4
        | libc::SYS_connect
        | libc::SYS_splice
        | libc::SYS_tee
        | libc::SYS_ioctl => {
            // SAFETY: stat is plain integers, valid all zero.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fstat into the struct we own.
            let r = unsafe { libc::fstat(a[0] as i32, &mut st) };
            let kind = st.st_mode & libc::S_IFMT;
            r != 0 || (kind != libc::S_IFREG && kind != libc::S_IFBLK)
        }
        libc::SYS_futex => {
            let cmd = a[1] as i32 & libc::FUTEX_CMD_MASK;
            matches!(
                cmd,
                libc::FUTEX_WAIT
                    | libc::FUTEX_WAIT_BITSET
                    | libc::FUTEX_LOCK_PI
                    | libc::FUTEX_LOCK_PI2
                    | libc::FUTEX_WAIT_REQUEUE_PI
            )
        }
        libc::SYS_flock => a[1] as i32 & libc::LOCK_NB == 0,
        libc::SYS_fcntl => matches!(a[1] as i32, libc::F_SETLKW | libc::F_OFD_SETLKW),
        libc::SYS_poll
        | libc::SYS_ppoll
        | libc::SYS_select
        | libc::SYS_pselect6
        | libc::SYS_epoll_wait
        | libc::SYS_epoll_pwait
        | libc::SYS_epoll_pwait2
        | libc::SYS_pause
        | libc::SYS_nanosleep
        | libc::SYS_clock_nanosleep
        | libc::SYS_wait4
        | libc::SYS_waitid
        | libc::SYS_rt_sigtimedwait
        | libc::SYS_msgrcv
        | libc::SYS_msgsnd
        | libc::SYS_semop
        | libc::SYS_semtimedop
        | libc::SYS_mq_timedreceive
        | libc::SYS_mq_timedsend
        | libc::SYS_futex_waitv => true,
        _ => false,
    }
}
