//! A VM whose guest shares this process's address space, with the guest
//! runtime installed, and the vCPUs that run tasks in it.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use guest_runtime::Stubs;
use kvm_ioctls::VmFd;

use crate::fds;
use crate::kvm::Hypervisor;
use crate::layout::KERNEL_STACK_SIZE;
use crate::memory::AddressSpace;
use crate::paging::{Access, PAGE_SIZE};
use crate::tables;
use crate::vcpu::{CpuSetup, RuntimeAddrs, Vcpu, VcpuCounters, VcpuError, ioctl};
use crate::xcr0::Xcr0;

pub struct Vm {
    pub hv: Arc<Hypervisor>,
    fd: Arc<VmFd>,
    /// Shared by every vCPU of the VM; system calls that change mappings
    /// take the lock, and flush before they release it.
    pub memory: Mutex<AddressSpace>,
    runtime: RuntimeAddrs,
    vcpus: Mutex<VcpuPool>,
    /// vCPUs handed out and not released: whether a narrowed mapping must
    /// be flushed for others (`AddressSpace::flush`).
    live_vcpus: Arc<AtomicUsize>,
    pub counters: Arc<VcpuCounters>,
}

/// KVM cannot destroy a vCPU: those of ended threads wait here for the
/// next thread, with their arena pages and parked descriptors.
#[derive(Default)]
struct VcpuPool {
    next_id: u64,
    idle: Vec<Vcpu>,
    /// Every vCPU's descriptor and kvm_run mapping, for a forked child to
    /// drop.
    all: Vec<(RawFd, usize)>,
}

/// What `Vm::fork` returns on each side.
pub enum Forked {
    Parent(libc::pid_t),
    /// The child's own VM over its copy of the memory, and the vCPU that
    /// continues the forking thread (at its initial state).
    Child(Arc<Vm>, Box<Vcpu>),
}

impl Vm {
    pub fn new(hv: Arc<Hypervisor>) -> Result<Vm, VcpuError> {
        let fd = create_vm_fd(&hv)?;
        let mut memory = AddressSpace::new(fd.clone(), hv.phys_bits())?;
        let runtime = install_runtime(&mut memory)?;
        let live_vcpus = memory.live_vcpus();
        Ok(Vm {
            hv,
            fd,
            memory: Mutex::new(memory),
            runtime,
            vcpus: Mutex::default(),
            live_vcpus,
            counters: Arc::default(),
        })
    }

    pub fn runtime(&self) -> RuntimeAddrs {
        self.runtime
    }

    /// A vCPU with `xcr0` at its initial state, ready to run the probe or
    /// a task: one an ended thread left, or a new one.
    pub fn create_vcpu(&self, xcr0: Xcr0) -> Result<Vcpu, VcpuError> {
        let idle = self.vcpus.lock().expect("vcpu pool").idle.pop();
        if let Some(mut v) = idle {
            if let Err(e) = v.reset(xcr0) {
                self.vcpus.lock().expect("vcpu pool").idle.push(v);
                return Err(e);
            }
            self.live_vcpus.fetch_add(1, Ordering::AcqRel);
            return Ok(v);
        }
        let id = {
            let mut pool = self.vcpus.lock().expect("vcpu pool");
            pool.next_id += 1;
            pool.next_id - 1
        };
        let mut mem = self.memory.lock().expect("address space");
        // One page for GDT and TSS, then the CPL0 stack.
        let page = mem.arena_mut().alloc_pages(1)?;
        let stack = mem.arena_mut().alloc_pages(KERNEL_STACK_SIZE / PAGE_SIZE)?;
        mem.map_runtime(page, PAGE_SIZE, Access::KERNEL_RW)?;
        mem.map_runtime(stack, KERNEL_STACK_SIZE, Access::KERNEL_RW)?;
        let gdt = mem.arena().hva(page);
        let tss = gdt + tables::GDT_BYTES;
        let stack_top = mem.arena().hva(stack) + KERNEL_STACK_SIZE;
        let gdt_bytes: Vec<u8> = tables::gdt(tss)
            .iter()
            .flat_map(|e| e.to_le_bytes())
            .collect();
        mem.arena().write(page, &gdt_bytes);
        mem.arena().write(
            page + tables::GDT_BYTES,
            &tables::tss(stack_top, self.hv.flavour == crate::kvm::Flavour::Pvm),
        );
        let cr3 = mem.cr3();
        drop(mem);
        self.new_vcpu(CpuSetup {
            id,
            xcr0,
            cpuid: self.hv.cpuid.clone(),
            cr3,
            gdt,
            tss,
            kernel_stack_top: stack_top,
            fsgsbase: self.hv.has_fsgsbase(),
            pku: self.hv.has_pku(),
            runtime: self.runtime,
            xsave2_size: self.hv.xsave2_size,
            xfd: self.hv.has_xfd(),
        })
    }

