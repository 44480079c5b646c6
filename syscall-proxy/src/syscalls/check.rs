//! Checking a system call's arguments against the program's memory and the
//! sandbox's descriptors (see args.rs).

use vmm::layout::HOST_USER_TOP;
use vmm::{AddressSpace, fds};

use super::args::{Arg, Len};
use crate::host::Errno;
use crate::umem;

/// Longest string argument read (xattr values are buffers, not strings).
const MAX_STRING: u64 = 1 << 20;
const MAX_IOV: u64 = libc::UIO_MAXIOV as u64;
const IOVEC: u64 = size_of::<libc::iovec>() as u64;
const MSGHDR: u64 = size_of::<libc::msghdr>() as u64;
/// _LINUX_CAPABILITY_VERSION_1 and its one 12-byte __user_cap_data_struct
/// (include/uapi/linux/capability.h); later versions have two. libc lacks
/// both.
const CAPABILITY_VERSION_1: u32 = 0x1998_0330;
const CAP_DATA: u64 = 12;
/// SCHED_ATTR_SIZE_VER0 (include/uapi/linux/sched/types.h): what size 0
/// means. libc::sched_attr may grow with later versions.
const SCHED_ATTR_SIZE_VER0: u64 = 48;
const PAGE: u64 = crate::mm::PAGE;

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

/// The most the kernel reads of a string argument: a path (getname stops
/// at PATH_MAX bytes); the names (xattr, memfd, prctl's) are shorter.
const KERNEL_STRING_MAX: u64 = libc::PATH_MAX as u64;

/// A string the kernel will read must lie in program memory. Where the
/// next KERNEL_STRING_MAX bytes all do, the kernel stops before leaving
/// them, wherever the NUL is: the mappings answer without reading it.
fn string(space: &AddressSpace, addr: u64) -> Result<(), Errno> {
    if addr == 0 || space.program_can_access(addr, KERNEL_STRING_MAX, false) {
        return Ok(());
    }
    umem::read_cstr(space, addr, MAX_STRING).map(|_| ())
}

/// iovecs read at once, in one host system call: more than programs
/// pass in one call but for a rare long batch.
const IOV_BATCH: u64 = 64;

fn iovecs(space: &AddressSpace, addr: u64, count: u64, write: bool) -> Result<(), Errno> {
    each_iovec(space, addr, count, |base, len| {
        buffer(space, base, len, write)
    })
}

