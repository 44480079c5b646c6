//! Checking a system call's arguments against the program's memory and the
//! sandbox's descriptors (see args.rs).

use vmm::{AddressSpace, fds};

use super::args::{Arg, Len};
use crate::host::Errno;
use crate::umem;

/// Longest string argument read (xattr values are buffers, not strings).
const MAX_STRING: u64 = 1 << 20;
/// IOV_MAX.
const MAX_IOV: u64 = 1024;

fn efault() -> Errno {
    Errno(libc::EFAULT)
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
    umem::read_cstr(space, addr, MAX_STRING).map(|_| ())
}

fn iovecs(space: &AddressSpace, addr: u64, count: u64, write: bool) -> Result<(), Errno> {
    if count > MAX_IOV {
        return Err(Errno(libc::EINVAL));
    }
    buffer(space, addr, count * 16, false)?;
    for i in 0..count {
        let [base, len] = umem::read::<[u64; 2]>(space, addr + 16 * i)?;
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
        Len::Ptr(i) => u64::from(umem::read::<u32>(space, args[i])?),
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
            let [name, namelen, iov, iovlen, control, controllen] =
                umem::read::<[u64; 6]>(space, m)?;
            let namelen = namelen & 0xffff_ffff;
            buffer(space, name, namelen, write)?;
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
