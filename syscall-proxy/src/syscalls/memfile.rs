//! The program's own /proc/<pid>/mem. The host's file reaches the whole
//! host process, the sandbox and the guest page tables included; the
//! program's reads and writes of it reach the program's mappings only, as
//! natively the file reaches nothing else of the process: a transfer stops
//! where they end, and one that starts outside them is EIO.
//!
//! gdb writes one of its own variables through /proc/self/mem before it
//! trusts the file of its inferior: refused, it would read and write a
//! tracee's memory a word at a time (PEEK/POKE), which made `gcore` take
//! many minutes.
//!
//! The files opened are known by inode (procfs keeps one while a
//! descriptor holds it), so a duplicated or inherited descriptor is one
//! too; the calls that move bytes through a descriptor look it up, and
//! only once the process has opened such a file.

use std::sync::atomic::{AtomicU64, Ordering};

use vmm::AddressSpace;

use super::procfs;
use crate::host::{Errno, SysResult};
use crate::thread::Thread;

/// Inodes of the mem files the process opened (0: a free slot), on the
/// device of `DEV`. A fork child inherits them with its descriptors.
static OPEN: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static DEV: AtomicU64 = AtomicU64::new(0);

/// After an open: notes a descriptor of the program's own mem file, or
/// refuses it (EACCES) where no slot is left to note it in.
pub fn opened(fd: u64) -> SysResult {
    if !procfs::is_own_mem_fd(fd) {
        return Ok(fd);
    }
    let noted = identity(fd).is_some_and(|(dev, ino)| {
        DEV.store(dev, Ordering::Relaxed);
        OPEN.iter().any(|s| s.load(Ordering::Relaxed) == ino)
            || OPEN.iter().any(|s| {
                s.compare_exchange(0, ino, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            })
    });
    if noted {
        return Ok(fd);
    }
    log::debug!("refused an open of the program's mem file: no slot left");
    // SAFETY: closes the descriptor the refused open just created.
    unsafe { libc::close(fd as i32) };
    Err(Errno(libc::EACCES))
}

/// Before a call that moves bytes through a descriptor (`nr`, arguments
/// `a`): if the descriptor is a mem file the program opened, the transfer
/// is cut to the program's mappings (its length argument lowered), or
/// refused where it starts outside them (EIO).
pub fn limit(thread: &Thread, nr: i64, a: &mut [u64; 6]) -> Result<(), Errno> {
    let Some(call) = Transfer::of(nr) else {
        return Ok(());
    };
    if OPEN.iter().all(|s| s.load(Ordering::Relaxed) == 0) || !is_noted(a[0]) {
        return Ok(());
    }
    let at = match call.offset {
        Some(i) if !(call.vectored && a[i] as i64 == -1) => a[i],
        // The file position: lseek's result is the address, kernel ones
        // (negative) included.
        // SAFETY: lseek on a descriptor of the program's; no memory.
        _ => (unsafe { libc::syscall(libc::SYS_lseek, a[0], 0, libc::SEEK_CUR) }) as u64,
    };
    let space = thread.process.vm.memory.lock().expect("address space");
    if call.vectored {
        let len = iov_total(&space, a[1], a[2])?;
        // Whole or not at all: a vector cut short would need one of our own.
        if program_prefix(&space, at, len) < len {
            return Err(Errno(libc::EIO));
        }
        return Ok(());
    }
    let len = program_prefix(&space, at, a[2]);
    if len == 0 && a[2] != 0 {
        return Err(Errno(libc::EIO));
    }
    a[2] = len;
    Ok(())
}

/// How a call names the bytes it moves.
struct Transfer {
    /// The argument that is the offset (None: the file position; an
    /// offset of -1 to preadv2 and pwritev2 means it too).
    offset: Option<usize>,
    /// Buffers an iovec array (argument 1, count in 2) names, rather than
    /// one (argument 1, length in 2).
    vectored: bool,
}

impl Transfer {
    fn of(nr: i64) -> Option<Transfer> {
        let (offset, vectored) = match nr {
            libc::SYS_read | libc::SYS_write => (None, false),
            libc::SYS_pread64 | libc::SYS_pwrite64 => (Some(3), false),
            libc::SYS_readv | libc::SYS_writev => (None, true),
            // pos_l holds the whole offset on a 64-bit kernel.
            libc::SYS_preadv | libc::SYS_pwritev | libc::SYS_preadv2 | libc::SYS_pwritev2 => {
                (Some(3), true)
            }
            _ => return None,
        };
        Some(Transfer { offset, vectored })
    }
}

/// Whether descriptor `fd` is one of the noted mem files.
fn is_noted(fd: u64) -> bool {
    identity(fd).is_some_and(|(dev, ino)| {
        dev == DEV.load(Ordering::Relaxed) && OPEN.iter().any(|s| s.load(Ordering::Relaxed) == ino)
    })
}

/// The device and inode of descriptor `fd`.
fn identity(fd: u64) -> Option<(u64, u64)> {
    // SAFETY: stat is plain data, valid all zero; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::fstat(fd as i32, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// How many bytes from `at` on, up to `len`, lie in the program's
/// mappings without a gap.
fn program_prefix(space: &AddressSpace, at: u64, len: u64) -> u64 {
    let end = at.saturating_add(len);
    let mut reached = at;
    for (s, e, _) in space.program().pieces(at, end) {
        if s != reached {
            break;
        }
        reached = e;
    }
    reached - at
}

/// The total length of `count` iovecs at `addr`, as the kernel would
/// take them (EINVAL past SSIZE_MAX).
fn iov_total(space: &AddressSpace, addr: u64, count: u64) -> Result<u64, Errno> {
    let mut total = 0u64;
    super::check::each_iovec(space, addr, count, |_, len| {
        total = total
            .checked_add(len)
            .filter(|&t| t <= isize::MAX as u64)
            .ok_or(Errno(libc::EINVAL))?;
        Ok(())
    })?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calls_that_move_bytes_and_where_their_offset_is() {
        for nr in [libc::SYS_read, libc::SYS_write] {
            let t = Transfer::of(nr).unwrap();
            assert!(t.offset.is_none() && !t.vectored);
        }
        let t = Transfer::of(libc::SYS_pwrite64).unwrap();
        assert!(t.offset == Some(3) && !t.vectored);
        let t = Transfer::of(libc::SYS_preadv2).unwrap();
        assert!(t.offset == Some(3) && t.vectored);
        for nr in [libc::SYS_sendfile, libc::SYS_openat, libc::SYS_lseek] {
            assert!(Transfer::of(nr).is_none());
        }
    }
}
