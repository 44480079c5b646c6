//! Checking a system call's arguments against the program's memory and the
//! sandbox's descriptors (see args.rs).

use vmm::{AddressSpace, fds};

use super::args::{Arg, Len};
use crate::host::Errno;

/// Longest string argument read (xattr values are buffers, not strings).
const MAX_STRING: u64 = 1 << 20;
/// IOV_MAX.
const MAX_IOV: u64 = 1024;

fn efault() -> Errno {
    Errno(libc::EFAULT)
}

/// Reads a `T` from program memory the caller has checked to be readable.
fn read<T: Copy>(space: &AddressSpace, addr: u64) -> Result<T, Errno> {
    let size = std::mem::size_of::<T>() as u64;
    if !space.program_can_access(addr, size, false) {
        return Err(efault());
    }
    // SAFETY: the range is a readable program mapping of the host process.
    Ok(unsafe { std::ptr::read_unaligned(addr as *const T) })
}

fn buffer(space: &AddressSpace, addr: u64, len: u64, write: bool) -> Result<(), Errno> {
    if addr == 0 || len == 0 || space.program_can_access(addr, len, write) {
        Ok(())
    } else {
        Err(efault())
    }
}

fn string(space: &AddressSpace, addr: u64) -> Result<(), Errno> {
    if addr == 0 {
        return Ok(());
    }
    let mut at = addr;
    while at - addr < MAX_STRING {
        let page_end = (at | 0xfff) + 1;
        if !space.program_can_access(at, page_end - at, false) {
            return Err(efault());
        }
        // SAFETY: [at, page_end) is readable program memory, checked above.
        let bytes =
            unsafe { std::slice::from_raw_parts(at as *const u8, (page_end - at) as usize) };
        if bytes.contains(&0) {
            return Ok(());
        }
        at = page_end;
    }
    Err(Errno(libc::ENAMETOOLONG))
}

fn iovecs(space: &AddressSpace, addr: u64, count: u64, write: bool) -> Result<(), Errno> {
    if count > MAX_IOV {
        return Err(Errno(libc::EINVAL));
    }
    buffer(space, addr, count * 16, false)?;
    for i in 0..count {
        let (base, len): (u64, u64) = read(space, addr + 16 * i)?;
        buffer(space, base, len, write)?;
    }
    Ok(())
}

fn length(space: &AddressSpace, args: &[u64; 6], len: Len) -> Result<u64, Errno> {
    Ok(match len {
        Len::C(n) => n,
        Len::Arg(i) => args[i],
        Len::ArgX(i, n) => args[i].checked_mul(n).ok_or_else(efault)?,
        Len::Ptr(i) if args[i] == 0 => 0,
        Len::Ptr(i) => u64::from(read::<u32>(space, args[i])?),
        Len::Fds(i) => args[i].min(1 << 20).div_ceil(64) * 8,
    })
}

/// Checks one argument.
pub fn check(space: &AddressSpace, args: &[u64; 6], arg: Arg) -> Result<(), Errno> {
    match arg {
        Arg::Fd(i) => {
            if fds::is_parked(args[i] as i32 as i64) {
                return Err(Errno(libc::EBADF));
            }
        }
        Arg::R(i, len) => buffer(space, args[i], length(space, args, len)?, false)?,
        Arg::W(i, len) => buffer(space, args[i], length(space, args, len)?, true)?,
        Arg::S(i) => string(space, args[i])?,
        Arg::Iov(i, j, write) => iovecs(space, args[i], args[j], write)?,
        Arg::Msg(i, write) => {
            let m = args[i];
            if m == 0 {
                return Ok(());
            }
            // struct msghdr: name, namelen (u32), iov, iovlen, control,
            // controllen, flags. recvmsg writes the lengths and flags back.
            buffer(space, m, 56, write)?;
            let name: u64 = read(space, m)?;
            let namelen: u32 = read(space, m + 8)?;
            let iov: u64 = read(space, m + 16)?;
            let iovlen: u64 = read(space, m + 24)?;
            let control: u64 = read(space, m + 32)?;
            let controllen: u64 = read(space, m + 40)?;
            buffer(space, name, u64::from(namelen), write)?;
            iovecs(space, iov, iovlen, write)?;
            buffer(space, control, controllen, write)?;
        }
    }
    Ok(())
}

/// Checks all of `specs`.
pub fn check_all(space: &AddressSpace, args: &[u64; 6], specs: &[Arg]) -> Result<(), Errno> {
    specs.iter().try_for_each(|&a| check(space, args, a))
}
