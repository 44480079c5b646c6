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
    // Strings and random bytes, packed downward from the top, in this order
    // from the top: execfn, envp, argv, platform, random bytes.
    let mut items: Vec<&[u8]> = vec![d.execfn.as_bytes()];
    items.extend(d.envp.iter().rev().map(|e| e.as_bytes()));
    items.extend(d.argv.iter().rev().map(|a| a.as_bytes()));
    items.push(d.platform.as_bytes());
    let strings = items.len();
    items.push(&d.random);
    let blob_len: usize = items.iter().map(|i| i.len()).sum::<usize>() + strings;
    // Address of each item, top down.
    let mut addrs = Vec::with_capacity(items.len());
    let mut at = top;
    for (n, item) in items.iter().enumerate() {
        at -= (item.len() + usize::from(n < strings)) as u64;
        addrs.push(at);
    }
    let execfn = addrs[0];
    let env_ptrs = &addrs[1..1 + d.envp.len()];
    let arg_ptrs = &addrs[1 + d.envp.len()..1 + d.envp.len() + d.argv.len()];
    let (platform, random) = (addrs[strings - 1], addrs[strings]);

    let mut words: Vec<u64> = Vec::new();
    words.push(d.argv.len() as u64);
    words.extend(arg_ptrs.iter().rev());
    words.push(0);
    words.extend(env_ptrs.iter().rev());
    words.push(0);
    let mut auxv = d.auxv.clone();
    auxv.extend([
        (at::RANDOM, random),
        (at::EXECFN, execfn),
        (at::PLATFORM, platform),
        (at::NULL, 0),
    ]);
    for (k, v) in auxv {
        words.extend([k, v]);
    }
    let strings_bottom = top - blob_len as u64;
    let rsp = (strings_bottom - (words.len() * 8) as u64) & !15;
    let mut bytes = Vec::with_capacity((top - rsp) as usize);
    for w in &words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes.resize((strings_bottom - rsp) as usize, 0);
    // The blob bottom up: the reverse of the top-down order.
    for (n, item) in items.iter().enumerate().rev() {
        bytes.extend_from_slice(item);
        if n < strings {
            bytes.push(0);
        }
    }
    debug_assert_eq!(rsp + bytes.len() as u64, top);
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
