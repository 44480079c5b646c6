//! The guest's descriptor tables (GDT, IDT, TSS) as bytes.
//!
//! Formats: SDM Vol. 3A 3.4.5 (segment descriptors), 7.2.3 (64-bit TSS
//! descriptor), 7.7 (64-bit TSS), 6.14.1 (64-bit IDT gates).

use guest_runtime::VECTOR_STUB_SIZE;
use guest_runtime::abi::{self, selectors, vector};
use x86_64::structures::gdt::DescriptorFlags as D;
use x86_64::structures::tss::TaskStateSegment;

/// Offset of the I/O permission bitmap: right after the 104-byte TSS.
const IOMAP_BASE: usize = size_of::<TaskStateSegment>();
/// Where RSP0 and the bitmap offset sit in the TSS.
const RSP0: usize = std::mem::offset_of!(TaskStateSegment, privilege_stack_table);
const IOMAP_FIELD: usize = std::mem::offset_of!(TaskStateSegment, iomap_base);
/// The TSS and a 4-byte I/O bitmap covering ports 0..0x1f plus the
/// terminating 0xff byte the CPU may read (SDM Vol. 1 19.5.2).
pub const TSS_SIZE: usize = IOMAP_BASE + 4;

/// The GDT's size in bytes: the TSS follows it on the same page.
pub const GDT_BYTES: u64 = (selectors::GDT_ENTRIES * 8) as u64;

/// GDT with Linux's layout (abi::selectors), the TSS in slots 7-8,
/// the CPU number for getcpu in slot 15.
pub fn gdt(tss_base: u64) -> [u64; selectors::GDT_ENTRIES] {
    let mut g = [0u64; selectors::GDT_ENTRIES];
    g[(selectors::KERNEL_CS >> 3) as usize] = D::KERNEL_CODE64.bits();
    g[(selectors::KERNEL_DS >> 3) as usize] = D::KERNEL_DATA.bits();
    g[(selectors::USER_CS32 >> 3) as usize] = D::USER_CODE32.bits();
    g[(selectors::USER_DS >> 3) as usize] = D::USER_DATA.bits();
    g[(selectors::USER_CS >> 3) as usize] = D::USER_CODE64.bits();
    let limit = (TSS_SIZE - 1) as u64;
    // Type 0xB: busy 64-bit TSS (KVM loads TR directly, no LTR), present.
    let low = (limit & 0xffff)
        | ((tss_base & 0xff_ffff) << 16)
        | (0x8b << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((tss_base >> 24) & 0xff) << 56);
    let t = (selectors::TSS >> 3) as usize;
    g[t] = low;
    g[t + 1] = tss_base >> 32;
    // Limit 0: CPU 0, node 0, what the vDSO's getcpu reports in the guest
    // where it uses `lsl` (without it, `lsl` fails and getcpu returns
    // garbage). Linux's setup_getcpu: read-only, expand-down, accessed,
    // 32-bit, DPL 3.
    g[(selectors::CPUNODE >> 3) as usize] = (D::ACCESSED
        | D::CONFORMING
        | D::USER_SEGMENT
        | D::DPL_RING_3
        | D::PRESENT
        | D::DEFAULT_SIZE)
        .bits();
    g
}

/// A TSS whose RSP0 is the CPL0 stack exceptions from CPL3 switch to, and
/// whose I/O bitmap allows the guest runtime's ports if `open_ports`.
///
/// PVM runs the LSTAR stub in its user mode (CS 0x33, IOPL forced to 0): its
/// `out` takes #GP, which PVM's instruction emulator turns into a port exit
/// only if the TSS bitmap allows the port. On hardware KVM the stub runs at
/// CPL0, the bitmap stays closed, and a program's own `out` faults. (The
/// VMM tells the runtime's exits from any other by RIP either way.)
pub fn tss(rsp0: u64, open_ports: bool) -> [u8; TSS_SIZE] {
    let mut t = [0u8; TSS_SIZE];
    t[RSP0..][..8].copy_from_slice(&rsp0.to_le_bytes());
    t[IOMAP_FIELD..][..2].copy_from_slice(&(IOMAP_BASE as u16).to_le_bytes());
    t[IOMAP_BASE..].fill(0xff);
    if open_ports {
        for port in [abi::PORT_SYSCALL, abi::PORT_EXCEPTION] {
            t[IOMAP_BASE + usize::from(port / 8)] &= !(1 << (port % 8));
        }
    }
    t
}

