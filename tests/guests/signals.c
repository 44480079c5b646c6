/*
 * signals: exercises signal delivery and prints what the handlers saw, one
 * line per check, with no addresses or pids (booleans, offsets, codes), so
 * a run in the sandbox can be compared line by line with a native run.
 *
 *   signals            every check below, in order
 *   signals overflow   main-thread stack overflow caught on a sigaltstack
 *   signals overflow-thread   the same in a thread
 *   signals forged     fault siginfos the program sends itself
 *   signals badframe   a handler points its uc's fpregs at address 8 and
 *                      returns: sigreturn fails, the process dies (SIGSEGV)
 *   signals badcs      the same with garbage in REG_CSGSFS
 *   signals storm      8 busy threads take 10,000 process-directed and
 *                      10,000 thread-directed real-time signals
 *   signals sigbus     a file mapping touched past the end of its file
 *   signals dispositions   (run by exec from the default mode) prints the
 *                      dispositions and mask it inherited
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

/* Offsets in the XSAVE area a frame's fpregs points at. */
#define SW_RESERVED 464
#define XSTATE_BV 512
#define XCOMP_BV 520
#ifndef FP_XSTATE_MAGIC2
#define FP_XSTATE_MAGIC2 0x46505845U
#endif
/* sizeof(struct rt_sigframe) up to the siginfo: pretcode + the kernel's
 * struct ucontext (whose sigset is 8 bytes). */
#define INFO_IN_FRAME 312

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EINTR: return "EINTR";
	case EAGAIN: return "EAGAIN";
	case EPERM: return "EPERM";
	case ECHILD: return "ECHILD";
	case EINVAL: return "EINVAL";
	default: return "other";
	}
}

/* XCR0, or 0 without OSXSAVE. */
static uint64_t xcr0(void)
{
	unsigned a, b, c, d;
	__cpuid(1, a, b, c, d);
	if (!(c & (1u << 27)))
		return 0;
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

/* CPUID.(0xD,0).EBX: the XSAVE size for the XCR0 in force. */
static unsigned xsave_size(void)
{
	unsigned a, b, c, d;
	__cpuid_count(0xd, 0, a, b, c, d);
	return b;
}

/* Where the YMM_Hi128 component lies in the standard XSAVE format. */
static unsigned avx_offset(void)
{
	unsigned a, b, c, d;
	__cpuid_count(0xd, 2, a, b, c, d);
	return b;
}

/* Whether AVX can be used: CPUID says so and XCR0 enables YMM state. */
static int have_avx(void)
{
	unsigned a, b, c, d;
	__cpuid(1, a, b, c, d);
	return (c & (1u << 28)) && (xcr0() & 6) == 6;
}

static int tgkill_self(int sig)
{
	return syscall(SYS_tgkill, getpid(), gettid(), sig);
}

/* Installs `fn` (SA_SIGINFO added when `info`) with `flags` and a mask of
 * `masked` (0: none). */
static void act(int sig, void *fn, int info, int flags, int masked)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	if (info)
		sa.sa_sigaction = fn;
	else
		sa.sa_handler = fn;
	sa.sa_flags = flags | (info ? SA_SIGINFO : 0);
	sigemptyset(&sa.sa_mask);
	if (masked)
		sigaddset(&sa.sa_mask, masked);
	if (sigaction(sig, &sa, NULL)) {
		perror("sigaction");
		exit(1);
	}
}

static void block(int how, int sig)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	sigprocmask(how, &s, NULL);
}

static int is_blocked(int sig)
{
	sigset_t s;
	sigprocmask(SIG_BLOCK, NULL, &s);
	return sigismember(&s, sig);
}

/* One-shot ITIMER_REAL after `ms` (repeating every `ms` if `repeat`). */
static void itimer(int ms, int repeat)
{
	struct itimerval t = {
		.it_value = {ms / 1000, (ms % 1000) * 1000},
		.it_interval = {repeat ? ms / 1000 : 0, repeat ? (ms % 1000) * 1000 : 0},
	};
	setitimer(ITIMER_REAL, &t, NULL);
}

static uint64_t u64at(const void *p, size_t off)
{
	uint64_t v;
	memcpy(&v, (const char *)p + off, 8);
	return v;
}

static uint32_t u32at(const void *p, size_t off)
{
	uint32_t v;
	memcpy(&v, (const char *)p + off, 4);
	return v;
}

/* ---- what the last SA_SIGINFO handler saw ---- */

static siginfo_t seen;
static volatile int seen_sig, calls;

static void on_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	seen = *si;
	seen_sig = sig;
	calls++;
}

static void print_info(const char *what)
{
	printf("%s: sig=%d signo=%d code=%d errno=%d pid_self=%d uid_self=%d calls=%d\n",
	       what, seen_sig, seen.si_signo, seen.si_code, seen.si_errno,
	       seen.si_pid == getpid(), seen.si_uid == getuid(), calls);
}

static void check_senders(void)
{
	act(SIGUSR1, on_info, 1, 0, 0);
	calls = 0;
	raise(SIGUSR1);
	print_info("raise");
	calls = 0;
	kill(getpid(), SIGUSR1);
	print_info("kill");
	calls = 0;
	tgkill_self(SIGUSR1);
	print_info("tgkill");
	calls = 0;
	sigqueue(getpid(), SIGUSR1, (union sigval){.sival_ptr = (void *)0x1122334455667788});
	print_info("sigqueue");
	printf("sigqueue: value_ok=%d\n", seen.si_value.sival_ptr == (void *)0x1122334455667788);

	/* A siginfo of the program's own making reaches the handler whole. */
	siginfo_t mine;
	memset(&mine, 0, sizeof mine);
	mine.si_signo = SIGUSR1;
	mine.si_code = -42;
	mine.si_pid = 12345;
	mine.si_uid = 678;
	mine.si_value.sival_int = 99;
	calls = 0;
	long r = syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGUSR1, &mine);
	printf("rt_tgsigqueueinfo: ret=%ld code=%d pid=%d uid=%d value=%d calls=%d\n", r,
	       seen.si_code, seen.si_pid, seen.si_uid, seen.si_value.sival_int, calls);

	/* SIGSEGV and SIGILL sent by kill: to the handler, or ignored. */
	act(SIGSEGV, on_info, 1, 0, 0);
	calls = 0;
	kill(getpid(), SIGSEGV);
	print_info("kill SIGSEGV");
	signal(SIGSEGV, SIG_IGN);
	signal(SIGILL, SIG_IGN);
	kill(getpid(), SIGSEGV);
	raise(SIGILL);
	printf("kill SIGSEGV, raise SIGILL, both ignored: survived=1\n");
	signal(SIGSEGV, SIG_DFL);
	signal(SIGILL, SIG_DFL);
}

/* ---- a handler without SA_SIGINFO ---- */

static volatile int plain_sig, plain_calls;
static volatile long plain_uc_flags, plain_info_off;

/* Declared with three arguments although installed without SA_SIGINFO:
 * Linux passes the siginfo and ucontext pointers all the same. */
static void on_plain(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	plain_sig = sig;
	plain_calls++;
	plain_uc_flags = uc->uc_flags;
	plain_info_off = (char *)si - (char *)uc;
}

static void check_plain(void)
{
	act(SIGUSR2, on_plain, 0, 0, 0);
	raise(SIGUSR2);
	printf("plain: sig=%d calls=%d uc_flags=%#lx info_minus_uc=%ld\n", plain_sig,
	       plain_calls, plain_uc_flags, plain_info_off);
}

/* ---- the frame ---- */

/* The handler's RSP at entry, recorded by frame_entry. */
uint64_t frame_entry_rsp;
void frame_handler(int sig, siginfo_t *si, void *ucv);
void frame_entry(int sig, siginfo_t *si, void *ucv);
__asm__(".text\n"
	".globl frame_entry\n"
	".type frame_entry, @function\n"
	"frame_entry:\n"
	"\tmovq %rsp, frame_entry_rsp(%rip)\n"
	"\tjmp frame_handler\n");

static struct {
	long uc_off, info_off, align, fp_off, fp_mod64;
	unsigned long uc_flags, csgsfs, efl, trapno, err, cr2;
	int uc_link_null, stack_flags, stack_zero;
	uint32_t magic1, ext_minus_size, xstate_size, magic2_ok, sw_pad_zero;
	uint64_t xfeatures, bv, xcomp, hdr_zero;
	int below_redzone, rip_after_syscall, oldmask_eq, mask_usr2, mask_prof;
	unsigned cwd, mxcsr;
	int live_usr2_blocked;
} fr;

