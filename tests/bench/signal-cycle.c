/* signal-cycle N: N signal round trips (kill(getpid(), SIGUSR1), its
 * handler runs, rt_sigreturn back); prints nanoseconds per round trip.
 * Timed inside, so process startup is excluded. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
	(void)sig;
	handled++;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	pid_t self = getpid();
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		kill(self, SIGUSR1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (handled != n) {
		fprintf(stderr, "signal-cycle: %ld signals, %ld handled\n", n, (long)handled);
		return 1;
	}
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.0f\n", ns / n);
	return 0;
}
