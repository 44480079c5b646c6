//! The program's memory: every change goes to the host first, then to the
//! guest's mirror of it (vmm::AddressSpace), so the two never disagree when
//! the vCPU runs.
//!
//! The program owns the mappings it made (and the loader made for it); the
//! rest of the host address space is the sandbox's. Calls that would touch
//! the sandbox's memory fail as Linux fails them for unmapped or occupied
//! ranges.

use vmm::{AddressSpace, Prot};

use super::placement;
use crate::host::{self, Errno, SysResult};
use crate::loader::room;

pub const PAGE: u64 = 4096;

pub fn page_up(x: u64) -> Option<u64> {
    x.checked_add(PAGE - 1).map(|v| v & !(PAGE - 1))
}

pub fn page_down(x: u64) -> u64 {
    x & !(PAGE - 1)
}

/// The top of the user address space the program may use (47-bit).
const USER_TOP: u64 = placement::TASK_SIZE;

/// Page-rounded [addr, addr + len), or EINVAL/ENOMEM as mmap gives them.
fn range(addr: u64, len: u64) -> Result<(u64, u64), Errno> {
    if !addr.is_multiple_of(PAGE) {
        return Err(Errno(libc::EINVAL));
    }
    let len = page_up(len).ok_or(Errno(libc::ENOMEM))?;
    let end = addr.checked_add(len).ok_or(Errno(libc::ENOMEM))?;
    Ok((addr, end))
}

/// Claims the parts of [start, end) the program does not own, proving they
/// are free on the host: a PROT_NONE placeholder is mapped there (replaced
/// by the caller's MAP_FIXED mapping). Fails with `conflict` if any part is
/// sandbox memory. Returns the placeholders, to undo on failure.
fn claim(
    space: &AddressSpace,
    start: u64,
    end: u64,
    conflict: i32,
) -> Result<Vec<(u64, u64)>, Errno> {
    if end > USER_TOP {
        return Err(Errno(libc::ENOMEM));
    }
    let mut claimed = Vec::new();
    // Retired ranges are the program's already (reserved by `retire`).
    let free = space
        .program()
        .gaps(start, end)
        .into_iter()
        .flat_map(|(s, e)| space.retired().gaps(s, e));
    for (s, e) in free.collect::<Vec<_>>() {
        let flags = libc::MAP_PRIVATE
            | libc::MAP_ANONYMOUS
            | libc::MAP_NORESERVE
            | libc::MAP_FIXED_NOREPLACE;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces anything.
        match unsafe { host::mmap(s, e - s, libc::PROT_NONE, flags, -1, 0) } {
            Ok(got) if got == s => claimed.push((s, e)),
            other => {
                if let Ok(got) = other {
                    // A kernel without MAP_FIXED_NOREPLACE treats it as a hint.
                    // SAFETY: the mapping just made, at an address the kernel chose.
                    let _ = unsafe { host::munmap(got, e - s) };
                }
                release(&claimed);
                return Err(Errno(conflict));
            }
        }
    }
    Ok(claimed)
}

fn release(claimed: &[(u64, u64)]) {
    for &(s, e) in claimed {
        // SAFETY: a placeholder claimed by `claim`.
        let _ = unsafe { host::munmap(s, e - s) };
    }
}

/// Takes [start, end) out of the guest's view before the host changes it:
/// once this returns, no vCPU can reach those pages (KVM applied the flush
/// to all), so a thread racing with the change faults as natively rather
/// than reaching host pages in flux. Returns the pieces, to restore if
/// the host call fails.
fn withdraw(
    space: &mut AddressSpace,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, u64, Prot)>, Errno> {
    let old = space.program().overlapping(start, end);
    for &(s, e, _) in &old {
        space.unmap_program(s, e);
    }
    flush(space)?;
    Ok(old)
}

/// Puts back what [`withdraw`] took, after the host call failed.
fn restore(space: &mut AddressSpace, pieces: &[(u64, u64, Prot)]) {
    for &(s, e, prot) in pieces {
        if let Err(e) = space.map_program(s, e, prot) {
            log::error!("guest mirror: {e}");
        }
    }
}

fn flush(space: &mut AddressSpace) -> Result<(), Errno> {
    space.flush().map_err(|e| {
        log::error!("flushing the guest's translations: {e}");
        Errno(libc::ENOMEM)
    })
}

