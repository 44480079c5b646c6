/*
 * threads: POSIX threads as a program uses them, printing only what is the
 * same on every run, so the output can be compared with a native run.
 *
 *   threads            64 threads computing integer and SSE sums (results
 *                      printed in order, then the total); then gettid,
 *                      a thread's signal mask, pthread_join (the kernel's
 *                      CLONE_CHILD_CLEARTID wake-up), a timed wait that
 *                      times out, a priority-inheritance (PI futex) mutex
 *                      contended across threads, sched_getaffinity, and
 *                      pthread_exit in one thread while another continues
 *   threads exit       a thread calls exit(3) while main waits in
 *                      pthread_join and another thread spins without system
 *                      calls: the whole process exits with 3
 *   threads exec       a thread execs /bin/echo while main waits and
 *                      another thread spins: echo replaces the process
 *   threads main-exit  main calls pthread_exit; the last thread finishes
 *                      the output and the process exits 0
 *   threads leader-exit  main ends by exit(2) with 3, the last thread later
 *                      by exit(2) with 5: the process's status is 5
 */
#define _GNU_SOURCE
#include <emmintrin.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NTHREADS 64
#define SPAN 20000

struct work {
	int index;
	uint64_t sum;
	double fp;
};

/* Sum of a range, and a sum of square roots done two lanes at a time in
 * SSE registers: a thread whose vector state leaked into another's would
 * print a different number. */
static void *compute(void *arg)
{
	struct work *w = arg;
	uint64_t lo = (uint64_t)w->index * SPAN;
	__m128d acc = _mm_setzero_pd();
	for (uint64_t i = lo; i < lo + SPAN; i += 2) {
		w->sum += i + (i + 1);
		__m128d v = _mm_set_pd((double)(i + 1), (double)i);
		acc = _mm_add_pd(acc, _mm_sqrt_pd(v));
		if ((i & 1023) == 0)
			sched_yield();
	}
	double lanes[2];
	_mm_storeu_pd(lanes, acc);
	w->fp = lanes[0] + lanes[1];
	return w;
}

static void *differs(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)(gettid() != getpid());
}

/* Blocks SIGUSR1 in this thread only; returns whether it reads back. */
static void *block_usr1(void *arg)
{
	(void)arg;
	sigset_t set, now;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	return (void *)(intptr_t)sigismember(&now, SIGUSR1);
}

static pthread_mutex_t pi;
static atomic_int pi_waiting;
static int pi_count;

/* Contends for the PI mutex main holds: trylock fails, lock sleeps in
 * FUTEX_LOCK_PI until main unlocks. */
static void *take_pi(void *arg)
{
	(void)arg;
	int busy = pthread_mutex_trylock(&pi);
	atomic_store(&pi_waiting, 1);
	int r = pthread_mutex_lock(&pi);
	pi_count++;
	pthread_mutex_unlock(&pi);
	return (void *)(intptr_t)(busy == EBUSY && r == 0);
}

static int cpus(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -1;
	return CPU_COUNT(&set);
}

static void *thread_cpus(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)cpus();
}

static void leave_early(void)
{
	pthread_exit((void *)7);
}

static void *exits_early(void *arg)
{
	(void)arg;
	leave_early();
	return (void *)-1;
}

static pthread_mutex_t go_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cond = PTHREAD_COND_INITIALIZER;
static int go;

/* Waits until main has joined the thread that called pthread_exit. */
static void *continues(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&go_lock);
	while (!go)
		pthread_cond_wait(&go_cond, &go_lock);
	pthread_mutex_unlock(&go_lock);
	return (void *)8;
}

static void *join(pthread_t t)
{
	void *r;
	int e = pthread_join(t, &r);
	if (e) {
		printf("pthread_join: %s\n", strerror(e));
		exit(1);
	}
	return r;
}

static pthread_t start(void *(*f)(void *), void *arg)
{
	pthread_t t;
	int e = pthread_create(&t, NULL, f, arg);
	if (e) {
		printf("pthread_create: %s\n", strerror(e));
		exit(1);
	}
	return t;
}