void frame_handler(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	ucontext_t *uc = ucv;
	unsigned char *fp = (unsigned char *)uc->uc_mcontext.fpregs;
	greg_t *g = uc->uc_mcontext.gregs;
	fr.uc_off = (long)((uint64_t)uc - frame_entry_rsp);
	fr.info_off = (long)((uint64_t)si - frame_entry_rsp);
	fr.align = (frame_entry_rsp + 8) % 16;
	fr.fp_off = fp - (unsigned char *)uc;
	fr.fp_mod64 = (uint64_t)fp % 64;
	fr.uc_flags = uc->uc_flags;
	fr.uc_link_null = uc->uc_link == NULL;
	fr.stack_flags = uc->uc_stack.ss_flags;
	fr.stack_zero = uc->uc_stack.ss_sp == NULL && uc->uc_stack.ss_size == 0;
	fr.magic1 = u32at(fp, SW_RESERVED);
	fr.xstate_size = u32at(fp, SW_RESERVED + 16);
	fr.ext_minus_size = u32at(fp, SW_RESERVED + 4) - fr.xstate_size;
	fr.xfeatures = u64at(fp, SW_RESERVED + 8);
	fr.sw_pad_zero = 1;
	for (int i = 20; i < 48; i++)
		fr.sw_pad_zero &= fp[SW_RESERVED + i] == 0;
	fr.magic2_ok = u32at(fp, fr.xstate_size) == FP_XSTATE_MAGIC2;
	fr.bv = u64at(fp, XSTATE_BV);
	fr.xcomp = u64at(fp, XCOMP_BV);
	fr.hdr_zero = 1;
	for (int i = 528; i < 576; i++)
		fr.hdr_zero &= fp[i] == 0;
	uint64_t top = (uint64_t)g[REG_RSP] - 128;
	uint64_t end = (uint64_t)fp + fr.xstate_size + 4;
	fr.below_redzone = end <= top && top - end < 64;
	const unsigned char *rip = (const unsigned char *)g[REG_RIP];
	fr.rip_after_syscall = rip[-2] == 0x0f && rip[-1] == 0x05;
	fr.csgsfs = g[REG_CSGSFS];
	fr.efl = g[REG_EFL] & ~0x8d5ul;
	fr.trapno = g[REG_TRAPNO];
	fr.err = g[REG_ERR];
	fr.cr2 = g[REG_CR2];
	uint64_t mask = u64at(&uc->uc_sigmask, 0);
	fr.oldmask_eq = (uint64_t)g[REG_OLDMASK] == mask;
	fr.mask_usr2 = (mask >> (SIGUSR2 - 1)) & 1;
	fr.mask_prof = (mask >> (SIGPROF - 1)) & 1;
	fr.cwd = uc->uc_mcontext.fpregs->cwd;
	fr.mxcsr = uc->uc_mcontext.fpregs->mxcsr;
	fr.live_usr2_blocked = is_blocked(SIGUSR2);
}

static void check_frame(void)
{
	act(SIGUSR2, frame_entry, 1, 0, 0);
	block(SIG_BLOCK, SIGPROF);
	kill(getpid(), SIGUSR2);
	block(SIG_UNBLOCK, SIGPROF);
	printf("frame: uc_minus_rsp=%ld info_minus_rsp=%ld rsp_plus_8_mod_16=%ld "
	       "fpstate_minus_uc=%ld fpstate_mod_64=%ld\n",
	       fr.uc_off, fr.info_off, fr.align, fr.fp_off, fr.fp_mod64);
	printf("frame: uc_flags=%#lx uc_link_null=%d uc_stack_flags=%d uc_stack_zero=%d\n",
	       fr.uc_flags, fr.uc_link_null, fr.stack_flags, fr.stack_zero);
	printf("frame: magic1=%#x extended_minus_xstate_size=%u xstate_size=%u "
	       "xstate_size_is_cpuid=%d magic2_ok=%d sw_padding_zero=%d\n",
	       fr.magic1, fr.ext_minus_size, fr.xstate_size, fr.xstate_size == xsave_size(),
	       fr.magic2_ok, fr.sw_pad_zero);
	/* Not the value itself: where the host's XCR0 has components KVM
	 * lacks (MPX in the real-KVM lane), the program's differs. */
	printf("frame: xfeatures_is_xcr0=%d xstate_bv_fp_sse=%llu "
	       "xstate_bv_within_xcr0=%d xcomp_bv=%#llx header_reserved_zero=%d\n",
	       fr.xfeatures == xcr0(),
	       (unsigned long long)(fr.bv & 3), (fr.bv & ~xcr0()) == 0,
	       (unsigned long long)fr.xcomp, (int)fr.hdr_zero);
	printf("frame: below_red_zone_within_64=%d rip_after_syscall=%d csgsfs=%#lx "
	       "eflags_sans_arith=%#lx\n",
	       fr.below_redzone, fr.rip_after_syscall, fr.csgsfs, fr.efl);
	printf("frame: trapno=%lu err=%#lx cr2=%#lx oldmask_is_sigmask=%d "
	       "sigmask_usr2=%d sigmask_prof=%d live_usr2_blocked=%d\n",
	       fr.trapno, fr.err, fr.cr2, fr.oldmask_eq, fr.mask_usr2, fr.mask_prof,
	       fr.live_usr2_blocked);
	printf("frame: fpu_cwd=%#x mxcsr=%#x\n", fr.cwd, fr.mxcsr);
}

/* ---- registers across a handler ---- */

/* Registers regs_probe loads before its tgkill system call and finds
 * after it (g: rbx rbp r12 r13 r14 r15 r8 r9 r10 rsi rdx rdi; out also
 * rax rcx r11). */
struct probe {
	uint64_t g[12];
	unsigned char v[8][32]; /* ymm8-15 (xmm8-15 without AVX) */
	uint32_t mxcsr, pad;
	uint64_t flags, rsp, rax, rcx, r11;
};
_Static_assert(offsetof(struct probe, v) == 96, "v");
_Static_assert(offsetof(struct probe, mxcsr) == 352, "mxcsr");
_Static_assert(offsetof(struct probe, flags) == 360, "flags");
_Static_assert(offsetof(struct probe, rsp) == 368, "rsp");
_Static_assert(offsetof(struct probe, rax) == 376, "rax");

struct probe probe_in, probe_out;
uint32_t probe_avx;
uint32_t probe_default_mxcsr = 0x1f80;
extern char probe_after_syscall[];
void regs_probe(void);

/* regs_probe: callee-saved registers kept; loads probe_in (with DF set),
 * makes tgkill(rdi, rsi, rdx) with `syscall`, stores what it finds in
 * probe_out, and puts DF and MXCSR back. */