/// mmap(2) for the program.
pub fn mmap(
    space: &mut AddressSpace,
    addr: u64,
    len: u64,
    prot: i32,
    flags: i32,
    fd: i32,
    off: u64,
) -> SysResult {
    if len == 0 {
        return Err(Errno(libc::EINVAL));
    }
    let len = page_up(len).ok_or(Errno(libc::ENOMEM))?;
    // Placement rules of their own (below 2 GiB, huge-page aligned, a
    // stack guard) are the kernel's to follow.
    let placed = libc::MAP_32BIT | libc::MAP_HUGETLB | libc::MAP_GROWSDOWN;
    if flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) == 0 {
        // In a native layout, where Linux would put it: its hint, else
        // what Linux's search finds; the host's own placement where
        // sandbox memory stands at both.
        if let Some(base) = room::mmap_base().filter(|_| flags & placed == 0) {
            let ask = placement::Ask {
                hint: addr,
                len,
                flags,
                fd,
                off,
            };
            let req = Request {
                prot,
                flags: flags | libc::MAP_FIXED_NOREPLACE,
                fd,
                off,
            };
            if let Some(at) = placement::native(space, base, ask) {
                if let Some(got) = map_placed(space, at, len, req) {
                    return got;
                }
                if let Some(again) = placement::searched(space, base, ask).filter(|&a| a != at)
                    && let Some(got) = map_placed(space, again, len, req)
                {
                    return got;
                }
            }
        }
        if let Some(at) = reuse(space, addr, len).filter(|_| flags & placed == 0) {
            // SAFETY: a retired range, reserved for the program alone.
            let got = unsafe { host::mmap(at, len, prot, flags | libc::MAP_FIXED, fd, off)? };
            map_new(space, got, len, prot)?;
            return Ok(got);
        }
        // Without MAP_FIXED the kernel only picks free space: never the
        // sandbox's, never the program's.
        // SAFETY: without MAP_FIXED the kernel picks free space.
        let got = unsafe { host::mmap(addr, len, prot, flags, fd, off)? };
        map_new(space, got, len, prot)?;
        return Ok(got);
    }
    map_fixed(
        space,
        addr,
        len,
        Request {
            prot,
            flags,
            fd,
            off,
        },
    )
}

/// A mapping at the address placement chose; None where sandbox memory
/// stands there.
fn map_placed(space: &mut AddressSpace, at: u64, len: u64, req: Request) -> Option<SysResult> {
    match map_fixed(space, at, len, req) {
        Err(Errno(libc::EEXIST)) => {
            log::debug!("mmap: sandbox memory at {at:#x}, where Linux would map");
            None
        }
        got => Some(got),
    }
}

/// What an mmap asks for besides its address and length.
#[derive(Clone, Copy)]
struct Request {
    prot: i32,
    flags: i32,
    fd: i32,
    off: u64,
}

/// mmap with MAP_FIXED or MAP_FIXED_NOREPLACE in the flags, `len` rounded.
fn map_fixed(space: &mut AddressSpace, addr: u64, len: u64, req: Request) -> SysResult {
    let Request {
        prot,
        flags,
        fd,
        off,
    } = req;
    let (start, end) = range(addr, len)?;
    let noreplace = flags & libc::MAP_FIXED_NOREPLACE != 0;
    if !noreplace {
        lent_refusal(space, start, end)?;
    }
    if noreplace && !space.program().overlapping(start, end).is_empty() {
        return Err(Errno(libc::EEXIST));
    }
    let claimed = claim(
        space,
        start,
        end,
        if noreplace {
            libc::EEXIST
        } else {
            libc::ENOMEM
        },
    )?;
    // The placeholders stand where NOREPLACE would now refuse.
    let flags = (flags & !libc::MAP_FIXED_NOREPLACE) | libc::MAP_FIXED;
    let replaced = withdraw(space, start, end)?;
    // SAFETY: the range holds only program mappings and the placeholders
    // just claimed.
    match unsafe { host::mmap(start, len, prot, flags, fd, off) } {
        Ok(got) => {
            map_new(space, got, len, prot)?;
            Ok(got)
        }
        Err(e) => {
            restore(space, &replaced);
            release(&claimed);
            Err(e)
        }
    }
}

/// Where a mapping of `len` bytes without MAP_FIXED goes in the retired
/// ranges, where the kernel would not put it: the hint if it fits there,
/// else the top of the highest one that fits (the kernel allocates top
/// down), so the program's address space does not grow with every
/// munmap + mmap.
fn reuse(space: &AddressSpace, hint: u64, len: u64) -> Option<u64> {
    let retired = space.retired();
    if hint != 0
        && hint.is_multiple_of(PAGE)
        && let Some((_, e, ())) = retired.get(hint)
        && e - hint >= len
    {
        return Some(hint);
    }
    retired
        .iter()
        .filter(|&(s, e, ())| e - s >= len)
        .last()
        .map(|(_, e, ())| e - len)
}

