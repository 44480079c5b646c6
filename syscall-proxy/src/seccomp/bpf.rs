//! Classic BPF as seccomp accepts and runs it: the checks a filter must
//! pass to be installed (the kernel's bpf_check_classic, then
//! seccomp_check_filter's narrower list), and an interpreter over
//! `struct seccomp_data`. A checked program only jumps forward, so every
//! run ends.

use libc::sock_filter;
use libc::{
    BPF_A, BPF_ABS, BPF_ADD, BPF_ALU, BPF_AND, BPF_DIV, BPF_IMM, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT,
    BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LDX, BPF_LEN, BPF_LSH, BPF_MAXINSNS, BPF_MEM,
    BPF_MEMWORDS, BPF_MISC, BPF_MUL, BPF_NEG, BPF_OR, BPF_RET, BPF_RSH, BPF_ST, BPF_STX, BPF_SUB,
    BPF_TAX, BPF_TXA, BPF_W, BPF_X, BPF_XOR,
};

/// Why a program was refused: the kernel answers EINVAL for each.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    Length,
    /// An instruction seccomp does not run, at this index.
    Opcode(usize),
    /// A load outside `seccomp_data` or not 4-byte aligned.
    Load(usize),
    /// A jump past the end, a constant division by zero, a shift by 32 or
    /// more, a scratch word out of range.
    Operand(usize),
    /// A scratch word read before every path to it wrote it.
    Uninitialised(usize),
    /// The last instruction is not a return.
    NoReturn,
}

/// The bytes a filter reads: `struct seccomp_data`.
pub const DATA_LEN: u32 = size_of::<libc::seccomp_data>() as u32;

fn code(c: u32) -> u16 {
    c as u16
}

/// Whether `insns` is a program seccomp installs.
pub fn check(insns: &[sock_filter]) -> Result<(), Invalid> {
    let n = insns.len();
    if n == 0 || n > BPF_MAXINSNS as usize {
        return Err(Invalid::Length);
    }
    for (pc, i) in insns.iter().enumerate() {
        let left = (n - pc - 1) as u32;
        let k = i.k;
        let c = i.code;
        if c == code(BPF_LD | BPF_W | BPF_ABS) {
            if k >= DATA_LEN || k % 4 != 0 {
                return Err(Invalid::Load(pc));
            }
            continue;
        }
        let bad_operand = if is_alu(c) {
            let op = u32::from(c) & 0xf0;
            let by_k = u32::from(c) & 0x08 == BPF_K;
            by_k && ((op == BPF_DIV && k == 0) || ((op == BPF_LSH || op == BPF_RSH) && k >= 32))
        } else if [BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM, BPF_ST, BPF_STX]
            .iter()
            .any(|&m| c == code(m))
        {
            k >= BPF_MEMWORDS as u32
        } else if c == code(BPF_JMP | BPF_JA) {
            k >= left
        } else if is_conditional(c) {
            u32::from(i.jt) >= left || u32::from(i.jf) >= left
        } else if [
            BPF_RET | BPF_K,
            BPF_RET | BPF_A,
            BPF_LD | BPF_W | BPF_LEN,
            BPF_LDX | BPF_W | BPF_LEN,
            BPF_LD | BPF_IMM,
            BPF_LDX | BPF_IMM,
            BPF_MISC | BPF_TAX,
            BPF_MISC | BPF_TXA,
        ]
        .iter()
        .any(|&m| c == code(m))
        {
            false
        } else {
            return Err(Invalid::Opcode(pc));
        };
        if bad_operand {
            return Err(Invalid::Operand(pc));
        }
    }
    let last = insns[n - 1].code;
    if last != code(BPF_RET | BPF_K) && last != code(BPF_RET | BPF_A) {
        return Err(Invalid::NoReturn);
    }
    stores_before_loads(insns)
}

