/*
 * pointers: the pointer arguments the sandbox reads or bounds itself
 * (strings, iovec arrays, the /proc/self/exe alias), where a mistake
 * shows: at the end of a mapping, and in fork and vfork children, which
 * must read their own memory. Prints only what is the same on every run
 * and natively.
 *
 *   pointers edges      strings and iovecs ending at a mapping's end
 *   pointers children   the same reads in fork and vfork children
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static long page;

/* A readable, writable page with nothing mapped after it. */
static char *last_page(void)
{
	char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	munmap(p + page, page);
	return p;
}

/* `s` copied to end exactly at the end of `pg` (its NUL the last byte). */
static char *at_end(char *pg, const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(pg + page - n, s, n);
}

static const char *err(int r)
{
	return r < 0 ? strerror(errno) : "ok";
}

/* Whether readlink of `link` names the same file as /proc/self/exe read
 * from ordinary memory. */
static int same_exe(const char *link)
{
	char want[PATH_MAX], got[PATH_MAX];
	ssize_t w = readlink("/proc/self/exe", want, sizeof(want));
	ssize_t g = readlink(link, got, sizeof(got));
	return w > 0 && w == g && memcmp(want, got, w) == 0;
}

/* Writes "abcdefgh" to stdout through eight one-byte iovecs stored at
 * `iov`; returns what writev returned. */
static ssize_t eight(struct iovec *iov)
{
	static char b[] = "abcdefgh";
	for (int i = 0; i < 8; i++) {
		iov[i].iov_base = b + i;
		iov[i].iov_len = 1;
	}
	ssize_t n = writev(1, iov, 8);
	printf("\n");
	return n;
}

static void edges(void)
{
	char *pg = last_page();
	printf("path ending at the end: %s\n",
	       err(access(at_end(pg, "/etc/passwd"), F_OK)));
	memset(pg, 'a', page);
	printf("path running off the end: %s\n",
	       err(access(pg + page - 100, F_OK)));
	char *big = malloc(3 * PATH_MAX);
	memset(big, 'a', 3 * PATH_MAX - 1);
	big[3 * PATH_MAX - 1] = 0;
	printf("path longer than PATH_MAX: %s\n", err(access(big, F_OK)));
	printf("exe alias ending at the end: %d\n",
	       same_exe(at_end(pg, "/proc/self/exe")));
	char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("exe alias across a page: %d\n",
	       same_exe(strcpy(two + page - 5, "/proc/self/exe")));
	char pid_exe[64];
	snprintf(pid_exe, sizeof(pid_exe), "/proc/%d/exe", getpid());
	printf("exe alias by pid: %d\n", same_exe(pid_exe));
	memset(pg, 0, page);
	struct iovec *iov = (struct iovec *)(pg + page) - 8;
	printf("iovecs ending at the end: %zd\n", eight(iov));
	printf("iovecs running off the end: %s\n",
	       err(writev(1, iov + 1, 8)));
	iov[0].iov_base = pg + page;
	printf("an iovec's buffer unmapped: %s\n", err(writev(1, iov, 8)));
	/* More than the sandbox reads at once. */
	static struct iovec many[300];
	static char bytes[300];
	for (int i = 0; i < 300; i++) {
		many[i].iov_base = bytes + i;
		many[i].iov_len = 1;
	}
	int fd = open("/dev/zero", O_RDONLY);
	memset(bytes, 1, sizeof(bytes));
	ssize_t n = readv(fd, many, 300);
	printf("300 iovecs read: %zd, zeroed: %d\n", n,
	       memchr(bytes, 1, sizeof(bytes)) == NULL);
	many[0].iov_base = pg + page;
	printf("the first of 300 unmapped: %s\n", err(readv(fd, many, 300)));
}

/* In a child: the reads name the child's memory. `iov` was left with an
 * unmapped buffer by the parent; the child mends it in its own copy. */
static int child_reads(struct iovec *iov, char *path)
{
	memcpy(path, "/proc/self/exe", 15);
	ssize_t n = eight(iov);
	return n == 8 && same_exe(path) ? 0 : 1;
}

static void reap(const char *what, pid_t pid)
{
	int status;
	if (waitpid(pid, &status, 0) != pid)
		printf("%s: waitpid: %s\n", what, strerror(errno));
	else
		printf("%s: status %#x\n", what, status);
}

static void children(void)
{
	char *pg = last_page();
	struct iovec *iov = (struct iovec *)pg;
	char *path = pg + page / 2;
	/* The parent's copy: a buffer nobody maps, a path that is no alias. */
	iov[0].iov_base = pg + page;
	iov[0].iov_len = 1;
	strcpy(path, "/nonexistent");

	pid_t pid = fork();
	if (pid == 0)
		_exit(child_reads(iov, path));
	reap("fork child", pid);
	printf("parent's iovec after the fork child: %s\n",
	       err(writev(1, iov, 1)));

	pid = vfork();
	if (pid == 0)
		_exit(child_reads(iov, path));
	reap("vfork child", pid);
	printf("parent's path after the vfork child: %d\n", same_exe(path));

	char *echo[] = {"/bin/echo", "spawned", NULL};
	if (posix_spawn(&pid, echo[0], NULL, NULL, echo, environ) == 0)
		reap("posix_spawn", pid);
	printf("after posix_spawn: %zd\n", eight(iov));
	printf("exe after posix_spawn: %d\n", same_exe("/proc/self/exe"));
}

int main(int argc, char **argv)
{
	page = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "edges") == 0)
		edges();
	else if (argc == 2 && strcmp(argv[1], "children") == 0)
		children();
	else
		return 2;
	return 0;
}
