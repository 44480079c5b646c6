//! `--cpuid=FILE`: a whole CPUID table, as rr records one (its trace
//! header's `cpuidRecords`, which `rr traceinfo` prints as JSON).
//!
//! The file is JSON: either rr traceinfo's object, whose `cpuidRecords`
//! member is used, or the array of records alone. A record is six
//! numbers: eax_in, ecx_in, eax, ebx, ecx, edx; ecx_in 0xffffffff stands
//! for every subleaf of a leaf whose answer does not depend on it.

use std::path::{Path, PathBuf};

use super::{Regs, xsave_size};

/// ecx_in of a record that answers every subleaf.
const ANY_SUBLEAF: u32 = u32::MAX;

#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    /// (eax_in, ecx_in, answer), in the file's order.
    records: Vec<(u32, u32, Regs)>,
    /// The file it came from, absolute: what a re-executed sandbox loads.
    path: PathBuf,
}

impl Table {
    /// The table in `text`, read from `path`; the error names what is
    /// wrong.
    pub fn from_json(text: &str, path: &Path) -> Result<Table, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let rows = match &v {
            serde_json::Value::Array(rows) => rows,
            serde_json::Value::Object(o) => match o.get("cpuidRecords") {
                Some(serde_json::Value::Array(rows)) => rows,
                _ => return Err("no \"cpuidRecords\" array".into()),
            },
            _ => return Err("expected rr traceinfo's object or an array of records".into()),
        };
        let mut records = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let bad = || format!("record {i}: expected six numbers from 0 to 0xffffffff");
            let n: Vec<u32> = row
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
                .collect::<Option<_>>()
                .ok_or_else(bad)?;
            let [leaf, sub, eax, ebx, ecx, edx] = n[..] else {
                return Err(bad());
            };
            records.push((leaf, sub, [eax, ebx, ecx, edx]));
        }
        if records.is_empty() {
            return Err("no CPUID records".into());
        }
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(Table { records, path })
    }

    /// The records of an rr trace header (`rr_trace`), from the trace in
    /// `dir`.
    pub fn from_records(records: Vec<(u32, u32, Regs)>, dir: &Path) -> Table {
        let path = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Table { records, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table's answer for (`leaf`, `subleaf`), zero where it has none;
    /// leaf 0xD's size of the current state follows `xcr0`.
    pub fn answer(&self, leaf: u32, subleaf: u32, xcr0: u64) -> Regs {
        let mut r = self.lookup(leaf, subleaf);
        if leaf == 0xd && subleaf == 0 {
            r[1] = xsave_size(xcr0, |i| self.lookup(0xd, i));
        }
        r
    }

    fn lookup(&self, leaf: u32, subleaf: u32) -> Regs {
        lookup(&self.records, leaf, subleaf)
    }
}

/// The answer `records` (rr's rows: eax_in, ecx_in, answer) give to
/// (`leaf`, `subleaf`): its own row, else the leaf's any-subleaf row, else
/// zero.
pub fn lookup(records: &[(u32, u32, Regs)], leaf: u32, subleaf: u32) -> Regs {
    let find = |s| {
        records
            .iter()
            .find(|&&(l, ls, _)| l == leaf && ls == s)
            .map(|&(_, _, r)| r)
    };
    find(subleaf)
        .or_else(|| find(ANY_SUBLEAF))
        .unwrap_or([0; 4])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACEINFO: &str = r#"{
      "uuid":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],
      "xcr0":7,
      "cpuidFaulting":false,
      "cpuidRecords":[
        [0,4294967295,13,1970169159,1818588270,1231384169],
        [1,4294967295,591594,2048,2147154435,395049983],
        [13,0,7,832,832,0],
        [13,1,1,0,0,0],
        [13,2,256,576,0,0]
      ]
    }"#;

    #[test]
    fn rr_traceinfo_records_answer_by_leaf_and_subleaf() {
        let t = Table::from_json(TRACEINFO, Path::new("/t.json")).unwrap();
        assert_eq!(t.answer(0, 0, 7), [13, 1970169159, 1818588270, 1231384169]);
        assert_eq!(t.answer(1, 5, 7)[0], 591594, "any subleaf");
        assert_eq!(t.answer(0xd, 2, 7), [256, 576, 0, 0]);
        assert_eq!(t.answer(0xd, 3, 7), [0; 4], "no record: zero");
        assert_eq!(t.answer(0x8000_0000, 0, 7), [0; 4]);
        assert_eq!(t.answer(0xd, 0, 7), [7, 832, 832, 0]);
        assert_eq!(
            t.answer(0xd, 0, 3),
            [7, 576, 832, 0],
            "the size follows XCR0"
        );
        assert_eq!(t.path(), Path::new("/t.json"));
    }

    #[test]
    fn a_bare_array_is_a_table_and_bad_files_say_why() {
        let t = Table::from_json("[[7,0,0,1,2,3]]", Path::new("/x")).unwrap();
        assert_eq!(t.answer(7, 0, 3), [0, 1, 2, 3]);
        let err = |s| Table::from_json(s, Path::new("/x")).unwrap_err();
        assert!(err("{").starts_with("not JSON"));
        assert_eq!(err("{\"xcr0\":7}"), "no \"cpuidRecords\" array");
        assert_eq!(err("[]"), "no CPUID records");
        assert!(err("[[1,2,3]]").starts_with("record 0: expected six numbers"));
        assert!(err("[[1,2,3,4,5,4294967296]]").starts_with("record 0:"));
        assert!(err("7").starts_with("expected rr traceinfo"));
    }
}