__asm__(".text\n"
	".globl regs_probe\n"
	".type regs_probe, @function\n"
	"regs_probe:\n"
	"\tpush %rbx\n\tpush %rbp\n\tpush %r12\n\tpush %r13\n\tpush %r14\n\tpush %r15\n"
	"\tleaq probe_in(%rip), %rdi\n"
	"\tcmpl $0, probe_avx(%rip)\n"
	"\tje 1f\n"
	"\tvmovdqu 96(%rdi), %ymm8\n\tvmovdqu 128(%rdi), %ymm9\n"
	"\tvmovdqu 160(%rdi), %ymm10\n\tvmovdqu 192(%rdi), %ymm11\n"
	"\tvmovdqu 224(%rdi), %ymm12\n\tvmovdqu 256(%rdi), %ymm13\n"
	"\tvmovdqu 288(%rdi), %ymm14\n\tvmovdqu 320(%rdi), %ymm15\n"
	"\tjmp 2f\n"
	"1:\n"
	"\tmovdqu 96(%rdi), %xmm8\n\tmovdqu 128(%rdi), %xmm9\n"
	"\tmovdqu 160(%rdi), %xmm10\n\tmovdqu 192(%rdi), %xmm11\n"
	"\tmovdqu 224(%rdi), %xmm12\n\tmovdqu 256(%rdi), %xmm13\n"
	"\tmovdqu 288(%rdi), %xmm14\n\tmovdqu 320(%rdi), %xmm15\n"
	"2:\n"
	"\tldmxcsr 352(%rdi)\n"
	"\tmovq %rsp, 368(%rdi)\n"
	"\tmovq 0(%rdi), %rbx\n\tmovq 8(%rdi), %rbp\n"
	"\tmovq 16(%rdi), %r12\n\tmovq 24(%rdi), %r13\n"
	"\tmovq 32(%rdi), %r14\n\tmovq 40(%rdi), %r15\n"
	"\tmovq 48(%rdi), %r8\n\tmovq 56(%rdi), %r9\n\tmovq 64(%rdi), %r10\n"
	"\tmovq 72(%rdi), %rsi\n\tmovq 80(%rdi), %rdx\n\tmovq 88(%rdi), %rdi\n"
	"\tmovl $234, %eax\n" /* SYS_tgkill */
	"\tstd\n"
	"\tsyscall\n"
	".globl probe_after_syscall\n"
	"probe_after_syscall:\n"
	"\tpushfq\n"
	"\tcld\n"
	"\tpopq probe_out+360(%rip)\n"
	"\tmovq %rbx, probe_out+0(%rip)\n\tmovq %rbp, probe_out+8(%rip)\n"
	"\tmovq %r12, probe_out+16(%rip)\n\tmovq %r13, probe_out+24(%rip)\n"
	"\tmovq %r14, probe_out+32(%rip)\n\tmovq %r15, probe_out+40(%rip)\n"
	"\tmovq %r8, probe_out+48(%rip)\n\tmovq %r9, probe_out+56(%rip)\n"
	"\tmovq %r10, probe_out+64(%rip)\n\tmovq %rsi, probe_out+72(%rip)\n"
	"\tmovq %rdx, probe_out+80(%rip)\n\tmovq %rdi, probe_out+88(%rip)\n"
	"\tmovq %rax, probe_out+376(%rip)\n\tmovq %rcx, probe_out+384(%rip)\n"
	"\tmovq %r11, probe_out+392(%rip)\n"
	"\tmovq %rsp, probe_out+368(%rip)\n"
	"\tstmxcsr probe_out+352(%rip)\n"
	"\tldmxcsr probe_default_mxcsr(%rip)\n"
	"\tleaq probe_out(%rip), %rdi\n"
	"\tcmpl $0, probe_avx(%rip)\n"
	"\tje 3f\n"
	"\tvmovdqu %ymm8, 96(%rdi)\n\tvmovdqu %ymm9, 128(%rdi)\n"
	"\tvmovdqu %ymm10, 160(%rdi)\n\tvmovdqu %ymm11, 192(%rdi)\n"
	"\tvmovdqu %ymm12, 224(%rdi)\n\tvmovdqu %ymm13, 256(%rdi)\n"
	"\tvmovdqu %ymm14, 288(%rdi)\n\tvmovdqu %ymm15, 320(%rdi)\n"
	"\tvzeroupper\n"
	"\tjmp 4f\n"
	"3:\n"
	"\tmovdqu %xmm8, 96(%rdi)\n\tmovdqu %xmm9, 128(%rdi)\n"
	"\tmovdqu %xmm10, 160(%rdi)\n\tmovdqu %xmm11, 192(%rdi)\n"
	"\tmovdqu %xmm12, 224(%rdi)\n\tmovdqu %xmm13, 256(%rdi)\n"
	"\tmovdqu %xmm14, 288(%rdi)\n\tmovdqu %xmm15, 320(%rdi)\n"
	"4:\n"
	"\tpop %r15\n\tpop %r14\n\tpop %r13\n\tpop %r12\n\tpop %rbp\n\tpop %rbx\n"
	"\tret\n");

/* What the clobbering handler found on entry. */
struct hentry {
	uint64_t rax, rdi, flags, rsp;
	uint32_t mxcsr, calls;
	unsigned char v8[32];
};
_Static_assert(offsetof(struct hentry, mxcsr) == 32, "mxcsr");
_Static_assert(offsetof(struct hentry, calls) == 36, "calls");
_Static_assert(offsetof(struct hentry, v8) == 40, "v8");
struct hentry hentry;
uint32_t clobber_mxcsr = 0x7f80;
void clobber_sse(int);
void clobber_avx(int);

/* Two handlers in assembly that record their entry state and then
 * overwrite every general-purpose register the probe checks (callee-saved
 * ones included), xmm8-15 or ymm8-15, MXCSR, and return with `ret`. */
#define CLOBBER_GPRS                                                        \
	"\tmovq $-1, %rbx\n\tmovq $-1, %rbp\n\tmovq $-1, %r12\n"            \
	"\tmovq $-1, %r13\n\tmovq $-1, %r14\n\tmovq $-1, %r15\n"            \
	"\tmovq $-1, %r8\n\tmovq $-1, %r9\n\tmovq $-1, %r10\n"              \
	"\tmovq $-1, %rsi\n\tmovq $-1, %rdx\n\tmovq $-1, %rdi\n"            \
	"\tmovq $-1, %rcx\n\tmovq $-1, %r11\n"                              \
	"\tldmxcsr clobber_mxcsr(%rip)\n"                                   \
	"\tincl hentry+36(%rip)\n"                                          \
	"\tret\n"
#define HANDLER_ENTRY                                                       \
	"\tmovq %rax, hentry+0(%rip)\n\tmovq %rdi, hentry+8(%rip)\n"        \
	"\tpushfq\n\tpopq hentry+16(%rip)\n"                                \
	"\tmovq %rsp, hentry+24(%rip)\n\tstmxcsr hentry+32(%rip)\n"
__asm__(".text\n"
	".globl clobber_sse\n"
	".type clobber_sse, @function\n"
	"clobber_sse:\n" HANDLER_ENTRY
	"\tmovdqu %xmm8, hentry+40(%rip)\n"
	"\tpcmpeqd %xmm8, %xmm8\n\tpcmpeqd %xmm9, %xmm9\n"
	"\tpcmpeqd %xmm10, %xmm10\n\tpcmpeqd %xmm11, %xmm11\n"
	"\tpcmpeqd %xmm12, %xmm12\n\tpcmpeqd %xmm13, %xmm13\n"
	"\tpcmpeqd %xmm14, %xmm14\n\tpcmpeqd %xmm15, %xmm15\n" CLOBBER_GPRS
	".globl clobber_avx\n"
	".type clobber_avx, @function\n"
	"clobber_avx:\n" HANDLER_ENTRY
	"\tvmovdqu %ymm8, hentry+40(%rip)\n"
	"\tvpcmpeqd %ymm8, %ymm8, %ymm8\n\tvpcmpeqd %ymm9, %ymm9, %ymm9\n"
	"\tvpcmpeqd %ymm10, %ymm10, %ymm10\n\tvpcmpeqd %ymm11, %ymm11, %ymm11\n"
	"\tvpcmpeqd %ymm12, %ymm12, %ymm12\n\tvpcmpeqd %ymm13, %ymm13, %ymm13\n"
	"\tvpcmpeqd %ymm14, %ymm14, %ymm14\n\tvpcmpeqd %ymm15, %ymm15, %ymm15\n"
	CLOBBER_GPRS);

static void probe_setup(void)
{
	for (int i = 0; i < 9; i++)
		probe_in.g[i] = 0x0101010101010101ull * (i + 1) ^ 0x8000000000000000ull;
	probe_in.g[9] = gettid();
	probe_in.g[10] = SIGUSR2;
	probe_in.g[11] = getpid();
	for (int r = 0; r < 8; r++)
		for (int i = 0; i < 32; i++)
			probe_in.v[r][i] = (unsigned char)(r * 32 + i + 1);
	probe_in.mxcsr = 0x3f80; /* round down */
	probe_avx = have_avx();
	memset(&probe_out, 0, sizeof probe_out);
	memset(&hentry, 0, sizeof hentry);
}

/* Whether probe_out's vector registers are probe_in's (per register,
 * `edited` says which differ as the edit handler made them). */
static int vectors_kept(int skip)
{
	int n = probe_avx ? 32 : 16;
	for (int r = 0; r < 8; r++)
		if (r != skip && memcmp(probe_in.v[r], probe_out.v[r], n))
			return 0;
	return 1;
}

