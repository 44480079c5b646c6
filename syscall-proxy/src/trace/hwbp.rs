//! A tracee's debug registers (DR0-DR3, DR6, DR7), emulated.
//!
//! The guest's own debug registers never fire on the KVMs here (PVM, and
//! kvm_amd under QEMU's software CPU, with KVM_SET_DEBUGREGS or
//! KVM_SET_GUEST_DEBUG alike), so a breakpoint or watchpoint takes rights
//! away from its page in the guest page tables instead: fetches for an
//! instruction breakpoint, writes for a write watchpoint, every access for
//! a read/write one (`vmm::Narrow`). An access that faults there only for
//! that reason is run again with the page's real rights, for that one
//! instruction, under a private page-table root of the thread's vCPU and
//! the trap flag; whether it touched a watched range is decided from the
//! instruction before it runs (iced-x86's memory operands with the
//! thread's registers). Other threads of the process fault on the page
//! too and step through it the same way, unseen. A hit is Linux's SIGTRAP
//! (TRAP_HWBKPT, DR6 naming the register): before the instruction for a
//! breakpoint (with RF set, so that it runs once when resumed), after it
//! for a watchpoint.

use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory, OpAccess, Register};
use vmm::{Narrow, kvm_regs};

use crate::host::Errno;
use crate::thread::Thread;

/// DR6's bits that read as 1 when nothing is recorded; the kernel keeps
/// the register with them flipped (virtual_dr6), and so does the page.
pub const DR6_RESERVED: u64 = 0xffff_0ff0;
/// The first address above user space (TASK_SIZE_MAX).
pub const TASK_SIZE_MAX: u64 = 0x7fff_ffff_f000;
const RF: u64 = 1 << 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Execute,
    Write,
    ReadWrite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breakpoint {
    /// Which of DR0-DR3: its bit in DR6.
    pub n: usize,
    pub addr: u64,
    pub len: u64,
    pub kind: Kind,
}

/// The breakpoints DR0-DR3 and DR7 enable, or EINVAL where Linux refuses
/// them (ptrace_write_dr7, arch_bp_generic_fields, hw_breakpoint_arch_parse):
/// I/O breakpoints, an instruction breakpoint with a length, a watched
/// range not aligned to its length or reaching past user space.
pub fn decode(dr: &[u64; 8]) -> Result<Vec<Breakpoint>, Errno> {
    let dr7 = dr[7];
    let mut bps = Vec::new();
    for (n, &addr) in dr[..4].iter().enumerate() {
        if (dr7 >> (2 * n)) & 3 == 0 {
            continue;
        }
        let control = dr7 >> (16 + 4 * n);
        let (kind, len) = match (control & 3, (control >> 2) & 3) {
            (0, 0) => (Kind::Execute, 1),
            (1, l) => (Kind::Write, [1, 2, 8, 4][l as usize]),
            (3, l) => (Kind::ReadWrite, [1, 2, 8, 4][l as usize]),
            _ => return Err(Errno(libc::EINVAL)),
        };
        if addr & (len - 1) != 0 || addr.checked_add(len).is_none_or(|end| end > TASK_SIZE_MAX) {
            return Err(Errno(libc::EINVAL));
        }
        bps.push(Breakpoint { n, addr, len, kind });
    }
    Ok(bps)
}

/// The pages `bps` watch, with what each takes away from them.
pub fn narrowing(bps: &[Breakpoint]) -> Vec<(u64, Narrow)> {
    bps.iter()
        .map(|b| {
            let n = match b.kind {
                Kind::Execute => Narrow {
                    exec: true,
                    ..Default::default()
                },
                Kind::Write => Narrow {
                    write: true,
                    ..Default::default()
                },
                Kind::ReadWrite => Narrow {
                    all: true,
                    ..Default::default()
                },
            };
            (b.addr & !0xfff, n)
        })
        .collect()
}

