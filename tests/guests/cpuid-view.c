/* cpuid-view [set XCR0]: what CPUID tells a program of the XSAVE
 * components and the features that need them: leaf 1's FMA, AVX, F16C,
 * OSXSAVE; leaf 7's AVX2, AVX512F, PKU; leaf 0xD's supported mask, sizes
 * and AVX subleaf; and what gcc's __builtin_cpu_supports concludes. With
 * an XCR0 argument, a second thread first sets it (ARCH_SET_XCR0) and
 * prints its own view, which must follow. `cpuid-view table` prints this
 * CPU's CPUID as rr records it (rows of eax_in, ecx_in, eax, ebx, ecx,
 * edx; ecx_in 0xffffffff for a leaf without subleaves), with leaf 1's AVX
 * bit cleared, for --cpuid=FILE to be seen answering. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <string.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_SET_XCR0 0x1031 /* the sandbox's (0x1021 under --arch-prctl-compat) */

/* What CPUID and XGETBV say, gathered without calling libc: a thread
 * whose XCR0 lost AVX cannot run glibc's AVX string functions. */
struct seen {
	unsigned l1c, l7b, l7c, d0a, d0b, d0c, d2a, d2b, xcr0;
};

static struct seen look(void)
{
	struct seen v;
	unsigned a, b, c, d;
	__cpuid_count(1, 0, a, b, c, d);
	v.l1c = c;
	__cpuid_count(7, 0, a, b, c, d);
	v.l7b = b;
	v.l7c = c;
	__cpuid_count(0xd, 0, a, b, c, d);
	v.d0a = a;
	v.d0b = b;
	v.d0c = c;
	__cpuid_count(0xd, 2, a, b, c, d);
	v.d2a = a;
	v.d2b = b;
	__asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
	v.xcr0 = a;
	return v;
}

static void show(const char *who, struct seen v)
{
	printf("%s: leaf 1: fma %u avx %u f16c %u osxsave %u\n", who, v.l1c >> 12 & 1,
	       v.l1c >> 28 & 1, v.l1c >> 29 & 1, v.l1c >> 27 & 1);
	printf("%s: leaf 7: avx2 %u avx512f %u pku %u\n", who, v.l7b >> 5 & 1, v.l7b >> 16 & 1,
	       v.l7c >> 3 & 1);
	printf("%s: leaf 0xd.0: supported %#x, size now %u, size max %u\n", who, v.d0a, v.d0b,
	       v.d0c);
	printf("%s: leaf 0xd.2: size %u offset %u\n", who, v.d2a, v.d2b);
	printf("%s: xgetbv %#x\n", who, v.xcr0);
}

static void view(const char *who)
{
	show(who, look());
}

/* Sets the thread's XCR0 to `x` and looks; puts the program's XCR0 back
 * before printing what it saw. */
static void *other(void *arg)
{
	long x = (long)arg;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	/* Components in use cannot be disabled (EPERM): every one past SSE
	 * is put in its initial state first (XRSTOR with XSTATE_BV 0). AMX's
	 * (17, 18) are left alone: unused, they are initial already, and
	 * touching the tile data before it is permitted faults (XFD). */
	static char area[4096] __attribute__((aligned(64)));
	unsigned mask = lo & ~3u & ~(3u << 17);
	__asm__ volatile("xrstor %0" : : "m"(area), "a"(mask), "d"(0) : "memory");
	long r = syscall(SYS_arch_prctl, ARCH_SET_XCR0, x);
	int e = errno;
	struct seen v = look();
	syscall(SYS_arch_prctl, ARCH_SET_XCR0, ~0UL);
	printf("thread: ARCH_SET_XCR0 %#lx: %s\n", x, r ? strerror(e) : "0");
	show("thread", v);
	return NULL;
}

static void row(unsigned leaf, unsigned sub, unsigned any, int *first)
{
	unsigned a, b, c, d;
	__cpuid_count(leaf, sub, a, b, c, d);
	if (leaf == 1)
		c &= ~(1u << 28);
	printf("%s[%u,%u,%u,%u,%u,%u]", *first ? "" : ",", leaf, any ? 0xffffffffu : sub, a, b, c,
	       d);
	*first = 0;
}

static void table(void)
{
	unsigned max, ext, b, c, d;
	int first = 1;
	__cpuid(0, max, b, c, d);
	__cpuid(0x80000000, ext, b, c, d);
	printf("[");
	for (unsigned leaf = 0; leaf <= max; leaf++) {
		if (leaf == 7 || leaf == 0xd || leaf == 4 || leaf == 0xb) {
			for (unsigned sub = 0; sub < (leaf == 0xd ? 63 : 4); sub++)
				row(leaf, sub, 0, &first);
		} else {
			row(leaf, 0, 1, &first);
		}
	}
	for (unsigned leaf = 0x80000000; leaf <= ext && leaf < 0x80000040; leaf++)
		row(leaf, 0, 1, &first);
	printf("]\n");
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "table")) {
		table();
		return 0;
	}
	__builtin_cpu_init();
	printf("gcc: avx %d avx2 %d avx512f %d\n", !!__builtin_cpu_supports("avx"),
	       !!__builtin_cpu_supports("avx2"), !!__builtin_cpu_supports("avx512f"));
	view("main");
	if (argc > 1) {
		pthread_t t;
		pthread_create(&t, NULL, other, (void *)strtol(argv[1], NULL, 0));
		pthread_join(t, NULL);
		view("main again");
	}
	return 0;
}
