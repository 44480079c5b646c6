/*
 * xcr0-inherit: whether a new thread and a forked child run with the XCR0
 * of the program that made them. Prints key=value lines:
 *
 *   xcr0-inherit             main=, thread= and child= (XGETBV in main, in
 *                            a new pthread, in a fork()ed child; the child
 *                            prints, the parent waits for it)
 *   xcr0-inherit avx-thread  a new thread executes an AVX instruction
 *                            (SIGILL kills the process if XCR0 lacks YMM),
 *                            then main prints avx_thread=ran
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static void *in_thread(void *arg)
{
	*(uint64_t *)arg = xgetbv0();
	return NULL;
}

static void start(pthread_t *t, void *(*f)(void *), void *arg)
{
	int e = pthread_create(t, NULL, f, arg);
	if (e) {
		printf("pthread_create: %s\n", strerror(e));
		exit(1);
	}
}

static void *avx(void *arg)
{
	(void)arg;
	__asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0" : : : "xmm0");
	return NULL;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_t t;
	if (argc > 1 && !strcmp(argv[1], "avx-thread")) {
		start(&t, avx, NULL);
		pthread_join(t, NULL);
		printf("avx_thread=ran\n");
		return 0;
	}
	printf("main=%#llx\n", (unsigned long long)xgetbv0());

	uint64_t x = 0;
	start(&t, in_thread, &x);
	pthread_join(t, NULL);
	printf("thread=%#llx\n", (unsigned long long)x);

	pid_t pid = fork();
	if (pid < 0) {
		printf("fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		printf("child=%#llx\n", (unsigned long long)xgetbv0());
		_exit(0);
	}
	int status = 0;
	if (waitpid(pid, &status, 0) != pid || status != 0) {
		printf("waitpid: %s, status %#x\n", strerror(errno), status);
		return 1;
	}
	return 0;
}
