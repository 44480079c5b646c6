//! What /proc/self tells of the process. Natively it describes the program;
//! here the host process is the sandbox's. After each image is loaded the
//! process takes the program's name (`comm`, the `Name:` of `status`) and
//! points the kernel at the program's argv, environment and auxiliary
//! vector (`cmdline`, `environ`, `auxv`) with PR_SET_MM_MAP, which needs
//! no privilege as long as the executable link is left alone.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;

use crate::loader::{Image, room};

/// `struct prctl_mm_map` (include/uapi/linux/prctl.h); libc lacks it.
#[repr(C)]
#[derive(Debug, Default)]
struct PrctlMmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// libc's PR_SET_MM_MAP_SIZE, widened: prctl is variadic and the kernel
/// reads its arguments as unsigned longs.
const PR_SET_MM_MAP_SIZE: libc::c_ulong = libc::PR_SET_MM_MAP_SIZE as libc::c_ulong;

/// Names the process after `execfn` (the path execve was given, as the
/// kernel's begin_new_exec does) and shows the program's strings.
pub fn present(execfn: &OsStr, image: &Image) {
    let base = execfn
        .as_bytes()
        .rsplit(|&b| b == b'/')
        .next()
        .unwrap_or_default();
    if let Ok(name) = CString::new(base) {
        // SAFETY: PR_SET_NAME copies at most 15 bytes of a C string.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }
    if let Err(e) = set_mm_map(image) {
        log::debug!("PR_SET_MM_MAP: {e}: /proc/self/cmdline shows the sandbox");
        room::unsettled();
    }
}

fn set_mm_map(image: &Image) -> std::io::Result<()> {
    let mut size: u32 = 0;
    // SAFETY: the kernel writes its struct's size into `size`.
    if unsafe { libc::prctl(libc::PR_SET_MM, PR_SET_MM_MAP_SIZE, &mut size, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if size as usize != std::mem::size_of::<PrctlMmMap>() {
        return Err(std::io::Error::other(format!(
            "the kernel's prctl_mm_map has {size} bytes"
        )));
    }
    // The sandbox's own code, data and heap bounds stay as they are (its
    // allocator's brk must not move), unless it makes room for a native
    // layout (nothing allocated from here to the prctl).
    let mut map = own_bounds()?;
    room::settle(&mut map.start_brk, &mut map.brk);
    map.start_stack = image.sp;
    map.arg_start = image.args.start;
    map.arg_end = image.args.end;
    map.env_start = image.env.start;
    map.env_end = image.env.end;
    map.auxv = image.auxv.start;
    map.auxv_size = (image.auxv.end - image.auxv.start) as u32;
    map.exe_fd = u32::MAX;
    // SAFETY: `map` is a complete prctl_mm_map of the size the kernel
    // reported; the kernel validates every address in it.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP,
            &map as *const PrctlMmMap,
            size as libc::c_ulong,
            0,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// This process's code, data and brk bounds, from /proc/self/stat (fields
/// 26, 27, 45-47) and the current break.
fn own_bounds() -> std::io::Result<PrctlMmMap> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which may hold spaces: field 3 first.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| std::io::Error::other("unexpected /proc/self/stat"))?;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .copied()
            .ok_or_else(|| std::io::Error::other("short /proc/self/stat"))
    };
    // The kernel's break, not libc's idea of it (loader::room moves it).
    // SAFETY: brk(0) only reports the current break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
    Ok(PrctlMmMap {
        start_code: field(26)?,
        end_code: field(27)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        brk,
        ..PrctlMmMap::default()
    })
}
