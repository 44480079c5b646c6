#!/usr/bin/env python3
"""Smoke test for the nested lane: /dev/kvm answers and is kvm_amd.

Run inside the lane:  tests/nested/lane.sh -- python3 tests/nested/kvm_probe.py
Exits 0 when KVM_GET_API_VERSION is 12 and a VM with one vCPU can be created.
"""
import fcntl
import os
import sys

# linux/kvm.h: _IO(KVMIO = 0xAE, nr)
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_CREATE_VCPU = 0xAE41
KVM_CAP_XCRS = 56


def main() -> int:
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    api = fcntl.ioctl(kvm, KVM_GET_API_VERSION)
    xcrs = fcntl.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_XCRS)
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    flavour = [m for m in ("kvm_amd", "kvm_intel", "kvm_pvm") if os.path.isdir(f"/sys/module/{m}")]
    print(f"KVM_GET_API_VERSION={api} KVM_CAP_XCRS={xcrs} vm_fd={vm} vcpu_fd={vcpu} module={','.join(flavour)}")
    return 0 if api == 12 and "kvm_amd" in flavour else 1


if __name__ == "__main__":
    sys.exit(main())
