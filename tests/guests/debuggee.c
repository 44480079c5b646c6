/* debuggee [threads|fork]: what the gdb tests step through. Without an
 * argument: a call, a loop over a global, a handled signal and a write.
 * threads: four threads blocked in read while main calls all_started.
 * fork: a child that calls child_work, its parent waiting for it.
 * avx: an AVX instruction (SIGILL where XCR0 leaves AVX disabled).
 * wait: blocks in pause(), called from waiting (for a debugger to attach).
 * spin: as wait, beside a thread spinning with MXCSR set to flush to zero.
 * calls: as wait, beside a thread making system calls one after another.
 * sleeps: a sleep a timer's handled signal interrupts (EINTR), then one
 * its ignored signal interrupts (restarted, only a tracer sees it).
 * stopped [handled|GAP]: a sleep a SIGSTOP and, 200 ms (or GAP µs) later,
 * a SIGCONT from a grandchild interrupt (the SIGCONT to a handler: EINTR). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int counter;
int add(int a, int b) { return a + b; }
static void on_usr1(int s) { counter += s; }

/* The workers block in read until main writes; main calls all_started once
 * each of them is in that read, so that every thread's frame is known. */
static int release[2];
static pid_t tids[4];
static void *worker(void *arg)
{
	char c;
	tids[(long)arg] = gettid();
	if (read(release[0], &c, 1) != 1)
		return 0;
	return arg;
}
static int in_read(pid_t tid)
{
	char path[64], text[16] = "";
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(text, sizeof text, f))
		text[0] = 0;
	fclose(f);
	return !strncmp(text, "0 ", 2);
}
void all_started(int n) { counter = n; }
static int threads(void)
{
	pthread_t t[4];
	if (pipe(release))
		return 1;
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], 0, worker, (void *)i);
	for (int i = 0, tries = 0; i < 4 && tries < 100000; tries++)
		if (tids[i] && in_read(tids[i]))
			i++;
		else
			usleep(100);
	all_started(4);
	if (write(release[1], "4444", 4) != 4)
		return 1;
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], 0);
	/* (Silent: its output would race gdb's news of the threads' ends.) */
	return counter;
}

int child_work(int v) { return v * 2; }
static int forks(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		printf("child: %d\n", child_work(21));
		return 6;
	}
	int st;
	waitpid(pid, &st, 0);
	/* (Silent: its debugger has let it go, its output would race gdb's.) */
	return WEXITSTATUS(st);
}

void uses_avx(void) { __asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0" ::: "xmm0"); }

void waiting(void) { pause(); }

static volatile int stop_spinning;
static volatile long spins;
static void *spinner(void *arg)
{
	__builtin_ia32_ldmxcsr(0x9f80);
	while (!stop_spinning) spins++;
	return arg;
}

static volatile long calls_made;
static void *caller(void *arg)
{
	for (;;) {
		getppid();
		calls_made++;
	}
	return arg;
}

static void on_alarm(int s) { (void)s; }
static int sleeps(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, 0);
	struct itimerval in = { .it_value = { 0, 300000 } };
	setitimer(ITIMER_REAL, &in, 0);
	struct timespec ts = { 1, 0 }, rem;
	int r = nanosleep(&ts, &rem);
	printf("handled: %d, %ld s left\n", r, (long)rem.tv_sec);
	signal(SIGALRM, SIG_IGN);
	setitimer(ITIMER_REAL, &in, 0);
	r = nanosleep(&ts, &rem);
	printf("ignored: %d\n", r);
	return 0;
}

static void on_cont(int s) { (void)s; }
static int stopped(int handled, useconds_t gap)
{
	if (handled) {
		struct sigaction sa = { .sa_handler = on_cont };
		sigaction(SIGCONT, &sa, 0);
	}
	pid_t pid = fork();
	if (pid == 0) {
		pid_t parent = getppid();
		if (fork() == 0) {
			usleep(300000);
			kill(parent, SIGSTOP);
			usleep(gap);
			kill(parent, SIGCONT);
		}
		_exit(0);
	}
	waitpid(pid, 0, 0);
	struct timespec ts = { 1, 0 };
	printf("slept: %d\n", nanosleep(&ts, 0));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "stopped"))
	{
		int handled = argc > 2 && !strcmp(argv[2], "handled");
		useconds_t gap = argc > 2 && argv[2][0] && !handled ? atoi(argv[2]) : 200000;
		return stopped(handled, gap);
	}
	if (argc > 1 && !strcmp(argv[1], "sleeps"))
		return sleeps();
	if (argc > 1 && !strcmp(argv[1], "spin")) {
		pthread_t t;
		pthread_create(&t, 0, spinner, 0);
		while (!spins)
			usleep(100);
		waiting();
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "calls")) {
		pthread_t t;
		pthread_create(&t, 0, caller, 0);
		while (!calls_made)
			usleep(100);
		waiting();
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "wait")) {
		waiting();
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "avx")) {
		uses_avx();
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "threads"))
		return threads();
	if (argc > 1 && !strcmp(argv[1], "fork"))
		return forks();
	signal(SIGUSR1, on_usr1);
	int x = add(2, 3);
	for (int i = 0; i < 3; i++)
		counter += i;
	kill(getpid(), SIGUSR1);
	printf("x=%d counter=%d\n", x, counter);
	return x;
}
