/* thread-rss K: VmRSS of this process before and after starting K threads
 * that all wait on a barrier; prints (after - before) / K in KiB, then
 * releases and joins them. In the sandbox /proc/self is the sandbox process,
 * so the figure includes the sandbox's own cost per thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_barrier_t started, release;

static long vmrss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = atol(line + 6);
			break;
		}
	fclose(f);
	return kib;
}

static void *body(void *arg)
{
	pthread_barrier_wait(&started);
	pthread_barrier_wait(&release);
	return arg;
}

int main(int argc, char **argv)
{
	int k = argc > 1 ? atoi(argv[1]) : 64;
	pthread_t *t = calloc(k, sizeof *t);
	if (!t || k < 1)
		return 1;
	pthread_barrier_init(&started, NULL, k + 1);
	pthread_barrier_init(&release, NULL, k + 1);
	long before = vmrss_kib();
	for (int i = 0; i < k; i++)
		if (pthread_create(&t[i], NULL, body, NULL) != 0) {
			fprintf(stderr, "thread-rss: thread %d failed\n", i);
			return 1;
		}
	/* every thread is running and parked before the second reading */
	pthread_barrier_wait(&started);
	long after = vmrss_kib();
	if (before < 0 || after < 0) {
		fprintf(stderr, "thread-rss: no VmRSS in /proc/self/status\n");
		return 1;
	}
	printf("%.1f\n", (double)(after - before) / k);
	pthread_barrier_wait(&release);
	for (int i = 0; i < k; i++)
		pthread_join(t[i], NULL);
	return 0;
}
