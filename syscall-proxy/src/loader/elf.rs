//! Mapping an ELF executable or interpreter into the program's memory, as
//! binfmt_elf's load_elf_binary does.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use linux_loader::elf::{self, Elf64_Ehdr, Elf64_Phdr};
use vm_memory::ByteValued;
use vmm::AddressSpace;

use crate::host;
use crate::loader::room;
use crate::mm::{self, PAGE, page_down, page_up};
use crate::umem;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct LoadError {
    pub path: String,
    pub why: String,
    /// Linux finds this fault only past execve's point of no return, and
    /// then kills the process with SIGSEGV instead of failing the call.
    pub fatal: bool,
}

/// Where an ELF file landed.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Load bias (0 for ET_EXEC).
    pub bias: u64,
    /// Entry point, biased.
    pub entry: u64,
    /// Address of the program headers in memory (AT_PHDR).
    pub phdr: u64,
    pub phnum: u64,
    /// The PT_INTERP path, if any.
    pub interp: Option<String>,
    /// First byte after the highest segment (where brk starts).
    pub end: u64,
    /// PT_GNU_STACK asks for an executable stack.
    pub exec_stack: bool,
}

fn prot_of(flags: u32) -> i32 {
    let mut p = 0;
    if flags & elf::PF_R != 0 {
        p |= libc::PROT_READ;
    }
    if flags & elf::PF_W != 0 {
        p |= libc::PROT_WRITE;
    }
    if flags & elf::PF_X != 0 {
        p |= libc::PROT_EXEC;
    }
    p
}

/// Where a position-independent main program is placed if that is free.
const PIE_BASE: u64 = 0x4000_0000_0000;
/// Free space kept after a position-independent main program for its brk.
const BRK_ROOM: u64 = 64 << 30;
/// Where Linux puts a PIE with an interpreter on x86-64 (two thirds of
/// DEFAULT_MAP_WINDOW), before randomization and alignment.
const ELF_ET_DYN_BASE: u64 = ((1 << 47) - PAGE) / 3 * 2;

/// The largest power-of-two p_align of the PT_LOAD segments, at least a
/// page, as Linux aligns a PIE's base (maximum_alignment).
fn max_align(loads: &[&Elf64_Phdr]) -> u64 {
    loads
        .iter()
        .map(|p| p.p_align)
        .filter(|a| a.is_power_of_two())
        .fold(PAGE, u64::max)
}

/// The ELF header and program headers of `file`.
fn headers(file: &File) -> Result<(Elf64_Ehdr, Vec<Elf64_Phdr>), String> {
    let mut eh = Elf64_Ehdr::default();
    file.read_exact_at(eh.as_mut_slice(), 0)
        .map_err(|e| format!("reading ELF header: {e}"))?;
    if usize::from(eh.e_phentsize) != std::mem::size_of::<Elf64_Phdr>()
        || eh.e_phnum == 0
        || eh.e_phnum > 1024
    {
        return Err("bad program headers".into());
    }
    // The whole table in one read (a start reads two of them).
    let size = std::mem::size_of::<Elf64_Phdr>();
    let mut table = vec![0u8; usize::from(eh.e_phnum) * size];
    file.read_exact_at(&mut table, eh.e_phoff)
        .map_err(|e| format!("reading program headers: {e}"))?;
    let phdrs = table
        .chunks_exact(size)
        .map(|b| {
            let mut ph = Elf64_Phdr::default();
            ph.as_mut_slice().copy_from_slice(b);
            ph
        })
        .collect();
    Ok((eh, phdrs))
}

/// The PT_INTERP path, if any.
fn interp_of(file: &File, phdrs: &[Elf64_Phdr]) -> Result<Option<String>, String> {
    match phdrs.iter().find(|p| p.p_type == elf::PT_INTERP) {
        Some(p) if p.p_filesz > 1 && p.p_filesz < 4096 => {
            let mut buf = vec![0u8; p.p_filesz as usize];
            file.read_exact_at(&mut buf, p.p_offset)
                .map_err(|e| format!("reading PT_INTERP: {e}"))?;
            let s = buf.split(|&b| b == 0).next().unwrap_or_default();
            Ok(Some(String::from_utf8_lossy(s).into_owned()))
        }
        Some(_) => Err("bad PT_INTERP".into()),
        None => Ok(None),
    }
}

/// The interpreter (PT_INTERP) an ELF file asks for.
pub fn interpreter(path: &Path) -> Result<Option<String>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let (_, phdrs) = headers(&file)?;
    interp_of(&file, &phdrs)
}

