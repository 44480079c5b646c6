//! One vCPU: its CPU state at CPL3 with a chosen XCR0, and the run loop
//! that turns KVM exits into [`Exit`]s for the layer above.
//!
//! Every exit's registers come through kvm_run's sync-register area
//! (KVM_CAP_SYNC_REGS), so a forwarded system call costs exactly one ioctl,
//! KVM_RUN, on both KVMs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use guest_runtime::abi::{self, ExceptionFrame, selectors};
use kvm_bindings::{
    CpuId, Msrs, Xsave, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, kvm_xcr, kvm_xcrs,
    kvm_xsave,
};
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};
use x86_64::registers::rflags::RFlags;

use crate::memory::{AddressSpace, Overlay};

/// Where kvm_run holds the guest's general-purpose registers (struct
/// kvm_regs) after an exit, under KVM_CAP_SYNC_REGS.
pub const SYNC_REGS_OFFSET: u64 = std::mem::offset_of!(kvm_bindings::kvm_run, s) as u64;
/// Where kvm_run says which synced registers userspace changed, and the
/// bit that says the general-purpose ones did (taken in at the next
/// KVM_RUN).
pub const SYNC_DIRTY_OFFSET: u64 =
    std::mem::offset_of!(kvm_bindings::kvm_run, kvm_dirty_regs) as u64;
pub const SYNC_DIRTY_REGS: u64 = kvm_bindings::KVM_SYNC_X86_REGS as u64;
/// Where kvm_run's immediate_exit byte is ([`Vcpu::kick_flag`]).
pub const IMMEDIATE_EXIT_OFFSET: u64 =
    std::mem::offset_of!(kvm_bindings::kvm_run, immediate_exit) as u64;
use crate::tsc::{self, TscSample};
use crate::xcr0::Xcr0;

#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("{op}: {err}")]
    Ioctl {
        op: &'static str,
        err: kvm_ioctls::Error,
    },
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    #[error("the guest stopped unexpectedly: {0}")]
    Unexpected(String),
    #[error("the XCR0 probe did not report: {0}")]
    Probe(String),
    /// No vCPU can be made: KVM's limit of vCPUs per VM, or the sandbox's
    /// descriptors or memory for them, are used up (a limit on the
    /// program's threads alive at once, like RLIMIT_NPROC natively).
    #[error("no more vCPUs: {0}")]
    Exhausted(String),
}

impl VcpuError {
    /// Whether this is a limit the program reached rather than a fault.
    pub fn is_exhaustion(&self) -> bool {
        matches!(self, VcpuError::Exhausted(_))
    }
}

pub(crate) fn ioctl<T>(op: &'static str, r: Result<T, kvm_ioctls::Error>) -> Result<T, VcpuError> {
    r.map_err(|err| VcpuError::Ioctl { op, err })
}

// SYSCALL's MSRs (arch/x86/include/asm/msr-index.h): x86_64's Star, LStar
// and SFMask know them but keep the numbers private, and KVM_SET_MSRS
// takes numbers.
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
/// XSTATE_BV's offset in the standard XSAVE format (SDM Vol. 1 13.4.2).
const XSTATE_BV: usize = 512;
// Extended feature disable and its error (SDM Vol. 3A 13.14, msr-index.h).
const MSR_IA32_XFD: u32 = 0x1c4;
const MSR_IA32_XFD_ERR: u32 = 0x1c5;
// CPUID faulting (msr-index.h), which KVM emulates for its guests on any
// vendor: MSR_PLATFORM_INFO says it is there (KVM's default), a bit of
// MSR_MISC_FEATURES_ENABLES turns it on, and CPUID at CPL3 then raises #GP.
const MSR_PLATFORM_INFO: u32 = 0xce;
const PLATFORM_INFO_CPUID_FAULT: u64 = 1 << 31;
const MSR_MISC_FEATURES_ENABLES: u32 = 0x140;
const MISC_FEATURES_CPUID_FAULT: u64 = 1;
/// RFLAGS bit 1, reserved and always set (SDM Vol. 1 3.4.3): RFlags has no
/// name for it.
const RFLAGS_FIXED: u64 = 1 << 1;
/// RFLAGS bits SYSCALL clears: TF, IF, DF, IOPL, NT, AC (Linux's choice).
const SYSCALL_MASK: u64 = RFlags::TRAP_FLAG
    .union(RFlags::INTERRUPT_FLAG)
    .union(RFlags::DIRECTION_FLAG)
    .union(RFlags::IOPL_LOW)
    .union(RFlags::IOPL_HIGH)
    .union(RFlags::NESTED_TASK)
    .union(RFlags::ALIGNMENT_CHECK)
    .bits();
/// RFLAGS at the program's first instruction: IF and the fixed bit 1.
pub const USER_RFLAGS: u64 = RFlags::INTERRUPT_FLAG.bits() | RFLAGS_FIXED;

/// Where the guest runtime's entry points are, in guest-virtual addresses.
#[derive(Clone, Copy, Debug)]
pub struct RuntimeAddrs {
    pub enter_user: u64,
    pub syscall_entry: u64,
    pub exception_common: u64,
    pub probe: u64,
    pub user_page: u64,
    pub idt: u64,
}

/// Per-vCPU CPU setup inputs.
#[derive(Clone)]
pub struct CpuSetup {
    pub id: u64,
    pub xcr0: Xcr0,
    pub cpuid: CpuId,
    pub cr3: u64,
    pub gdt: u64,
    pub tss: u64,
    pub kernel_stack_top: u64,
    pub fsgsbase: bool,
    pub pku: bool,
    pub runtime: RuntimeAddrs,
    /// KVM_CAP_XSAVE2's size of the XSAVE area, 0 without it.
    pub xsave2_size: usize,
    /// Whether the guest has XFD (`Hypervisor::has_xfd`).
    pub xfd: bool,
}

/// What the CPL3 probe measured, as the program will see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probed {
    /// `xgetbv(0)`.
    pub xgetbv: u64,
    /// CPUID.(EAX=0DH,ECX=0):EBX.
    pub xsave_size: u32,
    /// Its `rdtsc`, bracketed by the host's.
    pub tsc: TscSample,
}

/// A program system call as the `syscall` instruction left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    pub nr: u64,
    pub args: [u64; 6],
    /// Where the program resumes (RCX).
    pub rip: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Syscall(Syscall),
    /// A CPU exception at CPL3 (or, with a CPL0 CS in the frame, a runtime bug).
    Exception {
        frame: ExceptionFrame,
        cr2: u64,
    },
    /// KVM_RUN returned for a host signal.
    Interrupted,
    /// Port I/O that is not the runtime's (the program's own `out`, or a
    /// jump into a stub): a #GP natively.
    StrayIo {
        rip: u64,
    },
    /// KVM could not access the host page behind a guest access (KVM_RUN
    /// EFAULT: e.g. a shared file mapping beyond the end of its file), at
    /// this guest-physical address where KVM says
    /// (KVM_EXIT_MEMORY_FAULT).
    HostFault {
        gpa: Option<u64>,
    },
}

