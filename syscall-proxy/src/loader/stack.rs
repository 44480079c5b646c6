//! The initial process stack (System V x86-64 ABI 3.4.1): argc, argv,
//! envp, the auxiliary vector, and the strings they point to.

use std::ffi::OsString;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;

/// Auxiliary vector keys (include/uapi/linux/auxvec.h, asm/auxvec.h), as
/// libc defines them.
pub mod at {
    pub use libc::{
        AT_BASE as BASE, AT_CLKTCK as CLKTCK, AT_EGID as EGID, AT_ENTRY as ENTRY, AT_EUID as EUID,
        AT_EXECFN as EXECFN, AT_FLAGS as FLAGS, AT_GID as GID, AT_HWCAP as HWCAP,
        AT_HWCAP2 as HWCAP2, AT_MINSIGSTKSZ as MINSIGSTKSZ, AT_NULL as NULL, AT_PAGESZ as PAGESZ,
        AT_PHDR as PHDR, AT_PHENT as PHENT, AT_PHNUM as PHNUM, AT_PLATFORM as PLATFORM,
        AT_RANDOM as RANDOM, AT_SECURE as SECURE, AT_SYSINFO_EHDR as SYSINFO_EHDR, AT_UID as UID,
    };
}

/// Auxiliary vector entries whose values are pointers to data the builder
/// places on the stack.
pub struct StackData {
    pub argv: Vec<OsString>,
    pub envp: Vec<OsString>,
    pub execfn: OsString,
    pub platform: &'static str,
    pub random: [u8; 16],
    /// Plain (key, value) entries, in order; AT_RANDOM, AT_HWCAP2,
    /// AT_EXECFN and AT_PLATFORM are added by the builder, after them.
    pub auxv: Vec<(u64, u64)>,
    pub hwcap2: u64,
}

/// Bytes Linux leaves free at the very top of a new stack (the NULL
/// pointer of fs/exec.c's `bprm->p = vm_end - sizeof(void *)`): programs
/// such as glibc's tunables parser may read a little past the last string.
const TOP_GAP: u64 = 8;

/// A laid-out initial stack.
pub struct Built {
    /// What to copy at `top - bytes.len()`.
    pub bytes: Vec<u8>,
    /// The initial RSP: 16-byte aligned, pointing at argc.
    pub sp: u64,
    /// Where the argv strings, the envp strings and the auxiliary vector
    /// are (what /proc/self/cmdline, environ and auxv show).
    pub args: Range<u64>,
    pub env: Range<u64>,
    pub auxv: Range<u64>,
}

/// Lays the stack out below `top`. From the top down, as Linux's copy_strings and create_elf_tables
/// lay it: 8 zero bytes, execfn, envp and argv strings (the last one
/// highest), a 16-byte alignment, the platform string, the random bytes.
pub fn build(top: u64, d: &StackData) -> Built {
    let mut items: Vec<&[u8]> = vec![d.execfn.as_bytes()];
    items.extend(d.envp.iter().rev().map(|e| e.as_bytes()));
    items.extend(d.argv.iter().rev().map(|a| a.as_bytes()));
    let args_end = items.len();
    items.push(d.platform.as_bytes());
    let strings = items.len();
    items.push(&d.random);
    // Address of each item, top down.
    let mut addrs = Vec::with_capacity(items.len());
    let mut at = top - TOP_GAP;
    for (n, item) in items.iter().enumerate() {
        if n == args_end {
            at &= !15;
        }
        at -= (item.len() + usize::from(n < strings)) as u64;
        addrs.push(at);
    }
    let strings_bottom = at;
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
    let auxv_offset = (words.len() * 8) as u64;
    let mut auxv = d.auxv.clone();
    auxv.extend([
        (at::RANDOM, random),
        (at::HWCAP2, d.hwcap2),
        (at::EXECFN, execfn),
        (at::PLATFORM, platform),
        (at::NULL, 0),
    ]);
    let auxv_len = (auxv.len() * 16) as u64;
    for (k, v) in auxv {
        words.extend([k, v]);
    }
    let rsp = (strings_bottom - (words.len() * 8) as u64) & !15;
    let mut bytes = Vec::with_capacity((top - rsp) as usize);
    for w in &words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes.resize((strings_bottom - rsp) as usize, 0);
    // The items bottom up, each at its address; the gaps stay zero.
    for (n, item) in items.iter().enumerate().rev() {
        bytes.resize((addrs[n] - rsp) as usize, 0);
        bytes.extend_from_slice(item);
        if n < strings {
            bytes.push(0);
        }
    }
    bytes.resize((top - rsp) as usize, 0);
    debug_assert_eq!(rsp + bytes.len() as u64, top);
    // In memory: argv strings, then envp strings, then execfn.
    let env_start = env_ptrs.last().copied().unwrap_or(execfn);
    let arg_start = arg_ptrs.last().copied().unwrap_or(env_start);
    Built {
        bytes,
        sp: rsp,
        args: arg_start..env_start,
        env: env_start..execfn,
        auxv: rsp + auxv_offset..rsp + auxv_offset + auxv_len,
    }
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
            hwcap2: 2,
        };
        let Built {
            bytes,
            sp: rsp,
            args,
            env,
            auxv,
        } = build(top, &d);
        let base = top - bytes.len() as u64;
        assert_eq!(rsp % 16, 0);
        assert_eq!(base, rsp);
        let execfn = top - TOP_GAP - "/bin/echo".len() as u64 - 1;
        assert_eq!(cstr(&bytes, base, execfn), "/bin/echo");
        assert_eq!(bytes[bytes.len() - 8..], [0; 8], "Linux's top 8 bytes");
        let at = |r: &Range<u64>| &bytes[(r.start - base) as usize..(r.end - base) as usize];
        assert_eq!(at(&args), b"echo\0a b\0", "/proc/self/cmdline");
        assert_eq!(at(&env), b"X=1\0", "/proc/self/environ");
        assert_eq!(auxv.start, rsp + 48);
        assert_eq!(auxv.end - auxv.start, 6 * 16);
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
                at::HWCAP2 => assert_eq!(v, 2),
                _ => panic!("unexpected key {k}"),
            }
            a += 16;
        }
        assert_eq!(
            seen,
            // create_elf_tables' order.
            vec![
                at::PAGESZ,
                at::RANDOM,
                at::HWCAP2,
                at::EXECFN,
                at::PLATFORM,
                at::NULL
            ]
        );
    }
}
