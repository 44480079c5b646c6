/* read-loop N SIZE: N read()s of SIZE bytes from /dev/zero; prints ns per
 * read. Timed inside, so process startup is excluded. In the sandbox the
 * buffer is a pointer argument: the call shows what checking and copying
 * a pointer costs beside a pointer-free call such as getppid. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000;
	long size = argc > 2 ? atol(argv[2]) : 1;
	char *buf = malloc(size > 0 ? size : 1);
	int fd = open("/dev/zero", O_RDONLY);
	if (!buf || fd < 0 || size < 1) {
		perror("read-loop: /dev/zero");
		return 1;
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		if (read(fd, buf, size) != size) {
			perror("read-loop: read");
			return 1;
		}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.0f\n", ns / n);
	return 0;
}