/// Records a mapping just made on the host; if the guest cannot mirror it
/// (out of page-table or guest-physical space), it is undone: the call
/// fails with ENOMEM and host and guest still agree.
fn map_new(space: &mut AddressSpace, start: u64, len: u64, prot: i32) -> Result<(), Errno> {
    space_map(space, start, len, prot).inspect_err(|_| {
        // SAFETY: the program mapping just made.
        let _ = unsafe { host::munmap(start, len) };
        space.unmap_program(start, start + len);
    })
}

fn space_map(space: &mut AddressSpace, start: u64, len: u64, prot: i32) -> Result<(), Errno> {
    space
        .map_program(start, start + len, Prot::from_linux(prot))
        .map_err(|e| {
            log::error!("guest mirror: {e}");
            Errno(libc::ENOMEM)
        })
}

/// munmap(2): unmaps only what the program owns; the rest is "not mapped".
pub fn munmap(space: &mut AddressSpace, addr: u64, len: u64) -> SysResult {
    if len == 0 {
        return Err(Errno(libc::EINVAL));
    }
    let (start, end) = range(addr, len)?;
    lent_refusal(space, start, end)?;
    // The program's vDSO leaves its view only; it stays the sandbox's on
    // the host (flushed with the rest by `withdraw`).
    space.withdraw_lent(start, end);
    let pieces = withdraw(space, start, end)?;
    for (i, &(s, e, _)) in pieces.iter().enumerate() {
        if let Err(err) = retire(space, s, e) {
            // Still the program's on the host: back in the guest's view
            // too (no host change will invalidate what was withdrawn).
            restore(space, &pieces[i..]);
            return Err(err);
        }
    }
    Ok(0)
}

/// What munmap, mprotect or mremap of [start, end) fails with natively
/// where it reaches the host's vDSO pages lent to the program: EPERM if
/// they are sealed (Linux 6.15's CONFIG_MSEAL_SYSTEM_MAPPINGS), EINVAL if
/// one of them would be split (the kernel refuses to split special
/// mappings).
fn lent_refusal(space: &AddressSpace, start: u64, end: u64) -> Result<(), Errno> {
    let lent = space.lent();
    for (s, e, _) in lent.overlapping(start, end) {
        let (_, me, l) = lent.get(s).expect("an overlapping piece");
        // An mprotect to the protection the whole mapping has changes
        // nothing, and fails only where it is sealed.
        let args = [l.start, me - l.start, l.prot.0.into(), 0, 0, 0];
        // SAFETY: the sandbox's own vDSO pages, given the protection they
        // have: nothing changes.
        if unsafe { host::syscall(libc::SYS_mprotect as u64, args) } == Err(Errno(libc::EPERM)) {
            return Err(Errno(libc::EPERM));
        }
        if s > l.start || e < me {
            return Err(Errno(libc::EINVAL));
        }
    }
    Ok(())
}

/// Unmaps a program range on the host and keeps it reserved (see
/// AddressSpace::retired): a PROT_NONE mapping replaces the program's, so
/// its pages and file go, and a system call another thread has blocked
/// on the range gets EFAULT, as natively, never the sandbox's memory.
/// In a native layout, where the sandbox's memory cannot be, it is simply
/// unmapped, as natively.
fn retire(space: &mut AddressSpace, s: u64, e: u64) -> Result<(), Errno> {
    if room::out_of_sandbox_reach(s, e) {
        // SAFETY: a program range, out of the guest's view, where the
        // sandbox's memory never goes.
        unsafe { host::munmap(s, e - s)? };
        return Ok(());
    }
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED;
    // SAFETY: a program range, out of the guest's view.
    unsafe { host::mmap(s, e - s, libc::PROT_NONE, flags, -1, 0)? };
    space.retire(s, e);
    Ok(())
}

/// Whether the program owns every page of [start, end).
fn owns(space: &AddressSpace, start: u64, end: u64) -> bool {
    space.program().gaps(start, end).is_empty()
}