static void check_registers(void)
{
	probe_setup();
	act(SIGUSR2, probe_avx ? (void *)clobber_avx : (void *)clobber_sse, 0, 0, 0);
	regs_probe();
	int gprs = memcmp(probe_in.g, probe_out.g, sizeof probe_in.g) == 0;
	int zero8 = 1;
	for (int i = 0; i < (probe_avx ? 32 : 16); i++)
		zero8 &= hentry.v8[i] == 0;
	printf("registers: avx=%u gprs_kept=%d vectors_kept=%d mxcsr=%#x df=%d rsp_kept=%d "
	       "rax=%llu rcx_is_return=%d r11_is_rflags=%d calls=%u\n",
	       probe_avx, gprs, vectors_kept(-1), probe_out.mxcsr,
	       (int)(probe_out.flags >> 10) & 1, probe_out.rsp == probe_in.rsp,
	       (unsigned long long)probe_out.rax,
	       probe_out.rcx == (uint64_t)probe_after_syscall,
	       (probe_out.r11 & ~0x10000ull) == (probe_out.flags & ~0x10000ull), hentry.calls);
	printf("registers: handler rax=%llu rdi=%llu df=%d tf=%d mxcsr=%#x vector8_zero=%d "
	       "rsp_plus_8_mod_16=%llu\n",
	       (unsigned long long)hentry.rax, (unsigned long long)hentry.rdi,
	       (int)(hentry.flags >> 10) & 1, (int)(hentry.flags >> 8) & 1, hentry.mxcsr,
	       zero8, (unsigned long long)(hentry.rsp + 8) % 16);
}

/* The edit check: the frame holds the probe's registers, and what the
 * handler writes there is what the program has after sigreturn. */
static struct {
	int gregs, rip, rsp, rcx, rax, r11_df, xmm8, ymm8_hi, mxcsr;
} ed;
static const uint64_t EDIT_RBX = 0x5a5a5a5a5a5a5a5aull, EDIT_R15 = 0xa5a5a5a5a5a5a5a5ull;

static void on_edit(int sig, siginfo_t *si, void *ucv)
{
	(void)sig, (void)si;
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	unsigned char *fp = (unsigned char *)uc->uc_mcontext.fpregs;
	static const int order[12] = {REG_RBX, REG_RBP, REG_R12, REG_R13, REG_R14, REG_R15,
				      REG_R8,  REG_R9,  REG_R10, REG_RSI, REG_RDX, REG_RDI};
	ed.gregs = 1;
	for (int i = 0; i < 12; i++)
		ed.gregs &= (uint64_t)g[order[i]] == probe_in.g[i];
	ed.rip = (uint64_t)g[REG_RIP] == (uint64_t)probe_after_syscall;
	ed.rsp = (uint64_t)g[REG_RSP] == probe_in.rsp;
	ed.rcx = (uint64_t)g[REG_RCX] == (uint64_t)probe_after_syscall;
	ed.rax = g[REG_RAX] == 0;
	ed.r11_df = (g[REG_R11] >> 10) & 1;
	/* xmm8 lives at 160 + 8 * 16 in the legacy area. */
	ed.xmm8 = memcmp(fp + 160 + 8 * 16, probe_in.v[0], 16) == 0;
	ed.mxcsr = uc->uc_mcontext.fpregs->mxcsr == probe_in.mxcsr;
	g[REG_RBX] = EDIT_RBX;
	g[REG_R15] = EDIT_R15;
	memset(fp + 160 + 9 * 16, 0x77, 16);
	uc->uc_mcontext.fpregs->mxcsr = 0x5f80; /* round up */
	if (probe_avx) {
		unsigned off = avx_offset();
		ed.ymm8_hi = memcmp(fp + off + 8 * 16, probe_in.v[0] + 16, 16) == 0;
		memset(fp + off + 9 * 16, 0x99, 16);
		fp[XSTATE_BV] |= 4;
	}
}

static void check_frame_edits(void)
{
	probe_setup();
	act(SIGUSR2, on_edit, 1, 0, 0);
	regs_probe();
	printf("edit: frame gregs=%d rip=%d rsp=%d rcx=%d rax_zero=%d r11_df=%d xmm8=%d "
	       "ymm8_hi=%d mxcsr=%d\n",
	       ed.gregs, ed.rip, ed.rsp, ed.rcx, ed.rax, ed.r11_df, ed.xmm8, ed.ymm8_hi,
	       ed.mxcsr);
	unsigned char want[32];
	memset(want, 0x77, 16);
	memcpy(want + 16, probe_in.v[1] + 16, 16);
	if (probe_avx)
		memset(want + 16, 0x99, 16);
	int others = 1;
	for (int i = 1; i < 12; i++)
		others &= i == 5 || probe_out.g[i] == probe_in.g[i];
	printf("edit: after rbx=%d r15=%d others_kept=%d xmm9=%d ymm9_hi=%d vectors_kept=%d "
	       "mxcsr=%#x\n",
	       probe_out.g[0] == EDIT_RBX, probe_out.g[5] == EDIT_R15, others,
	       memcmp(probe_out.v[1], want, 16) == 0,
	       !probe_avx || memcmp(probe_out.v[1] + 16, want + 16, 16) == 0, vectors_kept(1),
	       probe_out.mxcsr);
}

/* ---- system calls interrupted: SA_RESTART ---- */

static int pipefd[2];
static volatile int alarms;

static void on_alarm_writes(int sig)
{
	(void)sig;
	if (++alarms == 2) {
		struct itimerval off = {{0, 0}, {0, 0}};
		setitimer(ITIMER_REAL, &off, NULL);
		ssize_t w = write(pipefd[1], "x", 1);
		(void)w;
	}
}

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static int release_fd = -1;

/* Counts the alarm and lets the child waiting on release_fd exit. */
static void on_alarm_releases(int sig)
{
	(void)sig;
	alarms++;
	ssize_t w = write(release_fd, "x", 1);
	(void)w;
}

static void check_restart(void)
{
	char c = 0;
	if (pipe(pipefd)) {
		perror("pipe");
		exit(1);
	}
	act(SIGALRM, on_alarm_writes, 0, SA_RESTART, 0);
	alarms = 0;
	itimer(20, 1);
	ssize_t r = read(pipefd[0], &c, 1);
	printf("read SA_RESTART: ret=%zd byte=%c alarms=%d\n", r, r == 1 ? c : '-', alarms);

	act(SIGALRM, on_alarm, 0, 0, 0);
	alarms = 0;
	itimer(20, 0);
	r = read(pipefd[0], &c, 1);
	printf("read no SA_RESTART: ret=%zd errno=%s alarms=%d\n", r, errname(errno), alarms);

	act(SIGALRM, on_alarm, 0, SA_RESTART, 0);
	alarms = 0;
	itimer(20, 0);
	struct timespec ts = {5, 0}, rem = {0, 0};
	int n = nanosleep(&ts, &rem);
	printf("nanosleep SA_RESTART: ret=%d errno=%s alarms=%d remaining_over_4s=%d\n", n,
	       errname(errno), alarms, rem.tv_sec >= 4);

	alarms = 0;
	itimer(20, 0);
	struct pollfd p = {pipefd[0], POLLIN, 0};
	n = poll(&p, 1, 5000);
	printf("poll SA_RESTART: ret=%d errno=%s alarms=%d\n", n, errname(errno), alarms);

	/* wait4 restarts under SA_RESTART and is interrupted without it; the
	 * child exits once the alarm's handler has run. */
	for (int restart = 1; restart >= 0; restart--) {
		int rel[2];
		if (pipe(rel)) {
			perror("pipe");
			exit(1);
		}
		act(SIGALRM, on_alarm_releases, 0, restart ? SA_RESTART : 0, 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(rel[1]);
			_exit(read(rel[0], &c, 1) == 1 ? 5 : 6);
		}
		close(rel[0]);
		release_fd = rel[1];
		alarms = 0;
		itimer(20, 0);
		int status = 0;
		pid_t w = waitpid(pid, &status, 0);
		int e = errno;
		if (w < 0)
			waitpid(pid, &status, 0);
		printf("waitpid %s: got_child=%d errno=%s status=%d alarms=%d\n",
		       restart ? "SA_RESTART" : "no SA_RESTART", w == pid, w < 0 ? errname(e) : "0",
		       WEXITSTATUS(status), alarms);
		close(rel[1]);
		release_fd = -1;
	}
	close(pipefd[0]);
	close(pipefd[1]);

	/* Nothing interrupted to resume (do_no_restart_syscall). */
	errno = 0;
	long rs = syscall(SYS_restart_syscall);
	printf("restart_syscall alone: ret=%ld errno=%s\n", rs, errname(errno));
}

