//! The guest's view of the host address space: memslots, page tables and
//! the record of which host mappings belong to the program.
//!
//! The host process holds both the sandbox (its binary, heap, KVM mappings,
//! the runtime arena) and the program. Only the program's mappings, and the
//! few arena pages the guest runtime needs (supervisor-only), are present in
//! the guest's page tables, with the program's protections, so any other
//! access is a guest #PF, never a write into the sandbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use x86_64::structures::paging::PageTableFlags;

use crate::layout::*;
use crate::paging::{Access, FrameStore, NeedsFlush, OutOfFrames, PAGE_SIZE, PageTables};
use crate::ranges::RangeMap;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot allocate the runtime arena: {0}")]
    Arena(String),
    #[error("runtime arena exhausted")]
    ArenaFull,
    #[error(transparent)]
    PageTables(#[from] OutOfFrames),
    #[error("guest-physical space exhausted (MAXPHYADDR {0} bits)")]
    PhysFull(u32),
    #[error("KVM_SET_USER_MEMORY_REGION slot {slot}: {err}")]
    Memslot { slot: u32, err: kvm_ioctls::Error },
}

/// Linux protection bits (PROT_READ | PROT_WRITE | PROT_EXEC) of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prot(pub u32);

impl Prot {
    pub const NONE: Prot = Prot(0);
    pub const READ: u32 = libc::PROT_READ as u32;
    pub const WRITE: u32 = libc::PROT_WRITE as u32;
    pub const EXEC: u32 = libc::PROT_EXEC as u32;

    pub fn from_linux(prot: i32) -> Prot {
        Prot(prot as u32 & (Self::READ | Self::WRITE | Self::EXEC))
    }
    pub fn readable(self) -> bool {
        // x86 cannot express write-only or execute-only pages.
        self.0 != 0
    }
    pub fn writable(self) -> bool {
        self.0 & Self::WRITE != 0
    }
    fn access(self) -> Option<Access> {
        self.readable().then_some(Access {
            write: self.writable(),
            exec: self.0 & Self::EXEC != 0,
            user: true,
        })
    }
}

/// What a page's guest entry loses while a thread's debug register watches
/// it: the accesses that must fault so that the VMM sees them (the guest's
/// own debug registers never fire on the KVMs here; see trace/hwbp.rs in
/// syscall-proxy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Narrow {
    /// Writes fault (a write watchpoint).
    pub write: bool,
    /// Instruction fetches fault (an instruction breakpoint).
    pub exec: bool,
    /// Every user access faults (a read/write watchpoint).
    pub all: bool,
}

impl Narrow {
    pub fn union(self, o: Narrow) -> Narrow {
        Narrow {
            write: self.write || o.write,
            exec: self.exec || o.exec,
            all: self.all || o.all,
        }
    }

    fn apply(self, a: Access) -> Access {
        Access {
            write: a.write && !self.write && !self.all,
            exec: a.exec && !self.exec && !self.all,
            user: a.user && !self.all,
        }
    }
}

/// A vCPU's private page-table root in which watched pages have their
/// real rights, for the one instruction it steps through them
/// ([`AddressSpace::step_root`]).
#[derive(Debug, Default)]
pub struct Overlay {
    frames: Vec<u64>,
    /// The address space's `generation` the copy was made at.
    generation: Option<u64>,
}

/// Guest-physical memory the VMM owns: stubs, descriptor tables, CPL0
/// stacks and page-table pages. Its guest-virtual address is its host
/// address, like everything else.
#[derive(Clone)]
pub struct Arena {
    mem: GuestMemoryMmap,
    /// Host address of ARENA_GPA: page-table entries are reached by
    /// arithmetic, as every mapping of a program walks them page by page.
    base: u64,
    next: u64,
}

