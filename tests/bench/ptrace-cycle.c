/* ptrace-cycle stop|peek|watch N: a tracer and its traced child. "stop": N
 * PTRACE_SYSCALL round trips (the child's getppid stops at entry and at
 * exit; the tracer waits and resumes each time): nanoseconds per system
 * call traced (two stops). "peek": N PTRACE_PEEKDATA of one word of the
 * stopped child: nanoseconds per peek. "watch": a write watchpoint (DR0)
 * on one word; the child makes N writes to its neighbour on the same page,
 * which never hit, and reports nanoseconds per write. Timed inside. */
#include <signal.h>
#include <stddef.h>
#include <sys/user.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long word = 42;
static volatile long neighbour;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
	int stop = argc > 1 && !strcmp(argv[1], "stop");
	int watch = argc > 1 && !strcmp(argv[1], "watch");
	long n = argc > 2 ? atol(argv[2]) : 1000;
	int pipefd[2];
	if (pipe(pipefd))
		return 1;
	pid_t pid = fork();
	if (pid == 0 && watch) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		double a = now();
		for (long i = 0; i < n; i++)
			neighbour = i;
		double b = now();
		dprintf(pipefd[1], "%.0f\n", (b - a) / n);
		_exit(0);
	}
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		for (;;)
			syscall(SYS_getppid);
	}
	int st;
	waitpid(pid, &st, 0);
	ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
	if (watch) {
		if (((unsigned long)&word ^ (unsigned long)&neighbour) >> 12) {
			fprintf(stderr, "ptrace-cycle: the two words are on different pages\n");
			return 1;
		}
		size_t dr = offsetof(struct user, u_debugreg);
		if (ptrace(PTRACE_POKEUSER, pid, dr, &word) ||
		    ptrace(PTRACE_POKEUSER, pid, dr + 7 * sizeof(long), 1 | 1 << 16 | 2 << 18)) {
			perror("ptrace-cycle: POKEUSER");
			return 1;
		}
		ptrace(PTRACE_CONT, pid, 0, 0);
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st)) {
			fprintf(stderr, "ptrace-cycle: the child stopped (status %#x)\n", st);
			return 1;
		}
		char line[32] = "";
		if (read(pipefd[0], line, sizeof line - 1) <= 0)
			return 1;
		fputs(line, stdout);
		return 0;
	}
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