/* ---- masks: default, SA_NODEFER, sa_mask, SA_RESETHAND ---- */

static volatile int depth, max_depth, mask_calls, in_usr1, in_usr2;

static void on_mask(int sig)
{
	mask_calls++;
	if (++depth > max_depth)
		max_depth = depth;
	if (mask_calls == 1) {
		in_usr1 = is_blocked(SIGUSR1);
		in_usr2 = is_blocked(SIGUSR2);
		raise(sig);
	}
	depth--;
}

static void check_masks(void)
{
	for (int nodefer = 0; nodefer < 2; nodefer++) {
		act(SIGUSR1, on_mask, 0, nodefer ? SA_NODEFER : 0, SIGUSR2);
		depth = max_depth = mask_calls = 0;
		raise(SIGUSR1);
		printf("%s: in_handler usr1_blocked=%d usr2_blocked=%d calls=%d max_depth=%d "
		       "after usr1_blocked=%d usr2_blocked=%d\n",
		       nodefer ? "SA_NODEFER" : "default mask", in_usr1, in_usr2, mask_calls,
		       max_depth, is_blocked(SIGUSR1), is_blocked(SIGUSR2));
	}
}

static volatile int reset_calls, reset_in_dfl, reset_in_blocked;

static void on_reset(int sig, siginfo_t *si, void *uc)
{
	(void)si, (void)uc;
	struct sigaction cur;
	sigaction(sig, NULL, &cur);
	reset_calls++;
	reset_in_dfl = cur.sa_handler == SIG_DFL;
	reset_in_blocked = is_blocked(sig);
}

static void check_resethand(void)
{
	act(SIGURG, on_reset, 1, SA_RESETHAND, 0);
	raise(SIGURG);
	raise(SIGURG);
	struct sigaction cur;
	sigaction(SIGURG, NULL, &cur);
	printf("SA_RESETHAND: calls=%d in_handler_dfl=%d in_handler_blocked=%d after_dfl=%d\n",
	       reset_calls, reset_in_dfl, reset_in_blocked, cur.sa_handler == SIG_DFL);
}

/* ---- sigaltstack ---- */

#define ALT_SIZE 65536
static char *alt;
static struct {
	int local_on, ss_flags, uc_sp, uc_flags, change_errno;
	long uc_size, top_minus_fp;
	int nested_on, nested_below, nested_uc_flags;
} as;
static char *outer_local;

static int on_alt(const void *p)
{
	return (const char *)p >= alt && (const char *)p < alt + ALT_SIZE;
}

static void on_alt_inner(int sig, siginfo_t *si, void *ucv)
{
	(void)sig, (void)si;
	ucontext_t *uc = ucv;
	char local;
	as.nested_on = on_alt(&local);
	as.nested_below = &local < outer_local;
	as.nested_uc_flags = uc->uc_stack.ss_flags;
}

static void on_alt_outer(int sig, siginfo_t *si, void *ucv)
{
	(void)sig, (void)si;
	ucontext_t *uc = ucv;
	char local;
	stack_t cur, other = {.ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = 0};
	outer_local = &local;
	as.local_on = on_alt(&local);
	sigaltstack(NULL, &cur);
	as.ss_flags = cur.ss_flags;
	as.uc_sp = uc->uc_stack.ss_sp == alt;
	as.uc_size = uc->uc_stack.ss_size;
	as.uc_flags = uc->uc_stack.ss_flags;
	as.top_minus_fp = alt + ALT_SIZE - (char *)uc->uc_mcontext.fpregs;
	errno = 0;
	as.change_errno = sigaltstack(&other, NULL) ? errno : 0;
	raise(SIGUSR2);
}

static volatile int ad_local_on, ad_flags;
static volatile unsigned ad_uc_flags;

static void on_autodisarm(int sig, siginfo_t *si, void *ucv)
{
	(void)sig, (void)si;
	ucontext_t *uc = ucv;
	char local;
	stack_t cur;
	ad_local_on = on_alt(&local);
	sigaltstack(NULL, &cur);
	ad_flags = cur.ss_flags;
	ad_uc_flags = (unsigned)uc->uc_stack.ss_flags;
}

static void check_altstack(void)
{
	alt = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	stack_t ss = {.ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = 0}, cur;
	sigaltstack(&ss, NULL);
	act(SIGUSR1, on_alt_outer, 1, SA_ONSTACK, 0);
	act(SIGUSR2, on_alt_inner, 1, SA_ONSTACK, 0);
	raise(SIGUSR1);
	sigaltstack(NULL, &cur);
	printf("altstack: local_on=%d sigaltstack_flags=%d uc_sp_is_alt=%d uc_size=%ld "
	       "uc_flags=%d top_minus_fpstate=%ld change_errno=%s after_flags=%d\n",
	       as.local_on, as.ss_flags, as.uc_sp, as.uc_size, as.uc_flags, as.top_minus_fp,
	       errname(as.change_errno), cur.ss_flags);
	printf("altstack nested: on=%d below_outer=%d uc_flags=%d\n", as.nested_on,
	       as.nested_below, as.nested_uc_flags);

	ss.ss_flags = SS_AUTODISARM;
	sigaltstack(&ss, NULL);
	act(SIGUSR1, on_autodisarm, 1, SA_ONSTACK, 0);
	raise(SIGUSR1);
	sigaltstack(NULL, &cur);
	printf("SS_AUTODISARM: local_on=%d sigaltstack_flags=%#x uc_flags=%#x after_flags=%#x\n",
	       ad_local_on, (unsigned)ad_flags, ad_uc_flags, (unsigned)cur.ss_flags);
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
	sigaltstack(NULL, &cur);
	printf("altstack disabled: flags=%d\n", cur.ss_flags);
}

/* ---- waiting for signals ---- */

static volatile int sus_calls, sus_uc_has_usr1;

static void on_sus(int sig, siginfo_t *si, void *ucv)
{
	(void)sig, (void)si;
	ucontext_t *uc = ucv;
	sus_calls++;
	sus_uc_has_usr1 = sigismember(&uc->uc_sigmask, SIGUSR1);
}

static void check_waits(void)
{
	sigset_t empty;
	sigemptyset(&empty);

	act(SIGUSR1, on_sus, 1, 0, 0);
	block(SIG_BLOCK, SIGUSR1);
	raise(SIGUSR1);
	int r = sigsuspend(&empty);
	printf("sigsuspend pending: ret=%d errno=%s calls=%d uc_sigmask_usr1=%d "
	       "usr1_blocked_after=%d\n",
	       r, errname(errno), sus_calls, sus_uc_has_usr1, is_blocked(SIGUSR1));
	block(SIG_UNBLOCK, SIGUSR1);

	act(SIGALRM, on_alarm, 0, SA_RESTART, 0);
	block(SIG_BLOCK, SIGALRM);
	alarms = 0;
	itimer(20, 0);
	r = sigsuspend(&empty);
	printf("sigsuspend alarm: ret=%d errno=%s alarms=%d alrm_blocked_after=%d\n", r,
	       errname(errno), alarms, is_blocked(SIGALRM));
	block(SIG_UNBLOCK, SIGALRM);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	act(SIGUSR2, on_info, 1, 0, 0);
	calls = 0;
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigqueue(getpid(), SIGUSR2, (union sigval){.sival_int = 77});
	siginfo_t si;
	r = sigwaitinfo(&set, &si);
	printf("sigwaitinfo: ret=%d code=%d value=%d pid_self=%d handler_calls=%d\n", r,
	       si.si_code, si.si_value.sival_int, si.si_pid == getpid(), calls);
	struct timespec ten_ms = {0, 10000000};
	r = sigtimedwait(&set, &si, &ten_ms);
	printf("sigtimedwait empty: ret=%d errno=%s\n", r, errname(errno));

	int fd = signalfd(-1, &set, SFD_CLOEXEC);
	kill(getpid(), SIGUSR2);
	struct signalfd_siginfo ssi;
	ssize_t n = read(fd, &ssi, sizeof ssi);
	printf("signalfd: read=%zd signo=%u code=%d pid_self=%d handler_calls=%d\n", n,
	       ssi.ssi_signo, ssi.ssi_code, ssi.ssi_pid == (uint32_t)getpid(), calls);
	close(fd);
	sigprocmask(SIG_UNBLOCK, &set, NULL);

	act(SIGALRM, on_alarm, 0, 0, 0);
	alarms = 0;
	alarm(1);
	r = pause();
	printf("pause+alarm: ret=%d errno=%s alarms=%d\n", r, errname(errno), alarms);

	/* Blocked, then delivered when unblocked. */
	act(SIGUSR1, on_info, 1, 0, 0);
	calls = 0;
	block(SIG_BLOCK, SIGUSR1);
	raise(SIGUSR1);
	int before = calls;
	sigset_t pend;
	sigpending(&pend);
	block(SIG_UNBLOCK, SIGUSR1);
	printf("blocked then unblocked: calls_before=%d pending=%d calls_after=%d\n", before,
	       sigismember(&pend, SIGUSR1), calls);
}

