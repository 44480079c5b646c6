/*
 * spawn: child processes from C, printing what is the same on every run
 * (statuses, error strings and booleans, never pids), so the output can be
 * compared with a native run. posix_spawn of a missing program (ENOENT
 * comes back from posix_spawn itself: glibc's CLONE_VM|CLONE_VFORK child
 * reports the failed exec through shared memory) and of /bin/echo;
 * vfork + _exit(5); fork + exit(6); a child killed by SIGTERM; a child
 * writing through a pipe to its parent; getpid and getppid in a child.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Waits for `pid` and prints how it ended. */
static void reap(const char *what, pid_t pid)
{
	int status;
	if (waitpid(pid, &status, 0) != pid) {
		printf("%s: waitpid: %s\n", what, strerror(errno));
		exit(1);
	}
	if (WIFEXITED(status))
		printf("%s: exited %d\n", what, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		printf("%s: killed by signal %d\n", what, WTERMSIG(status));
	else
		printf("%s: status %#x\n", what, status);
}

int main(void)
{
	/* Line-buffered: nothing is pending in stdio when a child starts. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	pid_t pid;

	char *missing[] = {"/nonexistent/program", NULL};
	int e = posix_spawn(&pid, missing[0], NULL, NULL, missing, environ);
	printf("posix_spawn missing: %s\n", e ? strerror(e) : "succeeded");

	char *echo[] = {"/bin/echo", "spawned echo", NULL};
	e = posix_spawn(&pid, echo[0], NULL, NULL, echo, environ);
	if (e) {
		printf("posix_spawn echo: %s\n", strerror(e));
		return 1;
	}
	reap("posix_spawn echo", pid);

	pid = vfork();
	if (pid == 0)
		_exit(5);
	reap("vfork", pid);

	pid = fork();
	if (pid == 0)
		exit(6);
	reap("fork", pid);

	pid = fork();
	if (pid == 0) {
		kill(getpid(), SIGTERM);
		_exit(0);
	}
	reap("fork+SIGTERM", pid);

	int p[2];
	if (pipe(p) != 0) {
		printf("pipe: %s\n", strerror(errno));
		return 1;
	}
	pid_t parent = getpid();
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		char msg[100];
		int n = snprintf(msg, sizeof(msg),
				 "through the pipe: child_pid_differs=%d "
				 "child_ppid_is_parent=%d\n",
				 getpid() != parent, getppid() == parent);
		if (write(p[1], msg, n) != n)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	char buf[200];
	size_t got = 0;
	ssize_t n;
	while ((n = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	buf[got] = 0;
	printf("parent read: %s", buf);
	reap("pipe writer", pid);
	printf("parent_pid_unchanged=%d\n", getpid() == parent);
	return 0;
}