static void report(void)
{
	static struct work w[NTHREADS];
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		w[i].index = i;
		t[i] = start(compute, &w[i]);
	}
	uint64_t total = 0;
	double fp_total = 0;
	for (int i = 0; i < NTHREADS; i++) {
		/* Returning at all is the CLONE_CHILD_CLEARTID futex wake. */
		struct work *r = join(t[i]);
		printf("thread %d: sum=%llu sqrt=%.6f\n", i,
		       (unsigned long long)r->sum, r->fp);
		total += r->sum;
		fp_total += r->fp;
	}
	printf("joined=%d total=%llu sqrt_total=%.6f\n", NTHREADS,
	       (unsigned long long)total, fp_total);

	printf("thread_tid_differs=%d\n", (int)(intptr_t)join(start(differs, NULL)));

	int blocked = (int)(intptr_t)join(start(block_usr1, NULL));
	sigset_t now;
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	printf("thread_blocked_usr1=%d main_blocked_usr1=%d\n", blocked,
	       sigismember(&now, SIGUSR1));

	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	struct timespec t0, deadline, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_nsec += 50 * 1000 * 1000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&m);
	int e = pthread_cond_timedwait(&c, &m, &deadline);
	pthread_mutex_unlock(&m);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 +
			 (t1.tv_nsec - t0.tv_nsec) / 1000000;
	printf("timedwait=%s waited_50ms=%d\n",
	       e == ETIMEDOUT ? "ETIMEDOUT" : strerror(e), waited_ms >= 49);

	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
	pthread_mutex_init(&pi, &a);
	pthread_mutex_lock(&pi);
	pthread_t taker = start(take_pi, NULL);
	while (!atomic_load(&pi_waiting))
		sched_yield();
	usleep(20000);
	pi_count++;
	pthread_mutex_unlock(&pi);
	int contended = (int)(intptr_t)join(taker);
	printf("pi_mutex_contended=%d count=%d\n", contended, pi_count);

	int main_cpus = cpus();
	int thread_cpus_n = (int)(intptr_t)join(start(thread_cpus, NULL));
	printf("affinity_ok=%d same_in_thread=%d\n", main_cpus > 0,
	       thread_cpus_n == main_cpus);

	pthread_t waiter = start(continues, NULL);
	void *early = join(start(exits_early, NULL));
	pthread_mutex_lock(&go_lock);
	go = 1;
	pthread_cond_signal(&go_cond);
	pthread_mutex_unlock(&go_lock);
	printf("pthread_exit_value=%d other_continued=%d\n",
	       (int)(intptr_t)early, (int)(intptr_t)join(waiter));
}

static void *spin(void *arg)
{
	(void)arg;
	for (volatile unsigned long n = 0;; n++)
		;
	return NULL;
}

static void *exit_three(void *arg)
{
	(void)arg;
	usleep(20000);
	printf("thread calls exit(3)\n");
	exit(3);
}

static void *exec_echo(void *arg)
{
	(void)arg;
	usleep(20000);
	printf("thread execs echo\n");
	fflush(stdout);
	execl("/bin/echo", "echo", "echo", "ran", "after", "exec", (char *)NULL);
	printf("execl: %s\n", strerror(errno));
	exit(1);
}

static void *last_one(void *arg)
{
	(void)arg;
	usleep(50000);
	printf("the last thread finishes\n");
	return NULL;
}

static void *last_exit(void *arg)
{
	(void)arg;
	usleep(50000);
	printf("the last thread: exit(2) with 5\n");
	fflush(stdout);
	syscall(SYS_exit, 5);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (!strcmp(mode, "exit") || !strcmp(mode, "exec")) {
		start(spin, NULL);
		join(start(!strcmp(mode, "exit") ? exit_three : exec_echo, NULL));
		printf("main: not reached\n");
		return 1;
	}
	if (!strcmp(mode, "leader-exit")) {
		start(last_exit, NULL);
		printf("main: exit(2) with 3\n");
		fflush(stdout);
		syscall(SYS_exit, 3);
	}
	if (!strcmp(mode, "main-exit")) {
		start(last_one, NULL);
		printf("main calls pthread_exit\n");
		fflush(stdout);
		pthread_exit(NULL);
	}
	report();
	return 0;
}
