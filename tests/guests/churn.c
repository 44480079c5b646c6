/*
 * churn: many short-lived processes and threads must leave nothing behind.
 * Measures the open descriptors (listed by a child, see descriptors()),
 * those that are KVM VMs (readlink "anon_inode:kvm-vm"), and from
 * /proc/self VmRSS and Threads; warms up with 50 fork
 * and 50 thread cycles; measures ("before"); runs 1000 fork + _exit +
 * waitpid cycles and 1000 pthread_create + join cycles; measures again
 * ("after"). Then checks that no child is left (waitpid(-1) is ECHILD) and
 * that 256 threads can be alive at once (all meet at a barrier). Prints
 * key=value lines. In the sandbox /proc/self is the sandbox process, so
 * this measures the sandbox's own resources.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct usage {
	int fds, vms;
	long rss_kb, threads;
};

/* The value of the `key:` line of /proc/self/status. */
static long status_field(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

/* The descriptors of process `pid` and how many are KVM VMs, listed by
 * another process: the sandbox leaves its own descriptors out of a
 * program's listing of its own, and this measures the sandbox's. */
static void descriptors(pid_t pid, struct usage *u)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		u->fds++;
		char path[400], target[300];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			u->vms += !strcmp(target, "anon_inode:kvm-vm");
		}
	}
	if (d)
		closedir(d);
}

static struct usage measure(void)
{
	struct usage u = {0, 0, 0, 0};
	int p[2];
	pid_t me = getpid();
	if (pipe(p) != 0) {
		perror("pipe");
		exit(1);
	}
	pid_t c = fork();
	if (c == 0) {
		descriptors(me, &u);
		_exit(write(p[1], &u, sizeof(u)) == sizeof(u) ? 0 : 1);
	}
	int status;
	if (c < 0 || read(p[0], &u, sizeof(u)) != sizeof(u) || waitpid(c, &status, 0) != c) {
		perror("measuring descriptors");
		exit(1);
	}
	close(p[0]);
	close(p[1]);
	u.rss_kb = status_field("VmRSS");
	u.threads = status_field("Threads");
	return u;
}

static void *nothing(void *arg)
{
	return arg;
}

static void cycles(int n)
{
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			printf("fork %d: %s\n", i, strerror(errno));
			exit(1);
		}
		if (pid == 0)
			_exit(0);
		int status;
		if (waitpid(pid, &status, 0) != pid || status != 0) {
			printf("waitpid %d: %s status %#x\n", i, strerror(errno),
			       status);
			exit(1);
		}
	}
	for (int i = 0; i < n; i++) {
		pthread_t t;
		int e = pthread_create(&t, NULL, nothing, NULL);
		if (e) {
			printf("pthread_create %d: %s\n", i, strerror(e));
			exit(1);
		}
		pthread_join(t, NULL);
	}
}

static void print(const char *when, struct usage u)
{
	printf("fds_%s=%d\nkvm_vms_%s=%d\nrss_kb_%s=%ld\nthreads_%s=%ld\n",
	       when, u.fds, when, u.vms, when, u.rss_kb, when, u.threads);
}

#define ALIVE 256
static pthread_barrier_t barrier;

static void *meet(void *arg)
{
	pthread_barrier_wait(&barrier);
	return arg;
}

/*
 * A joined thread may still be listed in Threads: for a moment after
 * pthread_join returns the kernel is releasing it (seen natively on a slow
 * CPU). Waits until the count is at most `want`, for at most 2 s: a leak
 * outlasts that.
 */
static void settle(long want)
{
	for (int i = 0; i < 200 && status_field("Threads") > want; i++)
		usleep(10000);
}

int main(void)
{
	cycles(50);
	usleep(100000);
	measure();
	struct usage before = measure();
	cycles(1000);
	settle(before.threads);
	struct usage after = measure();
	print("before", before);
	print("after", after);

	errno = 0;
	pid_t r = waitpid(-1, NULL, WNOHANG);
	printf("waitpid_any=%d\nerrno_echild=%d\n", (int)r, errno == ECHILD);

	pthread_t t[ALIVE];
	pthread_barrier_init(&barrier, NULL, ALIVE + 1);
	for (int i = 0; i < ALIVE; i++) {
		int e = pthread_create(&t[i], NULL, meet, NULL);
		if (e) {
			printf("pthread_create %d of %d: %s\n", i, ALIVE,
			       strerror(e));
			return 1;
		}
	}
	long alive = status_field("Threads");
	pthread_barrier_wait(&barrier);
	for (int i = 0; i < ALIVE; i++)
		pthread_join(t[i], NULL);
	printf("threads_alive_at_once=%ld\n", alive);
	printf("threads_%d=ok\n", ALIVE);
	return 0;
}
