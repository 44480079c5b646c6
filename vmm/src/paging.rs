//! Guest page tables (4-level, 4 KiB leaves) as pure data operations.
//!
//! The guest's virtual addresses equal the host's; these tables translate
//! them to the guest-physical addresses the memslots back. Everything here
//! works on a [`FrameStore`], so it is tested on plain memory without KVM.

use std::collections::HashMap;

use x86_64::structures::paging::PageTableFlags as F;

pub const PAGE_SIZE: u64 = 4096;
const ENTRIES: usize = 512;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Levels from the root: PML4 (bits 39..47), PDPT, PD, PT (bits 12..20).
const SHIFTS: [u32; 4] = [39, 30, 21, 12];

/// Where table pages live: reads and writes entries, allocates zeroed pages.
pub trait FrameStore {
    fn read(&self, table: u64, index: usize) -> u64;
    fn write(&mut self, table: u64, index: usize, value: u64);
    /// A zeroed page's guest-physical address, or None when exhausted.
    fn alloc(&mut self) -> Option<u64>;
}

/// Access rights of a present 4 KiB page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub write: bool,
    pub exec: bool,
    pub user: bool,
}

impl Access {
    /// The guest runtime's code, reachable from CPL3 (see vm.rs).
    pub const USER_CODE: Access = Access {
        write: false,
        exec: true,
        user: true,
    };
    /// Descriptor tables only the CPU reads.
    pub const KERNEL_RO: Access = Access {
        write: false,
        exec: false,
        user: false,
    };
    /// CPL0 stacks, GDT and TSS.
    pub const KERNEL_RW: Access = Access {
        write: true,
        exec: false,
        user: false,
    };
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("out of page-table pages")]
pub struct OutOfFrames;

/// Whether a change to present entries needs the guest's TLB (and, on a
/// shadow-paging KVM, the shadow tables) flushed before it is relied upon.
/// Adding rights needs no flush: a stale narrower entry only causes a fault
/// the VMM retries (SDM Vol. 3A 4.10.4.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct NeedsFlush(pub bool);

#[derive(Clone)]
pub struct PageTables<S> {
    root: u64,
    store: S,
}

fn leaf_entry(gpa: u64, a: Access) -> u64 {
    let mut f = F::PRESENT | F::ACCESSED | F::DIRTY;
    if a.write {
        f |= F::WRITABLE;
    }
    if a.user {
        f |= F::USER_ACCESSIBLE;
    }
    if !a.exec {
        f |= F::NO_EXECUTE;
    }
    (gpa & ADDR_MASK) | f.bits()
}

/// Whether replacing `old` by `new` takes away something a TLB may cache.
fn narrows(old: u64, new: u64) -> bool {
    let p = F::PRESENT.bits();
    if old & p == 0 {
        return false;
    }
    if new & p == 0 || old & ADDR_MASK != new & ADDR_MASK {
        return true;
    }
    let lost_write = old & F::WRITABLE.bits() != 0 && new & F::WRITABLE.bits() == 0;
    let lost_user = old & F::USER_ACCESSIBLE.bits() != 0 && new & F::USER_ACCESSIBLE.bits() == 0;
    let lost_exec = old & F::NO_EXECUTE.bits() == 0 && new & F::NO_EXECUTE.bits() != 0;
    lost_write || lost_user || lost_exec
}

fn index(va: u64, level: usize) -> usize {
    ((va >> SHIFTS[level]) as usize) & (ENTRIES - 1)
}

impl<S: FrameStore> PageTables<S> {
    pub fn new(mut store: S) -> Result<Self, OutOfFrames> {
        let root = store.alloc().ok_or(OutOfFrames)?;
        Ok(PageTables { root, store })
    }

