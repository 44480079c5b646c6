//! Where things live in guest-physical memory.
//!
//! Guest virtual addresses equal host virtual addresses. Guest-physical
//! addresses are allocated low, because a host address (0x7f…, 47 bits) can
//! exceed a CPU's MAXPHYADDR (39 bits on many Intel hosts, 40 in the nested
//! lane). The host's user address space is cut into 64 MiB chunks; each
//! chunk the program touches gets a memslot mapping a 64 MiB guest-physical
//! window linearly onto it, so a host address has one fixed guest-physical
//! alias for as long as the sandbox runs, and remapping host memory never
//! changes a guest page-table entry's target.
//!
//! Sizes are what start-up pays for: a shadow-paging KVM (PVM) allocates
//! reverse-map arrays in proportion to a memslot's size when it is
//! registered, about 0.45 ms per GiB there, at start and again in every
//! forked child. A 64 MiB chunk costs a few tens of µs; a program touching
//! more gets more memslots (KVM allows 32764).
//!
//! ```text
//! GPA 0x0010_0000  runtime arena (stubs, IDT, GDT/TSS, stacks, page tables)
//! GPA arena end    one page for the "zap" memslot (see AddressSpace::flush)
//! GPA 4 GiB + n * 64 MiB  chunk n, backing host [c << 26, (c + 1) << 26)
//! ```

/// Guest-physical base of the runtime arena.
pub const ARENA_GPA: u64 = 0x10_0000;
/// Size of the runtime arena (reserved, not committed: MAP_NORESERVE).
/// Page tables dominate: 64 MiB maps ~32 GiB of present program memory.
pub const ARENA_SIZE: u64 = 64 << 20;
/// The page used by the memslot that is created and deleted to make KVM
/// drop every derived mapping.
pub const ZAP_SLOT_GPA: u64 = ARENA_GPA + ARENA_SIZE;

pub const CHUNK_SHIFT: u32 = 26;
pub const CHUNK_SIZE: u64 = 1 << CHUNK_SHIFT;
/// Guest-physical base of the first chunk window.
pub const CHUNK_GPA_BASE: u64 = 4 << 30;

/// The end of the host's user address space that memslots may cover
/// (a memslot ending past it gets EINVAL; kvm-platforms.md).
pub const HOST_USER_TOP: u64 = 0x7fff_ffff_f000;

/// Memslot numbers.
pub const ARENA_SLOT: u32 = 0;
pub const ZAP_SLOT: u32 = 1;
pub const FIRST_CHUNK_SLOT: u32 = 2;

/// Per-vCPU CPL0 stack (exceptions from CPL3 switch to it via TSS.RSP0).
pub const KERNEL_STACK_SIZE: u64 = 2 * 4096;
