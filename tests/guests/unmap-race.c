/*
 * unmap-race: a thread spins reading and writing a page while main takes
 * the page away; the spinner's next access must fault and SIGSEGV kills the
 * process. Main waits until the spinner has touched the page and then lets
 * it spin a while before acting, so the page is live on the spinner's CPU.
 *
 *   unmap-race 1   main munmaps the page
 *   unmap-race 2   main mprotects it PROT_NONE
 *   unmap-race 3   main mprotects it PROT_READ (the spinner writes)
 *
 * If the spinner survives for two seconds, main says so and exits 1.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long *page;
static atomic_ulong spins;

static void *spin(void *arg)
{
	(void)arg;
	for (;;) {
		unsigned long v = page[0];
		page[0] = v + 1;
		atomic_fetch_add_explicit(&spins, 1, memory_order_relaxed);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int mode = argc > 1 ? atoi(argv[1]) : 0;
	if (mode < 1 || mode > 3) {
		fprintf(stderr, "usage: unmap-race 1|2|3\n");
		return 2;
	}
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	pthread_t t;
	int e = pthread_create(&t, NULL, spin, NULL);
	if (e) {
		printf("pthread_create: %s\n", strerror(e));
		return 1;
	}
	while (atomic_load(&spins) == 0)
		;
	usleep(20000);
	unsigned long before = atomic_load(&spins);
	while (atomic_load(&spins) < before + 1000)
		;
	int r = mode == 1   ? munmap((void *)page, 4096)
		: mode == 2 ? mprotect((void *)page, 4096, PROT_NONE)
			    : mprotect((void *)page, 4096, PROT_READ);
	if (r != 0) {
		perror("munmap/mprotect");
		return 1;
	}
	struct timespec two = {2, 0};
	nanosleep(&two, NULL);
	printf("the spinner survived mode %d\n", mode);
	return 1;
}
