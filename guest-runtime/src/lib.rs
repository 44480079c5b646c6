//! The guest side of xcr0-sandbox.
//!
//! The sandboxed program runs at CPL3 inside a KVM guest whose virtual
//! addresses equal the host's. This crate holds everything that runs at the
//! guest's CPL0 (a few stubs that turn `syscall` and exceptions into port I/O
//! exits) plus the CPL3 probe that reports the XCR0 the hardware applies, and
//! the ABI both sides agree on: port numbers, selectors, frame layouts.
//!
//! It is `no_std` and depends on nothing of the host side; the VMM copies the
//! stub bytes into guest memory and computes entry points from [`Stubs`].

#![no_std]

pub mod abi;
mod stubs;

pub use stubs::{Stubs, VECTOR_STUB_SIZE};
