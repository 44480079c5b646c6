//! XCR0 values: parsing, the architecture's validity rules, XSAVE sizes.
//!
//! Bit meanings and rules: SDM Vol. 1 13.3 ("Enabling the XSAVE feature set
//! and XSAVE-enabled features") and the XSETBV #GP conditions (Vol. 2C).

use std::fmt;

/// A state component of XCR0: bit number and the names accepted for it.
struct Component {
    bit: u32,
    names: &'static [&'static str],
}

const COMPONENTS: &[Component] = &[
    Component {
        bit: 0,
        names: &["x87", "fpu"],
    },
    Component {
        bit: 1,
        names: &["sse", "xmm"],
    },
    Component {
        bit: 2,
        names: &["avx", "ymm"],
    },
    Component {
        bit: 3,
        names: &["bndregs"],
    },
    Component {
        bit: 4,
        names: &["bndcsr"],
    },
    Component {
        bit: 5,
        names: &["opmask"],
    },
    Component {
        bit: 6,
        names: &["zmm_hi256"],
    },
    Component {
        bit: 7,
        names: &["hi16_zmm"],
    },
    Component {
        bit: 9,
        names: &["pkru", "pku"],
    },
    Component {
        bit: 17,
        names: &["tilecfg"],
    },
    Component {
        bit: 18,
        names: &["tiledata"],
    },
    Component {
        bit: 19,
        names: &["apx"],
    },
];

/// The name of XSAVE component `bit`, if it has one.
pub fn component_name(bit: u32) -> Option<&'static str> {
    COMPONENTS.iter().find(|c| c.bit == bit).map(|c| c.names[0])
}

/// Names that stand for several components at once.
const GROUPS: &[(&str, u64)] = &[("mpx", BNDREGS | BNDCSR), ("avx512", AVX512), ("amx", AMX)];

pub const X87: u64 = 1 << 0;
pub const SSE: u64 = 1 << 1;
pub const AVX: u64 = 1 << 2;
pub const BNDREGS: u64 = 1 << 3;
pub const BNDCSR: u64 = 1 << 4;
pub const AVX512: u64 = (1 << 5) | (1 << 6) | (1 << 7);
pub const PKRU: u64 = 1 << 9;
pub const AMX: u64 = (1 << 17) | (1 << 18);
/// AMX's tile data: the one component Linux hands out on request only
/// (XFEATURE_MASK_USER_DYNAMIC), by its bit number and as a mask.
pub const TILEDATA_BIT: u64 = 18;
pub const TILEDATA: u64 = 1 << TILEDATA_BIT;

/// Every bit XCR0 can hold (user state components).
pub const USER_BITS: u64 = {
    let mut m = 0;
    let mut i = 0;
    while i < COMPONENTS.len() {
        m |= 1 << COMPONENTS[i].bit;
        i += 1;
    }
    m
};

/// An XCR0 value that obeys the architecture's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Xcr0(u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Xcr0Error {
    #[error("'{0}' is neither a number (0x7, 7) nor component names (x87,sse,avx,...)")]
    Syntax(String),
    #[error("unknown component '{0}' (known: {known})", known = known_names())]
    UnknownName(String),
    #[error("bits {0:#x} are not XCR0 state components")]
    UnknownBits(u64),
    #[error("x87 (bit 0) must always be set")]
    NoX87,
    #[error("avx (bit 2) requires sse (bit 1)")]
    AvxWithoutSse,
    #[error("bndregs and bndcsr (bits 3, 4) must be set together")]
    MpxSplit,
    #[error("AVX-512's opmask, zmm_hi256 and hi16_zmm (bits 5-7) must be set together")]
    Avx512Split,
    #[error("AVX-512 (bits 5-7) requires avx (bit 2)")]
    Avx512WithoutAvx,
    #[error("AMX's tilecfg and tiledata (bits 17, 18) must be set together")]
    AmxSplit,
}