/// The DR6 bits of the watchpoints among `bps` that the instruction in
/// `code` at `r.rip` touches, with FS and GS at `fs` and `gs`. None: the
/// instruction or one of its addresses cannot be worked out.
pub fn data_hits(code: &[u8], r: &kvm_regs, fs: u64, gs: u64, bps: &[Breakpoint]) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, r.rip, DecoderOptions::NONE);
    let ins = decoder.decode();
    if ins.is_invalid() {
        return None;
    }
    let value = |reg: Register| -> Option<u64> {
        let v = match reg {
            Register::ES | Register::CS | Register::SS | Register::DS => return Some(0),
            Register::FS => return Some(fs),
            Register::GS => return Some(gs),
            _ => match reg.full_register() {
                Register::RAX => r.rax,
                Register::RBX => r.rbx,
                Register::RCX => r.rcx,
                Register::RDX => r.rdx,
                Register::RSI => r.rsi,
                Register::RDI => r.rdi,
                Register::RBP => r.rbp,
                Register::RSP => r.rsp,
                Register::R8 => r.r8,
                Register::R9 => r.r9,
                Register::R10 => r.r10,
                Register::R11 => r.r11,
                Register::R12 => r.r12,
                Register::R13 => r.r13,
                Register::R14 => r.r14,
                Register::R15 => r.r15,
                Register::RIP => r.rip,
                _ => return None,
            },
        };
        Some(match reg.size() {
            8 => v,
            n => v & ((1u64 << (8 * n)) - 1),
        })
    };
    let mut factory = InstructionInfoFactory::new();
    let mut hits = 0;
    for m in factory.info(&ins).used_memory() {
        let (read, write) = match m.access() {
            OpAccess::Read | OpAccess::CondRead => (true, false),
            OpAccess::Write | OpAccess::CondWrite => (false, true),
            OpAccess::ReadWrite | OpAccess::ReadCondWrite => (true, true),
            _ => continue,
        };
        let at = m.virtual_address(0, |reg, _, _| value(reg))?;
        let size = (m.memory_size().size() as u64).max(1);
        for b in bps {
            let wanted = match b.kind {
                Kind::Execute => false,
                Kind::Write => write,
                Kind::ReadWrite => read || write,
            };
            if wanted && at < b.addr + b.len && b.addr < at.wrapping_add(size) {
                hits |= 1 << b.n;
            }
        }
    }
    Some(hits)
}

/// A thread's emulated debug registers.
#[derive(Debug, Default)]
pub struct State {
    /// DR0-DR3 and DR7 as last taken from the trace page.
    applied: [u64; 5],
    bps: Vec<Breakpoint>,
    step: Option<Step>,
    /// An instruction breakpoint was reported here: the instruction runs
    /// once before it can fire again (the RF flag Linux sets).
    resume_past: Option<u64>,
}

/// One instruction stepped through a watched page.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// The DR6 bits of the watchpoints it touches.
    pub hits: u64,
    /// Whether the trap flag is the sandbox's (not a tracer's single step
    /// or the program's own).
    pub own_tf: bool,
}

impl State {
    /// The state a fork child starts with: the registers its page carries
    /// over read as the parent's DR7 (the kernel copies ptrace_dr7) but
    /// enable nothing (it does not copy the breakpoints).
    pub fn inherited(dr: &[u64; 8]) -> State {
        State {
            applied: [dr[0], dr[1], dr[2], dr[3], dr[7]],
            ..Default::default()
        }
    }

    pub fn any(&self) -> bool {
        !self.bps.is_empty()
    }
}

fn tid() -> i32 {
    crate::umem::own_tid()
}

/// Takes the debug registers a tracer left in the page (`dr`) into effect
/// if they changed.
pub fn refresh(t: &mut Thread, dr: &[u64; 8]) {
    let now = [dr[0], dr[1], dr[2], dr[3], dr[7]];
    if now == t.hwbp.applied {
        return;
    }
    t.hwbp.applied = now;
    // The tracer checked them as it wrote them.
    t.hwbp.bps = decode(dr).unwrap_or_default();
    t.hwbp.resume_past = None;
    let pages = narrowing(&t.hwbp.bps);
    let mut space = t.process.vm.memory.lock().expect("address space");
    if let Err(e) = space.set_watches(tid(), pages) {
        log::warn!("debug registers not applied: {e}");
    }
}

/// The thread ends: its pages are no longer watched for it.
pub fn forget(t: &mut Thread) {
    if t.hwbp.any() {
        t.hwbp.bps.clear();
        let mut space = t.process.vm.memory.lock().expect("address space");
        let _ = space.set_watches(tid(), Vec::new());
    }
}

/// What a guest #PF means for the debug registers.
pub enum OnFault {
    /// Not a watch's doing.
    NotOurs,
    /// The instruction is being stepped through the page.
    Stepping,
    /// An instruction breakpoint: these DR6 bits, before the instruction.
    Breakpoint(u64),
}