    /// A vCPU of this VM for `setup` (its arena pages already in place).
    fn new_vcpu(&self, mut setup: CpuSetup) -> Result<Vcpu, VcpuError> {
        let fd = self
            .fd
            .create_vcpu(setup.id)
            .map_err(|e| VcpuError::Exhausted(format!("KVM_CREATE_VCPU: {e}")))?;
        let high = fds::park(fd.as_raw_fd()).map_err(|e| VcpuError::Exhausted(e.to_string()))?;
        drop(fd);
        // SAFETY: `high` is the only descriptor of the vCPU just created.
        let mut fd = ioctl("KVM_CREATE_VCPU", unsafe {
            self.fd.create_vcpu_from_rawfd(high)
        })?;
        // Before the vCPU first runs, so that its TSC never differs from
        // the host's (the probe checks it; where it fails, the program
        // gets no vDSO).
        if let Err(e) = crate::tsc::zero_offset(&fd) {
            // Before the vDSO is lent (the probe's vCPU), the probe's check
            // decides; after, this thread would read a clock that is off.
            if self.memory.lock().expect("address space").lent().is_empty() {
                log::debug!("vCPU {}: KVM_VCPU_TSC_OFFSET: {e}", setup.id);
            } else {
                log::warn!(
                    "vCPU {}: KVM_VCPU_TSC_OFFSET: {e}: this thread's clock through the vDSO may be off",
                    setup.id
                );
            }
        }
        let run = fd.get_kvm_run() as *mut _ as usize;
        self.vcpus.lock().expect("vcpu pool").all.push((high, run));
        for e in setup.cpuid.as_mut_slice() {
            match e.function {
                // Initial APIC ID (CPUID.1:EBX[31:24]) and x2APIC ID.
                1 => e.ebx = (e.ebx & 0x00ff_ffff) | ((setup.id as u32) << 24),
                0xb | 0x1f => e.edx = setup.id as u32,
                _ => {}
            }
        }
        let vcpu = Vcpu::new(fd, setup, self.counters.clone())?;
        self.live_vcpus.fetch_add(1, Ordering::AcqRel);
        Ok(vcpu)
    }

    /// Whether no vCPU but (at most) the caller's is handed out, in this
    /// process or a vfork child sharing the VM.
    pub fn alone(&self) -> bool {
        self.live_vcpus.load(Ordering::Acquire) <= 1
    }

    /// Destroys the VM at the end of the process if no vCPU is running
    /// but the caller's (which must not run again): the host kernel then
    /// destroys it, and stops KVM's worker thread, in the calling thread
    /// rather than in whichever host thread exits last. Returns whether
    /// it did.
    pub fn shut_down(&self) -> bool {
        let mut pool = self.vcpus.lock().expect("vcpu pool");
        if self.live_vcpus.load(Ordering::Acquire) > 1 {
            return false;
        }
        self.let_go(&mut pool, &mut fds::lock());
        true
    }

    /// Drops the descriptors and kvm_run mappings of the VM and its vCPUs,
    /// which must not be used again; their objects are left alone (other
    /// threads' stacks hold some).
    fn let_go(&self, pool: &mut VcpuPool, registry: &mut fds::Registry) {
        let run_size = self.hv.kvm.get_vcpu_mmap_size().unwrap_or(0);
        for &(_, run) in &pool.all {
            // SAFETY: a kvm_run mapping of a vCPU that no thread runs any
            // more.
            unsafe { libc::munmap(run as *mut libc::c_void, run_size) };
        }
        let mut old: Vec<RawFd> = pool.all.iter().map(|&(fd, _)| fd).collect();
        old.push(self.fd.as_raw_fd());
        registry.close(&old);
        pool.all.clear();
    }

