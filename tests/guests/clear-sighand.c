/*
 * clear-sighand: clone3 with CLONE_CLEAR_SIGHAND (a fork otherwise). The
 * child finds SIGUSR1, which its parent handles, at its default action and
 * dies by it when it raises it; the parent's handler is untouched and runs.
 */
#define _GNU_SOURCE
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void handler(int sig)
{
	(void)sig;
	write(1, "parent handled SIGUSR1\n", 23);
}

int main(void)
{
	signal(SIGUSR1, handler);
	struct clone_args args;
	memset(&args, 0, sizeof args);
	args.flags = CLONE_CLEAR_SIGHAND;
	args.exit_signal = SIGCHLD;
	fflush(stdout);
	long pid = syscall(SYS_clone3, &args, sizeof args);
	if (pid < 0) {
		perror("clone3");
		return 1;
	}
	if (pid == 0) {
		struct sigaction old;
		sigaction(SIGUSR1, NULL, &old);
		printf("child: SIGUSR1 default=%d\n", old.sa_handler == SIG_DFL);
		fflush(stdout);
		raise(SIGUSR1);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	printf("child killed by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	raise(SIGUSR1);
	return 0;
}
