/*
 * xcr0-cycle N: N round trips of ARCH_SET_XCR0 (arch_prctl 0x1031 in the
 * sandbox) to x87|SSE and back to the default (every bit set), timed with
 * clock_gettime; prints nanoseconds per call. In the sandbox only: the
 * call does not exist natively (it prints "unsupported" and exits 1).
 * Every XSAVE component is put in its initial state first (XRSTOR of an
 * empty header), as disabling one that is in use is EPERM.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	if (syscall(SYS_arch_prctl, 0x1031, ~0UL) != 0) {
		puts("unsupported");
		return 1;
	}
	static uint8_t area[16384] __attribute__((aligned(64)));
	memset(area, 0, sizeof area);
	uint32_t mxcsr = 0x1f80;
	memcpy(area + 24, &mxcsr, 4);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	__asm__ volatile("xrstor64 (%0)" : : "r"(area), "a"(-1), "d"(-1) : "memory");
	for (long i = 0; i < n; i++) {
		if (syscall(SYS_arch_prctl, 0x1031, 0x3UL) != 0 ||
		    syscall(SYS_arch_prctl, 0x1031, ~0UL) != 0) {
			perror("arch_prctl");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.0f\n", ns / (2.0 * n));
	return 0;
}
