/* ud MODE: takes a #UD in a function named for it, for --explain to name.
 *   ud2       ud2 in raise_ud2 (no XCR0 component explains it)
 *   avx       vaddps on ymm registers in use_avx (AVX, XCR0 bit 2)
 *   avx2      vpaddd on ymm registers in use_avx2 (AVX2: bit 2)
 *   avx512    vpaddd on zmm registers in use_avx512 (bits 5-7)
 *   handled   ud2 under a SIGILL handler that steps over it
 * Each first asks CPUID leaf 0xD in look_at_xsave, as glibc does. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

__attribute__((noinline)) unsigned look_at_xsave(void)
{
	unsigned a, b, c, d;
	__cpuid_count(0xd, 0, a, b, c, d);
	return b;
}

__attribute__((noinline)) void raise_ud2(void)
{
	__asm__ volatile("ud2");
}

__attribute__((noinline)) void use_avx(void)
{
	__asm__ volatile("vaddps %%ymm2, %%ymm1, %%ymm0" ::: "xmm0");
}

__attribute__((noinline)) void use_avx2(void)
{
	__asm__ volatile("vpaddd %%ymm2, %%ymm1, %%ymm0" ::: "xmm0");
}

__attribute__((noinline)) void use_avx512(void)
{
	__asm__ volatile("vpaddd %%zmm2, %%zmm1, %%zmm0" ::: "xmm0");
}

static void skip(int sig, siginfo_t *si, void *uc_)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = uc_;
	uc->uc_mcontext.gregs[REG_RIP] += 2;
}

int main(int argc, char **argv)
{
	const char *m = argc > 1 ? argv[1] : "";
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("xsave size %s\n", look_at_xsave() >= 576 ? "ok" : "small");
	if (!strcmp(m, "ud2"))
		raise_ud2();
	else if (!strcmp(m, "avx"))
		use_avx();
	else if (!strcmp(m, "avx2"))
		use_avx2();
	else if (!strcmp(m, "avx512"))
		use_avx512();
	else if (!strcmp(m, "handled")) {
		struct sigaction sa = { .sa_sigaction = skip, .sa_flags = SA_SIGINFO };
		sigaction(SIGILL, &sa, NULL);
		raise_ud2();
		printf("handled\n");
	} else {
		fprintf(stderr, "usage: ud ud2|avx|avx2|avx512|handled\n");
		return 2;
	}
	printf("no #UD\n");
	return 0;
}
