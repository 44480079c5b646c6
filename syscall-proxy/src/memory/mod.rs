//! The program's memory: its mappings, mirrored into the guest page
//! tables before the host changes them (mm.rs), where Linux would place
//! them in a native layout (placement.rs), and every access the sandbox
//! makes to it (umem.rs).

pub mod mm;
pub mod placement;
pub mod umem;