    /// Takes back the vCPU of an ended thread.
    pub fn release_vcpu(&self, vcpu: Vcpu) {
        self.vcpus.lock().expect("vcpu pool").idle.push(vcpu);
        self.live_vcpus.fetch_sub(1, Ordering::AcqRel);
    }

    /// Forks the host process for a program fork: `forking` is the vCPU of
    /// the thread that asked. The child gets a VM of its own (a VM belongs
    /// to the process that made it) over its copy of the memory, with the
    /// same memslots, so the copied page tables stay valid; and one vCPU on
    /// the forking vCPU's arena pages.
    pub fn fork(&self, forking: &Vcpu) -> Result<Forked, VcpuError> {
        // Every lock a child might need is taken, so that no other thread
        // holds one at the fork.
        let space = self.memory.lock().expect("address space");
        let mut pool = self.vcpus.lock().expect("vcpu pool");
        let mut registry = fds::lock();
        // SAFETY: the child continues in this thread only, and takes no
        // lock another thread could have held (those above are ours, glibc
        // makes its allocator safe across fork).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(VcpuError::Unexpected(format!(
                "fork: {}",
                std::io::Error::last_os_error()
            )));
        }
        if pid > 0 {
            return Ok(Forked::Parent(pid));
        }
        // The child: the parent's VM and vCPUs are unusable here.
        self.let_go(&mut pool, &mut registry);
        drop(registry);
        drop(pool);
        let t0 = std::time::Instant::now();
        let fd = create_vm_fd(&self.hv)?;
        let t1 = std::time::Instant::now();
        let memory = space.clone_onto(fd.clone())?;
        let t2 = std::time::Instant::now();
        drop(space);
        let live_vcpus = memory.live_vcpus();
        let vm = Arc::new(Vm {
            hv: self.hv.clone(),
            fd,
            live_vcpus,
            memory: Mutex::new(memory),
            runtime: self.runtime,
            vcpus: Mutex::new(VcpuPool {
                next_id: 1,
                ..Default::default()
            }),
            counters: Arc::new(VcpuCounters::default()),
        });
        let setup = CpuSetup {
            id: 0,
            ..forking.setup().clone()
        };
        let vcpu = vm.new_vcpu(setup)?;
        log::debug!(
            "fork child: VM {:?}, {} memslots {:?}, vCPU {:?}",
            t1 - t0,
            vm.memory.lock().expect("address space").stats.memslots,
            t2 - t1,
            t2.elapsed()
        );
        Ok(Forked::Child(vm, Box::new(vcpu)))
    }
}

/// A new VM, its descriptor parked.
/// How often KVM_CREATE_VM is made again after EINTR.
const CREATE_VM_TRIES: u32 = 100;

fn create_vm_fd(hv: &Hypervisor) -> Result<Arc<VmFd>, VcpuError> {
    // Creating a VM starts KVM's worker thread, which fails with EINTR
    // while a signal is pending, or a tracer's PTRACE_INTERRUPT (a traced
    // fork child is seized as it sets up its VM): going back to user space
    // takes it, and the call is made again.
    let mut tries = 1;
    let vm = loop {
        match hv.kvm.create_vm() {
            Err(e) if e.errno() == libc::EINTR && tries < CREATE_VM_TRIES => {
                log::debug!("KVM_CREATE_VM: interrupted, again");
                tries += 1;
            }
            r => break ioctl("KVM_CREATE_VM", r)?,
        }
    };
    let fd = fds::park(vm.as_raw_fd()).map_err(|e| VcpuError::Unexpected(e.to_string()))?;
    drop(vm);
    // SAFETY: `fd` is a VM descriptor we just created and own alone.
    Ok(Arc::new(ioctl("KVM_CREATE_VM", unsafe {
        hv.kvm.create_vmfd_from_rawfd(fd)
    })?))
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