/// IDT with interrupt gates for the exception vectors, pointing at the
/// per-vector stubs at `stubs_base`. #BP and #OF are reachable from CPL3
/// (`int3`, `into`) as on Linux; other vectors deliver only as exceptions.
pub fn idt(stubs_base: u64) -> [u8; 4096] {
    let mut idt = [0u8; 4096];
    for v in 0..vector::COUNT {
        let handler = stubs_base + (v * VECTOR_STUB_SIZE) as u64;
        let dpl: u8 = if v == vector::BREAKPOINT as usize || v == vector::OVERFLOW as usize {
            3
        } else {
            0
        };
        let gate = &mut idt[v * 16..v * 16 + 16];
        gate[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
        gate[2..4].copy_from_slice(&selectors::KERNEL_CS.to_le_bytes());
        gate[4] = 0; // no IST
        gate[5] = 0x80 | (dpl << 5) | 0xe; // present, DPL, 64-bit interrupt gate
        gate[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
        gate[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    }
    idt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_matches_linux() {
        let g = gdt(0x1122_3344_5566_7000);
        assert_eq!(g[2], 0x00af_9b00_0000_ffff, "kernel CS");
        assert_eq!(g[3], 0x00cf_9300_0000_ffff, "kernel DS");
        assert_eq!(g[4], 0x00cf_fb00_0000_ffff, "user CS32");
        assert_eq!(g[5], 0x00cf_f300_0000_ffff, "user DS");
        assert_eq!(g[6], 0x00af_fb00_0000_ffff, "user CS");
        assert_eq!(g[7], 0x5500_8b66_7000_006b, "TSS low");
        assert_eq!(g[8], 0x1122_3344, "TSS high");
        assert_eq!(g[15], 0x0040_f500_0000_0000, "CPU 0 node 0 for getcpu");
        assert_eq!(size_of_val(&g), 128, "ends where the TSS starts");
    }

    #[test]
    fn idt_gates_point_at_stubs() {
        let idt = idt(0xffff_8000_1234_5000);
        let gate = |v: usize| &idt[v * 16..v * 16 + 16];
        let pf = gate(14);
        let off = 0xffff_8000_1234_5000u64 + 14 * 16;
        assert_eq!(u16::from_le_bytes([pf[0], pf[1]]), off as u16);
        assert_eq!(u16::from_le_bytes([pf[6], pf[7]]), (off >> 16) as u16);
        assert_eq!(
            u32::from_le_bytes(pf[8..12].try_into().unwrap()),
            (off >> 32) as u32
        );
        assert_eq!(pf[5], 0x8e);
        assert_eq!(gate(3)[5], 0xee, "int3 allowed from CPL3");
        assert_eq!(gate(32)[5], 0, "nothing beyond the exceptions");
    }

    #[test]
    fn tss_has_rsp0_and_opens_only_the_runtime_ports() {
        let t = tss(0x0dea_dbee_f000, true);
        assert_eq!(tss(0, false)[104..], [0xff; 4], "closed");
        assert_eq!(
            u64::from_le_bytes(t[4..12].try_into().unwrap()),
            0x0dea_dbee_f000
        );
        assert_eq!(u16::from_le_bytes([t[102], t[103]]), 104);
        assert_eq!(
            t[104..],
            [0xff, 0xff, 0xfc, 0xff],
            "ports 0x10 and 0x11 only"
        );
    }
}