fn known_names() -> String {
    let mut v: Vec<&str> = COMPONENTS.iter().map(|c| c.names[0]).collect();
    v.extend(GROUPS.iter().map(|g| g.0));
    v.join(", ")
}

impl Xcr0 {
    /// Checks `value` against the rules XSETBV enforces.
    pub fn new(value: u64) -> Result<Xcr0, Xcr0Error> {
        let unknown = value & !USER_BITS;
        if unknown != 0 {
            return Err(Xcr0Error::UnknownBits(unknown));
        }
        if value & X87 == 0 {
            return Err(Xcr0Error::NoX87);
        }
        if value & AVX != 0 && value & SSE == 0 {
            return Err(Xcr0Error::AvxWithoutSse);
        }
        let mpx = value & (BNDREGS | BNDCSR);
        if mpx != 0 && mpx != BNDREGS | BNDCSR {
            return Err(Xcr0Error::MpxSplit);
        }
        let avx512 = value & AVX512;
        if avx512 != 0 && avx512 != AVX512 {
            return Err(Xcr0Error::Avx512Split);
        }
        if avx512 != 0 && value & AVX == 0 {
            return Err(Xcr0Error::Avx512WithoutAvx);
        }
        let amx = value & AMX;
        if amx != 0 && amx != AMX {
            return Err(Xcr0Error::AmxSplit);
        }
        Ok(Xcr0(value))
    }

    /// Parses `0x7`, `7`, or `x87,sse,avx` (group names: mpx, avx512, amx).
    pub fn parse(s: &str) -> Result<Xcr0, Xcr0Error> {
        let s = s.trim();
        let value = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16).map_err(|_| Xcr0Error::Syntax(s.to_string()))?
        } else if s.starts_with(|c: char| c.is_ascii_digit()) {
            s.parse().map_err(|_| Xcr0Error::Syntax(s.to_string()))?
        } else if s.is_empty() {
            return Err(Xcr0Error::Syntax(s.to_string()));
        } else {
            let mut v = 0;
            for name in s.split([',', '+', '|']) {
                let name = name.trim().to_ascii_lowercase();
                v |= COMPONENTS
                    .iter()
                    .find(|c| c.names.contains(&name.as_str()))
                    .map(|c| 1u64 << c.bit)
                    .or_else(|| GROUPS.iter().find(|g| g.0 == name).map(|g| g.1))
                    .ok_or(Xcr0Error::UnknownName(name))?;
            }
            v
        };
        Xcr0::new(value)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    /// The components of `self` outside `supported`.
    pub fn unsupported(self, supported: u64) -> u64 {
        self.0 & !supported
    }

    /// Component names, e.g. "x87,sse,avx".
    pub fn names(self) -> String {
        COMPONENTS
            .iter()
            .filter(|c| self.0 & (1 << c.bit) != 0)
            .map(|c| c.names[0])
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Size of the standard-format XSAVE area for this XCR0, as
    /// CPUID.(EAX=0DH,ECX=0):EBX reports it: the end of the furthest enabled
    /// component, at least the legacy area and header (512 + 64 bytes).
    /// `component(i)` gives CPUID.(EAX=0DH,ECX=i): (EAX size, EBX offset).
    pub fn xsave_size(self, component: impl Fn(u32) -> (u32, u32)) -> u32 {
        xsave_size(self.0, component)
    }
}

impl fmt::Display for Xcr0 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// `Xcr0::xsave_size` for any set of components (`bits`), such as a
/// signal frame's, which may hold AMX's configuration without its data.
pub fn xsave_size(bits: u64, component: impl Fn(u32) -> (u32, u32)) -> u32 {
    (2..64)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| {
            let (size, offset) = component(i);
            size + offset
        })
        .fold(576, u32::max)
}

