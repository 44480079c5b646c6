/* tsc-trap [exec]: PR_SET_TSC / PR_GET_TSC. Under PR_TSC_SIGSEGV, rdtsc and
 * rdtscp raise SIGSEGV, which a handler emulates (the vDSO's clock too); a
 * new thread, a fork child and an exec keep the mode (the exec'd program
 * dies at its loader's first rdtsc). Prints what it sees. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static volatile int faults, code, trapno;
static void *volatile addr;

static void on_segv(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	const unsigned char *ip = (const unsigned char *)uc->uc_mcontext.gregs[REG_RIP];
	(void)sig;
	faults++;
	code = si->si_code;
	addr = si->si_addr;
	trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
	/* Emulated: rdtsc (0f 31) or rdtscp (0f 01 f9) reads 1000 * faults. */
	uc->uc_mcontext.gregs[REG_RAX] = 1000 * faults;
	uc->uc_mcontext.gregs[REG_RDX] = 0;
	uc->uc_mcontext.gregs[REG_RIP] += ip[1] == 0x31 ? 2 : 3;
}

static unsigned long long rdtsc(void)
{
	unsigned lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (unsigned long long)hi << 32 | lo;
}

static unsigned long long rdtscp(void)
{
	unsigned lo, hi, aux;
	__asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
	return (unsigned long long)hi << 32 | lo;
}

static int mode(void)
{
	int m = -1;
	prctl(PR_GET_TSC, &m);
	return m;
}

static void *thread_mode(void *arg)
{
	(void)arg;
	return (void *)(long)mode();
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 1 && !strcmp(argv[1], "exec")) {
		printf("after exec: mode %d\n", mode());
		return 0;
	}
	struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO};
	sigaction(SIGSEGV, &sa, 0);
	printf("mode %d\n", mode());
	int bad = prctl(PR_SET_TSC, 7);
	printf("bad mode: %d %s\n", bad, strerror(errno));
	int r = prctl(PR_SET_TSC, PR_TSC_SIGSEGV);
	printf("set PR_TSC_SIGSEGV: %d %s\n", r, r ? strerror(errno) : "");
	if (r)
		return 1;
	printf("mode %d\n", mode());
	unsigned long long t = rdtsc();
	printf("rdtsc: %llu, faults %d, si_code %d, si_addr %p, trapno %d\n", t, faults, code, addr,
	       trapno);
	t = rdtscp();
	printf("rdtscp: %llu, faults %d\n", t, faults);
	struct timespec ts;
	int before = faults;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	printf("clock_gettime faulted: %d\n", faults > before);
	pthread_t th;
	void *got;
	pthread_create(&th, 0, thread_mode, 0);
	pthread_join(th, &got);
	printf("a new thread: mode %ld\n", (long)got);
	pid_t pid = fork();
	if (pid == 0) {
		printf("a fork child: mode %d\n", mode());
		execl("/proc/self/exe", argv[0], "exec", (char *)0);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("set PR_TSC_ENABLE: %d\n", prctl(PR_SET_TSC, PR_TSC_ENABLE));
	before = faults;
	rdtsc();
	rdtscp();
	printf("rdtsc, rdtscp: faults %d, mode %d\n", faults - before, mode());
	/* Without a handler: SIGSEGV's default, the program dies. */
	signal(SIGSEGV, SIG_DFL);
	prctl(PR_SET_TSC, PR_TSC_SIGSEGV);
	rdtsc();
	printf("not reached\n");
	return 0;
}