/// How a system call returns to the program: decided by what KVM reports
/// at the first syscall exit (kvm-platforms.md). PVM shows CS = 0x33 there
/// and cannot run the stub's SYSRET, so the VMM sets RIP/RFLAGS itself;
/// hardware KVM shows CS = 0x10 and the stub's SYSRET returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnPath {
    Sysret,
    Vmm,
}

/// Where a vCPU stopped (see `Vcpu::stop`).
enum Stop {
    /// Past the syscall stub's `out`: a system call reported, its return
    /// to come (SYSRET with RCX and R11, or the VMM's own on PVM).
    Syscall,
    /// Past the exception stub's `out`, its frame at this CPL0 RSP.
    Exception(u64),
    /// At the entry stub's SYSRET (a new thread, a fork child).
    Entry,
    /// Elsewhere in the stubs: interrupted before reporting.
    InStub,
    User,
}

/// The words of an [`ExceptionFrame`] on the CPL0 stack.
const FRAME_RIP: u64 = 2;
const FRAME_CS: u64 = 3;
const FRAME_RFLAGS: u64 = 4;
const FRAME_RSP: u64 = 5;
const FRAME_SS: u64 = 6;

fn read_frame(memory: &Mutex<AddressSpace>, at: u64) -> ExceptionFrame {
    let mem = memory.lock().expect("address space");
    let arena = mem.arena();
    let gpa = arena.gpa_of_hva(at).expect("exception frame in the arena");
    let w = |i: u64| arena.read_u64(gpa + 8 * i);
    ExceptionFrame {
        vector: w(0),
        error_code: w(1),
        rip: w(FRAME_RIP),
        cs: w(FRAME_CS),
        rflags: w(FRAME_RFLAGS),
        rsp: w(FRAME_RSP),
        ss: w(FRAME_SS),
    }
}

fn write_frame(memory: &Mutex<AddressSpace>, at: u64, r: &kvm_regs) {
    let mem = memory.lock().expect("address space");
    let arena = mem.arena();
    let gpa = arena.gpa_of_hva(at).expect("exception frame in the arena");
    for (i, v) in [
        (FRAME_RIP, r.rip),
        (FRAME_CS, u64::from(selectors::USER_CS)),
        (FRAME_RFLAGS, r.rflags),
        (FRAME_RSP, r.rsp),
        (FRAME_SS, u64::from(selectors::USER_DS)),
    ] {
        arena.write(gpa + 8 * i, &v.to_le_bytes());
    }
}

/// Counters for `--stats`, shared by the vCPUs of a VM.
#[derive(Debug, Default)]
pub struct VcpuCounters {
    /// KVM_RUN calls that returned (each is one VM exit).
    pub exits: AtomicU64,
    /// vCPU ioctls other than KVM_RUN after set-up (KVM_GET_SREGS for a
    /// fault address or FS base, the state copied to a new thread's vCPU).
    pub other_ioctls: AtomicU64,
}

impl VcpuCounters {
    fn other(&self, n: u64) {
        self.other_ioctls.fetch_add(n, Ordering::Relaxed);
    }
}

/// What a new thread or a forked child starts from: the creating thread's
/// registers at its system call, its FS/GS bases and its extended state.
pub struct ThreadState {
    pub regs: kvm_regs,
    pub fs_base: u64,
    pub gs_base: u64,
    xsave: Vec<u8>,
    /// CPUID faulting, which a new task inherits (TIF_NOCPUID).
    cpuid_faulting: bool,
    /// rdtsc trapping (CR4.TSD), which it inherits too (TIF_NOTSC).
    tsc_trapping: bool,
}

pub struct Vcpu {
    fd: VcpuFd,
    setup: CpuSetup,
    xcr0: Xcr0,
    return_path: Option<ReturnPath>,
    /// The sync area holds system registers to apply at the next KVM_RUN.
    sregs_staged: bool,
    /// CPUID at CPL3 raises #GP for the program (ARCH_SET_CPUID).
    cpuid_faulting: bool,
    /// CPUID at CPL3 raises #GP for the sandbox to answer (`--cpuid`).
    cpuid_answered: bool,
    /// What MSR_MISC_FEATURES_ENABLES holds: faulting for either.
    cpuid_fault_msr: bool,
    /// RDTSC and RDTSCP at CPL3 raise #GP (CR4.TSD, PR_SET_TSC).
    tsc_trapping: bool,
    /// Its private page-table root for steps through watched pages, kept
    /// with the vCPU (reused by the next thread) so that its frames stay
    /// bounded by the vCPUs.
    overlay: Overlay,
    counters: Arc<VcpuCounters>,
}

/// CR4.TSD (SDM Vol. 3A 2.5): RDTSC and RDTSCP at CPL > 0 raise #GP.
const CR4_TSD: u64 = 1 << 2;

fn with_tsd(cr4: u64, on: bool) -> u64 {
    if on { cr4 | CR4_TSD } else { cr4 & !CR4_TSD }
}

