//! Where an address of the program is: " (FILE: SYMBOL+OFFSET, SRC:LINE)"
//! from the file mapped there (the program's mappings are the sandbox's
//! own, listed in /proc/self/maps), its ELF symbols and DWARF lines
//! (addr2line).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// ELF e_type of a position-dependent executable.
const ET_EXEC: u16 = 2;

/// The file mapped at `addr`, with its load bias (what to subtract to get
/// the ELF's own addresses).
fn mapping(addr: u64) -> Option<(PathBuf, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let mut base_of: HashMap<&str, u64> = HashMap::new();
    let mut found = None;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let (_perms, offset, _dev, _inode) = (f.next()?, f.next()?, f.next()?, f.next()?);
        let Some(path) = f.next().filter(|p| p.starts_with('/')) else {
            continue;
        };
        let (start, end) = range.split_once('-')?;
        let start = u64::from_str_radix(start, 16).ok()?;
        let end = u64::from_str_radix(end, 16).ok()?;
        if u64::from_str_radix(offset, 16).ok()? == 0 {
            base_of.entry(path).or_insert(start);
        }
        if (start..end).contains(&addr) {
            found = Some(path);
        }
    }
    let path = found?;
    let base = *base_of.get(path)?;
    let mut header = [0u8; 18];
    std::fs::File::open(path)
        .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut header, 0))
        .ok()?;
    let bias = if u16::from_le_bytes([header[16], header[17]]) == ET_EXEC {
        0
    } else {
        base
    };
    Some((PathBuf::from(path), bias))
}

thread_local! {
    /// One loader per file, kept by the thread (a loader is not Sync): a
    /// program may take many #UDs.
    static LOADERS: RefCell<Vec<(PathBuf, Option<Rc<addr2line::Loader>>)>> =
        const { RefCell::new(Vec::new()) };
}

fn loader(path: &Path) -> Option<Rc<addr2line::Loader>> {
    LOADERS.with_borrow_mut(|l| {
        if let Some((_, loaded)) = l.iter().find(|(p, _)| p == path) {
            return loaded.clone();
        }
        let loaded = addr2line::Loader::new(path).ok().map(Rc::new);
        l.push((path.to_path_buf(), loaded.clone()));
        loaded
    })
}

/// " (FILE: SYMBOL+OFFSET, SRC:LINE)", as much as is known; empty if no
/// file is mapped at `addr`.
pub fn place(addr: u64) -> String {
    let Some((path, bias)) = mapping(addr) else {
        return String::new();
    };
    let probe = addr - bias;
    let mut out = format!(" ({}", path.display());
    if let Some(l) = loader(&path) {
        if let Some(sym) = l.find_symbol_info(probe) {
            out += &format!(": {}+{:#x}", sym.name(), probe - sym.address());
        }
        if let Ok(Some(loc)) = l.find_location(probe)
            && let (Some(file), Some(line)) = (loc.file, loc.line)
        {
            out += &format!(", {file}:{line}");
        }
    }
    out + ")"
}
