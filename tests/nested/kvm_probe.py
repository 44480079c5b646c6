#!/usr/bin/env python3
"""Smoke test for the nested lane: /dev/kvm answers and is kvm_amd.

Run inside the lane:  tests/nested/lane.sh -- python3 tests/nested/kvm_probe.py
Exits 0 when KVM_GET_API_VERSION is 12 and a VM with one vCPU can be created.
"""
import fcntl
import os
import struct
import sys

# linux/kvm.h: _IO(KVMIO = 0xAE, nr)
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_CREATE_VCPU = 0xAE41
KVM_GET_SUPPORTED_CPUID = 0xC008AE05  # _IOWR(KVMIO, 0x05, struct kvm_cpuid2)
KVM_CAP_XCRS = 56


def supported_xcr0(kvm: int) -> int:
    """CPUID 0xD.0 EDX:EAX from KVM_GET_SUPPORTED_CPUID: the XCR0 bits KVM allows."""
    nent = 256
    buf = bytearray(struct.pack("II", nent, 0) + bytes(40 * nent))
    fcntl.ioctl(kvm, KVM_GET_SUPPORTED_CPUID, buf)
    for i in range(struct.unpack_from("I", buf)[0]):
        # struct kvm_cpuid_entry2: function, index, flags, eax, ebx, ecx, edx, padding[3]
        fn, idx, _flags, eax, _ebx, _ecx, edx = struct.unpack_from("7I", buf, 8 + 40 * i)
        if (fn, idx) == (0xD, 0):
            return eax | edx << 32
    return 0


def main() -> int:
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    api = fcntl.ioctl(kvm, KVM_GET_API_VERSION)
    xcrs = fcntl.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_XCRS)
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    flavour = [m for m in ("kvm_amd", "kvm_intel", "kvm_pvm") if os.path.isdir(f"/sys/module/{m}")]
    print(f"KVM_GET_API_VERSION={api} KVM_CAP_XCRS={xcrs} supported_xcr0={supported_xcr0(kvm):#x} "
          f"vm_fd={vm} vcpu_fd={vcpu} module={','.join(flavour)}")
    return 0 if api == 12 and "kvm_amd" in flavour else 1


if __name__ == "__main__":
    sys.exit(main())
