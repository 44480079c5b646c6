/* signalled-fork [N]: N fork children, each sent a handled SIGUSR1 twenty
 * times as soon as it exists; each must exit 0. Prints how many did not. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void handled(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100, bad = 0;
	signal(SIGUSR1, handled);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		for (int k = 0; k < 20; k++)
			kill(pid, SIGUSR1);
		int st;
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			bad++;
			fprintf(stderr, "child %d: status %#x\n", i, st);
		}
	}
	printf("fork children not exiting 0: %d of %d\n", bad, n);
	return bad != 0;
}