/// A #PF at `rip` on `cr2` with `error`: a watch's doing if the page is
/// watched and its real rights allow the access.
pub fn page_fault(
    t: &mut Thread,
    rip: u64,
    cr2: u64,
    error: u64,
) -> Result<OnFault, vmm::VcpuError> {
    use guest_runtime::abi::pf_error::{INSTRUCTION_FETCH as FETCH, PRESENT, USER, WRITE};
    if error & PRESENT == 0 || error & USER == 0 {
        return Ok(OnFault::NotOurs);
    }
    let allowed = {
        let space = t.process.vm.memory.lock().expect("address space");
        space
            .watched(cr2)
            .and(space.real_access(cr2))
            .is_some_and(|a| {
                a.user && (error & WRITE == 0 || a.write) && (error & FETCH == 0 || a.exec)
            })
    };
    if !allowed {
        return Ok(OnFault::NotOurs);
    }
    let r = t.vcpu.user_regs(&t.process.vm.memory);
    let (fs, gs) = (t.vcpu.fs_base()?, t.vcpu.gs_base()?);
    let mut space = t.process.vm.memory.lock().expect("address space");
    let st = &mut t.hwbp;
    if error & FETCH != 0 && st.resume_past != Some(rip) {
        let hits = st
            .bps
            .iter()
            .filter(|b| b.kind == Kind::Execute && b.addr == rip)
            .fold(0, |h, b| h | 1 << b.n);
        if hits != 0 {
            st.resume_past = Some(rip);
            return Ok(OnFault::Breakpoint(hits));
        }
    }
    st.resume_past = None;
    let hits = if st.bps.iter().any(|b| b.kind != Kind::Execute) {
        let code = crate::umem::read_instruction(&space, rip);
        data_hits(&code, &r, fs, gs, &st.bps).unwrap_or_else(|| {
            // Undecidable: the faulting access, as one byte.
            st.bps
                .iter()
                .filter(|b| b.kind != Kind::Execute && (b.addr..b.addr + b.len).contains(&cr2))
                .filter(|b| b.kind == Kind::ReadWrite || error & WRITE != 0)
                .fold(0, |h, b| h | 1 << b.n)
        })
    } else {
        0
    };
    let root = space.step_root(t.vcpu.overlay())?;
    drop(space);
    t.vcpu.set_cr3(root)?;
    let own_tf = r.rflags & super::tracee::TF == 0;
    if own_tf {
        t.vcpu.set_user_trap_flag(&t.process.vm.memory, true);
    }
    log::trace!("stepping {rip:#x} through watched page {cr2:#x}: hits {hits:#x}");
    t.hwbp.step = Some(Step { hits, own_tf });
    Ok(OnFault::Stepping)
}

/// Ends a step through a watched page at whatever exit came next (a #DB
/// when the instruction ran; anything else abandons it, and the
/// instruction faults again when it runs): the shared root again, the
/// trap flag as it was.
pub fn step_end(t: &mut Thread) -> Result<Option<Step>, vmm::VcpuError> {
    let Some(step) = t.hwbp.step.take() else {
        return Ok(None);
    };
    let root = t.process.vm.memory.lock().expect("address space").cr3();
    t.vcpu.set_cr3(root)?;
    if step.own_tf {
        t.vcpu.set_user_trap_flag(&t.process.vm.memory, false);
    }
    Ok(Some(step))
}