impl Arena {
    fn new() -> Result<Arena, MemoryError> {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(ARENA_GPA), ARENA_SIZE as usize)])
            .map_err(|e| MemoryError::Arena(e.to_string()))?;
        let base = mem
            .get_host_address(GuestAddress(ARENA_GPA))
            .map_err(|e| MemoryError::Arena(e.to_string()))? as u64;
        Ok(Arena {
            mem,
            base,
            next: ARENA_GPA,
        })
    }

    /// `n` contiguous zeroed pages; returns their guest-physical address.
    pub fn alloc_pages(&mut self, n: u64) -> Result<u64, MemoryError> {
        let gpa = self.next;
        if gpa + n * PAGE_SIZE > ARENA_GPA + ARENA_SIZE {
            return Err(MemoryError::ArenaFull);
        }
        self.next += n * PAGE_SIZE;
        Ok(gpa)
    }

    /// Host (= guest-virtual) address of arena guest-physical `gpa`.
    pub fn hva(&self, gpa: u64) -> u64 {
        assert!(
            (ARENA_GPA..ARENA_GPA + ARENA_SIZE).contains(&gpa),
            "address inside the arena"
        );
        self.base + (gpa - ARENA_GPA)
    }

    pub fn gpa_of_hva(&self, hva: u64) -> Option<u64> {
        (self.base..self.base + ARENA_SIZE)
            .contains(&hva)
            .then(|| hva - self.base + ARENA_GPA)
    }

    pub fn write(&self, gpa: u64, bytes: &[u8]) {
        self.mem
            .write_slice(bytes, GuestAddress(gpa))
            .expect("write inside the arena");
    }

    /// The aligned word at `gpa`, which vCPUs may be writing (accessed and
    /// dirty bits) or reading concurrently.
    fn word(&self, gpa: u64) -> &AtomicU64 {
        assert!(gpa.is_multiple_of(8), "an aligned word");
        let hva = self.hva(gpa);
        // SAFETY: an 8-byte-aligned word inside the arena mapping, which
        // lives as long as `self`; guest MMUs and other threads touch it
        // only with atomic accesses.
        unsafe { AtomicU64::from_ptr(hva as *mut u64) }
    }

    pub fn read_u64(&self, gpa: u64) -> u64 {
        self.word(gpa).load(Ordering::Acquire)
    }
}

impl FrameStore for Arena {
    fn read(&self, table: u64, index: usize) -> u64 {
        self.read_u64(table + 8 * index as u64)
    }
    /// One atomic store: other vCPUs may be walking the tables.
    fn write(&mut self, table: u64, index: usize, value: u64) {
        self.word(table + 8 * index as u64)
            .store(value, Ordering::Release);
    }
    fn alloc(&mut self) -> Option<u64> {
        self.alloc_pages(1).ok()
    }
}

/// A host mapping lent to the guest (see `AddressSpace::lend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lent {
    pub prot: Prot,
    /// Where the whole mapping starts: neighbours stay apart in the map,
    /// as the kernel keeps them (it refuses to split them).
    pub start: u64,
}

/// Counters for `--stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryStats {
    pub memslots: u64,
    pub flushes: u64,
    /// Flushes left to the host's own invalidation (see `flush`).
    pub flushes_elided: u64,
}