/// mprotect(2) and pkey_mprotect(2): ENOMEM unless the program owns the
/// whole range, as for an unmapped hole.
pub fn mprotect(space: &mut AddressSpace, nr: u64, args: [u64; 6]) -> SysResult {
    let (start, end) = range(args[0], args[1])?;
    lent_refusal(space, start, end)?;
    if !owns(space, start, end) {
        return Err(Errno(libc::ENOMEM));
    }
    // Rights taken away go first in the guest (see `withdraw`), rights
    // given go after the host's.
    let new = Prot::from_linux(args[2] as i32);
    let old = space.program().overlapping(start, end);
    if old.iter().any(|&(_, _, p)| p.0 & !new.0 != 0) {
        for &(s, e, p) in &old {
            if let Err(err) = space.map_program(s, e, Prot(p.0 & new.0)) {
                log::error!("guest mirror: {err}");
                return Err(Errno(libc::ENOMEM));
            }
        }
        flush(space)?;
    }
    // SAFETY: the range is program memory; protection changes there cannot
    // affect the sandbox.
    if let Err(e) = unsafe { host::syscall(nr, args) } {
        restore(space, &old);
        return Err(e);
    }
    space_map(space, start, end - start, args[2] as i32)?;
    Ok(0)
}

/// mremap(2).
pub fn mremap(space: &mut AddressSpace, args: [u64; 6]) -> SysResult {
    let [old, old_len, new_len, flags, _, _] = args;
    let flags = flags as i32;
    let (Ok((old_start, old_end)), Some(new_len)) = (range(old, old_len), page_up(new_len)) else {
        return remap(space, args);
    };
    let mut moves = flags & libc::MREMAP_DONTUNMAP != 0;
    let mut released = Vec::new();
    if flags & (libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP) == 0
        && old_len != 0
        && new_len > old_end - old_start
        && owns(space, old_start, old_end)
    {
        let new_end = old_start.saturating_add(new_len);
        if space.program().overlapping(old_end, new_end).is_empty() {
            // Natively it grows in place: the program's reservations in
            // the way (what it unmapped there) are let go on the host, so
            // that the host grows it there too.
            released = let_go(space, old_end, new_end);
        } else {
            moves = flags & libc::MREMAP_MAYMOVE != 0;
        }
    }
    // In a native layout, a move goes where Linux would put it (anonymous
    // private memory's rule, the common case: realloc's), with
    // MREMAP_FIXED, unless sandbox memory stands there.
    if moves
        && flags & libc::MREMAP_FIXED == 0
        && let Some(base) = room::mmap_base()
    {
        let ask = placement::Ask {
            hint: 0,
            len: new_len,
            flags: libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            fd: -1,
            off: 0,
        };
        if let Some(to) = placement::native(space, base, ask)
            && claim(space, to, to + new_len, libc::EEXIST)
                .map(|c| release(&c))
                .is_ok()
        {
            let fixed = [
                old,
                old_len,
                args[2],
                (flags | libc::MREMAP_FIXED) as u64,
                to,
                0,
            ];
            return remap(space, fixed);
        }
    }
    let done = remap(space, args);
    // What the mapping did not grow into after all (the call failed, or
    // the host moved it) is reserved again.
    reserve_again(space, &released);
    done
}

/// Unmaps the program's reservations in [start, end) on the host, for a
/// mapping to grow into; returns them.
fn let_go(space: &mut AddressSpace, start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut gone = Vec::new();
    for (s, e, ()) in space.retired().overlapping(start, end) {
        // SAFETY: a reservation of the program's, out of the guest's view;
        // `reserve_again` puts back what no mapping takes.
        if unsafe { host::munmap(s, e - s) }.is_ok() {
            space.unretire(s, e);
            gone.push((s, e));
        }
    }
    gone
}

/// Reserves again the parts of `pieces` no program mapping holds (see
/// `retire`), where anything of the sandbox's might go.
fn reserve_again(space: &mut AddressSpace, pieces: &[(u64, u64)]) {
    for &(s, e) in pieces {
        for (gs, ge) in space.program().gaps(s, e) {
            if room::out_of_sandbox_reach(gs, ge) {
                continue;
            }
            let flags = libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE;
            // SAFETY: NOREPLACE never replaces anything.
            if unsafe { host::mmap(gs, ge - gs, libc::PROT_NONE, flags, -1, 0) } == Ok(gs) {
                space.retire(gs, ge);
            }
        }
    }
}

