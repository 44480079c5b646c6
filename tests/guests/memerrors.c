/* memerrors: what memcheck reports. A read of a freed block, a thread's
 * write one byte past its block, and a block left reachable at exit. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *past_the_end(void *arg)
{
	char *p = malloc(10);
	p[10] = 1;
	free(p);
	return arg;
}

int main(void)
{
	volatile char *freed = malloc(16);
	free((void *)freed);
	int seen = freed[0];
	static void *kept;
	kept = malloc(100);
	pthread_t t;
	pthread_create(&t, 0, past_the_end, 0);
	pthread_join(t, 0);
	printf("done %d\n", seen & 0);
	return 3;
}