pub struct AddressSpace {
    vm: Arc<VmFd>,
    pt: PageTables<Arena>,
    /// The program's mappings and their protections, page-granular.
    program: RangeMap<Prot>,
    /// Host ranges the program unmapped, still reserved (PROT_NONE) by the
    /// layer above so that nothing of the sandbox's is ever allocated where
    /// a system call of another thread may still write; reused for the
    /// program's next mappings.
    retired: RangeMap<()>,
    /// Program pages the host cannot back (a file mapping past the end of
    /// its file), kept out of the guest page tables so that an access
    /// faults in the guest with its address, which KVM does not report.
    poisoned: RangeMap<()>,
    /// Host pages lent to the guest that are not the program's (the host's
    /// vDSO, see vdso.rs): in the guest page tables, never changed on the
    /// host for the program.
    lent: RangeMap<Lent>,
    /// Host chunk index -> guest-physical base of its window.
    chunks: HashMap<u64, u64>,
    next_slot: u32,
    phys_bits: u32,
    flush_pending: bool,
    /// A narrowing no host change follows (`unmap_unfollowed`): flushed
    /// even with one vCPU.
    flush_forced: bool,
    /// vCPUs of this VM handed out to threads and not given back: the
    /// `Vm` counts them, `flush` reads them.
    live_vcpus: Arc<AtomicUsize>,
    /// Each thread's watched pages (by host tid), and their union, which
    /// the guest entries carry narrowed (see [`Narrow`]).
    watches: HashMap<i32, Vec<(u64, Narrow)>>,
    watched: BTreeMap<u64, Narrow>,
    /// Bumped by every change of the page tables or of `watched`: an
    /// [`Overlay`] made at another generation is made again.
    generation: u64,
    pub stats: MemoryStats,
}

/// Largest mapping entered in the guest page tables eagerly.
const EAGER_LIMIT: u64 = 64 << 20;
/// What a guest fault in a lazily entered mapping enters.
const LAZY_BLOCK: u64 = 2 << 20;

fn chunk_of(hva: u64) -> u64 {
    hva >> CHUNK_SHIFT
}

impl AddressSpace {
    pub fn new(vm: Arc<VmFd>, phys_bits: u32) -> Result<AddressSpace, MemoryError> {
        let arena = Arena::new()?;
        let region = kvm_userspace_memory_region {
            slot: ARENA_SLOT,
            flags: 0,
            guest_phys_addr: ARENA_GPA,
            memory_size: ARENA_SIZE,
            userspace_addr: arena.hva(ARENA_GPA),
        };
        set_memslot(&vm, region)?;
        Ok(AddressSpace {
            vm,
            pt: PageTables::new(arena)?,
            program: RangeMap::new(),
            retired: RangeMap::new(),
            poisoned: RangeMap::new(),
            lent: RangeMap::new(),
            chunks: HashMap::new(),
            next_slot: FIRST_CHUNK_SLOT,
            phys_bits,
            flush_pending: false,
            flush_forced: false,
            live_vcpus: Arc::default(),
            watches: HashMap::new(),
            watched: BTreeMap::new(),
            generation: 0,
            stats: MemoryStats {
                memslots: 1,
                ..Default::default()
            },
        })
    }

    /// In a forked child: the same mirror (page tables, arena and chunk
    /// windows are at the same addresses in the copied memory) registered
    /// with `vm`, the child's own VM. Nothing is rebuilt.
    pub fn clone_onto(&self, vm: Arc<VmFd>) -> Result<AddressSpace, MemoryError> {
        let arena = self.arena();
        set_memslot(
            &vm,
            kvm_userspace_memory_region {
                slot: ARENA_SLOT,
                flags: 0,
                guest_phys_addr: ARENA_GPA,
                memory_size: ARENA_SIZE,
                userspace_addr: arena.hva(ARENA_GPA),
            },
        )?;
        for (&chunk, &gpa) in &self.chunks {
            set_memslot(&vm, chunk_region(chunk, gpa))?;
        }
        let mut child = AddressSpace {
            vm,
            pt: self.pt.clone(),
            program: self.program.clone(),
            retired: self.retired.clone(),
            poisoned: self.poisoned.clone(),
            lent: self.lent.clone(),
            chunks: self.chunks.clone(),
            next_slot: self.next_slot,
            phys_bits: self.phys_bits,
            flush_pending: false,
            flush_forced: false,
            live_vcpus: Arc::default(),
            watches: HashMap::new(),
            watched: BTreeMap::new(),
            generation: 0,
            stats: MemoryStats {
                memslots: 1 + self.chunks.len() as u64,
                ..Default::default()
            },
        };
        // A child's threads start with no debug registers (Linux clears
        // them at fork): its entries get their rights back.
        for &page in self.watched.keys() {
            child.reenter(page)?;
        }
        Ok(child)
    }

