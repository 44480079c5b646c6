//! Raw host system calls, with Linux's own return convention.

use std::fmt;

/// A Linux errno value (positive).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
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

/// munmap on the host.
///
/// # Safety
/// [addr, addr + len) must hold only program mappings or placeholders.
pub unsafe fn munmap(addr: u64, len: u64) -> SysResult {
    // SAFETY: the caller vouches for the range (see above).
    unsafe { syscall(libc::SYS_munmap as u64, [addr, len, 0, 0, 0, 0]) }
}