/// The SIGTRAP of a hit (`dr6`: the registers that fired, plus BS for a
/// single step that ends there), with DR6 as a tracer then reads it; an
/// instruction breakpoint (`before`) leaves RF set so that the
/// instruction runs once when resumed.
pub fn hit(t: &mut Thread, dr6: u64, before: bool) -> Result<[u8; 128], vmm::VcpuError> {
    super::page::own().debugreg[6] = dr6;
    let mut r = t.vcpu.user_regs(&t.process.vm.memory);
    if before {
        r.rflags |= RF;
        t.vcpu.set_user_regs(&t.process.vm.memory, &r)?;
    }
    Ok(crate::signals::deliver::kernel_info(
        libc::SIGTRAP,
        libc::TRAP_HWBKPT,
        r.rip,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dr(addrs: [u64; 4], dr7: u64) -> [u64; 8] {
        [addrs[0], addrs[1], addrs[2], addrs[3], 0, 0, 0, dr7]
    }

    #[test]
    fn dr7_decodes_as_linux_accepts_it() {
        let bps = decode(&dr([0x1000, 0x2004, 0x3001, 0], 0x15 | 0xf9 << 16)).unwrap();
        assert_eq!(
            bps,
            [
                Breakpoint {
                    n: 0,
                    addr: 0x1000,
                    len: 8,
                    kind: Kind::Write
                },
                Breakpoint {
                    n: 1,
                    addr: 0x2004,
                    len: 4,
                    kind: Kind::ReadWrite
                },
                Breakpoint {
                    n: 2,
                    addr: 0x3001,
                    len: 1,
                    kind: Kind::Execute
                },
            ]
        );
        // Global enables count as local ones.
        assert_eq!(decode(&dr([0x1000, 0, 0, 0], 0x2)).unwrap().len(), 1);
        let einval = Err(Errno(libc::EINVAL));
        assert_eq!(
            decode(&dr([0x1004, 0, 0, 0], 0x1 | 0x9 << 16)),
            einval,
            "misaligned"
        );
        assert_eq!(
            decode(&dr([0x1000, 0, 0, 0], 0x1 | 0x2 << 16)),
            einval,
            "I/O"
        );
        assert_eq!(
            decode(&dr([0x1000, 0, 0, 0], 0x1 | 0x4 << 16)),
            einval,
            "execute, 2 bytes"
        );
        assert_eq!(
            decode(&dr([TASK_SIZE_MAX - 4, 0, 0, 0], 0x1 | 0x9 << 16)),
            einval
        );
        assert_eq!(
            decode(&dr([0x1004, 0, 0, 0], 0)),
            Ok(vec![]),
            "disabled: unchecked"
        );
    }

    #[test]
    fn a_watch_hits_only_the_accesses_it_names() {
        let bps = [
            Breakpoint {
                n: 0,
                addr: 0x5008,
                len: 8,
                kind: Kind::Write,
            },
            Breakpoint {
                n: 1,
                addr: 0x6000,
                len: 4,
                kind: Kind::ReadWrite,
            },
        ];
        let r = |rip, rax| kvm_regs {
            rip,
            rax,
            rsp: 0x7010,
            ..Default::default()
        };
        // mov qword [rax], 1
        let store = [0x48, 0xc7, 0x00, 0x01, 0x00, 0x00, 0x00];
        assert_eq!(data_hits(&store, &r(0x400000, 0x5008), 0, 0, &bps), Some(1));
        assert_eq!(
            data_hits(&store, &r(0x400000, 0x5010), 0, 0, &bps),
            Some(0),
            "beside"
        );
        assert_eq!(
            data_hits(&store, &r(0x400000, 0x5004), 0, 0, &bps),
            Some(1),
            "overlapping"
        );
        // mov eax, [rax]: a read, which only the read/write watch sees.
        let load = [0x8b, 0x00];
        assert_eq!(data_hits(&load, &r(0x400000, 0x5008), 0, 0, &bps), Some(0));
        assert_eq!(data_hits(&load, &r(0x400000, 0x6002), 0, 0, &bps), Some(2));
        // mov eax, [rip + 0x1bfa] at 0x4400: reads 0x6000.
        let rel = [0x8b, 0x05, 0xfa, 0x1b, 0x00, 0x00];
        assert_eq!(data_hits(&rel, &r(0x4400, 0), 0, 0, &bps), Some(2));
        // mov eax, fs:[0x10], FS at 0x5ff0.
        let tls = [0x64, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00];
        assert_eq!(data_hits(&tls, &r(0x400000, 0), 0x5ff0, 0, &bps), Some(2));
        // push rax with RSP 0x7010 writes 0x7008; with 0x5010, 0x5008.
        assert_eq!(data_hits(&[0x50], &r(0x400000, 0), 0, 0, &bps), Some(0));
        let pushed = kvm_regs {
            rsp: 0x5010,
            ..r(0x400000, 0)
        };
        assert_eq!(data_hits(&[0x50], &pushed, 0, 0, &bps), Some(1));
        assert_eq!(data_hits(&[0x90], &r(0, 0), 0, 0, &bps), Some(0), "nop");
        assert_eq!(data_hits(&[0x48], &r(0, 0), 0, 0, &bps), None, "truncated");
    }
}
