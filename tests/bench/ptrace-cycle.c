/* ptrace-cycle stop|peek N: a tracer and its traced child. "stop": N
 * PTRACE_SYSCALL round trips (the child's getppid stops at entry and at
 * exit; the tracer waits and resumes each time): nanoseconds per system
 * call traced (two stops). "peek": N PTRACE_PEEKDATA of one word of the
 * stopped child: nanoseconds per peek. Timed inside. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long word = 42;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
	int stop = argc > 1 && !strcmp(argv[1], "stop");
	long n = argc > 2 ? atol(argv[2]) : 1000;
	pid_t pid = fork();
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		for (;;)
			syscall(SYS_getppid);
	}
	int st;
	waitpid(pid, &st, 0);
	ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
	double a = now();
	for (long i = 0; i < n; i++) {
		if (stop) {
			for (int k = 0; k < 2; k++) {
				ptrace(PTRACE_SYSCALL, pid, 0, 0);
				waitpid(pid, &st, 0);
			}
		} else if (ptrace(PTRACE_PEEKDATA, pid, &word, 0) != 42) {
			fprintf(stderr, "ptrace-cycle: PEEKDATA read a wrong word\n");
			return 1;
		}
	}
	double b = now();
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	printf("%.0f\n", (b - a) / n);
	return 0;
}
