/* first-touch MIB: mmap MIB MiB of anonymous memory and write one byte per
 * page (the kernel's page size), so every page takes its first fault;
 * prints the milliseconds the writes took (the mmap and munmap are left
 * out). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 1024;
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = mib << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("first-touch: mmap");
		return 1;
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (size_t off = 0; off < len; off += page)
		((volatile char *)p)[off] = 1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	munmap(p, len);
	double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	printf("%.1f\n", ms);
	return 0;
}
