//! What the program would inherit natively, noted before Rust's runtime
//! changes it: Rust ignores SIGPIPE, handles SIGSEGV/SIGBUS for stack
//! overflow reports, and opens /dev/null on closed standard descriptors.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Whether SIGPIPE was ignored when the process started.
static SIGPIPE_WAS_IGNORED: AtomicBool = AtomicBool::new(false);
/// Bit n set: descriptor n (0, 1, 2) was closed when the process started.
static CLOSED_STD_FDS: AtomicU8 = AtomicU8::new(0);

extern "C" fn note_inherited() {
    // SAFETY: queries one disposition into a zeroed struct we own, and the
    // flags of three descriptors; nothing is changed.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        let ignored = libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN;
        SIGPIPE_WAS_IGNORED.store(ignored, Ordering::Relaxed);
        let closed = (0..3)
            .filter(|&fd| libc::fcntl(fd, libc::F_GETFD) < 0)
            .fold(0u8, |m, fd| m | 1 << fd);
        CLOSED_STD_FDS.store(closed, Ordering::Relaxed);
    }
}

/// Runs before main, hence before Rust's runtime.
#[used]
#[unsafe(link_section = ".init_array")]
static NOTE_INHERITED: extern "C" fn() = note_inherited;

/// Puts back what Rust's runtime changed: the SIGPIPE, SIGSEGV and SIGBUS
/// dispositions, and closes again the standard descriptors that were closed
/// (the program must see them closed: `echo hi >&-` fails with EBADF, and a
/// program started with stdin closed gets 0 from its first open).
pub fn restore() {
    let pipe = if SIGPIPE_WAS_IGNORED.load(Ordering::Relaxed) {
        libc::SIG_IGN
    } else {
        libc::SIG_DFL
    };
    let closed = CLOSED_STD_FDS.load(Ordering::Relaxed);
    // SAFETY: resets dispositions and closes the runtime's /dev/null
    // descriptors before any thread exists or anything else is opened.
    unsafe {
        libc::signal(libc::SIGPIPE, pipe);
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
        for fd in (0..3).filter(|fd| closed & 1 << fd != 0) {
            libc::close(fd);
        }
    }
}
