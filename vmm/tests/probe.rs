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
            hv.flavour, x, r.xgetbv, r.xsave_size
        );
        // Whatever the KVM, x87 and SSE are always on at CPL3 in 64-bit mode.
        assert_eq!(r.xgetbv & 0x3, 0x3 & x.bits() | 1, "x87 is always enabled");
        assert!(r.xsave_size >= 576);
        if r.enforced() {
            let expected = x.xsave_size(|i| hv.xsave_component(i));
            assert_eq!(
                r.xsave_size, expected,
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
            r.xgetbv
        ),
    }
}