/// The smallest signal stack Linux reports in AT_MINSIGSTKSZ for a task whose
/// XSAVE area is `xsave_size` bytes: `init_sigframe_size()` in
/// arch/x86/kernel/signal.c on a kernel with IA32 emulation (Debian's):
/// sizeof(struct sigframe_ia32) = 736, + 15 frame padding, + the fpstate
/// (XSAVE area + FP_XSTATE_MAGIC2 (4) + struct fregs_state (112)), + 63 XSAVE
/// alignment padding, rounded up to 16. 1776 for 832 bytes, as this host's
/// kernel prints ("signal: max sigframe size: 1776").
pub fn min_signal_stack_size(xsave_size: u32) -> u64 {
    let size = 736 + 15 + u64::from(xsave_size) + 4 + 112 + 63;
    size.div_ceil(16) * 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_names() {
        assert_eq!(Xcr0::parse("0x7").unwrap().bits(), 7);
        assert_eq!(Xcr0::parse("3").unwrap().bits(), 3);
        assert_eq!(Xcr0::parse("x87,sse,avx").unwrap().bits(), 7);
        assert_eq!(Xcr0::parse("x87,sse,avx,avx512").unwrap().bits(), 0xe7);
        assert_eq!(Xcr0::parse("x87,sse,avx,pkru").unwrap().bits(), 0x207);
        assert_eq!(Xcr0::parse("X87, SSE").unwrap().bits(), 3);
        assert_eq!(Xcr0::parse("x87,mpx").unwrap().bits(), 0x19);
        assert_eq!(Xcr0::parse("x87,sse,amx").unwrap().bits(), 0x60003);
    }

    #[test]
    fn rejects_what_xsetbv_rejects() {
        assert_eq!(Xcr0::new(0x6), Err(Xcr0Error::NoX87));
        assert_eq!(Xcr0::new(0x5), Err(Xcr0Error::AvxWithoutSse));
        assert_eq!(Xcr0::new(0xb), Err(Xcr0Error::MpxSplit));
        assert_eq!(Xcr0::new(0x27), Err(Xcr0Error::Avx512Split));
        assert_eq!(Xcr0::new(0xe3), Err(Xcr0Error::Avx512WithoutAvx));
        assert_eq!(Xcr0::new(0x20003), Err(Xcr0Error::AmxSplit));
        assert_eq!(Xcr0::new(0x107), Err(Xcr0Error::UnknownBits(0x100)));
        assert_eq!(
            Xcr0::parse("zmm"),
            Err(Xcr0Error::UnknownName("zmm".into()))
        );
        assert!(matches!(Xcr0::parse("0xzz"), Err(Xcr0Error::Syntax(_))));
        assert!(matches!(Xcr0::parse(""), Err(Xcr0Error::Syntax(_))));
    }

    #[test]
    fn xsave_sizes_follow_the_enabled_components() {
        // Offsets and sizes of a Zen 3 (CPUID 0xD sub-leaves 2 and 9).
        let leaf = |i| match i {
            2 => (256, 576),
            9 => (8, 2432),
            _ => (0, 0),
        };
        assert_eq!(Xcr0::new(0x1).unwrap().xsave_size(leaf), 576);
        assert_eq!(Xcr0::new(0x3).unwrap().xsave_size(leaf), 576);
        assert_eq!(Xcr0::new(0x7).unwrap().xsave_size(leaf), 832);
        assert_eq!(Xcr0::new(0x207).unwrap().xsave_size(leaf), 2440);
    }

    #[test]
    fn signal_stack_size_matches_the_kernel() {
        assert_eq!(min_signal_stack_size(832), 1776);
        assert_eq!(min_signal_stack_size(576), 1520);
    }

    #[test]
    fn names_round_trip() {
        let x = Xcr0::new(0x207).unwrap();
        assert_eq!(x.names(), "x87,sse,avx,pkru");
        assert_eq!(Xcr0::parse(&x.names()).unwrap(), x);
    }
}
