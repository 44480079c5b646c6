//! The memory mirror on a real VM: what the guest's page tables say after
//! each kind of change, and when KVM is made to forget stale translations.
//! Skipped, with the reason, where /dev/kvm cannot be opened.

use std::sync::Arc;

use vmm::{Hypervisor, Prot, Vm};

fn vm() -> Option<Vm> {
    match Hypervisor::open() {
        Ok(hv) => Some(Vm::new(Arc::new(hv)).expect("VM")),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// An XCR0 every x86-64 KVM supports.
fn x87_sse() -> vmm::Xcr0 {
    vmm::Xcr0::new(vmm::xcr0::X87 | vmm::xcr0::SSE).expect("x87|sse")
}

const RW: Prot = Prot(Prot::READ | Prot::WRITE);
const R: Prot = Prot(Prot::READ);

/// Host memory to stand for a program mapping.
fn host_pages(len: usize) -> u64 {
    // SAFETY: a fresh anonymous mapping no one else refers to.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p as u64
}

/// Flushes made and flushes left to the host's invalidation.
fn flush_counts(m: &vmm::AddressSpace) -> (u64, u64) {
    (m.stats.flushes, m.stats.flushes_elided)
}

#[test]
fn protections_follow_the_program_mappings() {
    let Some(vm) = vm() else { return };
    // Two vCPUs that could run: a narrowing is flushed for the other.
    let a = vm.create_vcpu(x87_sse()).expect("vCPU");
    let b = vm.create_vcpu(x87_sse()).expect("vCPU");
    let mut m = vm.memory.lock().unwrap();
    let base = host_pages(1 << 20);
    m.map_program(base, base + 0x4000, RW).unwrap();
    assert!(m.translate_user(base + 0x10, true).is_some());
    assert!(m.program_can_access(base, 0x4000, true));
    assert!(
        !m.program_can_access(base, 0x4001, false),
        "one byte past the mapping"
    );

    let (flushes, elided) = flush_counts(&m);
    m.map_program(base, base + 0x1000, R).unwrap();
    assert!(m.translate_user(base, false).is_some());
    assert!(m.translate_user(base, true).is_none(), "read-only now");
    m.flush().unwrap();
    assert_eq!(
        flush_counts(&m),
        (flushes + 1, elided),
        "narrowing is flushed"
    );

    m.unmap_program(base + 0x1000, base + 0x2000);
    assert!(m.translate_user(base + 0x1000, false).is_none());
    assert!(m.translate_user(base + 0x2000, false).is_some());
    assert!(!m.program_can_access(base, 0x4000, false), "a hole");

    // Widening needs no flush.
    m.flush().unwrap();
    let counts = flush_counts(&m);
    m.map_program(base, base + 0x1000, RW).unwrap();
    m.flush().unwrap();
    assert_eq!(flush_counts(&m), counts);

    // With one vCPU left, the host's own change of the range does it.
    drop(m);
    vm.release_vcpu(b);
    let mut m = vm.memory.lock().unwrap();
    let (flushes, elided) = flush_counts(&m);
    m.unmap_program(base, base + 0x1000);
    m.flush().unwrap();
    assert_eq!(flush_counts(&m), (flushes, elided + 1), "left to the host");

    // Unless no host change follows (pages the host cannot back).
    m.poison(base + 0x2000, base + 0x3000);
    m.flush().unwrap();
    assert_eq!(
        flush_counts(&m),
        (flushes + 1, elided + 1),
        "poison is flushed"
    );
    drop(m);
    vm.release_vcpu(a);
}

#[test]
fn large_mappings_enter_the_page_tables_on_demand() {
    let Some(vm) = vm() else { return };
    let mut m = vm.memory.lock().unwrap();
    let len = 256u64 << 20;
    let base = host_pages(len as usize);
    let memslots = m.stats.memslots;
    m.map_program(base, base + len, RW).unwrap();
    assert!(m.program_can_access(base, len, true));
    assert!(
        m.translate_user(base + (100 << 20), true).is_none(),
        "not entered yet"
    );
    m.populate(base + (100 << 20) + 123).unwrap();
    let block = (base + (100 << 20)) & !((2 << 20) - 1);
    assert!(m.translate_user(block, true).is_some());
    assert!(m.translate_user(block + (2 << 20) - 1, true).is_some());
    assert!(
        m.translate_user(block + (2 << 20), true).is_none(),
        "one block only"
    );
    assert!(
        m.stats.memslots > memslots,
        "its chunk got a memslot when entered"
    );

    // A reservation takes no memslot at all.
    let memslots = m.stats.memslots;
    let far = host_pages(1 << 20) + (64 << 30);
    m.map_program(far, far + (8 << 30), Prot::NONE).unwrap();
    assert_eq!(m.stats.memslots, memslots);
}
