//! The process's first instructions, before libc's `_start`: where the
//! sandbox runs in the legacy layout (`syscall_proxy::loader::room`), its
//! initial stack moves out of the stack's native place.
//!
//! The kernel always puts a new image's stack at the top of the address
//! space, where a native process under ADDR_NO_RANDOMIZE has its own, and
//! where rr maps a recorded stack back. The initial stack (argc, argv,
//! envp, the auxiliary vector and their strings) is copied to the top of
//! a new mapping, its pointers moved with it, and the old stack unmapped,
//! all before libc takes any pointer into it. Written in assembly: nothing
//! of this static PIE is relocated yet (no GOT, no libc calls).

use std::arch::global_asm;

// Registers: r12 the old sp, r13 the old stack's top, r14 the new top,
// r15 the distance between them (new - old), rbx a cursor.
global_asm!(
    ".globl xcr0_sandbox_entry",
    ".type xcr0_sandbox_entry, @function",
    "xcr0_sandbox_entry:",
    // personality(0xffffffff): only a legacy layout moves the stack.
    "mov eax, {sys_personality}",
    "mov edi, 0xffffffff",
    "syscall",
    "test eax, {addr_compat_layout}",
    "jz 9f",
    "mov r12, rsp",
    // The auxiliary vector: past argc, argv and its NULL, envp and its NULL.
    "mov rcx, [r12]",
    "lea rbx, [r12 + 8 * rcx + 16]",
    "2:",
    "mov rax, [rbx]",
    "add rbx, 8",
    "test rax, rax",
    "jnz 2b",
    // AT_EXECFN names the string the kernel copied first, at the top.
    "3:",
    "mov rax, [rbx]",
    "test rax, rax",
    "jz 9f",
    "cmp rax, {at_execfn}",
    "je 4f",
    "add rbx, 16",
    "jmp 3b",
    "4:",
    "mov rsi, [rbx + 8]",
    "5:",
    "mov al, [rsi]",
    "inc rsi",
    "test al, al",
    "jnz 5b",
    "add rsi, 4095",
    "and rsi, -4096",
    "mov r13, rsi",
    // The new stack, a guard page below it.
    "mov eax, {sys_mmap}",
    "xor edi, edi",
    "mov rsi, {stack_size} + 4096",
    "mov edx, {prot_rw}",
    "mov r10d, {map_private_anon}",
    "mov r8, -1",
    "xor r9d, r9d",
    "syscall",
    "cmp rax, -4096",
    "ja 9f",
    "mov rbx, rax",
    "lea r14, [rax + {stack_size} + 4096]",
    "mov eax, {sys_mprotect}",
    "mov rdi, rbx",
    "mov esi, 4096",
    "xor edx, edx",
    "syscall",
    "mov r15, r14",
    "sub r15, r13",
    // Copy [old sp, old top) to the same offsets below the new top.
    "mov rsi, r12",
    "lea rdi, [r12 + r15]",
    "mov rcx, r13",
    "sub rcx, r12",
    "cld",
    "rep movsb",
    // Move argv's and envp's pointers, then the auxiliary vector's values
    // that point into the old stack (AT_EXECFN, AT_RANDOM, AT_PLATFORM...).
    "lea rbx, [r12 + r15 + 8]",
    "mov ecx, 2",
    "6:",
    "mov rax, [rbx]",
    "add rbx, 8",
    "test rax, rax",
    "jz 7f",
    "cmp rax, r12",
    "jb 6b",
    "cmp rax, r13",
    "jae 6b",
    "add [rbx - 8], r15",
    "jmp 6b",
    "7:",
    "dec ecx",
    "jnz 6b",
    "8:",
    "mov rax, [rbx]",
    "test rax, rax",
    "jz 1f",
    "mov rax, [rbx + 8]",
    "add rbx, 16",
    "cmp rax, r12",
    "jb 8b",
    "cmp rax, r13",
    "jae 8b",
    "add [rbx - 8], r15",
    "jmp 8b",
    "1:",
    "lea rsp, [r12 + r15]",
    // The old stack goes; at exec it is at most a few MiB, and in the
    // legacy layout nothing else lies within 64 MiB of the top.
    "mov eax, {sys_munmap}",
    "lea rdi, [r13 - {old_span}]",
    "mov esi, {old_span}",
    "syscall",
    "9:",
    // As the kernel left them for _start: no atexit function, no frame.
    "xor edx, edx",
    "xor ebp, ebp",
    "jmp _start",
    sys_personality = const libc::SYS_personality,
    sys_mmap = const libc::SYS_mmap,
    sys_mprotect = const libc::SYS_mprotect,
    sys_munmap = const libc::SYS_munmap,
    addr_compat_layout = const libc::ADDR_COMPAT_LAYOUT,
    at_execfn = const libc::AT_EXECFN,
    prot_rw = const libc::PROT_READ | libc::PROT_WRITE,
    map_private_anon = const libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    stack_size = const STACK_SIZE,
    old_span = const OLD_SPAN,
);

/// The sandbox's own main stack, as RLIMIT_STACK's usual 8 MiB.
const STACK_SIZE: usize = 8 << 20;

/// How far below its top the old stack is unmapped.
const OLD_SPAN: usize = 64 << 20;
