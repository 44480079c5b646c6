/* cpuid-fault [exec]: ARCH_GET_CPUID/ARCH_SET_CPUID. With faulting on,
 * CPUID at CPL3 raises SIGSEGV, which a handler emulates; a new thread and
 * a fork child inherit it; an exec turns it off. Prints what it sees. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

static long arch(int op, unsigned long arg) { return syscall(SYS_arch_prctl, op, arg); }

static volatile int faults, code, trapno;
static void *volatile addr;

static void on_segv(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	(void)sig;
	faults++;
	code = si->si_code;
	addr = si->si_addr;
	trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
	/* Emulated: a made-up leaf, and on past the two-byte instruction. */
	uc->uc_mcontext.gregs[REG_RAX] = 0x1234;
	uc->uc_mcontext.gregs[REG_RIP] += 2;
}

static unsigned cpuid0(void)
{
	unsigned a = 0, b, c, d;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
	return a;
}

static void *thread_get(void *arg)
{
	(void)arg;
	return (void *)arch(ARCH_GET_CPUID, 0);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 1 && !strcmp(argv[1], "exec")) {
		printf("after exec: get %ld\n", arch(ARCH_GET_CPUID, 0));
		return 0;
	}
	struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO};
	sigaction(SIGSEGV, &sa, 0);
	printf("get %ld\n", arch(ARCH_GET_CPUID, 0));
	long r = arch(ARCH_SET_CPUID, 0);
	printf("set 0: %ld %s\n", r, r ? strerror(errno) : "");
	if (r)
		return 1;
	printf("get %ld\n", arch(ARCH_GET_CPUID, 0));
	unsigned a = cpuid0();
	printf("cpuid: eax %#x, faults %d, si_code %d, si_addr %p, trapno %d\n", a, faults, code, addr,
	       trapno);
	pthread_t t;
	void *got;
	pthread_create(&t, 0, thread_get, 0);
	pthread_join(t, &got);
	printf("a new thread: get %ld\n", (long)got);
	pid_t pid = fork();
	if (pid == 0) {
		printf("a fork child: get %ld\n", arch(ARCH_GET_CPUID, 0));
		execl("/proc/self/exe", argv[0], "exec", (char *)0);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("set 1: %ld\n", arch(ARCH_SET_CPUID, 1));
	faults = 0;
	a = cpuid0();
	printf("cpuid: real leaf %d, faults %d\n", a != 0x1234 && a > 0, faults);
	printf("get %ld\n", arch(ARCH_GET_CPUID, 0));
	/* Without a handler: SIGSEGV's default, the program dies. */
	signal(SIGSEGV, SIG_DFL);
	arch(ARCH_SET_CPUID, 0);
	cpuid0();
	printf("not reached\n");
	return 0;
}