    pub fn arena(&self) -> &Arena {
        self.pt.store()
    }

    pub fn arena_mut(&mut self) -> &mut Arena {
        self.pt.store_mut()
    }

    /// The count of this VM's vCPUs that may run, kept by the `Vm`.
    pub(crate) fn live_vcpus(&self) -> Arc<AtomicUsize> {
        self.live_vcpus.clone()
    }

    /// The value for the guest's CR3.
    pub fn cr3(&self) -> u64 {
        self.pt.root()
    }

    /// The program's mappings.
    pub fn program(&self) -> &RangeMap<Prot> {
        &self.program
    }

    /// Ranges the program unmapped that stay reserved for it.
    pub fn retired(&self) -> &RangeMap<()> {
        &self.retired
    }

    /// Records that host [start, end), no longer a program mapping, is
    /// reserved for the program.
    pub fn retire(&mut self, start: u64, end: u64) {
        self.retired.insert(start, end, ());
    }

    /// Records that [start, end) is no longer reserved (a mapping replaced
    /// the reservation).
    pub fn unretire(&mut self, start: u64, end: u64) {
        self.retired.remove(start, end);
    }

    /// Makes sure every chunk of [start, end) has its memslot.
    fn cover(&mut self, start: u64, end: u64) -> Result<(), MemoryError> {
        for chunk in chunk_of(start)..=chunk_of(end - 1) {
            if self.chunks.contains_key(&chunk) {
                continue;
            }
            let gpa = CHUNK_GPA_BASE + self.chunks.len() as u64 * CHUNK_SIZE;
            if gpa + CHUNK_SIZE > 1u64 << self.phys_bits {
                return Err(MemoryError::PhysFull(self.phys_bits));
            }
            set_memslot(&self.vm, chunk_region(chunk, gpa))?;
            log::debug!(
                "memslot {} gpa {gpa:#x} -> hva {:#x}",
                self.next_slot,
                chunk << CHUNK_SHIFT
            );
            self.next_slot += 1;
            self.stats.memslots += 1;
            self.chunks.insert(chunk, gpa);
        }
        Ok(())
    }

    fn note(&mut self, f: NeedsFlush) {
        self.flush_pending |= f.0;
        self.generation += 1;
    }

    /// Records that host [start, end) now holds a program mapping with
    /// `prot` (after mmap, mprotect, mremap or brk succeeded on the host).
    ///
    /// Mappings up to EAGER_LIMIT enter the guest page tables at once; larger
    /// ones (huge reservations, big heaps) on the guest's first access to
    /// each 2 MiB block ([`AddressSpace::populate`]), so that their cost
    /// follows what the program touches, not what it maps.
    pub fn map_program(&mut self, start: u64, end: u64, prot: Prot) -> Result<(), MemoryError> {
        if start >= end {
            return Ok(());
        }
        self.program.insert(start, end, prot);
        self.retired.remove(start, end);
        self.poisoned.remove(start, end);
        let flush = match prot.access() {
            Some(access) if end - start <= EAGER_LIMIT => self.enter(start, end, access)?,
            _ => self.pt.unmap(start, end),
        };
        self.note(flush);
        Ok(())
    }

    /// Enters program pages [start, end) in the guest page tables, each at
    /// its chunk window's guest-physical alias, with the chunks' memslots.
    fn enter(&mut self, start: u64, end: u64, access: Access) -> Result<NeedsFlush, MemoryError> {
        self.cover(start, end)?;
        let mut flush = NeedsFlush(false);
        let mut at = start;
        while at < end {
            let chunk = chunk_of(at);
            let piece_end = end.min((chunk + 1) << CHUNK_SHIFT);
            let (window, hva) = (self.chunks[&chunk], chunk << CHUNK_SHIFT);
            let gpa = |va| window + (va - hva);
            flush.0 |= self.pt.map(at, piece_end, access, gpa)?.0;
            for (&page, &n) in self.watched.range(at..piece_end) {
                flush.0 |= self.pt.map(page, page + PAGE_SIZE, n.apply(access), gpa)?.0;
            }
            at = piece_end;
        }
        Ok(flush)
    }

