/*
 * xcr0-report: prints, one "key=value" per line, what a program can see of
 * XCR0. Used by `make demo` and by the XCR0 test suite.
 *
 *   xcr0-report          report only
 *   xcr0-report avx      then execute an AVX instruction (SIGILL if YMM
 *                        state is disabled in XCR0)
 */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/platform/x86.h>

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

int main(int argc, char **argv)
{
	unsigned a, b, c, d;
	uint64_t xcr0 = xgetbv0();
	printf("xgetbv=%#llx\n", (unsigned long long)xcr0);

	__cpuid_count(0xd, 0, a, b, c, d);
	printf("cpuid_0xd_eax=%#x\n", a);
	printf("cpuid_0xd_ebx=%u\n", b);
	printf("cpuid_0xd_ecx=%u\n", c);
	unsigned xsave_size = b;
	/* Component sizes and offsets: the test recomputes EBX from them. */
	for (int i = 2; i < 20; i++) {
		__cpuid_count(0xd, i, a, b, c, d);
		if (a)
			printf("cpuid_0xd_%d=%u,%u\n", i, a, b);
	}

	/* XSAVE with an all-ones mask: the CPU saves what XCR0 enables. */
	unsigned char *area = aligned_alloc(64, 16384);
	memset(area, 0, 16384);
	memset(area + xsave_size, 0xa5, 16384 - xsave_size);
	__asm__ volatile("xsave64 (%0)" : : "r"(area), "a"(-1), "d"(-1) : "memory");
	uint64_t xstate_bv;
	memcpy(&xstate_bv, area + 512, 8);
	int untouched = 1;
	for (unsigned i = xsave_size; i < 16384; i++)
		untouched &= area[i] == 0xa5;
	printf("xsave_xstate_bv=%#llx\n", (unsigned long long)xstate_bv);
	printf("xsave_within_ebx=%d\n", untouched);

	__builtin_cpu_init();
	printf("gcc_cpu_supports_avx=%d\n", __builtin_cpu_supports("avx") ? 1 : 0);
	printf("glibc_avx_active=%d\n", CPU_FEATURE_ACTIVE(AVX) ? 1 : 0);
	printf("minsigstksz=%lu\n", getauxval(AT_MINSIGSTKSZ));
	fflush(stdout);

	if (argc > 1 && strcmp(argv[1], "avx") == 0) {
		__asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0" : : : "xmm0");
		printf("avx=ran\n");
	}
	return 0;
}