/// Maps `path`'s PT_LOAD segments into the program's memory; `main` is
/// false for the interpreter.
pub fn load(space: &mut AddressSpace, path: &Path, main: bool) -> Result<Loaded, LoadError> {
    let err = |why: String| LoadError {
        path: path.display().to_string(),
        why,
        fatal: false,
    };
    let file = File::open(path).map_err(|e| err(e.to_string()))?;
    let (eh, phdrs) = headers(&file).map_err(err)?;
    let loads: Vec<&Elf64_Phdr> = phdrs.iter().filter(|p| p.p_type == elf::PT_LOAD).collect();
    if loads.is_empty() {
        return Err(err("no PT_LOAD segment".into()));
    }
    let interp = interp_of(&file, &phdrs).map_err(err)?;
    if let Some(i) = loads.iter().position(|p| p.p_filesz > p.p_memsz) {
        return Err(LoadError {
            fatal: true,
            ..err(format!("PT_LOAD segment {i} has p_filesz > p_memsz"))
        });
    }

    let lo = page_down(loads.iter().map(|p| p.p_vaddr).min().unwrap_or(0));
    let hi = loads
        .iter()
        .map(|p| p.p_vaddr.saturating_add(p.p_memsz))
        .max()
        .and_then(page_up)
        .ok_or_else(|| err("segment addresses overflow".into()))?;
    let span = hi - lo;
    let dynamic = eh.e_type == elf::ET_DYN;
    // A PIE is placed wherever a span of its size is free; a fixed-address
    // executable must find its addresses free of the sandbox's own memory.
    let bias = if dynamic {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // A main program goes low, with room after it for brk to grow, as
        // Linux puts PIEs at ELF_ET_DYN_BASE far below the mmap area; the
        // interpreter goes wherever the kernel picks.
        let base = if main {
            // Where the sandbox keeps out of a native layout's way, where
            // Linux would put it (load_elf_binary), else a place of the
            // sandbox's, free of its own brk.
            let align = max_align(&loads);
            let want = if room::native_layout() && (interp.is_some() || align > PAGE) {
                page_down((ELF_ET_DYN_BASE & !(align - 1)).wrapping_sub(lo))
            } else {
                PIE_BASE
            };
            // Find a hole with the room, then take only the program's part.
            // SAFETY: without MAP_FIXED: the kernel picks free space.
            let hole = unsafe { host::mmap(want, span + BRK_ROOM, libc::PROT_NONE, flags, -1, 0) }
                .map_err(|e| err(format!("no room for {span:#x} bytes: {e:?}")))?;
            // SAFETY: the probe mapping just made.
            let _ = unsafe { host::munmap(hole, span + BRK_ROOM) };
            mm::mmap(
                space,
                hole,
                span,
                libc::PROT_NONE,
                flags | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        } else {
            mm::mmap(space, 0, span, libc::PROT_NONE, flags, -1, 0)
        };
        base.map_err(|e| err(format!("no room for {span:#x} bytes: {e:?}")))? - lo
    } else {
        let flags = libc::MAP_PRIVATE
            | libc::MAP_ANONYMOUS
            | libc::MAP_NORESERVE
            | libc::MAP_FIXED_NOREPLACE;
        mm::mmap(space, lo, span, libc::PROT_NONE, flags, -1, 0)
            .map_err(|e| err(format!("its addresses {lo:#x}-{hi:#x} are not free: {e:?}")))?;
        0
    };

    let fd = file.as_raw_fd();
    let mut mapped_to = lo + bias;
    for p in &loads {
        let prot = prot_of(p.p_flags);
        let start = page_down(bias + p.p_vaddr);
        let file_end = bias + p.p_vaddr + p.p_filesz;
        let mem_end =
            page_up(bias + p.p_vaddr + p.p_memsz).ok_or_else(|| err("segment overflows".into()))?;
        if p.p_vaddr % PAGE != p.p_offset % PAGE {
            return Err(err(
                "segment offset and address disagree modulo the page size".into(),
            ));
        }
        // Holes between segments are not mapped, as after load_elf_binary.
        if start > mapped_to {
            mm::munmap(space, mapped_to, start - mapped_to).map_err(|e| err(format!("{e:?}")))?;
        }
        let fixed = libc::MAP_PRIVATE | libc::MAP_FIXED;
        let file_pages_end = page_up(file_end).unwrap_or(mem_end).min(mem_end);
        if p.p_filesz > 0 {
            // Writable while the bss tail of the last file page is zeroed.
            let p_map = if p.p_memsz > p.p_filesz {
                prot | libc::PROT_WRITE
            } else {
                prot
            };
            mm::mmap(
                space,
                start,
                file_pages_end - start,
                p_map,
                fixed,
                fd,
                page_down(p.p_offset),
            )
            .map_err(|e| err(format!("mapping segment at {start:#x}: {e:?}")))?;
            if p.p_memsz > p.p_filesz && file_end % PAGE != 0 {
                let tail = (PAGE - file_end % PAGE) as usize;
                umem::write_bytes(space, file_end, &vec![0; tail])
                    .map_err(|e| err(format!("zeroing the bss tail at {file_end:#x}: {e:?}")))?;
            }
            if p_map != prot {
                mm::mprotect(
                    space,
                    libc::SYS_mprotect as u64,
                    [start, file_pages_end - start, prot as u64, 0, 0, 0],
                )
                .map_err(|e| err(format!("{e:?}")))?;
            }
        }
        let anon_start = if p.p_filesz > 0 {
            file_pages_end
        } else {
            start
        };
        if mem_end > anon_start {
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
            mm::mmap(space, anon_start, mem_end - anon_start, prot, flags, -1, 0)
                .map_err(|e| err(format!("mapping bss at {anon_start:#x}: {e:?}")))?;
        }
        mapped_to = mapped_to.max(mem_end);
    }

    let phdr = match phdrs.iter().find(|p| p.p_type == elf::PT_PHDR) {
        Some(p) => bias + p.p_vaddr,
        None => loads
            .iter()
            .find(|p| p.p_offset <= eh.e_phoff && eh.e_phoff < p.p_offset + p.p_filesz)
            .map(|p| bias + p.p_vaddr + (eh.e_phoff - p.p_offset))
            .unwrap_or(0),
    };
    Ok(Loaded {
        bias,
        entry: bias + eh.e_entry,
        phdr,
        phnum: u64::from(eh.e_phnum),
        interp,
        end: bias + hi,
        exec_stack: phdrs
            .iter()
            .any(|p| p.p_type == libc::PT_GNU_STACK && p.p_flags & elf::PF_X != 0),
    })
}
