//! The initial process stack (System V x86-64 ABI 3.4.1): argc, argv,
//! envp, the auxiliary vector, and the strings they point to.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Auxiliary vector keys (include/uapi/linux/auxvec.h, asm/auxvec.h).
pub mod at {
    pub const NULL: u64 = 0;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const UID: u64 = 11;
    pub const EUID: u64 = 12;
    pub const GID: u64 = 13;
    pub const EGID: u64 = 14;
    pub const PLATFORM: u64 = 15;
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const RANDOM: u64 = 25;
    pub const HWCAP2: u64 = 26;
    pub const EXECFN: u64 = 31;
    pub const SYSINFO_EHDR: u64 = 33;
    pub const MINSIGSTKSZ: u64 = 51;
}

/// Auxiliary vector entries whose values are pointers to data the builder
/// places on the stack.
pub struct StackData {
    pub argv: Vec<OsString>,
    pub envp: Vec<OsString>,
    pub execfn: OsString,
    pub platform: &'static str,
    pub random: [u8; 16],
    /// Plain (key, value) entries, in order; AT_RANDOM, AT_EXECFN and
    /// AT_PLATFORM are added by the builder.
    pub auxv: Vec<(u64, u64)>,
}

/// Lays the stack out below `top` and returns (bytes to copy at
/// `top - bytes.len()`, initial RSP). RSP is 16-byte aligned, pointing at argc.
pub fn build(top: u64, d: &StackData) -> (Vec<u8>, u64) {
    // Strings and random bytes, packed downward from the top.
    let mut blob: Vec<u8> = Vec::new();
    let mut place = |bytes: &[u8], nul: bool| -> u64 {
        let mut v = bytes.to_vec();
        if nul {
            v.push(0);
        }
        // Prepend: the newest item sits lowest.
        let mut new = v;
        new.extend_from_slice(&blob);
        blob = new;
        top - blob.len() as u64
    };
    let execfn = place(d.execfn.as_bytes(), true);
    let env_ptrs: Vec<u64> = d
        .envp
        .iter()
        .rev()
        .map(|e| place(e.as_bytes(), true))
        .collect();
    let arg_ptrs: Vec<u64> = d
        .argv
        .iter()
        .rev()
        .map(|a| place(a.as_bytes(), true))
        .collect();
    let platform = place(d.platform.as_bytes(), true);
    let random = place(&d.random, false);

    let mut auxv = d.auxv.clone();
    auxv.push((at::RANDOM, random));
    auxv.push((at::EXECFN, execfn));
    auxv.push((at::PLATFORM, platform));
    auxv.push((at::NULL, 0));

    let mut words: Vec<u64> = Vec::new();
    words.push(d.argv.len() as u64);
    words.extend(arg_ptrs.iter().rev());
    words.push(0);
    words.extend(env_ptrs.iter().rev());
    words.push(0);
    for (k, v) in &auxv {
        words.push(*k);
        words.push(*v);
    }
    let strings_bottom = top - blob.len() as u64;
    let table = (words.len() * 8) as u64;
    let rsp = (strings_bottom - table) & !15;
    let mut bytes = Vec::with_capacity((top - rsp) as usize);
    for w in &words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes.resize((strings_bottom - rsp) as usize, 0);
    bytes.extend_from_slice(&blob);
    (bytes, rsp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(bytes: &[u8], base: u64, addr: u64) -> u64 {
        let o = (addr - base) as usize;
        u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap())
    }

    fn cstr(bytes: &[u8], base: u64, addr: u64) -> String {
        let o = (addr - base) as usize;
        let end = bytes[o..].iter().position(|&b| b == 0).unwrap();
        String::from_utf8(bytes[o..o + end].to_vec()).unwrap()
    }

    #[test]
    fn layout_follows_the_abi() {
        let top = 0x7fff_0000_0000;
        let d = StackData {
            argv: vec!["echo".into(), "a b".into()],
            envp: vec!["X=1".into()],
            execfn: "/bin/echo".into(),
            platform: "x86_64",
            random: [7; 16],
            auxv: vec![(at::PAGESZ, 4096)],
        };
        let (bytes, rsp) = build(top, &d);
        let base = top - bytes.len() as u64;
        assert_eq!(rsp % 16, 0);
        assert_eq!(base, rsp);
        assert_eq!(word(&bytes, base, rsp), 2, "argc");
        assert_eq!(cstr(&bytes, base, word(&bytes, base, rsp + 8)), "echo");
        assert_eq!(cstr(&bytes, base, word(&bytes, base, rsp + 16)), "a b");
        assert_eq!(word(&bytes, base, rsp + 24), 0);
        assert_eq!(cstr(&bytes, base, word(&bytes, base, rsp + 32)), "X=1");
        assert_eq!(word(&bytes, base, rsp + 40), 0);
        let mut a = rsp + 48;
        let mut seen = Vec::new();
        loop {
            let (k, v) = (word(&bytes, base, a), word(&bytes, base, a + 8));
            seen.push(k);
            match k {
                at::NULL => break,
                at::PAGESZ => assert_eq!(v, 4096),
                at::EXECFN => assert_eq!(cstr(&bytes, base, v), "/bin/echo"),
                at::PLATFORM => assert_eq!(cstr(&bytes, base, v), "x86_64"),
                at::RANDOM => assert_eq!(bytes[(v - base) as usize..][..16], [7; 16]),
                _ => panic!("unexpected key {k}"),
            }
            a += 16;
        }
        assert_eq!(
            seen,
            vec![at::PAGESZ, at::RANDOM, at::EXECFN, at::PLATFORM, at::NULL]
        );
    }
}
