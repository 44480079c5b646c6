/* pingpong thread|process N: N round trips of one byte between two threads
 * (or two processes) over a pair of pipes; prints ns per round trip (two
 * writes, two reads and two wake-ups). Timed inside, so process startup and
 * the partner's creation are excluded. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2];
static long rounds;

/* The partner: echoes every byte back until it has seen all of them. */
static void *echo(void *arg)
{
	char c;
	for (long i = 0; i < rounds; i++)
		if (read(ping[0], &c, 1) != 1 || write(pong[1], &c, 1) != 1)
			return (void *)1;
	return arg;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 && strcmp(argv[1], "thread") == 0;
	rounds = argc > 2 ? atol(argv[2]) : 10000;
	if (argc < 2 || (!threads && strcmp(argv[1], "process") != 0)) {
		fprintf(stderr, "usage: pingpong thread|process N\n");
		return 2;
	}
	if (pipe(ping) || pipe(pong)) {
		perror("pingpong: pipe");
		return 1;
	}
	pthread_t t;
	pid_t pid = -1;
	if (threads) {
		if (pthread_create(&t, NULL, echo, NULL) != 0)
			return 1;
	} else {
		pid = fork();
		if (pid < 0) {
			perror("pingpong: fork");
			return 1;
		}
		if (pid == 0)
			_exit(echo(NULL) != NULL);
	}
	/* One round trip first, so the partner is running before the clock starts. */
	char c = 'x';
	struct timespec a, b;
	for (long i = 0; i < rounds; i++) {
		if (i == 1)
			clock_gettime(CLOCK_MONOTONIC, &a);
		if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1) {
			perror("pingpong: round trip");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	int status = 0;
	if (threads)
		pthread_join(t, NULL);
	else if (waitpid(pid, &status, 0) != pid || status != 0)
		return 1;
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.0f\n", rounds > 1 ? ns / (rounds - 1) : 0.0);
	return 0;
}
