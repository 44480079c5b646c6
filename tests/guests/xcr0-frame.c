/*
 * xcr0-frame: what a signal frame holds under the XCR0 in force, as
 * "key=value" lines, for the XCR0 suite.
 *
 *   xcr0-frame       the XSAVE area of a SIGUSR1 frame (its software-
 *                    reserved bytes, XSTATE_BV), and a handler on a
 *                    sigaltstack of exactly AT_MINSIGSTKSZ bytes (or the
 *                    2048 of MINSIGSTKSZ that sigaltstack requires, if
 *                    more), with its top 64-byte aligned and then 8 bytes
 *                    past that
 *   xcr0-frame avx   then an AVX instruction: without YMM state in XCR0
 *                    its SIGILL reaches a handler (ILL_ILLOPN at the
 *                    instruction) that jumps out, and "ok" is printed
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <ucontext.h>

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif
#ifndef FP_XSTATE_MAGIC2
#define FP_XSTATE_MAGIC2 0x46505845U
#endif
/* The kernel's MINSIGSTKSZ, below which sigaltstack fails (ENOMEM);
 * glibc's MINSIGSTKSZ is sysconf(_SC_MINSIGSTKSZ) with _GNU_SOURCE. */
#define KERNEL_MINSIGSTKSZ 2048
#define SW_RESERVED 464
#define XSTATE_BV 512

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static uint32_t u32at(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t u64at(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static struct {
	uint32_t magic1, extended, size, magic2;
	uint64_t xfeatures, bv;
} seen;

/* Copies the frame's software-reserved bytes and XSTATE_BV. */
static void on_usr1(int sig, siginfo_t *si, void *ucv)
{
	(void)sig, (void)si;
	ucontext_t *uc = ucv;
	const unsigned char *fp = (const unsigned char *)uc->uc_mcontext.fpregs;
	seen.magic1 = u32at(fp + SW_RESERVED);
	seen.extended = u32at(fp + SW_RESERVED + 4);
	seen.xfeatures = u64at(fp + SW_RESERVED + 8);
	seen.size = u32at(fp + SW_RESERVED + 16);
	seen.magic2 = u32at(fp + seen.size);
	seen.bv = u64at(fp + XSTATE_BV);
}

static char *alt_lo, *alt_hi;
static volatile int alt_ran, alt_inside;

/* Runs on the altstack: the frame (uc up to the end of the XSAVE area and
 * MAGIC2) must lie within it. */
static void on_alt(int sig, siginfo_t *si, void *ucv)
{
	(void)sig, (void)si;
	ucontext_t *uc = ucv;
	char *fp = (char *)uc->uc_mcontext.fpregs;
	alt_ran = 1;
	alt_inside = (char *)uc >= alt_lo && fp + seen.size + 4 <= alt_hi;
}

/* Raises SIGUSR2 with its handler on an altstack of `size` bytes whose
 * top is `top`; prints what happened as `key`. */
static void altstack(const char *key, char *top, size_t size)
{
	stack_t ss = {.ss_sp = top - size, .ss_size = size, .ss_flags = 0};
	alt_lo = top - size;
	alt_hi = top;
	alt_ran = alt_inside = 0;
	if (sigaltstack(&ss, NULL)) {
		printf("%s=sigaltstack failed\n", key);
		return;
	}
	raise(SIGUSR2);
	printf("%s=%s\n%s_frame_inside=%d\n", key, alt_ran ? "ran" : "not run", key, alt_inside);
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
}

extern char avx_insn[];
void avx_probe(void);
__asm__(".text\n"
	".globl avx_probe\navx_probe:\n"
	".globl avx_insn\navx_insn:\n"
	"\tvpxor %ymm0, %ymm0, %ymm0\n"
	"\tret\n");

static sigjmp_buf out;
static volatile int ill_code;
static void *volatile ill_addr;

static void on_ill(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	ill_code = si->si_code;
	ill_addr = si->si_addr;
	siglongjmp(out, 1);
}

int main(int argc, char **argv)
{
	unsigned a, b, c, d;
	__cpuid_count(0xd, 0, a, b, c, d);
	printf("xgetbv=%#llx\n", (unsigned long long)xgetbv0());
	printf("cpuid_0xd_ebx=%u\n", b);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	raise(SIGUSR1);
	printf("frame_xstate_size=%u\n", seen.size);
	printf("frame_extended_size=%u\n", seen.extended);
	printf("frame_xfeatures=%#llx\n", (unsigned long long)seen.xfeatures);
	printf("frame_xstate_bv=%#llx\n", (unsigned long long)seen.bv);
	printf("frame_magic_ok=%d\n",
	       seen.magic1 == FP_XSTATE_MAGIC1 && seen.magic2 == FP_XSTATE_MAGIC2);

	size_t min = getauxval(AT_MINSIGSTKSZ);
	printf("minsigstksz=%zu\n", min);
	size_t size = min < KERNEL_MINSIGSTKSZ ? KERNEL_MINSIGSTKSZ : min;
	printf("altstack_size=%zu\n", size);
	/* Room below the altstack for the handler's own calls. */
	size_t len = ((size + 4095) & ~(size_t)4095) + 4 * 4096;
	char *region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	sa.sa_sigaction = on_alt;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigaction(SIGUSR2, &sa, NULL);
	altstack("altstack_aligned", region + len, size);
	altstack("altstack_misaligned", region + len - 56, size);

	if (argc > 1 && strcmp(argv[1], "avx") == 0) {
		fflush(stdout);
		sa.sa_sigaction = on_ill;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGILL, &sa, NULL);
		if (sigsetjmp(out, 1) == 0) {
			avx_probe();
			printf("avx=ran\n");
		} else {
			printf("sigill_code=%d sigill_addr_ok=%d\nok\n", ill_code,
			       ill_addr == (void *)avx_insn);
		}
	}
	return 0;
}
