//! `--cpuid=xcr0`: the host's CPUID without what the thread's XCR0
//! disables, as a CPU without those components would answer. Each
//! feature bit below needs the XSAVE components named beside it (Intel
//! SDM Vol. 1 13.x and Vol. 2 CPUID; AMD APM Vol. 3 E.3): an instruction
//! set whose registers a disabled component holds is absent.

use super::{Regs, xsave_size};

const AVX: u64 = 1 << 2;
const MPX: u64 = (1 << 3) | (1 << 4);
const AVX512: u64 = (1 << 5) | (1 << 6) | (1 << 7);
const PKRU: u64 = 1 << 9;
const AMX: u64 = (1 << 17) | (1 << 18);

/// Which register a feature bit is in.
#[derive(Clone, Copy)]
enum Reg {
    Eax = 0,
    Ebx = 1,
    Ecx = 2,
    Edx = 3,
}

use Reg::{Eax, Ebx, Ecx, Edx};

/// (leaf, subleaf, register, bit, the components it needs).
const NEEDS: &[(u32, u32, Reg, u32, u64)] = &[
    // Leaf 1: FMA, AVX, F16C.
    (1, 0, Ecx, 12, AVX),
    (1, 0, Ecx, 28, AVX),
    (1, 0, Ecx, 29, AVX),
    // Leaf 7.0 EBX: AVX2, MPX, AVX-512 F, DQ, IFMA, PF, ER, CD, BW, VL.
    (7, 0, Ebx, 5, AVX),
    (7, 0, Ebx, 14, MPX),
    (7, 0, Ebx, 16, AVX512),
    (7, 0, Ebx, 17, AVX512),
    (7, 0, Ebx, 21, AVX512),
    (7, 0, Ebx, 26, AVX512),
    (7, 0, Ebx, 27, AVX512),
    (7, 0, Ebx, 28, AVX512),
    (7, 0, Ebx, 30, AVX512),
    (7, 0, Ebx, 31, AVX512),
    // Leaf 7.0 ECX: AVX512_VBMI, PKU, OSPKE, AVX512_VBMI2, VAES,
    // VPCLMULQDQ (VEX forms need AVX), AVX512_VNNI, BITALG, VPOPCNTDQ.
    (7, 0, Ecx, 1, AVX512),
    (7, 0, Ecx, 3, PKRU),
    (7, 0, Ecx, 4, PKRU),
    (7, 0, Ecx, 6, AVX512),
    (7, 0, Ecx, 9, AVX),
    (7, 0, Ecx, 10, AVX),
    (7, 0, Ecx, 11, AVX512),
    (7, 0, Ecx, 12, AVX512),
    (7, 0, Ecx, 14, AVX512),
    // Leaf 7.0 EDX: AVX512_4VNNIW, 4FMAPS, VP2INTERSECT, AMX_BF16,
    // AVX512_FP16, AMX_TILE, AMX_INT8.
    (7, 0, Edx, 2, AVX512),
    (7, 0, Edx, 3, AVX512),
    (7, 0, Edx, 8, AVX512),
    (7, 0, Edx, 22, AMX),
    (7, 0, Edx, 23, AVX512),
    (7, 0, Edx, 24, AMX),
    (7, 0, Edx, 25, AMX),
    // Leaf 7.1 EAX: AVX_VNNI, AVX512_BF16, AMX_FP16, AVX_IFMA; EDX:
    // AVX_VNNI_INT8, AVX_NE_CONVERT, AMX_COMPLEX, AVX_VNNI_INT16.
    (7, 1, Eax, 4, AVX),
    (7, 1, Eax, 5, AVX512),
    (7, 1, Eax, 21, AMX),
    (7, 1, Eax, 23, AVX),
    (7, 1, Edx, 4, AVX),
    (7, 1, Edx, 5, AVX),
    (7, 1, Edx, 8, AMX),
    (7, 1, Edx, 10, AVX),
    // AMD's extended leaf: XOP, FMA4.
    (0x8000_0001, 0, Ecx, 11, AVX),
    (0x8000_0001, 0, Ecx, 16, AVX),
];

/// The user components XCR0 can name (0-9, 17-18): leaf 0xD's others
/// (supervisor state, IA32_XSS) are the host's.
const USER: u64 = 0x3ff | AMX;

/// CPUID (`leaf`, `subleaf`) under `--cpuid=xcr0` for a thread with
/// `xcr0`, from the host's answers (`host`).
pub fn for_xcr0(leaf: u32, subleaf: u32, xcr0: u64, host: &dyn Fn(u32, u32) -> Regs) -> Regs {
    let mut r = host(leaf, subleaf);
    // Leaves 1 and 0x80000001 ignore ECX, which programs leave as it was.
    let indexed = if matches!(leaf, 7 | 0xd) { subleaf } else { 0 };
    for &(l, s, reg, bit, needs) in NEEDS {
        if l == leaf && s == indexed && xcr0 & needs != needs {
            r[reg as usize] &= !(1 << bit);
        }
    }
    if leaf == 0xd {
        let supported = u64::from(r[0]) | (u64::from(r[3]) << 32);
        let sub = |i| host(0xd, i);
        match subleaf {
            0 => {
                let mine = supported & xcr0;
                let size = xsave_size(mine, sub);
                r = [mine as u32, size, size, (mine >> 32) as u32];
            }
            1 => r[1] = compacted_size(xcr0, sub),
            i if i < 63 && USER & (1 << i) != 0 && xcr0 & (1 << i) == 0 => r = [0; 4],
            _ => {}
        }
    }
    r
}