/* ---- POSIX timers ---- */

static volatile pid_t timer_tid;
static volatile int timer_done;

static void on_timer(int sig, siginfo_t *si, void *uc)
{
	on_info(sig, si, uc);
	timer_tid = gettid();
	timer_done = 1;
}

static volatile pid_t target_tid;
static volatile int target_ready;

static void *timer_target(void *arg)
{
	(void)arg;
	sigset_t empty;
	sigemptyset(&empty);
	target_tid = gettid();
	__atomic_store_n(&target_ready, 1, __ATOMIC_SEQ_CST);
	while (!timer_done)
		sigsuspend(&empty);
	return NULL;
}

static void check_timers(void)
{
	int sig = SIGRTMIN + 1;
	act(sig, on_timer, 1, 0, 0);
	block(SIG_BLOCK, sig);
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = sig;
	ev.sigev_value.sival_int = 5;
	timer_t t;
	timer_create(CLOCK_MONOTONIC, &ev, &t);
	struct itimerspec its = {{0, 0}, {0, 10000000}};
	calls = 0;
	timer_done = 0;
	timer_settime(t, 0, &its, NULL);
	sigset_t empty;
	sigemptyset(&empty);
	while (!timer_done)
		sigsuspend(&empty);
	printf("timer SIGEV_SIGNAL: code=%d value=%d overrun=%d timerid_ok=%d calls=%d "
	       "main_thread=%d\n",
	       seen.si_code, seen.si_value.sival_int, seen.si_overrun,
	       seen.si_timerid == (int)(intptr_t)t, calls, timer_tid == gettid());
	timer_delete(t);

	/* SIGEV_THREAD_ID: the signal goes to the thread named, even with
	 * the signal unblocked in the main thread. */
	timer_done = 0;
	target_ready = 0;
	pthread_t th;
	pthread_create(&th, NULL, timer_target, NULL);
	while (!__atomic_load_n(&target_ready, __ATOMIC_SEQ_CST))
		usleep(1000);
	block(SIG_UNBLOCK, sig);
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = sig;
	ev.sigev_value.sival_int = 9;
	ev._sigev_un._tid = target_tid;
	timer_create(CLOCK_MONOTONIC, &ev, &t);
	calls = 0;
	timer_settime(t, 0, &its, NULL);
	pthread_join(th, NULL);
	printf("timer SIGEV_THREAD_ID: code=%d value=%d in_target_thread=%d calls=%d\n",
	       seen.si_code, seen.si_value.sival_int, timer_tid == target_tid, calls);
	timer_delete(t);

	/* pthread_kill: the handler runs in the thread named. */
	timer_done = 0;
	target_ready = 0;
	block(SIG_BLOCK, sig);
	pthread_create(&th, NULL, timer_target, NULL);
	while (!__atomic_load_n(&target_ready, __ATOMIC_SEQ_CST))
		usleep(1000);
	calls = 0;
	pthread_kill(th, sig);
	pthread_join(th, NULL);
	block(SIG_UNBLOCK, sig);
	printf("pthread_kill: code=%d in_target_thread=%d pid_self=%d calls=%d\n", seen.si_code,
	       timer_tid == target_tid, seen.si_pid == getpid(), calls);
}

/* ---- children: SIGCHLD, fork, exec ---- */

/* The signals a fault raises, which the sandbox's own faults raise too. */
static const int fault_signals[6] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS };

static void check_children(const char *self)
{
	act(SIGCHLD, on_info, 1, 0, 0);
	calls = 0;
	block(SIG_BLOCK, SIGCHLD);
	pid_t pid = fork();
	if (pid == 0)
		_exit(5);
	sigset_t empty;
	sigemptyset(&empty);
	while (!calls)
		sigsuspend(&empty);
	block(SIG_UNBLOCK, SIGCHLD);
	printf("SIGCHLD: code=%d status=%d pid_is_child=%d calls=%d\n", seen.si_code,
	       seen.si_status, seen.si_pid == pid, calls);
	waitpid(pid, NULL, 0);

	/* A forked child keeps the handler. */
	act(SIGUSR1, on_info, 1, 0, 0);
	pid = fork();
	if (pid == 0) {
		calls = 0;
		raise(SIGUSR1);
		_exit(calls == 1 && seen.si_pid == getpid() ? 7 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	printf("fork: child ran the inherited handler=%d\n",
	       WIFEXITED(status) && WEXITSTATUS(status) == 7);

	/* exec: handlers back to default, ignored stays ignored (also the
	 * signals of the sandbox's own faults), mask and pending signals
	 * kept. */
	signal(SIGUSR2, SIG_IGN);
	pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 6; i++)
			signal(fault_signals[i], SIG_IGN);
		block(SIG_BLOCK, SIGPROF);
		raise(SIGPROF);
		execl(self, self, "dispositions", (char *)NULL);
		_exit(126);
	}
	waitpid(pid, &status, 0);
	printf("exec: status=%d\n", WEXITSTATUS(status));

	signal(SIGCHLD, SIG_IGN);
	pid = fork();
	if (pid == 0)
		_exit(0);
	pid_t w = waitpid(pid, NULL, 0);
	printf("SIGCHLD ignored: waitpid=%d errno=%s\n", w, errname(errno));
	signal(SIGCHLD, SIG_DFL);
	signal(SIGUSR2, SIG_DFL);
}

static int dispositions(void)
{
	struct sigaction a;
	sigset_t pend;
	sigaction(SIGUSR1, NULL, &a);
	int usr1_dfl = a.sa_handler == SIG_DFL;
	sigaction(SIGUSR2, NULL, &a);
	int usr2_ign = a.sa_handler == SIG_IGN;
	int faults_ign = 0;
	for (int i = 0; i < 6; i++) {
		sigaction(fault_signals[i], NULL, &a);
		faults_ign += a.sa_handler == SIG_IGN;
	}
	sigpending(&pend);
	printf("exec: usr1_default=%d usr2_ignored=%d prof_blocked=%d prof_pending=%d\n",
	       usr1_dfl, usr2_ign, is_blocked(SIGPROF), sigismember(&pend, SIGPROF));
	/* An ignored signal sent is discarded, also one of these. */
	kill(getpid(), SIGSEGV);
	raise(SIGTRAP);
	printf("exec: fault signals ignored=%d, SIGSEGV and SIGTRAP sent: survived\n", faults_ign);
	return 0;
}

/* ---- faults ---- */

extern char null_insn[], write_insn[], div_insn[], div_end[], ud2_insn[], int3_insn[],
	int3_end[], read_insn[], sse_insn[], sse_end[];