    /// Enters the program's pages of the 2 MiB block around `addr` in the
    /// guest page tables, after a guest fault there that the program's
    /// mappings allow.
    pub fn populate(&mut self, addr: u64) -> Result<(), MemoryError> {
        let block = addr & !(LAZY_BLOCK - 1);
        for (s, e, prot) in self.program.overlapping(block, block + LAZY_BLOCK) {
            let Some(access) = prot.access() else {
                continue;
            };
            for (s, e) in self.poisoned.gaps(s, e) {
                let f = self.enter(s, e, access)?;
                self.note(f);
            }
        }
        Ok(())
    }

    /// Takes program pages [start, end), which the host cannot back, out of
    /// the guest page tables (see `poisoned`); flushed by the caller.
    pub fn poison(&mut self, start: u64, end: u64) {
        self.poisoned.insert(start, end, ());
        self.unmap_unfollowed(start, end);
    }

    /// Takes [start, end) out of the guest page tables where no host change
    /// of the same pages follows, so that `flush` cannot leave the flush to
    /// the host's invalidation.
    fn unmap_unfollowed(&mut self, start: u64, end: u64) {
        let f = self.pt.unmap(start, end);
        self.flush_forced |= f.0;
        self.note(f);
    }

    /// Whether `addr` is on a page taken out by `poison`.
    pub fn is_poisoned(&self, addr: u64) -> bool {
        self.poisoned.get(addr).is_some()
    }

    /// The page of `addr` can be backed again (the file grew).
    pub fn unpoison(&mut self, addr: u64) {
        let page = addr & !(PAGE_SIZE - 1);
        self.poisoned.remove(page, page + PAGE_SIZE);
    }

    /// Records that host [start, end) holds no program mapping any more.
    pub fn unmap_program(&mut self, start: u64, end: u64) {
        self.program.remove(start, end);
        self.poisoned.remove(start, end);
        let f = self.pt.unmap(start, end);
        self.note(f);
    }

    /// Enters host pages [start, end), which stay the sandbox's, in the
    /// guest page tables with `prot` for user access: the host's vDSO
    /// lent to the program.
    pub fn lend(&mut self, start: u64, end: u64, prot: Prot) -> Result<(), MemoryError> {
        let Some(access) = prot.access() else {
            return Ok(());
        };
        let f = self.enter(start, end, access)?;
        self.note(f);
        self.lent.insert(start, end, Lent { prot, start });
        Ok(())
    }

    /// Host pages lent to the guest (see `lend`).
    pub fn lent(&self) -> &RangeMap<Lent> {
        &self.lent
    }

    /// Takes the lent pages of [start, end) out of the guest's view (the
    /// program unmapped its vDSO); the host keeps them. Flushed by the
    /// caller.
    pub fn withdraw_lent(&mut self, start: u64, end: u64) {
        for (s, e, _) in self.lent.overlapping(start, end) {
            self.lent.remove(s, e);
            // Nothing changes on the host here.
            self.unmap_unfollowed(s, e);
        }
    }

    /// The rights the program's mappings (or a lent page) give user
    /// accesses to the page of `addr`, whatever a watch took away.
    pub fn real_access(&self, addr: u64) -> Option<Access> {
        if self.poisoned.get(addr).is_some() {
            return None;
        }
        match self.program.get(addr) {
            Some((_, _, prot)) => prot.access(),
            None => self.lent.get(addr).and_then(|(_, _, l)| l.prot.access()),
        }
    }

    /// What a watch takes away from the page of `addr`, if one does.
    pub fn watched(&self, addr: u64) -> Option<Narrow> {
        self.watched.get(&(addr & !(PAGE_SIZE - 1))).copied()
    }

