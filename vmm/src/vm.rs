//! A VM whose guest shares this process's address space, with the guest
//! runtime installed, and the vCPUs that run tasks in it.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use guest_runtime::Stubs;
use kvm_ioctls::VmFd;

use crate::fds;
use crate::kvm::Hypervisor;
use crate::layout::KERNEL_STACK_SIZE;
use crate::memory::AddressSpace;
use crate::paging::{Access, PAGE_SIZE};
use crate::tables;
use crate::vcpu::{CpuSetup, RuntimeAddrs, Vcpu, VcpuError, ioctl};
use crate::xcr0::Xcr0;

pub struct Vm {
    pub hv: Arc<Hypervisor>,
    fd: Arc<VmFd>,
    /// Shared by every vCPU of the VM; system calls that change mappings
    /// take the lock, run loops take it briefly to flush.
    pub memory: Mutex<AddressSpace>,
    runtime: RuntimeAddrs,
    next_id: Mutex<u64>,
}

impl Vm {
    pub fn new(hv: Arc<Hypervisor>) -> Result<Vm, VcpuError> {
        let vm = ioctl("KVM_CREATE_VM", hv.kvm.create_vm())?;
        let fd = fds::park(vm.as_raw_fd()).map_err(|e| VcpuError::Unexpected(e.to_string()))?;
        drop(vm);
        // SAFETY: `fd` is a VM descriptor we just created and own alone.
        let vm = Arc::new(ioctl("KVM_CREATE_VM", unsafe {
            hv.kvm.create_vmfd_from_rawfd(fd)
        })?);
        let mut memory = AddressSpace::new(vm.clone(), hv.phys_bits())?;
        let runtime = install_runtime(&mut memory)?;
        Ok(Vm {
            hv,
            fd: vm,
            memory: Mutex::new(memory),
            runtime,
            next_id: Mutex::new(0),
        })
    }

    pub fn runtime(&self) -> RuntimeAddrs {
        self.runtime
    }

    /// A vCPU with `xcr0`, ready to run the probe or a task.
    pub fn create_vcpu(&self, xcr0: Xcr0) -> Result<Vcpu, VcpuError> {
        let id = {
            let mut n = self.next_id.lock().expect("vcpu ids");
            *n += 1;
            *n - 1
        };
        let fd = ioctl("KVM_CREATE_VCPU", self.fd.create_vcpu(id))?;
        let high = fds::park(fd.as_raw_fd()).map_err(|e| VcpuError::Unexpected(e.to_string()))?;
        drop(fd);
        // SAFETY: `high` is the only descriptor of the vCPU just created.
        let fd = ioctl("KVM_CREATE_VCPU", unsafe {
            self.fd.create_vcpu_from_rawfd(high)
        })?;

        let mut mem = self.memory.lock().expect("address space");
        // One page for GDT and TSS, then the CPL0 stack.
        let page = mem.arena_mut().alloc_pages(1)?;
        let stack = mem.arena_mut().alloc_pages(KERNEL_STACK_SIZE / PAGE_SIZE)?;
        mem.map_runtime(page, PAGE_SIZE, Access::KERNEL_RW)?;
        mem.map_runtime(stack, KERNEL_STACK_SIZE, Access::KERNEL_RW)?;
        let gdt = mem.arena().hva(page);
        let tss = gdt + 128;
        let stack_top = mem.arena().hva(stack) + KERNEL_STACK_SIZE;
        let gdt_bytes: Vec<u8> = tables::gdt(tss)
            .iter()
            .flat_map(|e| e.to_le_bytes())
            .collect();
        mem.arena().write(page, &gdt_bytes);
        mem.arena().write(
            page + 128,
            &tables::tss(stack_top, self.hv.flavour == crate::kvm::Flavour::Pvm),
        );
        let cr3 = mem.cr3();
        drop(mem);

        let mut cpuid = self.hv.cpuid.clone();
        for e in cpuid.as_mut_slice() {
            match e.function {
                // Initial APIC ID (CPUID.1:EBX[31:24]) and x2APIC ID.
                1 => e.ebx = (e.ebx & 0x00ff_ffff) | ((id as u32) << 24),
                0xb | 0x1f => e.edx = id as u32,
                _ => {}
            }
        }
        Vcpu::new(
            fd,
            CpuSetup {
                id,
                xcr0,
                cpuid,
                cr3,
                gdt,
                tss,
                kernel_stack_top: stack_top,
                fsgsbase: self.hv.has_fsgsbase(),
                pku: self.hv.has_pku(),
                runtime: self.runtime,
            },
        )
    }
}

/// Copies the stubs into the arena, builds the IDT, maps them for the guest.
fn install_runtime(mem: &mut AddressSpace) -> Result<RuntimeAddrs, VcpuError> {
    let stubs = Stubs::get();
    // The kernel stub page, then the user probe page.
    let code = mem.arena_mut().alloc_pages(2)?;
    let idt = mem.arena_mut().alloc_pages(1)?;
    mem.arena().write(code, stubs.kernel);
    mem.arena().write(code + PAGE_SIZE, stubs.user);
    let kernel_va = mem.arena().hva(code);
    let user_va = kernel_va + PAGE_SIZE;
    mem.arena()
        .write(idt, &tables::idt(kernel_va + stubs.vectors as u64));
    // The entry stubs are user-accessible like the probe: PVM fetches the
    // LSTAR target of a CPL3 `syscall` with user rights (it reports CS 0x33
    // there). At CPL3 on hardware KVM the stubs can do nothing: `out`
    // faults with IOPL 0 and a closed I/O bitmap.
    mem.map_runtime(code, 2 * PAGE_SIZE, Access::USER_CODE)?;
    mem.map_runtime(idt, PAGE_SIZE, Access::KERNEL_RO)?;
    Ok(RuntimeAddrs {
        enter_user: kernel_va + stubs.enter_user as u64,
        syscall_entry: kernel_va + stubs.syscall_entry as u64,
        exception_common: kernel_va + stubs.exception_common as u64,
        probe: user_va + stubs.probe as u64,
        user_page: user_va,
        idt: mem.arena().hva(idt),
    })
}