void fault_null(void);
void fault_read(const void *p);
void fault_write(void *p);
int fault_div(int x);
void fault_ud2(void);
void fault_int3(void);
double fault_sse(void);
/* Instructions that fault, each at a global label. */
__asm__(".text\n"
	".globl fault_null\nfault_null:\n"
	"\txorl %eax, %eax\n"
	".globl null_insn\nnull_insn:\n"
	"\tmovl $1, (%rax)\n"
	"\tret\n"
	".globl fault_read\nfault_read:\n"
	".globl read_insn\nread_insn:\n"
	"\tmovl (%rdi), %eax\n"
	"\tret\n"
	".globl fault_write\nfault_write:\n"
	".globl write_insn\nwrite_insn:\n"
	"\tmovl $42, (%rdi)\n"
	"\tret\n"
	".globl fault_div\nfault_div:\n"
	"\tmovl %edi, %eax\n\txorl %edx, %edx\n\txorl %ecx, %ecx\n"
	".globl div_insn\ndiv_insn:\n"
	"\tdivl %ecx\n"
	".globl div_end\ndiv_end:\n"
	"\tret\n"
	".globl fault_ud2\nfault_ud2:\n"
	".globl ud2_insn\nud2_insn:\n"
	"\tud2\n"
	"\tret\n"
	".globl fault_int3\nfault_int3:\n"
	".globl int3_insn\nint3_insn:\n"
	"\tint3\n"
	".globl int3_end\nint3_end:\n"
	"\tret\n"
	".globl fault_sse\nfault_sse:\n"
	"\tpcmpeqd %xmm1, %xmm1\n\tpsrlq $54, %xmm1\n\tpsllq $52, %xmm1\n" /* 1.0 */
	"\txorpd %xmm2, %xmm2\n"
	"\tsubq $8, %rsp\n\tstmxcsr (%rsp)\n\tandl $~0x200, (%rsp)\n\tldmxcsr (%rsp)\n"
	"\taddq $8, %rsp\n"
	"\tmovapd %xmm1, %xmm0\n"
	".globl sse_insn\nsse_insn:\n"
	"\tdivsd %xmm2, %xmm0\n"
	".globl sse_end\nsse_end:\n"
	"\tret\n");

static sigjmp_buf jump;
static struct {
	int signo, code, err_no, calls;
	uint64_t addr, rip, trapno, err, cr2, mxcsr;
} f;
static char *rw_page;

/* Records the fault; `how` says what to do next: jump out, resume after
 * the instruction, make the page writable, or just return. */
static enum { JUMP, SKIP_TO, UNPROTECT, RETURN } how;
static char *skip_to;

static void on_fault(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	f.signo = si->si_signo;
	f.code = si->si_code;
	f.err_no = si->si_errno;
	f.addr = (uint64_t)si->si_addr;
	f.rip = g[REG_RIP];
	f.trapno = g[REG_TRAPNO];
	f.err = g[REG_ERR];
	f.cr2 = g[REG_CR2];
	f.mxcsr = uc->uc_mcontext.fpregs->mxcsr;
	f.calls++;
	(void)sig;
	switch (how) {
	case JUMP:
		siglongjmp(jump, 1);
	case SKIP_TO:
		g[REG_RIP] = (greg_t)skip_to;
		uc->uc_mcontext.fpregs->mxcsr = 0x1f80;
		break;
	case UNPROTECT:
		mprotect(rw_page, 4096, PROT_READ | PROT_WRITE);
		break;
	case RETURN:
		break;
	}
}

static void fault_line(const char *what, const void *insn)
{
	printf("%s: signo=%d code=%d errno=%d addr_is_insn=%d rip_is_insn=%d trapno=%llu "
	       "err=%#llx cr2_is_page=%d calls=%d\n",
	       what, f.signo, f.code, f.err_no, f.addr == (uint64_t)insn,
	       f.rip == (uint64_t)insn, (unsigned long long)f.trapno,
	       (unsigned long long)f.err, f.cr2 == (uint64_t)rw_page, f.calls);
}

static void check_faults(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGTRAP, &sa, NULL);

	memset(&f, 0, sizeof f);
	how = JUMP;
	int jumped = 0;
	if (sigsetjmp(jump, 1) == 0)
		fault_null();
	else
		jumped = 1;
	printf("NULL write: signo=%d code=%d errno=%d addr=%#llx rip_is_insn=%d trapno=%llu "
	       "err=%#llx cr2_is_addr=%d jumped=%d segv_blocked_after=%d\n",
	       f.signo, f.code, f.err_no, (unsigned long long)f.addr,
	       f.rip == (uint64_t)null_insn, (unsigned long long)f.trapno,
	       (unsigned long long)f.err, f.cr2 == f.addr, jumped, is_blocked(SIGSEGV));

	memset(&f, 0, sizeof f);
	if (sigsetjmp(jump, 1) == 0)
		fault_read((void *)16);
	printf("NULL+16 read: code=%d addr=%#llx rip_is_insn=%d trapno=%llu err=%#llx\n",
	       f.code, (unsigned long long)f.addr, f.rip == (uint64_t)read_insn,
	       (unsigned long long)f.trapno, (unsigned long long)f.err);

	memset(&f, 0, sizeof f);
	if (sigsetjmp(jump, 1) == 0)
		fault_read((void *)0x8000000000000000ull);
	printf("non-canonical read: signo=%d code=%d addr=%#llx rip_is_insn=%d trapno=%llu "
	       "err=%#llx\n",
	       f.signo, f.code, (unsigned long long)f.addr, f.rip == (uint64_t)read_insn,
	       (unsigned long long)f.trapno, (unsigned long long)f.err);

	memset(&f, 0, sizeof f);
	if (sigsetjmp(jump, 1) == 0)
		fault_read((void *)0xffff800000001000ull);
	printf("kernel-half read: signo=%d code=%d addr_ok=%d trapno=%llu err=%#llx\n", f.signo,
	       f.code, f.addr == 0xffff800000001000ull, (unsigned long long)f.trapno,
	       (unsigned long long)f.err);

	/* Read first, so the write finds a page present (error code 7). */
	rw_page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fault_read(rw_page);
	memset(&f, 0, sizeof f);
	how = UNPROTECT;
	fault_write(rw_page);
	printf("PROT_READ write: signo=%d code=%d addr_is_page=%d rip_is_insn=%d trapno=%llu "
	       "err=%#llx cr2_is_page=%d calls=%d value=%d\n",
	       f.signo, f.code, f.addr == (uint64_t)rw_page, f.rip == (uint64_t)write_insn,
	       (unsigned long long)f.trapno, (unsigned long long)f.err,
	       f.cr2 == (uint64_t)rw_page, f.calls, *(int *)rw_page);

	memset(&f, 0, sizeof f);
	how = SKIP_TO;
	skip_to = div_end;
	fault_div(7);
	fault_line("divide by zero", div_insn);

	memset(&f, 0, sizeof f);
	skip_to = ud2_insn + 2;
	fault_ud2();
	fault_line("ud2", ud2_insn);

	memset(&f, 0, sizeof f);
	how = RETURN;
	fault_int3();
	printf("int3: signo=%d code=%d addr=%#llx rip_after_int3=%d trapno=%llu err=%#llx "
	       "cr2_is_page=%d calls=%d\n",
	       f.signo, f.code, (unsigned long long)f.addr, f.rip == (uint64_t)int3_end,
	       (unsigned long long)f.trapno, (unsigned long long)f.err,
	       f.cr2 == (uint64_t)rw_page, f.calls);

	memset(&f, 0, sizeof f);
	how = SKIP_TO;
	skip_to = sse_end;
	fault_sse();
	unsigned mx;
	__asm__ volatile("stmxcsr %0" : "=m"(mx));
	printf("SSE divide by zero: signo=%d code=%d addr_is_insn=%d trapno=%llu err=%#llx "
	       "frame_mxcsr=%#llx mxcsr_after=%#x\n",
	       f.signo, f.code, f.addr == (uint64_t)sse_insn, (unsigned long long)f.trapno,
	       (unsigned long long)f.err, (unsigned long long)f.mxcsr, mx);

	/* A later signal's frame carries the last fault's details. */
	memset(&fr, 0, sizeof fr);
	act(SIGUSR2, frame_entry, 1, 0, 0);
	kill(getpid(), SIGUSR2);
	printf("kill after faults: trapno=%lu err=%#lx cr2_is_page=%d\n", fr.trapno, fr.err,
	       fr.cr2 == (unsigned long)rw_page);
	munmap(rw_page, 4096);
	for (int s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
}

/* ---- modes ---- */

static volatile uintptr_t deepest;

static void on_overflow(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	char local, line[160];
	uint64_t a = (uint64_t)si->si_addr, d = deepest;
	int n = snprintf(line, sizeof line,
			 "overflow: sig=%d code=%d on_altstack=%d addr_near_deepest_frame=%d\n",
			 sig, si->si_code, on_alt(&local), a < d && d - a < 65536);
	ssize_t w = write(1, line, n);
	(void)w;
	_exit(0);
}

