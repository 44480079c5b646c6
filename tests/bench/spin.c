/*
 * spin ITERATIONS: a pure CPU loop (no system call, no memory traffic) of
 * ITERATIONS steps of a linear congruential generator; prints its result so
 * that the compiler keeps it. Run as a whole command, startup included.
 * spin --calibrate MS: prints the iteration count that takes about MS
 * milliseconds here, so the workload's length does not depend on the CPU.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t spin(uint64_t n)
{
	uint64_t x = 1;
	for (uint64_t i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static double ms_of(uint64_t n)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	volatile uint64_t x = spin(n);
	(void)x;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "--calibrate") == 0) {
		double want = atof(argv[2]), ms;
		uint64_t n = 1 << 20;
		/* Grow until a run is long enough to time well, then scale;
		 * the best of three at that size resists a busy neighbour. */
		while ((ms = ms_of(n)) < want / 8)
			n *= 2;
		for (int i = 0; i < 2; i++) {
			double again = ms_of(n);
			if (again < ms)
				ms = again;
		}
		printf("%llu\n", (unsigned long long)(n * (want / ms)));
		return 0;
	}
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 100000000ULL;
	printf("%llu\n", (unsigned long long)spin(n));
	return 0;
}