    /// Sets the pages thread `tid`'s debug registers watch (none: the
    /// thread has none, or ended), and narrows the guest entries of every
    /// watched page, flushed before this returns.
    pub fn set_watches(&mut self, tid: i32, pages: Vec<(u64, Narrow)>) -> Result<(), MemoryError> {
        let before = std::mem::take(&mut self.watched);
        if pages.is_empty() {
            self.watches.remove(&tid);
        } else {
            self.watches.insert(tid, pages);
        }
        for &(page, n) in self.watches.values().flatten() {
            let e = self.watched.entry(page & !(PAGE_SIZE - 1)).or_default();
            *e = e.union(n);
        }
        let changed: std::collections::BTreeSet<u64> = before
            .keys()
            .chain(self.watched.keys())
            .copied()
            .filter(|p| before.get(p) != self.watched.get(p))
            .collect();
        for page in changed {
            self.reenter(page)?;
        }
        self.generation += 1;
        self.flush()
    }

    /// Enters the page again with its rights less what `watched` takes
    /// away, if it is in the guest page tables now.
    fn reenter(&mut self, page: u64) -> Result<(), MemoryError> {
        let present = self.pt.entry(page) & PageTableFlags::PRESENT.bits() != 0;
        let (Some(access), true) = (self.real_access(page), present) else {
            return Ok(());
        };
        let f = self.enter(page, page + PAGE_SIZE, access)?;
        // Nothing changes on the host: other vCPUs must not keep the
        // wider entry.
        self.flush_forced |= f.0;
        self.note(f);
        Ok(())
    }

    /// A root for `o`'s vCPU in which every watched page has its real
    /// rights, made again (and the guest's translations flushed: the
    /// frames are rewritten behind a shadow-paging KVM's back) when the
    /// tables changed since; for one step through a watched page.
    pub fn step_root(&mut self, o: &mut Overlay) -> Result<u64, MemoryError> {
        if o.generation == Some(self.generation) {
            return Ok(o.frames[0]);
        }
        let pages: Vec<(u64, Access)> = self
            .watched
            .keys()
            .filter_map(|&p| self.real_access(p).map(|a| (p, a)))
            .collect();
        let root = self.pt.overlay(&mut o.frames, &pages)?;
        self.flush_pending = true;
        self.flush_forced = true;
        self.flush()?;
        o.generation = Some(self.generation);
        Ok(root)
    }

    /// Maps arena pages at their host address for the guest runtime.
    pub fn map_runtime(&mut self, gpa: u64, len: u64, access: Access) -> Result<(), MemoryError> {
        let hva = self.arena().hva(gpa);
        let f = self.pt.map(hva, hva + len, access, |va| va - hva + gpa)?;
        self.note(f);
        Ok(())
    }

    /// The host (= guest-virtual) address behind guest-physical `gpa` of a
    /// chunk window.
    pub fn hva_of_gpa(&self, gpa: u64) -> Option<u64> {
        self.chunks
            .iter()
            .find(|&(_, &base)| (base..base + CHUNK_SIZE).contains(&gpa))
            .map(|(&chunk, &base)| (chunk << CHUNK_SHIFT) + (gpa - base))
    }