/// Calls `f` with the base and length of each of the `count` iovecs at
/// `addr`, an array in program memory (EINVAL past UIO_MAXIOV).
pub(super) fn each_iovec(
    space: &AddressSpace,
    addr: u64,
    count: u64,
    mut f: impl FnMut(u64, u64) -> Result<(), Errno>,
) -> Result<(), Errno> {
    const BASE: usize = std::mem::offset_of!(libc::iovec, iov_base);
    const LEN: usize = std::mem::offset_of!(libc::iovec, iov_len);
    if count > MAX_IOV {
        return Err(Errno(libc::EINVAL));
    }
    buffer(space, addr, count * IOVEC, false)?;
    let mut raw = [0u8; (IOV_BATCH * IOVEC) as usize];
    for first in (0..count).step_by(IOV_BATCH as usize) {
        let batch = &mut raw[..((count - first).min(IOV_BATCH) * IOVEC) as usize];
        umem::read_bytes(space, addr + first * IOVEC, batch)?;
        for iov in batch.chunks_exact(IOVEC as usize) {
            let word = |at: usize| u64::from_ne_bytes(iov[at..at + 8].try_into().expect("8 bytes"));
            f(word(BASE), word(LEN))?;
        }
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

/// Whether `addr` is host memory that is not the program's: the sandbox's.
/// The mappings record the program's memory only, so the rest is asked of
/// the kernel, but for values no sandbox memory can be at (small integers
/// on page zero, which nothing maps unasked; values past the user address
/// space, such as negative ones), which most such arguments are.
fn sandbox_memory(space: &AddressSpace, addr: u64) -> bool {
    if !(PAGE..HOST_USER_TOP).contains(&addr) || space.program().get(addr).is_some() {
        return false;
    }
    let page = addr & !(PAGE - 1);
    // SAFETY: msync with flags 0 only asks whether the page is mapped
    // (ENOMEM if not); it changes nothing.
    unsafe { libc::msync(page as *mut libc::c_void, PAGE as usize, 0) == 0 }
}

/// sendmsg control data must not pass the sandbox's descriptors on
/// (SCM_RIGHTS): natively they do not exist.
fn no_parked_rights(space: &AddressSpace, control: u64, len: u64) -> Result<(), Errno> {
    if control == 0 || len == 0 {
        return Ok(());
    }
    let mut buf = vec![0u8; len.min(1 << 16) as usize];
    umem::read_bytes(space, control, &mut buf)?;
    // struct cmsghdr { size_t len; int level; int type; } + data, 8-aligned.
    const HDR: usize = size_of::<libc::cmsghdr>();
    const LEVEL: usize = std::mem::offset_of!(libc::cmsghdr, cmsg_level);
    const TYPE: usize = std::mem::offset_of!(libc::cmsghdr, cmsg_type);
    let mut off = 0usize;
    while off + HDR <= buf.len() {
        let cmsg_len = u64::from_le_bytes(buf[off..off + 8].try_into().expect("8 bytes")) as usize;
        let level = i32::from_le_bytes(buf[off + LEVEL..][..4].try_into().expect("4 bytes"));
        let kind = i32::from_le_bytes(buf[off + TYPE..][..4].try_into().expect("4 bytes"));
        if cmsg_len < HDR {
            break;
        }
        let end = (off + cmsg_len).min(buf.len());
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            for fd in buf[off + HDR..end].chunks_exact(4) {
                let fd = i32::from_le_bytes(fd.try_into().expect("4 bytes"));
                if fds::is_parked(i64::from(fd)) {
                    return Err(Errno(libc::EBADF));
                }
            }
        }
        off += cmsg_len.div_ceil(8) * 8;
    }
    Ok(())
}

/// Argument `i`, a descriptor, must not be one of the sandbox's: natively
/// it does not exist.
pub fn fd(args: &[u64; 6], i: usize) -> Result<(), Errno> {
    if fds::is_parked(args[i] as i32 as i64) {
        Err(Errno(libc::EBADF))
    } else {
        Ok(())
    }
}

/// Checks one argument.
pub fn check(space: &AddressSpace, args: &[u64; 6], arg: Arg) -> Result<(), Errno> {
    match arg {
        Arg::Fd(i) => fd(args, i)?,
        Arg::R(i, len) => buffer(space, args[i], length(space, args, len)?, false)?,
        Arg::W(i, len) => buffer(space, args[i], length(space, args, len)?, true)?,
        Arg::S(i) => string(space, args[i])?,
        Arg::Iov(i, j, write) => iovecs(space, args[i], args[j], write)?,
        Arg::Maybe(i) => {
            if sandbox_memory(space, args[i]) {
                return Err(efault());
            }
        }
        Arg::Indirect(i) => {
            if args[i] != 0 {
                let [ptr, len] = umem::read::<[u64; 2]>(space, args[i])?;
                buffer(space, ptr, len.min(1 << 20), false)?;
            }
        }
        Arg::CapData(i, write) => {
            let version = umem::read::<u32>(space, args[0])?;
            let len = if version == CAPABILITY_VERSION_1 {
                CAP_DATA
            } else {
                2 * CAP_DATA
            };
            buffer(space, args[i], len, write)?;
        }
        Arg::SelfSized(i) => {
            if args[i] != 0 {
                let size = u64::from(umem::read::<u32>(space, args[i])?);
                let len = if size == 0 {
                    SCHED_ATTR_SIZE_VER0
                } else {
                    size.min(4096)
                };
                buffer(space, args[i], len, false)?;
            }
        }
        Arg::Msg(i, write) => {
            let m = args[i];
            if m == 0 {
                return Ok(());
            }
            // struct msghdr: name, namelen (u32), iov, iovlen, control,
            // controllen, flags. recvmsg writes the lengths and flags back.
            buffer(space, m, MSGHDR, write)?;
            let [name, namelen, iov, iovlen, control, controllen] =
                umem::read::<[u64; 6]>(space, m)?;
            let namelen = namelen & 0xffff_ffff;
            buffer(space, name, namelen, write)?;
            iovecs(space, iov, iovlen, write)?;
            buffer(space, control, controllen, write)?;
            if !write {
                no_parked_rights(space, control, controllen)?;
            }
        }
    }
    Ok(())
}

/// Checks all of `specs`.
pub fn check_all(space: &AddressSpace, args: &[u64; 6], specs: &[Arg]) -> Result<(), Errno> {
    specs.iter().try_for_each(|&a| check(space, args, a))
}