fn segment(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl: (selector & 3) as u8,
        db: u8::from(!code),
        s: 1,
        l: u8::from(code),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// XCR0 as KVM_SET_XCRS takes it.
fn xcrs(xcr0: Xcr0) -> kvm_xcrs {
    let mut xcrs = kvm_xcrs {
        nr_xcrs: 1,
        ..Default::default()
    };
    xcrs.xcrs[0] = kvm_xcr {
        xcr: 0,
        value: xcr0.bits(),
        ..Default::default()
    };
    xcrs
}

/// CPL0 64-bit state: paging on, the runtime's GDT/IDT/TSS loaded.
pub fn initial_sregs(mut s: kvm_sregs, c: &CpuSetup) -> kvm_sregs {
    use x86_64::registers::control::{Cr0Flags, Cr4Flags};
    use x86_64::registers::model_specific::EferFlags;

    s.cs = segment(selectors::KERNEL_CS, true);
    s.ds = segment(selectors::KERNEL_DS, false);
    s.es = s.ds;
    s.ss = s.ds;
    s.fs = kvm_segment {
        selector: 0,
        ..s.ds
    };
    s.gs = s.fs;
    s.tr = kvm_segment {
        base: c.tss,
        limit: (crate::tables::TSS_SIZE - 1) as u32,
        selector: selectors::TSS,
        type_: 0xb,
        present: 1,
        s: 0,
        dpl: 0,
        db: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    s.ldt = kvm_segment {
        selector: 0,
        type_: 2,
        present: 0,
        unusable: 1,
        ..s.tr
    };
    s.gdt.base = c.gdt;
    s.gdt.limit = (crate::tables::GDT_BYTES - 1) as u16;
    s.idt.base = c.runtime.idt;
    s.idt.limit = 4095;
    s.cr0 = (Cr0Flags::PROTECTED_MODE_ENABLE
        | Cr0Flags::MONITOR_COPROCESSOR
        | Cr0Flags::EXTENSION_TYPE
        | Cr0Flags::NUMERIC_ERROR
        | Cr0Flags::WRITE_PROTECT
        | Cr0Flags::ALIGNMENT_MASK
        | Cr0Flags::PAGING)
        .bits();
    s.cr3 = c.cr3;
    let mut cr4 = Cr4Flags::PHYSICAL_ADDRESS_EXTENSION
        | Cr4Flags::OSFXSR
        | Cr4Flags::OSXMMEXCPT_ENABLE
        | Cr4Flags::OSXSAVE;
    if c.fsgsbase {
        cr4 |= Cr4Flags::FSGSBASE;
    }
    if c.pku && c.xcr0.bits() & crate::xcr0::PKRU != 0 {
        cr4 |= Cr4Flags::PROTECTION_KEY_USER;
    }
    s.cr4 = cr4.bits();
    s.efer = (EferFlags::SYSTEM_CALL_EXTENSIONS
        | EferFlags::LONG_MODE_ENABLE
        | EferFlags::LONG_MODE_ACTIVE
        | EferFlags::NO_EXECUTE_ENABLE)
        .bits();
    s
}

impl Vcpu {
    /// Configures `fd` for CPL3 execution with `c.xcr0`. Order matters: KVM
    /// checks XCR0 against the guest CPUID's leaf 0xD and CR4.OSXSAVE, so
    /// CPUID, then SREGS, then XCRS.
    pub fn new(fd: VcpuFd, c: CpuSetup, counters: Arc<VcpuCounters>) -> Result<Vcpu, VcpuError> {
        ioctl("KVM_SET_CPUID2", fd.set_cpuid2(&c.cpuid))?;
        let msr = |index, data| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        };
        let star =
            (u64::from(selectors::USER_CS32) << 48) | (u64::from(selectors::KERNEL_CS) << 32);
        let msrs = Msrs::from_entries(&[
            msr(MSR_STAR, star),
            msr(MSR_LSTAR, c.runtime.syscall_entry),
            msr(MSR_SYSCALL_MASK, SYSCALL_MASK),
        ])
        .map_err(|e| VcpuError::Unexpected(format!("MSR list: {e:?}")))?;
        let n = ioctl("KVM_SET_MSRS", fd.set_msrs(&msrs))?;
        if n != 3 {
            return Err(VcpuError::Unexpected(format!(
                "KVM_SET_MSRS set {n} of 3 MSRs"
            )));
        }
        let xcr0 = c.xcr0;
        let mut v = Vcpu {
            fd,
            setup: c,
            xcr0,
            return_path: None,
            sregs_staged: false,
            cpuid_faulting: false,
            cpuid_answered: false,
            cpuid_fault_msr: false,
            tsc_trapping: false,
            overlay: Overlay::default(),
            counters,
        };
        v.reset(xcr0)?;
        v.fd.set_sync_valid_reg(SyncReg::Register);
        Ok(v)
    }

    /// Puts the vCPU in its initial state, at CPL0 on the runtime's entry
    /// stub, with `xcr0`: for a new vCPU, or one taken back from an ended
    /// thread. CPUID and the SYSCALL MSRs stay as set once.
    pub fn reset(&mut self, xcr0: Xcr0) -> Result<(), VcpuError> {
        self.setup.xcr0 = xcr0;
        self.xcr0 = xcr0;
        self.tsc_trapping = false;
        let sregs = initial_sregs(ioctl("KVM_GET_SREGS", self.fd.get_sregs())?, &self.setup);
        self.load_sregs(&sregs)?;
        let xcrs = xcrs(xcr0);
        ioctl("KVM_SET_XCRS", self.fd.set_xcrs(&xcrs))?;
        // A task starts with the tile data disabled, as Linux starts one,
        // and with CPUID working.
        self.arm_xfd(xcr0)?;
        self.set_cpuid_faulting(false)?;
        let regs = kvm_regs {
            rip: self.setup.runtime.enter_user,
            rflags: RFLAGS_FIXED,
            rsp: self.setup.kernel_stack_top,
            ..Default::default()
        };
        self.load_regs(&regs)?;
        // System registers come through the sync area until the return
        // path is known again (see `run`).
        self.return_path = None;
        self.sregs_staged = false;
        self.fd.set_sync_valid_reg(SyncReg::SystemRegister);
        Ok(())
    }

    /// Loads registers by ioctl, and into the sync area too: registers
    /// marked dirty there by the vCPU's last user (an exit of a thread that
    /// has ended) would otherwise overwrite these at the next KVM_RUN.
    fn load_regs(&mut self, regs: &kvm_regs) -> Result<(), VcpuError> {
        ioctl("KVM_SET_REGS", self.fd.set_regs(regs))?;
        self.fd.sync_regs_mut().regs = *regs;
        Ok(())
    }

    /// As `load_regs`, for the system registers.
    fn load_sregs(&mut self, sregs: &kvm_sregs) -> Result<(), VcpuError> {
        ioctl("KVM_SET_SREGS", self.fd.set_sregs(sregs))?;
        self.fd.sync_regs_mut().sregs = *sregs;
        self.sregs_staged = false;
        Ok(())
    }

    /// Changes this vCPU's XCR0 (ARCH_SET_XCR0): one KVM_SET_XCRS, and the
    /// system registers only when CR4.PKE must follow PKRU. KVM refuses a
    /// value the guest's CPUID does not allow.
    pub fn set_xcr0(&mut self, xcr0: Xcr0) -> Result<(), VcpuError> {
        let pke = |x: Xcr0| self.setup.pku && x.bits() & crate::xcr0::PKRU != 0;
        if pke(xcr0) != pke(self.xcr0) {
            let mut sregs = self.sregs()?;
            let cr4 = initial_sregs(
                sregs,
                &CpuSetup {
                    xcr0,
                    ..self.setup.clone()
                },
            )
            .cr4;
            sregs.cr4 = with_tsd(cr4, self.tsc_trapping);
            self.fd.sync_regs_mut().sregs = sregs;
            self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
            self.sregs_staged = true;
        }
        let xcrs = xcrs(xcr0);
        self.counters.other(1);
        ioctl("KVM_SET_XCRS", self.fd.set_xcrs(&xcrs))?;
        if xcr0.bits() & !self.xcr0.bits() & crate::xcr0::TILEDATA != 0 {
            self.arm_xfd(xcr0)?;
        }
        self.xcr0 = xcr0;
        self.setup.xcr0 = xcr0;
        Ok(())
    }

    /// Disables AMX's tile data through XFD, where the guest has XFD and
    /// `xcr0` enables them: their first use then faults (#NM with
    /// XFD_ERR), and the sandbox decides, as Linux's XFD handler does.
    fn arm_xfd(&mut self, xcr0: Xcr0) -> Result<(), VcpuError> {
        if self.setup.xfd && xcr0.bits() & crate::xcr0::TILEDATA != 0 {
            self.set_msr(MSR_IA32_XFD, crate::xcr0::TILEDATA)?;
        }
        Ok(())
    }

    fn set_msr(&mut self, index: u32, data: u64) -> Result<(), VcpuError> {
        let msrs = Msrs::from_entries(&[kvm_msr_entry {
            index,
            data,
            ..Default::default()
        }])
        .map_err(|e| VcpuError::Unexpected(format!("MSR list: {e:?}")))?;
        self.counters.other(1);
        match ioctl("KVM_SET_MSRS", self.fd.set_msrs(&msrs))? {
            1 => Ok(()),
            _ => Err(VcpuError::Unexpected(format!(
                "KVM_SET_MSRS refused MSR {index:#x}"
            ))),
        }
    }

    /// Turns CPUID faulting on or off (ARCH_SET_CPUID): with it on, CPUID
    /// at CPL3 raises #GP, KVM's emulation of the Intel feature. An error
    /// means this KVM does not offer it.
    pub fn set_cpuid_faulting(&mut self, on: bool) -> Result<(), VcpuError> {
        self.apply_cpuid_fault(on || self.cpuid_answered)?;
        self.cpuid_faulting = on;
        Ok(())
    }

    /// Keeps CPUID faulting on whatever the program asks, for the sandbox
    /// to answer each CPUID at CPL3 (`--cpuid`); the program's own
    /// faulting ([`Vcpu::cpuid_faulting`]) is apart. An error means this
    /// KVM does not offer faulting.
    pub fn set_cpuid_answered(&mut self, on: bool) -> Result<(), VcpuError> {
        self.apply_cpuid_fault(on || self.cpuid_faulting)?;
        self.cpuid_answered = on;
        Ok(())
    }

    /// Whether the sandbox answers CPUID at CPL3.
    pub fn cpuid_answered(&self) -> bool {
        self.cpuid_answered
    }

    fn apply_cpuid_fault(&mut self, on: bool) -> Result<(), VcpuError> {
        if on == self.cpuid_fault_msr {
            return Ok(());
        }
        if on {
            // KVM's default, set again: it must be there to turn it on.
            self.set_msr(MSR_PLATFORM_INFO, PLATFORM_INFO_CPUID_FAULT)?;
        }
        self.set_msr(
            MSR_MISC_FEATURES_ENABLES,
            if on { MISC_FEATURES_CPUID_FAULT } else { 0 },
        )?;
        self.cpuid_fault_msr = on;
        Ok(())
    }

    /// Whether CPUID at CPL3 raises #GP here once faulting is on: the
    /// probe runs with it, and its CPUID must fault. The vCPU is reset
    /// afterwards.
    pub fn cpuid_faulting_applies(
        &mut self,
        memory: &Mutex<AddressSpace>,
    ) -> Result<bool, VcpuError> {
        if self.set_cpuid_faulting(true).is_err() {
            return Ok(false);
        }
        self.probe_raises_gp(memory)
    }

    /// Runs the CPL3 probe (xgetbv, cpuid, rdtsc) with a trap armed, then
    /// resets the vCPU: whether the probe raised #GP.
    fn probe_raises_gp(&mut self, memory: &Mutex<AddressSpace>) -> Result<bool, VcpuError> {
        let exit = self.run_probe(memory, 0);
        self.reset(self.xcr0)?;
        Ok(matches!(
            exit?,
            Exit::Exception { frame, .. }
                if frame.vector == u64::from(abi::vector::GENERAL_PROTECTION)
        ))
    }

    /// Turns rdtsc trapping on or off (PR_SET_TSC): CR4.TSD, applied at the
    /// next KVM_RUN. Whether the KVM applies it to CPL3 is
    /// [`Vcpu::tsd_applies`]'s to say.
    pub fn set_tsc_trapping(&mut self, on: bool) -> Result<(), VcpuError> {
        if on == self.tsc_trapping {
            return Ok(());
        }
        let mut sregs = self.sregs()?;
        sregs.cr4 = with_tsd(sregs.cr4, on);
        self.fd.sync_regs_mut().sregs = sregs;
        self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
        self.sregs_staged = true;
        self.tsc_trapping = on;
        Ok(())
    }

    /// Whether rdtsc trapping is on (PR_GET_TSC).
    pub fn tsc_trapping(&self) -> bool {
        self.tsc_trapping
    }

    /// Whether this KVM applies CR4.TSD to the guest's CPL3: the probe
    /// runs with it set, and its RDTSC must raise #GP (PVM runs CPL3
    /// natively under the host's CR4). The vCPU is reset afterwards.
    pub fn tsd_applies(&mut self, memory: &Mutex<AddressSpace>) -> Result<bool, VcpuError> {
        self.set_tsc_trapping(true)?;
        self.probe_raises_gp(memory)
    }

    /// Whether CPUID faulting is on (ARCH_GET_CPUID).
    pub fn cpuid_faulting(&self) -> bool {
        self.cpuid_faulting
    }

    /// At a #NM: the components whose use XFD stopped (XFD_ERR), cleared
    /// for the next; 0 where the guest has no XFD or it was not XFD.
    pub fn take_xfd_err(&mut self) -> Result<u64, VcpuError> {
        if !self.setup.xfd {
            return Ok(0);
        }
        let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
            index: MSR_IA32_XFD_ERR,
            ..Default::default()
        }])
        .map_err(|e| VcpuError::Unexpected(format!("MSR list: {e:?}")))?;
        self.counters.other(1);
        ioctl("KVM_GET_MSRS", self.fd.get_msrs(&mut msrs))?;
        let err = msrs.as_slice()[0].data;
        if err != 0 {
            self.set_msr(MSR_IA32_XFD_ERR, 0)?;
        }
        Ok(err)
    }

    /// Lets the thread use what XFD disabled (its first use of tile data,
    /// permitted).
    pub fn disarm_xfd(&mut self) -> Result<(), VcpuError> {
        self.set_msr(MSR_IA32_XFD, 0)
    }

    /// The setup this vCPU was made with (its descriptor tables and CPL0
    /// stack in the arena): what a forked child's vCPU reuses.
    pub fn setup(&self) -> &CpuSetup {
        &self.setup
    }

    /// At a system call exit: the state a thread created by this call
    /// starts from.
    pub fn thread_state(&mut self) -> Result<ThreadState, VcpuError> {
        let sregs = self.sregs()?;
        let mut xsave = self.xsave()?;
        // A new task's tile data start in their initial state, with XFD
        // armed (Linux gives a child the default-sized buffer).
        if let Some(bv) = xsave.get_mut(XSTATE_BV..XSTATE_BV + 8) {
            let v = u64::from_le_bytes(bv.try_into().expect("8 bytes"));
            bv.copy_from_slice(&(v & !crate::xcr0::TILEDATA).to_le_bytes());
        }
        Ok(ThreadState {
            regs: self.fd.sync_regs().regs,
            fs_base: sregs.fs.base,
            gs_base: sregs.gs.base,
            xsave,
            cpuid_faulting: self.cpuid_faulting,
            tsc_trapping: self.tsc_trapping,
        })
    }

    /// From the initial state ([`Vcpu::reset`]): the program continues from
    /// `st` (a copy of its creator's state with the child's changes), entering
    /// CPL3 through the runtime's SYSRET with RCX and R11 as the `syscall`
    /// instruction left them, as the kernel's own return does.
    pub fn start_thread(&mut self, st: &ThreadState) -> Result<(), VcpuError> {
        self.set_xsave(&st.xsave)?;
        self.set_cpuid_faulting(st.cpuid_faulting)?;
        // The rest goes through the sync area, applied by the first
        // KVM_RUN: the vCPU is at its initial state (`reset`), whose system
        // registers the area holds, so no ioctl is needed to read or set
        // them (three fewer per thread and per fork).
        let mut sregs = self.sregs()?;
        sregs.fs.base = st.fs_base;
        sregs.gs.base = st.gs_base;
        sregs.cr4 = with_tsd(sregs.cr4, st.tsc_trapping);
        self.tsc_trapping = st.tsc_trapping;
        let sync = self.fd.sync_regs_mut();
        sync.sregs = sregs;
        sync.regs = kvm_regs {
            rip: self.setup.runtime.enter_user,
            rflags: RFLAGS_FIXED,
            ..st.regs
        };
        self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
        self.fd.set_sync_dirty_reg(SyncReg::Register);
        self.sregs_staged = true;
        Ok(())
    }

    pub fn xcr0(&self) -> Xcr0 {
        self.xcr0
    }

    /// What CPUID (`leaf`, `subleaf`) gives the guest when the vCPU runs
    /// it itself: the CPU's own answer where CPL3 runs natively
    /// (`native`: PVM), else the table this vCPU was given, with what KVM
    /// fills in at run time (OSXSAVE; leaf 0xD.0's size for the XCR0).
    pub fn guest_cpuid(&self, native: bool, leaf: u32, subleaf: u32) -> [u32; 4] {
        if native {
            let r = std::arch::x86_64::__cpuid_count(leaf, subleaf);
            return [r.eax, r.ebx, r.ecx, r.edx];
        }
        let lookup = |leaf: u32, subleaf: u32| {
            self.setup
                .cpuid
                .as_slice()
                .iter()
                .find(|e| {
                    e.function == leaf
                        && (e.flags & kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX == 0
                            || e.index == subleaf)
                })
                .map_or([0; 4], |e| [e.eax, e.ebx, e.ecx, e.edx])
        };
        let mut r = lookup(leaf, subleaf);
        match (leaf, subleaf) {
            // CR4.OSXSAVE is always set here.
            (1, _) => r[2] |= 1 << 27,
            (0xd, 0) => {
                r[1] = self.xcr0.xsave_size(|i| {
                    let [size, offset, ..] = lookup(0xd, i);
                    (size, offset)
                })
            }
            _ => {}
        }
        r
    }

    /// Runs until the next exit the layer above must handle.
    ///
    /// No lock is taken on the way: whoever narrows a mapping flushes
    /// before returning to its own guest, and KVM applies the flush to
    /// every vCPU of the VM (see [`AddressSpace::flush`]).
    pub fn run(&mut self, memory: &Mutex<AddressSpace>) -> Result<Exit, VcpuError> {
        self.counters.exits.fetch_add(1, Ordering::Relaxed);
        let result = self.fd.run();
        self.sregs_staged = false;
        let exit = match result {
            Ok(VcpuExit::IoOut(port, _)) => port,
            // Only the program can read a port (the stubs never do): on PVM
            // the runtime's ports are open to CPL3.
            Ok(VcpuExit::IoIn(..)) => {
                let rip = self.fd.sync_regs().regs.rip;
                return Ok(Exit::StrayIo { rip });
            }
            Ok(other) => {
                let what = format!("{other:?}");
                return Err(self.unexpected(what));
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                return Ok(Exit::Interrupted);
            }
            Err(e) if e.errno() == libc::EFAULT || e.errno() == libc::EHWPOISON => {
                log::debug!("KVM_RUN: {e}: a guest access to host memory failed");
                let run = self.fd.get_kvm_run();
                // SAFETY: plain integers in a union KVM owns; the value
                // means something only for this exit reason.
                let gpa = unsafe { run.__bindgen_anon_1.memory_fault.gpa };
                let gpa = (run.exit_reason == kvm_bindings::KVM_EXIT_MEMORY_FAULT).then_some(gpa);
                return Ok(Exit::HostFault { gpa });
            }
            Err(err) => return Err(VcpuError::Ioctl { op: "KVM_RUN", err }),
        };
        let sync = self.fd.sync_regs();
        let r = sync.regs;
        log::trace!(
            "exit: out {exit:#x} rip {:#x} rax {:#x} rcx {:#x} rsp {:#x}",
            r.rip,
            r.rax,
            r.rcx,
            r.rsp
        );
        // Genuine runtime exits stop at a stub's `out`: after it on PVM
        // (emulated), on it on hardware KVM (which would skip it on
        // re-entry). The VMM moves past it itself, so that RIP on the `out`
        // always means a stub interrupted before reporting (see `stop`);
        // KVM skips nothing once RIP has changed.
        let at = |stub: u64| r.rip == stub || r.rip == stub + 2;
        let rt = self.setup.runtime;
        if (exit == abi::PORT_SYSCALL && r.rip == rt.syscall_entry)
            || (exit == abi::PORT_EXCEPTION && r.rip == rt.exception_common)
        {
            self.fd.sync_regs_mut().regs.rip = r.rip + 2;
            self.fd.set_sync_dirty_reg(SyncReg::Register);
        }
        let sync = self.fd.sync_regs();
        match exit {
            abi::PORT_SYSCALL if at(self.setup.runtime.syscall_entry) => {
                if self.return_path.is_none() {
                    let path = if sync.sregs.cs.dpl == 3 {
                        ReturnPath::Vmm
                    } else {
                        ReturnPath::Sysret
                    };
                    log::debug!(
                        "syscall return path: {path:?} (CS {:#x} at the stub)",
                        sync.sregs.cs.selector
                    );
                    self.return_path = Some(path);
                    // From now on system registers are fetched on demand:
                    // copying them out on every exit costs each syscall.
                    self.fd.clear_sync_valid_reg(SyncReg::SystemRegister);
                }
                Ok(Exit::Syscall(Syscall {
                    nr: r.rax,
                    args: [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9],
                    rip: r.rcx,
                }))
            }
            abi::PORT_EXCEPTION if at(self.setup.runtime.exception_common) => {
                let mem = memory.lock().expect("address space");
                let arena = mem.arena();
                let frame_size = size_of::<ExceptionFrame>() as u64;
                let (Some(gpa), Some(_)) = (
                    arena.gpa_of_hva(r.rsp),
                    arena.gpa_of_hva(r.rsp + frame_size - 1),
                ) else {
                    // A jump into the stub from CPL3, not an exception.
                    return Ok(Exit::StrayIo { rip: r.rip });
                };
                let w = |i: u64| arena.read_u64(gpa + 8 * i);
                let frame = ExceptionFrame {
                    vector: w(0),
                    error_code: w(1),
                    rip: w(2),
                    cs: w(3),
                    rflags: w(4),
                    rsp: w(5),
                    ss: w(6),
                };
                Ok(Exit::Exception {
                    frame,
                    cr2: self.sregs()?.cr2,
                })
            }
            port => {
                log::debug!("out to port {port:#x} at {:#x} outside the runtime", r.rip);
                Ok(Exit::StrayIo { rip: r.rip })
            }
        }
    }

    fn unexpected(&mut self, what: String) -> VcpuError {
        let regs = self.fd.sync_regs().regs;
        VcpuError::Unexpected(format!("{what}; rip {:#x} rsp {:#x}", regs.rip, regs.rsp))
    }

    /// Finishes the system call of the last exit with `ret` in RAX.
    pub fn complete_syscall(&mut self, ret: u64) {
        let path = self.return_path.unwrap_or(ReturnPath::Sysret);
        let regs = &mut self.fd.sync_regs_mut().regs;
        regs.rax = ret;
        if path == ReturnPath::Vmm {
            regs.rip = regs.rcx;
            regs.rflags = regs.r11;
        }
        self.fd.set_sync_dirty_reg(SyncReg::Register);
    }

    /// From a syscall exit, resumes at CPL3 at `rip` with stack `rsp` and
    /// every other register zero, as execve leaves a new program.
    pub fn start_user(&mut self, rip: u64, rsp: u64) {
        let path = self.return_path.unwrap_or(ReturnPath::Sysret);
        let regs = &mut self.fd.sync_regs_mut().regs;
        let stub_rip = regs.rip;
        *regs = kvm_regs {
            rsp,
            ..Default::default()
        };
        match path {
            ReturnPath::Vmm => {
                regs.rip = rip;
                regs.rflags = USER_RFLAGS;
            }
            ReturnPath::Sysret => {
                regs.rip = stub_rip;
                regs.rflags = RFLAGS_FIXED;
                regs.rcx = rip;
                regs.r11 = USER_RFLAGS;
            }
        }
        self.fd.set_sync_dirty_reg(SyncReg::Register);
    }

    /// Where the program stopped, from the vCPU's RIP: in the syscall
    /// stub (a system call not yet returned from), in the exception stub
    /// (a fault, frame at RSP), or at CPL3 (interrupted, or a system call
    /// whose return the VMM already made).
    fn stop(&self) -> Stop {
        let r = &self.fd.sync_regs().regs;
        let rt = &self.setup.runtime;
        if r.rip == rt.syscall_entry + 2 {
            Stop::Syscall
        } else if r.rip == rt.exception_common + 2 {
            Stop::Exception(r.rsp)
        } else if r.rip == rt.enter_user {
            Stop::Entry
        } else if (rt.enter_user..rt.enter_user + 4096).contains(&r.rip) {
            Stop::InStub
        } else {
            Stop::User
        }
    }

    /// Whether the program can take a signal where the vCPU stopped: not
    /// when KVM_RUN was interrupted while the guest ran a runtime stub
    /// before its `out` (the stub's exit comes next, and the signal then).
    pub fn at_user_boundary(&self) -> bool {
        !matches!(self.stop(), Stop::InStub)
    }

    /// The program's registers where it stopped, as the kernel sees them
    /// at the same point: after a system call, RIP is its return address
    /// (RCX) and RFLAGS the saved ones (R11); after a fault, RIP, RSP and
    /// RFLAGS are the fault's.
    pub fn user_regs(&self, memory: &Mutex<AddressSpace>) -> kvm_regs {
        let mut r = self.fd.sync_regs().regs;
        match self.stop() {
            Stop::Syscall | Stop::Entry => {
                r.rip = r.rcx;
                r.rflags = r.r11;
            }
            Stop::Exception(frame) => {
                let f = read_frame(memory, frame);
                r.rip = f.rip;
                r.rflags = f.rflags;
                r.rsp = f.rsp;
            }
            Stop::User | Stop::InStub => {}
        }
        r
    }

    /// Sets or clears the trap flag in the program's RFLAGS where this stop
    /// keeps them (R11 in a system call, the frame after a fault), nothing
    /// else changed: a step through one instruction, whatever exit ends it.
    pub fn set_user_trap_flag(&mut self, memory: &Mutex<AddressSpace>, on: bool) {
        let tf = RFlags::TRAP_FLAG.bits();
        let apply = |f: u64| if on { f | tf } else { f & !tf };
        match self.stop() {
            Stop::Syscall | Stop::Entry => {
                let r = &mut self.fd.sync_regs_mut().regs;
                r.r11 = apply(r.r11);
            }
            Stop::Exception(frame) => {
                let mem = memory.lock().expect("address space");
                let arena = mem.arena();
                let gpa = arena
                    .gpa_of_hva(frame)
                    .expect("exception frame in the arena")
                    + 8 * FRAME_RFLAGS;
                arena.write(gpa, &apply(arena.read_u64(gpa)).to_le_bytes());
                return;
            }
            Stop::User | Stop::InStub => {
                let r = &mut self.fd.sync_regs_mut().regs;
                r.rflags = apply(r.rflags);
            }
        }
        self.fd.set_sync_dirty_reg(SyncReg::Register);
    }

    /// Resumes the program with exactly `regs` (every general-purpose
    /// register, RIP, RSP, RFLAGS) at CPL3, however it stopped: what a
    /// signal frame's setup and sigreturn need.
    pub fn set_user_regs(
        &mut self,
        memory: &Mutex<AddressSpace>,
        regs: &kvm_regs,
    ) -> Result<(), VcpuError> {
        match self.stop() {
            Stop::Syscall if self.return_path == Some(ReturnPath::Sysret) => {
                // The stub runs at CPL0 here: the VMM makes the return
                // itself, as an IRET would, so RCX and R11 are kept too.
                let mut sregs = self.sregs()?;
                sregs.cs = segment(selectors::USER_CS, true);
                sregs.ss = segment(selectors::USER_DS, false);
                self.fd.sync_regs_mut().sregs = sregs;
                self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
                self.sregs_staged = true;
                self.fd.sync_regs_mut().regs = *regs;
            }
            Stop::Exception(frame) => {
                // The stub's IRETQ returns through the frame on the CPL0
                // stack: the program's RIP, RFLAGS and RSP go there.
                write_frame(memory, frame, regs);
                let r = &mut self.fd.sync_regs_mut().regs;
                let (rip, rsp) = (r.rip, r.rsp);
                *r = kvm_regs { rip, rsp, ..*regs };
                r.rflags = RFLAGS_FIXED;
            }
            Stop::Entry => {
                // The entry stub's SYSRET takes RIP and RFLAGS from RCX
                // and R11, at the CPL0 it starts at.
                let entry = self.setup.runtime.enter_user;
                self.fd.sync_regs_mut().regs = kvm_regs {
                    rip: entry,
                    rflags: RFLAGS_FIXED,
                    rcx: regs.rip,
                    r11: regs.rflags,
                    ..*regs
                };
            }
            Stop::Syscall | Stop::User | Stop::InStub => self.fd.sync_regs_mut().regs = *regs,
        }
        self.fd.set_sync_dirty_reg(SyncReg::Register);
        Ok(())
    }

    /// kvm_run's immediate_exit byte: set from a signal handler, it makes
    /// the next KVM_RUN (or the one being entered) return at once with
    /// EINTR, so that a signal arriving just before the guest runs is not
    /// left until the next exit.
    pub fn kick_flag(&mut self) -> *mut u8 {
        &mut self.fd.get_kvm_run().immediate_exit
    }

    /// Where this vCPU's kvm_run is: after an exit it holds the guest's
    /// registers at [`SYNC_REGS_OFFSET`], which a tracer's sandbox reads
    /// from another process while this thread is stopped.
    pub fn kvm_run_addr(&mut self) -> u64 {
        self.fd.get_kvm_run() as *mut kvm_bindings::kvm_run as u64
    }

    /// Clears the flag `kick_flag` points at, before pending signals are
    /// looked at for the next KVM_RUN.
    pub fn clear_kick(&mut self) {
        let flag = self.kick_flag();
        // SAFETY: kvm_run lives as long as the vCPU; a volatile write, as
        // a signal handler may write the same byte.
        unsafe { flag.write_volatile(0) };
    }

    /// The 32-bit words past the legacy 4096-byte area that this KVM's
    /// XSAVE area has (AMX's tile data need 11 KiB); None without
    /// KVM_GET_XSAVE2.
    fn xsave2_extra(&self) -> Option<usize> {
        let size = self.setup.xsave2_size;
        (size > 0).then(|| size.saturating_sub(size_of::<kvm_xsave>()).div_ceil(4))
    }

    /// The extended state (x87, SSE, AVX...) as the bytes of the standard
    /// (non-compacted) XSAVE format: as many as KVM_CAP_XSAVE2 says, or
    /// the legacy 4096 (which hold every component but AMX's tile data).
    pub fn xsave(&mut self) -> Result<Vec<u8>, VcpuError> {
        self.counters.other(1);
        let words: Vec<u32> = match self.xsave2_extra() {
            Some(extra) => {
                let mut x = Xsave::new(extra)
                    .map_err(|e| VcpuError::Unexpected(format!("XSAVE area: {e:?}")))?;
                // SAFETY: `x` has room for KVM_CAP_XSAVE2's size, asked for
                // after this process's XSAVE permissions were settled.
                ioctl("KVM_GET_XSAVE2", unsafe { self.fd.get_xsave2(&mut x) })?;
                let region = x.as_fam_struct_ref().xsave.region;
                region.iter().chain(x.as_slice()).copied().collect()
            }
            None => ioctl("KVM_GET_XSAVE", self.fd.get_xsave())?.region.to_vec(),
        };
        Ok(words.iter().flat_map(|w| w.to_le_bytes()).collect())
    }

    /// Loads extended state from standard XSAVE-format bytes (up to the
    /// size `xsave` gives); KVM refuses what XRSTOR would fault on
    /// (reserved header or MXCSR bits).
    pub fn set_xsave(&mut self, bytes: &[u8]) -> Result<(), VcpuError> {
        let mut words = bytes.chunks(4).map(|b| {
            let mut word = [0u8; 4];
            word[..b.len()].copy_from_slice(b);
            u32::from_le_bytes(word)
        });
        let mut x = kvm_xsave::default();
        for (w, b) in x.region.iter_mut().zip(words.by_ref()) {
            *w = b;
        }
        let Some(extra) = self.xsave2_extra() else {
            return self.set_xsave_raw(&x);
        };
        let mut x2 =
            Xsave::new(extra).map_err(|e| VcpuError::Unexpected(format!("XSAVE area: {e:?}")))?;
        for (w, b) in x2.as_mut_slice().iter_mut().zip(words) {
            *w = b;
        }
        // SAFETY: the wrapper's header is a plain struct of its own.
        unsafe { x2.as_mut_fam_struct().xsave.region = x.region };
        self.counters.other(1);
        // SAFETY: an XSAVE area of KVM_CAP_XSAVE2's size, as read above.
        ioctl("KVM_SET_XSAVE2", unsafe { self.fd.set_xsave2(&x2) })
    }

    /// A handle on this vCPU's extended state for code its own thread runs
    /// while that thread's usual code is interrupted (a call a tracer
    /// makes it run in a stop: syscall-proxy's trace/inject.rs).
    pub fn fp_port(&self) -> FpPort {
        FpPort {
            fd: &self.fd,
            larger: self.xsave2_extra().is_some_and(|extra| extra > 0),
        }
    }

    fn set_xsave_raw(&mut self, x: &kvm_xsave) -> Result<(), VcpuError> {
        self.counters.other(1);
        // SAFETY: a kvm_xsave in the legacy 4096-byte layout; components
        // past it (AMX's tile data), absent from its XSTATE_BV, are put in
        // their initial state.
        ioctl("KVM_SET_XSAVE", unsafe { self.fd.set_xsave(x) })
    }

    /// The state a signal handler starts with: x87 and SSE in their
    /// initial configuration (FCW 0x37f, MXCSR 0x1f80), the rest init.
    pub fn reset_fpu(&mut self) -> Result<(), VcpuError> {
        let mut x = kvm_xsave::default();
        x.region[0] = 0x37f; // FCW (FXSAVE layout, SDM Vol. 1 10.5.1)
        x.region[6] = 0x1f80; // MXCSR
        x.region[128] = 0x3; // XSTATE_BV: x87 and SSE as above
        self.set_xsave_raw(&x)
    }

    /// The system registers at the last exit: in the sync area until the
    /// return path is known, by KVM_GET_SREGS after.
    fn sregs(&mut self) -> Result<kvm_sregs, VcpuError> {
        if self.return_path.is_none() || self.sregs_staged {
            return Ok(self.fd.sync_regs().sregs);
        }
        self.counters.other(1);
        ioctl("KVM_GET_SREGS", self.fd.get_sregs())
    }

    pub fn fs_base(&mut self) -> Result<u64, VcpuError> {
        Ok(self.sregs()?.fs.base)
    }

    pub fn gs_base(&mut self) -> Result<u64, VcpuError> {
        Ok(self.sregs()?.gs.base)
    }

    /// Sets the FS or GS base (arch_prctl) before the guest resumes, through
    /// the sync area (applied by the next KVM_RUN).
    pub fn set_segment_base(&mut self, gs: bool, base: u64) -> Result<(), VcpuError> {
        let mut sregs = self.sregs()?;
        if gs {
            sregs.gs.base = base;
        } else {
            sregs.fs.base = base;
        }
        self.fd.sync_regs_mut().sregs = sregs;
        self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
        self.sregs_staged = true;
        Ok(())
    }

    /// The vCPU's private root for steps through watched pages.
    pub fn overlay(&mut self) -> &mut Overlay {
        &mut self.overlay
    }

    /// Points the guest's CR3 at `root` before it resumes: a step through
    /// a page its debug registers watch, under a private root, and back.
    pub fn set_cr3(&mut self, root: u64) -> Result<(), VcpuError> {
        let mut sregs = self.sregs()?;
        if sregs.cr3 == root {
            return Ok(());
        }
        sregs.cr3 = root;
        self.fd.sync_regs_mut().sregs = sregs;
        self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
        self.sregs_staged = true;
        Ok(())
    }

    /// Enters the CPL3 probe and returns its exit.
    fn run_probe(
        &mut self,
        memory: &Mutex<AddressSpace>,
        user_stack: u64,
    ) -> Result<Exit, VcpuError> {
        let regs = kvm_regs {
            rip: self.setup.runtime.enter_user,
            rflags: RFLAGS_FIXED,
            rcx: self.setup.runtime.probe,
            r11: RFLAGS_FIXED,
            rsp: user_stack,
            ..Default::default()
        };
        self.fd.sync_regs_mut().regs = regs;
        self.fd.set_sync_dirty_reg(SyncReg::Register);
        self.run(memory)
    }

    /// Runs the CPL3 probe (guest_runtime's user page) and returns what it
    /// measured. The vCPU is left at the probe's syscall exit, ready for
    /// [`Vcpu::start_user`].
    pub fn probe(
        &mut self,
        memory: &Mutex<AddressSpace>,
        user_stack: u64,
    ) -> Result<Probed, VcpuError> {
        let before = tsc::host_now();
        let mut exit = self.run_probe(memory, user_stack)?;
        // A signal (a tracer stopping a sandbox as it starts) returns
        // KVM_RUN early: the probe goes on.
        for _ in 0..1000 {
            if !matches!(exit, Exit::Interrupted) {
                break;
            }
            exit = self.run(memory)?;
        }
        let after = tsc::host_now();
        match exit {
            Exit::Syscall(s)
                if s.nr == abi::PROBE_SYSCALL_NR
                    && (self.setup.runtime.user_page..self.setup.runtime.user_page + 4096)
                        .contains(&s.rip) =>
            {
                Ok(Probed {
                    xgetbv: s.args[0],
                    xsave_size: s.args[1] as u32,
                    tsc: TscSample {
                        before,
                        guest: s.args[2],
                        after,
                    },
                })
            }
            other => Err(VcpuError::Probe(format!("{other:x?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rflags_are_linuxs() {
        assert_eq!(SYSCALL_MASK, 0x4_7700);
        assert_eq!(USER_RFLAGS, 0x202);
    }
}

/// The extended state of a vCPU through the legacy 4096-byte XSAVE area
/// (every component but AMX's tile data), which needs no allocation: for
/// code that interrupts the thread running the vCPU, and may have stopped
/// it inside the allocator.
#[derive(Clone, Copy)]
pub struct FpPort {
    fd: *const VcpuFd,
    /// The vCPU's area is larger than the legacy one (AMX): KVM_SET_XSAVE
    /// would read that much.
    larger: bool,
}

impl FpPort {
    /// Whether `set` is refused: the vCPU's area is larger than the
    /// legacy one.
    pub fn larger(self) -> bool {
        self.larger
    }

    /// The size of the area `get` and `set` move.
    pub const SIZE: usize = size_of::<kvm_xsave>();

    /// KVM_GET_XSAVE into `out`, as standard XSAVE-format bytes.
    ///
    /// # Safety
    /// The vCPU it came from is alive and has not moved, and the caller is
    /// the thread that runs it, outside any KVM call.
    pub unsafe fn get(self, out: &mut [u8; Self::SIZE]) -> Result<(), VcpuError> {
        // SAFETY: the caller's promise: the VcpuFd is alive and in place.
        let x = ioctl("KVM_GET_XSAVE", unsafe { &*self.fd }.get_xsave())?;
        for (b, w) in out.chunks_exact_mut(4).zip(x.region) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        Ok(())
    }

    /// KVM_SET_XSAVE from standard XSAVE-format bytes; refused where the
    /// vCPU's area is larger (KVM would read past these).
    ///
    /// # Safety
    /// As for `get`.
    pub unsafe fn set(self, bytes: &[u8; Self::SIZE]) -> Result<(), VcpuError> {
        if self.larger {
            return Err(VcpuError::Unexpected(String::new()));
        }
        let mut x = kvm_xsave::default();
        for (w, b) in x.region.iter_mut().zip(bytes.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        // SAFETY: the caller's promise, and a kvm_xsave of the legacy size.
        ioctl("KVM_SET_XSAVE", unsafe { (*self.fd).set_xsave(&x) })
    }
}
