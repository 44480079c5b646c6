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

/// What an mmap without MAP_FIXED asks for: `len` bytes (page-rounded)
/// at `hint` (0: none), with `flags`, of `fd` at `off`.
#[derive(Clone, Copy, Debug)]
pub struct Ask {
    pub hint: u64,
    pub len: u64,
    pub flags: i32,
    pub fd: i32,
    pub off: u64,
}

/// The address Linux would give `ask` in a layout whose top-down search
/// starts below `base`: its hint if that is free, else what the search
/// finds; None where no gap fits, or where the file's own placement
/// rules are not Linux's general ones (hugetlbfs, devices).
pub fn native(space: &AddressSpace, base: u64, ask: Ask) -> Option<u64> {
    let rule = Rule::of(ask)?;
    let hint = hinted(ask.hint);
    // A huge-page-aligned file mapping tries its hint with the padding.
    let hint_len = match rule {
        Rule::HugeAligned { .. } => ask.len.checked_add(HUGE)?,
        _ => ask.len,
    };
    if hint != 0
        && hint
            .checked_add(hint_len)
            .is_some_and(|end| end <= TASK_SIZE)
        && space
            .program()
            .overlapping(hint, hint + hint_len)
            .is_empty()
    {
        return Some(hint);
    }
    searched(space, base, ask)
}

/// What Linux's search gives `ask` where its hint is not taken (not free,
/// or, here, where sandbox memory stands).
pub fn searched(space: &AddressSpace, base: u64, ask: Ask) -> Option<u64> {
    match Rule::of(ask)? {
        Rule::HugeAligned { off } => huge_aligned(space, base, ask.len, off),
        Rule::Plain => None,
    }
    .or_else(|| highest_gap(space, base, ask.len))
}

/// How the kernel places a mapping (__get_unmapped_area).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// The top-down search alone.
    Plain,
    /// thp_get_unmapped_area, for the file offset `off` (0 for anonymous
    /// memory).
    HugeAligned { off: u64 },
}

impl Rule {
    fn of(ask: Ask) -> Option<Rule> {
        if ask.flags & libc::MAP_ANONYMOUS != 0 || ask.fd < 0 {
            // Shared anonymous memory is shmem's, which aligns only where
            // shmem huge pages are enabled (Debian's default: never);
            // private memory a multiple of 2 MiB long, asked for without
            // a hint, is aligned.
            let shared = ask.flags & libc::MAP_SHARED != 0;
            let aligned = !shared && hinted(ask.hint) == 0 && ask.len.is_multiple_of(HUGE);
            return Some(if aligned {
                Rule::HugeAligned { off: 0 }
            } else {
                Rule::Plain
            });
        }
        match file_system(ask.fd)? {
            FileSystem::HugeAligning => Some(Rule::HugeAligned { off: ask.off }),
            FileSystem::Plain => Some(Rule::Plain),
        }
    }
}

/// The hint as do_mmap takes it: page-rounded down, and raised to
/// mmap_min_addr where it lies below.
fn hinted(hint: u64) -> u64 {
    match page_down(hint) {
        0 => 0,
        h => h.max(LOW_LIMIT),
    }
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

/// How a regular file's file system places its mappings.
enum FileSystem {
    /// By thp_get_unmapped_area (ext2/3/4 and XFS among Debian's).
    HugeAligning,
    Plain,
}

/// The placement of `fd`'s mappings; None for what has rules of its own
/// (hugetlbfs, whose mappings must be huge-page aligned; devices, some of
/// which align too), left to the host kernel.
fn file_system(fd: i32) -> Option<FileSystem> {
    // SAFETY: plain-data structs, filled by the calls below.
    let (mut st, mut fs): (libc::stat, libc::statfs) = unsafe { std::mem::zeroed() };
    // SAFETY: fstat and fstatfs into structs we own; a bad descriptor
    // only fails (and the host's mmap then says why).
    if unsafe { libc::fstat(fd, &mut st) } != 0 || unsafe { libc::fstatfs(fd, &mut fs) } != 0 {
        return None;
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || fs.f_type == libc::HUGETLBFS_MAGIC {
        return None;
    }
    Some(
        if [libc::EXT4_SUPER_MAGIC, libc::XFS_SUPER_MAGIC].contains(&fs.f_type) {
            FileSystem::HugeAligning
        } else {
            FileSystem::Plain
        },
    )
}

const _: () = assert!(HUGE.is_multiple_of(PAGE));