/// The ALU instructions seccomp runs (no MOD, no ancillary operations).
fn is_alu(c: u16) -> bool {
    let c = u32::from(c);
    if c == BPF_ALU | BPF_NEG {
        return true;
    }
    let ops = [
        BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_AND, BPF_OR, BPF_XOR, BPF_LSH, BPF_RSH,
    ];
    c < 0x100 && c & 0x07 == BPF_ALU && ops.contains(&(c & 0xf0))
}

fn is_conditional(c: u16) -> bool {
    let c = u32::from(c);
    c < 0x100 && c & 0x07 == BPF_JMP && [BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET].contains(&(c & 0xf0))
}

/// Every path to a scratch word's load went through a store to it: the
/// words each instruction can count on are those stored on every way in.
fn stores_before_loads(insns: &[sock_filter]) -> Result<(), Invalid> {
    let mut at = vec![u16::MAX; insns.len()];
    let mut valid: u16 = 0;
    for (pc, i) in insns.iter().enumerate() {
        valid &= at[pc];
        let c = u32::from(i.code);
        if c == BPF_ST || c == BPF_STX {
            valid |= 1 << i.k;
        } else if c == BPF_LD | BPF_MEM || c == BPF_LDX | BPF_MEM {
            if valid & (1 << i.k) == 0 {
                return Err(Invalid::Uninitialised(pc));
            }
        } else if c == BPF_JMP | BPF_JA {
            at[pc + 1 + i.k as usize] &= valid;
            valid = u16::MAX;
        } else if is_conditional(i.code) {
            at[pc + 1 + usize::from(i.jt)] &= valid;
            at[pc + 1 + usize::from(i.jf)] &= valid;
            valid = u16::MAX;
        }
    }
    Ok(())
}

/// How many instructions the kernel's translation of a checked program
/// to eBPF holds (bpf_convert_filter), which is what its limit on a
/// thread's filters counts: three to start, two for a return of a
/// constant, one more for a jump on a constant of bit 31 and for a
/// jump whose two ways both go elsewhere (bar the ones turned around).
pub fn converted_len(insns: &[sock_filter]) -> usize {
    let one = |i: &sock_filter| {
        let c = u32::from(i.code);
        if c == BPF_RET | BPF_K {
            return 2;
        }
        if !is_conditional(i.code) {
            return 1;
        }
        let wide = usize::from(c & 0x08 == BPF_K && (i.k as i32) < 0);
        let turned = i.jt == 0 && c & 0xf0 != BPF_JSET;
        wide + if i.jf == 0 || turned { 1 } else { 2 }
    };
    3 + insns.iter().map(one).sum::<usize>()
}

