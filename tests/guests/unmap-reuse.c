/*
 * unmap-reuse: what the program sees of ranges it unmapped.
 *
 * 1. A thread blocks in read(2) into a page; main unmaps the page, then
 *    writes to the pipe: the read fails with EFAULT (the kernel cannot
 *    copy into an unmapped page), whatever else lives in the process.
 * 2. 4000 cycles of mmap + touch + munmap with varying sizes: the
 *    process's address space (VmSize) grows by less than 64 MiB, as the
 *    freed ranges are reused.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int fds[2];
static char *page;
static volatile int ready;

static void *reader(void *arg)
{
	(void)arg;
	ready = 1;
	ssize_t n = read(fds[0], page, 4096);
	printf("read=%zd errno=%s\n", n, n < 0 ? strerror(errno) : "-");
	return NULL;
}

static long vm_size_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmSize: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

int main(void)
{
	if (pipe(fds))
		return 1;
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pthread_t t;
	pthread_create(&t, NULL, reader, NULL);
	while (!ready)
		usleep(1000);
	usleep(100000); /* the reader is blocked in read by now */
	munmap(page, 4096);
	if (write(fds[1], "x", 1) != 1)
		return 1;
	pthread_join(t, NULL);

	long before = vm_size_kb();
	for (int i = 0; i < 4000; i++) {
		size_t len = (size_t)(1 + i % 13) << 16;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 2;
		p[0] = p[len - 1] = 1;
		munmap(p, len);
	}
	long grew = vm_size_kb() - before;
	printf("vm_growth_under_64MiB=%d\n", grew < 65536);
	return 0;
}