fn remap(space: &mut AddressSpace, args: [u64; 6]) -> SysResult {
    let [old, old_len, new_len, flags, new_addr, _] = args;
    let flags = flags as i32;
    let (old_start, old_end) = range(old, old_len)?;
    lent_refusal(space, old_start, old_end)?;
    let Some((_, _, prot)) = space.program().get(old_start) else {
        return Err(Errno(libc::EFAULT));
    };
    if old_len == 0 || !owns(space, old_start, old_end) {
        // old_len 0 duplicates shared mappings; not supported here.
        return Err(Errno(libc::EFAULT));
    }
    let new_len = page_up(new_len).ok_or(Errno(libc::ENOMEM))?;
    let claimed = if flags & libc::MREMAP_FIXED != 0 {
        let (s, e) = range(new_addr, new_len)?;
        lent_refusal(space, s, e)?;
        // The target may overlap the old range, which the program owns.
        claim(space, s, e, libc::ENOMEM)?
    } else {
        Vec::new()
    };
    // The pages may move: out of the guest's view first (see `withdraw`).
    let mut moved = withdraw(space, old_start, old_end)?;
    if flags & libc::MREMAP_FIXED != 0 {
        let (s, e) = range(new_addr, new_len)?;
        moved.extend(withdraw(space, s, e)?);
    }
    // SAFETY: the old range is program memory and a fixed target was
    // claimed above; otherwise the kernel picks free space.
    let got = match unsafe { host::syscall(libc::SYS_mremap as u64, args) } {
        Ok(got) => got,
        Err(e) => {
            restore(space, &moved);
            release(&claimed);
            return Err(e);
        }
    };
    let prot_bits = prot.0 as i32;
    if got != old_start && flags & libc::MREMAP_DONTUNMAP != 0 {
        // The old range stays mapped (now empty anonymous memory).
        restore(space, &withdrawn_in(&moved, old_start, old_end));
    } else {
        // What the kernel unmapped is reserved again at once (the
        // NOREPLACE keeps anything allocated there meanwhile).
        let gone = if got == old_start {
            (old_start + new_len.min(old_end - old_start), old_end)
        } else {
            (old_start, old_end)
        };
        reserve_again(space, &[gone]);
    }
    space_map(space, got, new_len, prot_bits)?;
    Ok(got)
}

/// The pieces of `pieces` within [start, end).
fn withdrawn_in(pieces: &[(u64, u64, Prot)], start: u64, end: u64) -> Vec<(u64, u64, Prot)> {
    pieces
        .iter()
        .filter(|&&(s, e, _)| s < end && e > start)
        .map(|&(s, e, p)| (s.max(start), e.min(end), p))
        .collect()
}

/// madvise, mlock, munlock, msync, mincore: allowed on program memory only.
pub fn ranged(space: &AddressSpace, nr: u64, args: [u64; 6]) -> SysResult {
    let start = page_down(args[0]);
    let end = page_up(args[0].saturating_add(args[1])).ok_or(Errno(libc::ENOMEM))?;
    if !owns(space, start, end) {
        return Err(Errno(libc::ENOMEM));
    }
    // SAFETY: the range is program memory; any output pointer was
    // validated by the caller.
    unsafe { host::syscall(nr, args) }
}

/// The program's file-mapped pages that lie past the end of their file
/// (an access there is SIGBUS natively), from /proc/self/maps and the
/// files' sizes now.
pub fn past_end_of_file(space: &AddressSpace) -> Vec<(u64, u64)> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in maps.lines().filter_map(vmm::maps::parse_line) {
        let (s, e, offset) = (m.start, m.end, m.offset);
        if m.inode == "0" || space.program().overlapping(s, e).is_empty() {
            continue;
        }
        // The mapping's own link: the file even if renamed or deleted.
        let Ok(meta) = std::fs::metadata(format!("/proc/self/map_files/{s:x}-{e:x}")) else {
            continue;
        };
        let backed = page_up(meta.len().saturating_sub(offset)).unwrap_or(u64::MAX);
        if backed < e - s {
            out.push((s + backed, e));
        }
    }
    out
}

/// The program's heap (brk), emulated with anonymous mappings: the host's
/// own brk belongs to the sandbox's allocator.
#[derive(Clone, Copy, Debug)]
pub struct Brk {
    pub start: u64,
    pub current: u64,
}

impl Brk {
    pub fn new(start: u64) -> Brk {
        Brk {
            start,
            current: start,
        }
    }

    /// brk(2): returns the new break, or the old one on failure.
    pub fn set(&mut self, space: &mut AddressSpace, want: u64) -> u64 {
        if want < self.start {
            return self.current;
        }
        let (Some(old_top), Some(new_top)) = (page_up(self.current), page_up(want)) else {
            return self.current;
        };
        if new_top > old_top {
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
            if mmap(
                space,
                old_top,
                new_top - old_top,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
            .is_err()
            {
                return self.current;
            }
        } else if new_top < old_top && munmap(space, new_top, old_top - new_top).is_err() {
            return self.current;
        }
        self.current = want;
        want
    }
}