/// Runs a checked program over `data`; returns what it returns.
pub fn run(insns: &[sock_filter], data: &libc::seccomp_data) -> u32 {
    let word = |k: u32| -> u32 {
        // SAFETY: seccomp_data is plain data; `check` keeps k aligned and
        // inside it.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (data as *const libc::seccomp_data).cast::<u8>(),
                DATA_LEN as usize,
            )
        };
        let k = k as usize;
        u32::from_ne_bytes(bytes[k..k + 4].try_into().expect("4 bytes"))
    };
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; BPF_MEMWORDS as usize];
    let mut pc = 0;
    loop {
        let i = insns[pc];
        pc += 1;
        let c = u32::from(i.code);
        let src = if c & 0x08 == BPF_X { x } else { i.k };
        match c & 0x07 {
            BPF_RET => return if c & 0x18 == BPF_A { a } else { i.k },
            BPF_LD => {
                a = match c & 0xe0 {
                    BPF_ABS => word(i.k),
                    BPF_LEN => DATA_LEN,
                    BPF_MEM => mem[i.k as usize],
                    _ => i.k,
                }
            }
            BPF_LDX => {
                x = match c & 0xe0 {
                    BPF_LEN => DATA_LEN,
                    BPF_MEM => mem[i.k as usize],
                    _ => i.k,
                }
            }
            BPF_ST => mem[i.k as usize] = a,
            BPF_STX => mem[i.k as usize] = x,
            BPF_ALU => {
                a = match c & 0xf0 {
                    BPF_ADD => a.wrapping_add(src),
                    BPF_SUB => a.wrapping_sub(src),
                    BPF_MUL => a.wrapping_mul(src),
                    // Division by a zero X ends the program with 0, as the
                    // kernel's does.
                    BPF_DIV if src == 0 => return 0,
                    BPF_DIV => a / src,
                    BPF_AND => a & src,
                    BPF_OR => a | src,
                    BPF_XOR => a ^ src,
                    BPF_LSH => a.wrapping_shl(src),
                    BPF_RSH => a.wrapping_shr(src),
                    _ => a.wrapping_neg(),
                }
            }
            BPF_JMP => {
                let taken = match c & 0xf0 {
                    BPF_JA => {
                        pc += i.k as usize;
                        continue;
                    }
                    BPF_JEQ => a == src,
                    BPF_JGT => a > src,
                    BPF_JGE => a >= src,
                    _ => a & src != 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            // BPF_MISC: TAX or TXA.
            _ => {
                if c & 0xf8 == BPF_TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(code: u32, k: u32) -> sock_filter {
        sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
        sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        }
    }

    fn data(nr: i32, arg0: u64) -> libc::seccomp_data {
        libc::seccomp_data {
            nr,
            arch: 0xc000_003e,
            instruction_pointer: 0x1234,
            args: [arg0, 0, 0, 0, 0, 0],
        }
    }

    /// Allows getpid, returns ERRNO(arg0's low word) for the rest.
    fn errno_unless_getpid() -> Vec<sock_filter> {
        vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, 0),
            jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_getpid as u32, 0, 1),
            stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
            stmt(BPF_LD | BPF_W | BPF_ABS, 16),
            stmt(BPF_ALU | BPF_AND | BPF_K, 0xffff),
            stmt(BPF_ALU | BPF_OR | BPF_K, libc::SECCOMP_RET_ERRNO),
            stmt(BPF_RET | BPF_A, 0),
        ]
    }

    #[test]
    fn a_filter_reads_the_number_and_arguments() {
        let p = errno_unless_getpid();
        assert_eq!(check(&p), Ok(()));
        let allow = run(&p, &data(libc::SYS_getpid as i32, 7));
        assert_eq!(allow, libc::SECCOMP_RET_ALLOW);
        let errno = run(&p, &data(libc::SYS_getppid as i32, 0x1_0000_0017));
        assert_eq!(errno, libc::SECCOMP_RET_ERRNO | 0x17);
    }

    #[test]
    fn scratch_words_registers_and_arithmetic() {
        let p = vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, 4), // arch
            stmt(BPF_ST, 3),
            stmt(BPF_LDX | BPF_MEM, 3),
            stmt(BPF_LD | BPF_IMM, 10),
            stmt(BPF_ALU | BPF_MUL | BPF_K, 3),
            stmt(BPF_ALU | BPF_SUB | BPF_K, 2),
            stmt(BPF_ALU | BPF_LSH | BPF_K, 1),
            stmt(BPF_ALU | BPF_RSH | BPF_K, 2),
            stmt(BPF_ALU | BPF_NEG, 0),
            stmt(BPF_ALU | BPF_NEG, 0),
            stmt(BPF_MISC | BPF_TAX, 0),
            stmt(BPF_LD | BPF_W | BPF_LEN, 0),
            stmt(BPF_ALU | BPF_ADD | BPF_X, 0),
            stmt(BPF_RET | BPF_A, 0),
        ];
        assert_eq!(check(&p), Ok(()));
        assert_eq!(run(&p, &data(0, 0)), 14 + 64);
    }

    #[test]
    fn division_by_a_zero_register_returns_zero() {
        let p = vec![
            stmt(BPF_LD | BPF_IMM, 5),
            stmt(BPF_ALU | BPF_DIV | BPF_X, 0),
            stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        ];
        assert_eq!(check(&p), Ok(()));
        assert_eq!(run(&p, &data(0, 0)), 0);
    }

    #[test]
    fn jumps_conditions_and_ja() {
        let p = vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, 16),
            jump(BPF_JMP | BPF_JSET | BPF_K, 0x8, 0, 2),
            jump(BPF_JMP | BPF_JGT | BPF_K, 100, 2, 0),
            stmt(BPF_JMP | BPF_JA, 2),
            stmt(BPF_RET | BPF_K, 1),
            stmt(BPF_RET | BPF_K, 2),
            jump(BPF_JMP | BPF_JGE | BPF_K, 10, 0, 1),
            stmt(BPF_RET | BPF_K, 3),
            stmt(BPF_RET | BPF_K, 4),
        ];
        assert_eq!(check(&p), Ok(()));
        assert_eq!(run(&p, &data(0, 2)), 1, "no bit 3");
        assert_eq!(run(&p, &data(0, 12)), 3, "bit 3, not above 100: JA, >= 10");
        assert_eq!(
            run(&p, &data(0, 9)),
            4,
            "bit 3, not above 100: JA, below 10"
        );
        assert_eq!(run(&p, &data(0, 0x108)), 2, "bit 3, above 100");
    }

    #[test]
    fn what_seccomp_refuses() {
        let ret = stmt(BPF_RET | BPF_K, 0);
        assert_eq!(check(&[]), Err(Invalid::Length));
        assert_eq!(check(&vec![ret; 4097]), Err(Invalid::Length));
        assert_eq!(check(&vec![ret; 4096]), Ok(()));
        let load = |k| vec![stmt(BPF_LD | BPF_W | BPF_ABS, k), ret];
        assert_eq!(check(&load(2)), Err(Invalid::Load(0)), "unaligned");
        assert_eq!(check(&load(64)), Err(Invalid::Load(0)), "past the data");
        assert_eq!(check(&load(60)), Ok(()));
        let byte = vec![stmt(BPF_LD | libc::BPF_B | BPF_ABS, 0), ret];
        assert_eq!(check(&byte), Err(Invalid::Opcode(0)), "byte loads");
        let modulo = vec![stmt(BPF_ALU | libc::BPF_MOD | BPF_K, 3), ret];
        assert_eq!(check(&modulo), Err(Invalid::Opcode(0)));
        let div0 = vec![stmt(BPF_ALU | BPF_DIV | BPF_K, 0), ret];
        assert_eq!(check(&div0), Err(Invalid::Operand(0)));
        let shift = vec![stmt(BPF_ALU | BPF_LSH | BPF_K, 32), ret];
        assert_eq!(check(&shift), Err(Invalid::Operand(0)));
        let far = vec![jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0), ret];
        assert_eq!(check(&far), Err(Invalid::Operand(0)), "past the end");
        let ja = vec![stmt(BPF_JMP | BPF_JA, 1), ret];
        assert_eq!(check(&ja), Err(Invalid::Operand(0)));
        let word = vec![stmt(BPF_ST, 16), ret];
        assert_eq!(check(&word), Err(Invalid::Operand(0)));
        let open = vec![ret, stmt(BPF_LD | BPF_IMM, 0)];
        assert_eq!(check(&open), Err(Invalid::NoReturn));
        let unset = vec![stmt(BPF_LD | BPF_MEM, 1), ret];
        assert_eq!(check(&unset), Err(Invalid::Uninitialised(0)));
        // Stored on one way in only.
        let half = vec![
            jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
            stmt(BPF_ST, 1),
            stmt(BPF_LD | BPF_MEM, 1),
            ret,
        ];
        assert_eq!(check(&half), Err(Invalid::Uninitialised(2)));
    }
}
