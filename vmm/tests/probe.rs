//! The VMM on the host's real /dev/kvm: VM creation, vCPU setup and the
//! CPL3 XCR0 probe. Skipped, with the reason, where /dev/kvm cannot be opened.

use std::sync::Arc;

use vmm::{Hypervisor, Xcr0, check};

fn hypervisor() -> Option<Arc<Hypervisor>> {
    match Hypervisor::open() {
        Ok(hv) => Some(Arc::new(hv)),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

#[test]
fn probe_reports_an_xcr0_the_cpu_accepts() {
    let Some(hv) = hypervisor() else { return };
    for x in check::check_values(hv.supported_xcr0()) {
        let r = check::probe(&hv, x).expect("probe runs");
        eprintln!(
            "{:?}: requested {}, xgetbv {:#x}, xsave size {}",
            hv.flavour, x, r.seen.xgetbv, r.seen.xsave_size
        );
        // Whatever the KVM, x87 and SSE are always on at CPL3 in 64-bit mode.
        assert_eq!(
            r.seen.xgetbv & 0x3,
            0x3 & x.bits() | 1,
            "x87 is always enabled"
        );
        assert!(r.seen.xsave_size >= 576);
        if r.enforced() {
            let expected = x.xsave_size(|i| hv.xsave_component(i));
            assert_eq!(
                r.seen.xsave_size, expected,
                "CPUID 0xD EBX follows the guest XCR0"
            );
        }
    }
}

#[test]
fn xcr0_reduced_below_the_host_is_only_enforced_on_hardware_kvm() {
    let Some(hv) = hypervisor() else { return };
    let x = Xcr0::new(0x3).unwrap();
    let r = check::probe(&hv, x).expect("probe runs");
    match hv.flavour {
        vmm::Flavour::Pvm => assert!(!r.enforced(), "PVM does not apply XCR0 (kvm-platforms.md)"),
        _ => assert!(
            r.enforced(),
            "hardware KVM applies XCR0: saw {:#x}",
            r.seen.xgetbv
        ),
    }
}

/// Both KVMs this project meets give the guest the host's TSC (hardware
/// KVM once the offset is 0, PVM by running CPL3 on the host's), so the
/// vDSO is lent: its pages translate for a user read, and only where the
/// TSC check passed.
#[test]
fn the_guest_reads_the_hosts_tsc_and_gets_the_vdso() {
    let Some(hv) = hypervisor() else { return };
    let vm = vmm::Vm::new(hv.clone()).expect("VM");
    let mut vcpu = vm.create_vcpu(Xcr0::new(0x3).unwrap()).expect("vCPU");
    let p = vcpu.probe(&vm.memory, 0).expect("probe runs");
    assert!(p.tsc.is_host(), "{:?}: guest TSC {:x?}", hv.flavour, p.tsc);
    let mut space = vm.memory.lock().unwrap();
    let off = vmm::tsc::TscSample {
        guest: p.tsc.after + 1,
        ..p.tsc
    };
    assert_eq!(vmm::vdso::offer(&mut space, &off), None);
    assert!(space.lent().is_empty(), "nothing lent without the TSC");
    let base = vmm::vdso::offer(&mut space, &p.tsc).expect("a vDSO");
    // SAFETY: getauxval reads this process's auxiliary vector.
    assert_eq!(base, unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) });
    assert!(space.translate_user(base, false).is_some());
    assert!(space.translate_user(base, true).is_none(), "read-only");
}