    /// The value for CR3.
    pub fn root(&self) -> u64 {
        self.root
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The leaf table covering `va`, creating missing levels if `create`.
    fn leaf_table(&mut self, va: u64, create: bool) -> Result<Option<u64>, OutOfFrames> {
        let mut table = self.root;
        for level in 0..3 {
            let i = index(va, level);
            let e = self.store.read(table, i);
            table = if e & F::PRESENT.bits() != 0 {
                e & ADDR_MASK
            } else if create {
                let t = self.store.alloc().ok_or(OutOfFrames)?;
                // Upper levels grant everything; the leaf decides.
                let f = F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE | F::ACCESSED;
                self.store.write(table, i, t | f.bits());
                t
            } else {
                return Ok(None);
            };
        }
        Ok(Some(table))
    }

    /// Maps each page of [start, end) to `gpa(va)` with `access`.
    pub fn map(
        &mut self,
        start: u64,
        end: u64,
        access: Access,
        gpa: impl Fn(u64) -> u64,
    ) -> Result<NeedsFlush, OutOfFrames> {
        let mut flush = false;
        let mut va = start;
        while va < end {
            let table = self.leaf_table(va, true)?.expect("created");
            // Fill this leaf table up to its end or `end`.
            let table_end = ((va >> 21) + 1) << 21;
            while va < end.min(table_end) {
                let i = index(va, 3);
                let new = leaf_entry(gpa(va), access);
                flush |= narrows(self.store.read(table, i), new);
                self.store.write(table, i, new);
                va += PAGE_SIZE;
            }
        }
        Ok(NeedsFlush(flush))
    }

    /// Makes [start, end) not present.
    pub fn unmap(&mut self, start: u64, end: u64) -> NeedsFlush {
        let mut flush = false;
        let mut va = start;
        while va < end {
            let table_end = ((va >> 21) + 1) << 21;
            // With create = false no allocation happens, so no error.
            if let Ok(Some(table)) = self.leaf_table(va, false) {
                while va < end.min(table_end) {
                    let i = index(va, 3);
                    flush |= self.store.read(table, i) & F::PRESENT.bits() != 0;
                    self.store.write(table, i, 0);
                    va += PAGE_SIZE;
                }
            }
            va = table_end;
        }
        NeedsFlush(flush)
    }

    /// The leaf entry for `va` (0 when not mapped).
    pub fn entry(&mut self, va: u64) -> u64 {
        match self.leaf_table(va, false) {
            Ok(Some(t)) => self.store.read(t, index(va, 3)),
            _ => 0,
        }
    }

    /// Builds, in `frames` (grown from the store as needed, kept by the
    /// caller for the next call), a root that translates as this one does
    /// except that each `(va, access)` page has `access`: the paths to
    /// those pages are private copies, every other entry is shared. Returns
    /// the root, for CR3. Pages not mapped here stay unmapped.
    pub fn overlay(
        &mut self,
        frames: &mut Vec<u64>,
        pages: &[(u64, Access)],
    ) -> Result<u64, OutOfFrames> {
        let mut used = 0;
        let mut take = |store: &mut S| -> Result<u64, OutOfFrames> {
            if used == frames.len() {
                frames.push(store.alloc().ok_or(OutOfFrames)?);
            }
            used += 1;
            Ok(frames[used - 1])
        };
        let copy = |store: &mut S, from: u64, to: u64| {
            for i in 0..ENTRIES {
                let e = store.read(from, i);
                store.write(to, i, e);
            }
        };
        let root = take(&mut self.store)?;
        copy(&mut self.store, self.root, root);
        // Shared table -> its private copy, per level below the root.
        let mut copies: HashMap<u64, u64> = HashMap::new();
        for &(va, access) in pages {
            let (mut shared, mut private) = (self.root, root);
            let mut complete = true;
            for level in 0..3 {
                let i = index(va, level);
                let e = self.store.read(shared, i);
                if e & F::PRESENT.bits() == 0 {
                    complete = false;
                    break;
                }
                let next = e & ADDR_MASK;
                let mine = match copies.get(&next) {
                    Some(&t) => t,
                    None => {
                        let t = take(&mut self.store)?;
                        copy(&mut self.store, next, t);
                        copies.insert(next, t);
                        t
                    }
                };
                self.store.write(private, i, mine | (e & !ADDR_MASK));
                (shared, private) = (next, mine);
            }
            if complete {
                let e = self.store.read(shared, index(va, 3));
                if e & F::PRESENT.bits() != 0 {
                    self.store
                        .write(private, index(va, 3), leaf_entry(e & ADDR_MASK, access));
                }
            }
        }
        Ok(root)
    }

    /// Translates `va` as the MMU would for an access with `need` rights.
    pub fn translate(&mut self, va: u64, need: Access) -> Option<u64> {
        let e = self.entry(va);
        let ok = e & F::PRESENT.bits() != 0
            && (!need.write || e & F::WRITABLE.bits() != 0)
            && (!need.user || e & F::USER_ACCESSIBLE.bits() != 0)
            && (!need.exec || e & F::NO_EXECUTE.bits() == 0);
        ok.then_some((e & ADDR_MASK) | (va & (PAGE_SIZE - 1)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Table pages in a hash map, allocated from 0x1000 upwards.
    #[derive(Default)]
    pub struct MapStore {
        pages: HashMap<u64, Box<[u64; ENTRIES]>>,
        next: u64,
    }

    impl FrameStore for MapStore {
        fn read(&self, table: u64, index: usize) -> u64 {
            self.pages[&table][index]
        }
        fn write(&mut self, table: u64, index: usize, value: u64) {
            self.pages.get_mut(&table).unwrap()[index] = value;
        }
        fn alloc(&mut self) -> Option<u64> {
            self.next += 0x1000;
            self.pages.insert(self.next, Box::new([0; ENTRIES]));
            Some(self.next)
        }
    }

    const RW: Access = Access {
        write: true,
        exec: false,
        user: true,
    };
    const RX: Access = Access {
        write: false,
        exec: true,
        user: true,
    };
    const R: Access = Access {
        write: false,
        exec: false,
        user: true,
    };

    #[test]
    fn maps_translates_and_unmaps() {
        let mut pt = PageTables::new(MapStore::default()).unwrap();
        let base = 0x7fff_f7a0_0000;
        let off = 0x4000_0000;
        let flush = pt
            .map(base, base + 0x40_0000, RW, |va| va - base + off)
            .unwrap();
        assert_eq!(flush, NeedsFlush(false));
        assert_eq!(pt.translate(base + 0x1234, RW), Some(off + 0x1234));
        assert_eq!(pt.translate(base + 0x3f_ffff, RW), Some(off + 0x3f_ffff));
        assert_eq!(pt.translate(base + 0x40_0000, R), None);
        assert_eq!(pt.translate(base, RX), None, "NX");
        assert_eq!(pt.unmap(base + 0x1000, base + 0x2000), NeedsFlush(true));
        assert_eq!(pt.translate(base + 0x1000, R), None);
        assert_eq!(pt.translate(base + 0x2000, R), Some(off + 0x2000));
        // Unmapping what is not mapped needs no flush and allocates nothing.
        assert_eq!(pt.unmap(0x1000_0000, 0x2000_0000), NeedsFlush(false));
    }

    #[test]
    fn narrowing_needs_a_flush_widening_does_not() {
        let mut pt = PageTables::new(MapStore::default()).unwrap();
        let id = |va| va;
        assert_eq!(
            pt.map(0x40_0000, 0x40_2000, R, id).unwrap(),
            NeedsFlush(false)
        );
        assert_eq!(
            pt.map(0x40_0000, 0x40_2000, RW, id).unwrap(),
            NeedsFlush(false)
        );
        assert_eq!(pt.translate(0x40_0000, RW), Some(0x40_0000));
        assert_eq!(
            pt.map(0x40_0000, 0x40_1000, R, id).unwrap(),
            NeedsFlush(true)
        );
        assert_eq!(pt.translate(0x40_0000, RW), None);
        assert_eq!(
            pt.map(0x40_1000, 0x40_2000, RX, id).unwrap(),
            NeedsFlush(true)
        );
        assert_eq!(pt.translate(0x40_1000, RX), Some(0x40_1000));
        let kernel = Access { user: false, ..RW };
        assert_eq!(
            pt.map(0x40_1000, 0x40_2000, kernel, id).unwrap(),
            NeedsFlush(true)
        );
        assert_eq!(pt.translate(0x40_1000, R), None, "supervisor-only");
    }

    #[test]
    fn an_overlay_widens_its_pages_and_shares_the_rest() {
        let mut pt = PageTables::new(MapStore::default()).unwrap();
        let id = |va| va;
        let _ = pt.map(0x40_0000, 0x40_3000, R, id).unwrap();
        let _ = pt.map(0x7000_0000, 0x7000_1000, RW, id).unwrap();
        let mut frames = Vec::new();
        let root = pt.overlay(&mut frames, &[(0x40_1000, RW)]).unwrap();
        assert_eq!(frames.len(), 4, "root and the three tables on one path");
        let shared = pt.root;
        pt.root = root;
        assert_eq!(pt.translate(0x40_1000, RW), Some(0x40_1000));
        assert_eq!(
            pt.translate(0x40_0000, RW),
            None,
            "its neighbours as before"
        );
        assert_eq!(pt.translate(0x40_2000, R), Some(0x40_2000));
        assert_eq!(pt.translate(0x7000_0000, RW), Some(0x7000_0000));
        pt.root = shared;
        assert_eq!(
            pt.translate(0x40_1000, RW),
            None,
            "the shared tables unchanged"
        );
        // Again: the same frames, nothing allocated.
        let again = pt
            .overlay(&mut frames, &[(0x40_1000, RW), (0x40_2000, RW)])
            .unwrap();
        assert_eq!((again, frames.len()), (root, 4));
        // A page that is not mapped stays so.
        let _ = pt.overlay(&mut frames, &[(0x9000_0000, RW)]).unwrap();
        pt.root = frames[0];
        assert_eq!(pt.translate(0x9000_0000, R), None);
    }
}