/// The size of a compacted XSAVE area (XSAVEC, XSAVES) for `xcr0`: the
/// legacy area and header, then each component in order, 64-byte aligned
/// where its subleaf's ECX bit 1 says so.
fn compacted_size(xcr0: u64, sub: impl Fn(u32) -> Regs) -> u32 {
    (2..63)
        .filter(|i| xcr0 & (1 << i) != 0)
        .fold(512 + 64, |end, i| {
            let [size, _, flags, _] = sub(i);
            let start = if flags & 2 != 0 {
                end.next_multiple_of(64)
            } else {
                end
            };
            start + size
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CPU with every feature bit set and AVX-512's layout: AVX at 576
    /// (256 bytes), opmask at 1088 (64), ZMM_Hi256 at 1152 (512),
    /// Hi16_ZMM at 1664 (1024), PKRU at 2688 (8).
    fn everything(leaf: u32, subleaf: u32) -> Regs {
        if leaf != 0xd {
            return [!0; 4];
        }
        match subleaf {
            0 => [0x2e7, 2696, 2696, 0],
            1 => [0xf, 2696, 0, 0],
            2 => [256, 576, 0, 0],
            5 => [64, 1088, 0, 0],
            6 => [512, 1152, 0, 0],
            7 => [1024, 1664, 0, 0],
            9 => [8, 2688, 0, 0],
            _ => [0; 4],
        }
    }

    #[test]
    fn sse_only_has_no_avx_family() {
        // ECX as a program leaves it: leaf 1 ignores it.
        let leaf1 = for_xcr0(1, 0x444d_4163, 0x3, &everything);
        assert_eq!(leaf1[2] & (1 << 28), 0, "AVX");
        assert_eq!(leaf1[2] & (1 << 12), 0, "FMA");
        assert_eq!(leaf1[2] & (1 << 27), 1 << 27, "OSXSAVE stays");
        let leaf7 = for_xcr0(7, 0, 0x3, &everything);
        assert_eq!(leaf7[1] & (1 << 5), 0, "AVX2");
        assert_eq!(leaf7[1] & (1 << 16), 0, "AVX512F");
        assert_eq!(leaf7[1] & 1, 1, "FSGSBASE stays");
        assert_eq!(leaf7[2] & (1 << 3), 0, "PKU");
        let d0 = for_xcr0(0xd, 0, 0x3, &everything);
        assert_eq!(d0, [0x3, 576, 576, 0]);
        assert_eq!(for_xcr0(0xd, 2, 0x3, &everything), [0; 4]);
        assert_eq!(for_xcr0(0xd, 1, 0x3, &everything)[1], 576);
    }

    #[test]
    fn avx_without_avx512() {
        let leaf7 = for_xcr0(7, 0, 0x7, &everything);
        assert_eq!(leaf7[1] & (1 << 5), 1 << 5, "AVX2 stays");
        assert_eq!(leaf7[1] & (1 << 16), 0, "AVX512F");
        assert_eq!(leaf7[2] & (1 << 9), 1 << 9, "VAES stays");
        assert_eq!(for_xcr0(0xd, 0, 0x7, &everything), [0x7, 832, 832, 0]);
        assert_eq!(for_xcr0(0xd, 2, 0x7, &everything), [256, 576, 0, 0]);
        assert_eq!(for_xcr0(0xd, 5, 0x7, &everything), [0; 4]);
    }

    #[test]
    fn everything_enabled_is_the_host() {
        for (l, s) in [(1, 0), (7, 0), (7, 1), (0x8000_0001, 0), (0xd, 2), (0xd, 9)] {
            assert_eq!(
                for_xcr0(l, s, USER, &everything),
                everything(l, s),
                "{l:#x}.{s}"
            );
        }
        // The host's components only: MPX's and AMX's features go.
        assert_eq!(for_xcr0(7, 0, 0x2e7, &everything)[1] & (1 << 14), 0, "MPX");
        assert_eq!(
            for_xcr0(7, 0, 0x2e7, &everything)[3] & (1 << 24),
            0,
            "AMX_TILE"
        );
        assert_eq!(for_xcr0(0xd, 0, 0x2e7, &everything), [0x2e7, 2696, 2696, 0]);
        // Compacted: no room for the absent MPX components.
        assert_eq!(for_xcr0(0xd, 1, 0x2e7, &everything)[1], 2440);
    }
}
