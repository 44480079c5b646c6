/* mmap-loop N: N cycles of mmap of 16 anonymous pages, a write of one byte
 * into the first, munmap; prints ns per cycle. The write makes the mapping
 * used, as a real program's would be. The page size is the kernel's. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000;
	size_t len = 16 * (size_t)sysconf(_SC_PAGESIZE);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			perror("mmap-loop: mmap");
			return 1;
		}
		p[0] = 1;
		if (munmap((void *)p, len)) {
			perror("mmap-loop: munmap");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.0f\n", ns / n);
	return 0;
}