static volatile int forever = 1;

static int recurse(int n)
{
	volatile char buf[1024];
	buf[0] = (char)n;
	deepest = (uintptr_t)buf;
	return forever ? recurse(n + 1) + buf[0] : 0;
}

static int overflow(void)
{
	alt = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	stack_t ss = {.ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = 0};
	sigaltstack(&ss, NULL);
	act(SIGSEGV, on_overflow, 1, SA_ONSTACK, 0);
	return recurse(0);
}

static void *overflow_thread(void *arg)
{
	(void)arg;
	stack_t ss = {.ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = 0};
	sigaltstack(&ss, NULL);
	recurse(0);
	return NULL;
}

/* The same in a thread, whose stack glibc guards with a PROT_NONE page. */
static int overflow_in_thread(void)
{
	alt = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	act(SIGSEGV, on_overflow, 1, SA_ONSTACK, 0);
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 1 << 20);
	pthread_t t;
	pthread_create(&t, &a, overflow_thread, NULL);
	pthread_join(t, NULL);
	return 1;
}

/* Siginfos of the program's own making with a fault's si_code, sent to
 * itself (Linux lets a process do that): SIGSEGV and SIGILL reach their
 * handlers as sent, and later ones still do. */
static int forged(void)
{
	act(SIGSEGV, on_info, 1, 0, 0);
	act(SIGILL, on_info, 1, 0, 0);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 2; i++) {
			int sig = i ? SIGILL : SIGSEGV;
			siginfo_t mine;
			memset(&mine, 0, sizeof mine);
			mine.si_signo = sig;
			mine.si_code = 1; /* SEGV_MAPERR, ILL_ILLOPC */
			mine.si_addr = (void *)0x1234;
			calls = 0;
			long r = syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), sig, &mine);
			printf("forged %s: ret=%ld signo=%d code=%d addr=%p calls=%d\n",
			       i ? "SIGILL" : "SIGSEGV", r, seen.si_signo, seen.si_code,
			       seen.si_addr, calls);
		}
		calls = 0;
		kill(getpid(), SIGSEGV);
		print_info("then kill SIGSEGV");
	}
	return 0;
}

static int bad_mode;

static void on_bad(int sig, siginfo_t *si, void *ucv)
{
	(void)sig, (void)si;
	ucontext_t *uc = ucv;
	if (bad_mode == 0)
		uc->uc_mcontext.fpregs = (void *)8;
	else
		uc->uc_mcontext.gregs[REG_CSGSFS] = 0x1234;
	static const char msg[] = "badframe: the handler returns\n";
	ssize_t w = write(1, msg, sizeof msg - 1);
	(void)w;
}

static int badframe(int mode)
{
	bad_mode = mode;
	act(SIGUSR1, on_bad, 1, 0, 0);
	raise(SIGUSR1);
	printf("badframe: survived sigreturn\n");
	return 0;
}

#define STORM_THREADS 8
#define STORM_EACH 10000
static atomic_long storm_process, storm_thread[STORM_THREADS];
static atomic_int storm_stop, storm_ready;
static __thread int storm_index;

static void on_storm_process(int sig)
{
	(void)sig;
	atomic_fetch_add_explicit(&storm_process, 1, memory_order_relaxed);
}

static void on_storm_thread(int sig)
{
	(void)sig;
	atomic_fetch_add_explicit(&storm_thread[storm_index], 1, memory_order_relaxed);
}

static void *storm_spin(void *arg)
{
	storm_index = (int)(intptr_t)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN);
	sigaddset(&s, SIGRTMIN + 1);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	atomic_fetch_add(&storm_ready, 1);
	volatile unsigned long spins = 0;
	while (!atomic_load_explicit(&storm_stop, memory_order_relaxed))
		spins++;
	return NULL;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int storm(void)
{
	act(SIGRTMIN, on_storm_process, 0, 0, 0);
	act(SIGRTMIN + 1, on_storm_thread, 0, 0, 0);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN);
	sigaddset(&s, SIGRTMIN + 1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	pthread_t th[STORM_THREADS];
	for (int i = 0; i < STORM_THREADS; i++)
		pthread_create(&th[i], NULL, storm_spin, (void *)(intptr_t)i);
	while (atomic_load(&storm_ready) < STORM_THREADS)
		usleep(1000);
	long eagain = 0;
	double start = now();
	for (int i = 0; i < STORM_EACH; i++)
		while (sigqueue(getpid(), SIGRTMIN, (union sigval){.sival_int = i})) {
			if (errno != EAGAIN) {
				perror("sigqueue");
				return 1;
			}
			eagain++;
			sched_yield();
		}
	for (int i = 0; i < STORM_EACH; i++) {
		int e;
		while ((e = pthread_kill(th[i % STORM_THREADS], SIGRTMIN + 1)) == EAGAIN)
			sched_yield();
		if (e) {
			fprintf(stderr, "pthread_kill: %s\n", strerror(e));
			return 1;
		}
	}
	double sent = now();
	double deadline = sent + 60;
	long total = 0;
	for (;;) {
		total = 0;
		for (int i = 0; i < STORM_THREADS; i++)
			total += atomic_load(&storm_thread[i]);
		if ((atomic_load(&storm_process) >= STORM_EACH && total >= STORM_EACH) ||
		    now() > deadline)
			break;
		usleep(1000);
	}
	double delivered = now();
	/* Anything late would show up in the counts printed below. */
	usleep(50000);
	atomic_store(&storm_stop, 1);
	for (int i = 0; i < STORM_THREADS; i++)
		pthread_join(th[i], NULL);
	total = 0;
	printf("storm: process_directed=%ld\n", atomic_load(&storm_process));
	printf("storm: thread_directed_each=");
	for (int i = 0; i < STORM_THREADS; i++) {
		total += atomic_load(&storm_thread[i]);
		printf("%s%ld", i ? "," : "", atomic_load(&storm_thread[i]));
	}
	printf("\nstorm: thread_directed=%ld\n", total);
	fprintf(stderr, "storm: %ld EAGAIN retries, sent in %.3f s, all handled %.3f s later\n",
		eagain, sent - start, delivered - sent);
	return 0;
}

static int sigbus(void)
{
	char path[] = "/tmp/signals-sigbus-XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	if (fd < 0 || ftruncate(fd, 4096)) {
		perror("sigbus file");
		return 1;
	}
	char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	act(SIGBUS, on_fault, 1, 0, 0);
	how = JUMP;
	p[0] = 1;
	int jumped = 0;
	if (sigsetjmp(jump, 1) == 0)
		fault_read(p + 4096);
	else
		jumped = 1;
	printf("sigbus: signo=%d code=%d addr_ok=%d rip_is_insn=%d jumped=%d first_page=%d\n",
	       f.signo, f.code, f.addr == (uint64_t)(p + 4096), f.rip == (uint64_t)read_insn,
	       jumped, p[0]);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The altstack flags a process starts with are its parent's (0, or
	 * SS_DISABLE after a parent disabled its own), and uc_stack shows
	 * them: start from a known state. */
	stack_t off = {.ss_flags = SS_DISABLE};
	sigaltstack(&off, NULL);
	const char *mode = argc > 1 ? argv[1] : "";
	if (!strcmp(mode, "overflow"))
		return overflow();
	if (!strcmp(mode, "overflow-thread"))
		return overflow_in_thread();
	if (!strcmp(mode, "forged"))
		return forged();
	if (!strcmp(mode, "badframe"))
		return badframe(0);
	if (!strcmp(mode, "badcs"))
		return badframe(1);
	if (!strcmp(mode, "storm"))
		return storm();
	if (!strcmp(mode, "sigbus"))
		return sigbus();
	if (!strcmp(mode, "dispositions"))
		return dispositions();
	if (*mode) {
		fprintf(stderr, "signals: unknown mode %s\n", mode);
		return 2;
	}
	check_senders();
	check_plain();
	check_frame();
	check_registers();
	check_frame_edits();
	check_restart();
	check_masks();
	check_resethand();
	check_altstack();
	check_waits();
	check_timers();
	check_children(argv[0]);
	check_faults();
	printf("done\n");
	return 0;
}
