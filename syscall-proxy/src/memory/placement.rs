//! Where Linux puts a mapping made without MAP_FIXED, for a program whose
//! layout is native's (under ADDR_NO_RANDOMIZE, loader/room.rs). The
//! sandbox then runs in the legacy layout, where the host kernel would
//! place the program's libraries bottom-up among the sandbox's own
//! memory; natively they go top-down from below the stack's gap. So the
//! sandbox chooses the address itself, as the kernel's search would:
//! the hint if it is free, else the top of the highest gap between the
//! program's mappings below that base, padded and aligned to a huge page
//! where the kernel aligns for transparent huge pages (an anonymous
//! private mapping a multiple of 2 MiB long; a file mapping covering an
//! aligned 2 MiB of a file system whose files do so).

use vmm::AddressSpace;

use super::mm::{PAGE, page_down};

/// A transparent huge page (PMD_SIZE).
const HUGE: u64 = 2 << 20;

/// The top of the 47-bit user address space (TASK_SIZE).
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// The lowest address the search goes to (mmap_min_addr's default).
const LOW_LIMIT: u64 = 0x1_0000;

/// The address Linux would give a mapping of `len` bytes (page-rounded)
/// asked for at `hint` with `flags` of `fd` at `off`, in a layout whose
/// top-down search starts below `base`; None where no gap fits.
pub fn native(
    space: &AddressSpace,
    base: u64,
    hint: u64,
    len: u64,
    flags: i32,
    fd: i32,
    off: u64,
) -> Option<u64> {
    let hint = page_down(hint);
    if hint >= LOW_LIMIT
        && hint.checked_add(len).is_some_and(|end| end <= TASK_SIZE)
        && space.program().overlapping(hint, hint + len).is_empty()
    {
        return Some(hint);
    }
    let anonymous = flags & libc::MAP_ANONYMOUS != 0 || fd < 0;
    let shared = flags & libc::MAP_SHARED != 0;
    // Shared anonymous memory is shmem's, which aligns only where shmem
    // huge pages are enabled (Debian's default: never).
    let huge = if anonymous {
        !shared && hint == 0 && len.is_multiple_of(HUGE)
    } else {
        aligns_for_huge_pages(fd)
    };
    let off = if anonymous { 0 } else { off };
    huge.then(|| huge_aligned(space, base, len, off))
        .flatten()
        .or_else(|| highest_gap(space, base, len))
}

/// thp_get_unmapped_area: where [off, off + len) holds an aligned huge
/// page, the search is for 2 MiB more and the address is moved up to the
/// file offset's alignment (or by 2 MiB where it already is).
fn huge_aligned(space: &AddressSpace, base: u64, len: u64, off: u64) -> Option<u64> {
    let off_align = off.checked_next_multiple_of(HUGE)?;
    let off_end = off.checked_add(len)?;
    if off_end <= off_align || off_end - off_align < HUGE {
        return None;
    }
    let at = highest_gap(space, base, len.checked_add(HUGE)?)?;
    let sub = off.wrapping_sub(at) & (HUGE - 1);
    Some(if sub == 0 { at + HUGE } else { at + sub })
}

/// vm_unmapped_area, top down: the top of the highest gap of `len` bytes
/// between the program's mappings below `base` (what the program
/// unmapped is free again).
fn highest_gap(space: &AddressSpace, base: u64, len: u64) -> Option<u64> {
    space
        .program()
        .gaps(LOW_LIMIT, base)
        .into_iter()
        .rev()
        .find(|&(s, e)| e - s >= len)
        .map(|(_, e)| e - len)
}

/// Whether the file system of `fd` places files' mappings by
/// thp_get_unmapped_area (ext2/3/4 and XFS among those on Debian).
fn aligns_for_huge_pages(fd: i32) -> bool {
    // SAFETY: fstatfs into a struct we own.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; a bad descriptor only fails.
    if unsafe { libc::fstatfs(fd, &mut fs) } != 0 {
        return false;
    }
    [libc::EXT4_SUPER_MAGIC, libc::XFS_SUPER_MAGIC].contains(&fs.f_type)
}

const _: () = assert!(HUGE.is_multiple_of(PAGE));