    /// Whether every byte of [addr, addr + len) is program memory the program
    /// may read (and write, if `write`): what a syscall's pointer must be.
    pub fn program_can_access(&self, addr: u64, len: u64, write: bool) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        if len == 0 {
            return true;
        }
        let start = addr & !(PAGE_SIZE - 1);
        let allows = |prot: Prot| prot.readable() && (!write || prot.writable());
        if let Some((_, _, prot)) = self.program.covering(start, end) {
            return allows(prot);
        }
        // The vDSO lent to the program: readable for it, so for the kernel
        // on its behalf (never writable).
        let lent = if write {
            Vec::new()
        } else {
            self.lent.overlapping(start, end)
        };
        let mut at = start;
        let mut check = |(s, e, prot): (u64, u64, Prot)| {
            let ok = s == at && allows(prot);
            at = e;
            ok
        };
        if lent.is_empty() {
            if !self.program.pieces(start, end).all(&mut check) {
                return false;
            }
        } else {
            let mut pieces = self.program.overlapping(start, end);
            pieces.extend(lent.into_iter().map(|(s, e, l)| (s, e, l.prot)));
            pieces.sort_unstable_by_key(|&(s, _, _)| s);
            if !pieces.into_iter().all(&mut check) {
                return false;
            }
        }
        at >= end
    }

    /// Makes KVM forget translations derived from entries that were narrowed
    /// since the last call, before the guest runs again.
    ///
    /// A shadow-paging KVM (PVM) write-protects guest page tables to notice
    /// the guest's own writes, but not the VMM's, so its shadow tables would
    /// keep stale entries. Deleting a memslot zaps every shadow and nested
    /// page table and flushes the guest's TLB when the roots are reloaded;
    /// this is the one ioctl-level way to do so on both KVMs. It is needed
    /// only when a present entry lost rights (munmap, mprotect down).
    ///
    /// With one vCPU (the caller's, stopped in the VMM) it is left out:
    /// every other narrowing is followed by the host's own change of the same
    /// range (mprotect, munmap's reservation, MAP_FIXED, mremap), whose MMU
    /// notifier makes KVM zap the translations of those pages and flush
    /// every vCPU's TLB before any runs again. The memslot round trip is
    /// for other vCPUs, which could run in between; and for pages the
    /// host does not change (`poison`, a vDSO the program unmaps).
    pub fn flush(&mut self) -> Result<(), MemoryError> {
        if !self.flush_pending {
            return Ok(());
        }
        if !self.flush_forced && self.live_vcpus.load(Ordering::Acquire) <= 1 {
            self.flush_pending = false;
            self.stats.flushes_elided += 1;
            return Ok(());
        }
        let mut region = kvm_userspace_memory_region {
            slot: ZAP_SLOT,
            flags: 0,
            guest_phys_addr: ZAP_SLOT_GPA,
            memory_size: PAGE_SIZE,
            userspace_addr: self.arena().hva(ARENA_GPA),
        };
        set_memslot(&self.vm, region)?;
        region.memory_size = 0;
        set_memslot(&self.vm, region)?;
        self.flush_pending = false;
        self.flush_forced = false;
        self.stats.flushes += 1;
        Ok(())
    }

    /// Translates a guest-virtual address as the guest's MMU would for a
    /// user access (for tests and diagnostics).
    pub fn translate_user(&mut self, va: u64, write: bool) -> Option<u64> {
        self.pt.translate(
            va,
            Access {
                write,
                exec: false,
                user: true,
            },
        )
    }
}

/// The memslot of host chunk `chunk`, whose window starts at `gpa`. Slots
/// follow window order, so a chunk's slot is known from its window.
fn chunk_region(chunk: u64, gpa: u64) -> kvm_userspace_memory_region {
    let hva = chunk << CHUNK_SHIFT;
    kvm_userspace_memory_region {
        slot: FIRST_CHUNK_SLOT + ((gpa - CHUNK_GPA_BASE) / CHUNK_SIZE) as u32,
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: (hva + CHUNK_SIZE).min(HOST_USER_TOP) - hva,
        userspace_addr: hva,
    }
}

fn set_memslot(vm: &VmFd, region: kvm_userspace_memory_region) -> Result<(), MemoryError> {
    // SAFETY: every memslot points at host memory that outlives the VM: the
    // arena is owned by the AddressSpace (which owns the VM's Arc), and chunk
    // windows cover host address ranges whose pages the guest can reach only
    // through page-table entries for live program mappings; KVM resolves
    // host addresses on each fault and fails cleanly on unmapped ones.
    unsafe { vm.set_user_memory_region(region) }.map_err(|err| MemoryError::Memslot {
        slot: region.slot,
        err,
    })
}
