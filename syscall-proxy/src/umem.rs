//! Reading and writing the program's memory from the sandbox.
//!
//! Program memory lives in this very process, but touching it directly is
//! wrong twice over: an address outside the program's mappings may be the
//! sandbox's own memory, and a program mapping may not be backed (a shared
//! file mapping past the end of its file raises SIGBUS). Every access goes
//! through here: checked against the program's mappings, then copied with
//! process_vm_readv/writev on this process, which fail with EFAULT where a
//! plain access would fault.

use std::io::{IoSlice, IoSliceMut};

use vm_memory::ByteValued;
use vmm::AddressSpace;

use crate::host::Errno;

fn efault() -> Errno {
    Errno(libc::EFAULT)
}

fn remote(addr: u64, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    }
}

/// Copies `buf.len()` bytes at `addr` of program memory into `buf`.
pub fn read_bytes(space: &AddressSpace, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    if buf.is_empty() {
        return Ok(());
    }
    if !space.program_can_access(addr, buf.len() as u64, false) {
        return Err(efault());
    }
    let len = buf.len();
    let local = [IoSliceMut::new(buf)];
    let r = remote(addr, len);
    // SAFETY: reads from this process into `buf`, which the kernel writes
    // only within its length; a fault on the remote side is an error return.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), local.as_ptr().cast(), 1, &r, 1, 0) };
    if n == len as isize {
        Ok(())
    } else {
        Err(efault())
    }
}

/// Copies `bytes` to `addr` of program memory, which must be writable.
pub fn write_bytes(space: &AddressSpace, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    if bytes.is_empty() {
        return Ok(());
    }
    if !space.program_can_access(addr, bytes.len() as u64, true) {
        return Err(efault());
    }
    let local = [IoSlice::new(bytes)];
    let r = remote(addr, bytes.len());
    // SAFETY: writes into program memory checked above to be a writable
    // program mapping; a fault on the remote side is an error return.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), local.as_ptr().cast(), 1, &r, 1, 0) };
    if n == bytes.len() as isize {
        Ok(())
    } else {
        Err(efault())
    }
}

/// Reads a `T` at `addr` of program memory.
pub fn read<T: ByteValued>(space: &AddressSpace, addr: u64) -> Result<T, Errno> {
    let mut v = T::zeroed();
    read_bytes(space, addr, v.as_mut_slice())?;
    Ok(v)
}

/// Writes `value` at `addr` of program memory.
pub fn write<T: ByteValued>(space: &AddressSpace, addr: u64, value: T) -> Result<(), Errno> {
    write_bytes(space, addr, value.as_slice())
}

/// Reads the NUL-terminated string at `addr` (without its NUL), at most
/// `max` bytes long: ENAMETOOLONG beyond.
pub fn read_cstr(space: &AddressSpace, addr: u64, max: u64) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        let page_end = (at | 0xfff).checked_add(1).ok_or_else(efault)?;
        let mut chunk = vec![0u8; (page_end - at) as usize];
        read_bytes(space, at, &mut chunk)?;
        if let Some(n) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..n]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
        if out.len() as u64 > max {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        at = page_end;
    }
}
