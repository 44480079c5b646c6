//! rr's trace header, without rr: what `--rr-trace`, `--cpuid=DIR` and
//! `check-trace` read.
//!
//! A trace directory's `version` file is rr's trace version in ASCII and a
//! newline, then a packed Cap'n Proto `Header` message (rr's
//! src/rr_trace.capnp). Its x86 group holds the recording's XCR0, its
//! CPUID records (24-byte rows of six little-endian u32) and whether CPUID
//! faulting was on. The reader (`rr_header_capnp.rs`) is what capnpc makes
//! of our own schema of those fields (schema/rr_header.capnp); a test
//! checks it still is.

use std::path::Path;

use super::Regs;
use super::rr_header_capnp::header;

/// The trace version this reader knows (rr's TRACE_VERSION): rr refuses
/// any other, whose header may be laid out differently.
pub const TRACE_VERSION: u32 = 85;

/// What a trace header says about the recording's CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// As recorded: 0 means unknown.
    pub recorded_xcr0: u64,
    pub cpuid_faulting: bool,
    /// (eax_in, ecx_in, answer), in the trace's order.
    pub records: Vec<(u32, u32, Regs)>,
}

impl Header {
    /// The recording's XCR0 as rr takes it: the recorded value, or for 0
    /// the components CPUID 0xD.0 reports (EDX:EAX).
    pub fn xcr0(&self) -> u64 {
        if self.recorded_xcr0 != 0 {
            return self.recorded_xcr0;
        }
        let [eax, _, _, edx] = self.leaf(0xd, 0);
        u64::from(edx) << 32 | u64::from(eax)
    }

    /// The recorded answer to CPUID (`leaf`, `subleaf`), zero if none.
    pub fn leaf(&self, leaf: u32, subleaf: u32) -> Regs {
        super::table::lookup(&self.records, leaf, subleaf)
    }
}

/// The header of the trace in `dir`; the error is one line naming what is
/// wrong.
pub fn read(dir: &Path) -> Result<Header, String> {
    let path = dir.join("version");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// A `version` file's contents.
pub fn parse(bytes: &[u8]) -> Result<Header, String> {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no version line (rr's trace version and a newline)")?;
    let line = String::from_utf8_lossy(&bytes[..nl]);
    let version: u32 = line
        .trim()
        .parse()
        .map_err(|_| format!("version line {line:?} is not a number"))?;
    if version != TRACE_VERSION {
        return Err(format!(
            "trace version {version}, where this reader knows {TRACE_VERSION}"
        ));
    }
    let mut rest = &bytes[nl + 1..];
    let bad = |e: capnp::Error| format!("the header is not a packed Cap'n Proto message: {e}");
    let message =
        capnp::serialize_packed::read_message(&mut rest, Default::default()).map_err(bad)?;
    let h = message.get_root::<header::Reader>().map_err(bad)?;
    let x86 = h.get_x86();
    let raw = if x86.has_cpuid_records() {
        x86.get_cpuid_records().map_err(bad)?
    } else {
        &[]
    };
    if raw.len() % 24 != 0 {
        return Err(format!(
            "cpuidRecords is {} bytes, not a whole number of 24-byte records",
            raw.len()
        ));
    }
    let word = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    let records: Vec<_> = raw
        .chunks_exact(24)
        .map(|r| {
            let w: Vec<u32> = r.chunks_exact(4).map(word).collect();
            (w[0], w[1], [w[2], w[3], w[4], w[5]])
        })
        .collect();
    if records.is_empty() {
        return Err("the header has no CPUID records".into());
    }
    Ok(Header {
        recorded_xcr0: x86.get_xcr0(),
        cpuid_faulting: x86.get_has_cpuid_faulting(),
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as rr writes one: version line, then the packed message.
    fn file(xcr0: u64, records: &[[u32; 6]], faulting: bool) -> Vec<u8> {
        let mut m = capnp::message::Builder::new_default();
        let mut h = m.init_root::<header::Builder>();
        h.set_uuid(&[7; 16]);
        h.set_bind_to_cpu(-1);
        let mut x86 = h.init_x86();
        x86.set_xcr0(xcr0);
        x86.set_has_cpuid_faulting(faulting);
        let raw: Vec<u8> = records
            .iter()
            .flat_map(|r| r.iter().flat_map(|w| w.to_le_bytes()))
            .collect();
        x86.set_cpuid_records(&raw);
        let mut out = b"85\n".to_vec();
        capnp::serialize_packed::write_message(&mut out, &m).unwrap();
        out
    }

    #[test]
    fn a_header_gives_its_xcr0_records_and_faulting() {
        let recs = [[0, u32::MAX, 13, 1, 2, 3], [0xd, 0, 7, 832, 832, 0]];
        let h = parse(&file(0x207, &recs, true)).unwrap();
        assert_eq!(h.xcr0(), 0x207);
        assert!(h.cpuid_faulting);
        assert_eq!(h.leaf(0, 5), [13, 1, 2, 3], "any subleaf");
        assert_eq!(h.leaf(0xd, 0), [7, 832, 832, 0]);
        // 0 is unknown: CPUID 0xD.0's EDX:EAX.
        assert_eq!(parse(&file(0, &recs, false)).unwrap().xcr0(), 7);
    }

    #[test]
    fn what_is_not_a_header_says_why() {
        let recs = [[0xd, 0, 7, 832, 832, 0]];
        let mut v84 = file(7, &recs, false);
        v84[1] = b'4';
        assert!(parse(&v84).unwrap_err().contains("trace version 84"));
        assert!(parse(b"85").unwrap_err().contains("no version line"));
        assert!(parse(b"rr\n").unwrap_err().contains("not a number"));
        let whole = file(7, &recs, false);
        let cut = &whole[..whole.len() / 2];
        assert!(parse(cut).unwrap_err().contains("Cap'n Proto"));
        assert!(
            parse(&file(7, &[], false))
                .unwrap_err()
                .contains("no CPUID")
        );
    }

    /// The reader checked in is what capnpc makes of the schema (it needs
    /// Debian's capnproto, which `tests/install-deps.sh` installs).
    #[test]
    fn the_reader_is_what_capnpc_makes_of_the_schema() {
        let have = std::process::Command::new("capnp")
            .arg("--version")
            .output()
            .is_ok();
        if !have {
            assert!(
                std::env::var_os("CI").is_none(),
                "capnp (Debian's capnproto) is missing"
            );
            eprintln!("skipped: capnp (Debian's capnproto) is not installed");
            return;
        }
        let out = std::env::temp_dir().join(format!("rr-header-capnp-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        capnpc::CompilerCommand::new()
            .src_prefix("schema")
            .file("schema/rr_header.capnp")
            .default_parent_module(vec!["cpuid".into()])
            .output_path(&out)
            .run()
            .unwrap();
        let made = std::fs::read_to_string(out.join("rr_header_capnp.rs")).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        let kept = include_str!("rr_header_capnp.rs");
        assert!(
            made == kept,
            "syscall-proxy/src/cpuid/rr_header_capnp.rs is stale: regenerate it from schema/rr_header.capnp"
        );
    }
}
