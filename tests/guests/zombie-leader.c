/* zombie-leader [RUNS]: traces a child that starts four threads, joins
 * them and exits; once the child's leader shows as a zombie in
 * /proc/PID/stat, its exit must be reapable at once, as gdb assumes (it
 * takes a zombie leader with no other thread left to wait for as a
 * process gone). Natively a leader becomes a zombie its tracer can reap
 * as soon as its last other thread is reaped. Prints one line per run
 * and the count of runs where the exit could not be reaped at once. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

static void *briefly(void *arg)
{
	(void)arg;
	usleep(1000);
	return NULL;
}

static int is_zombie(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *c = strrchr(buf, ')');
	return c && c[1] == ' ' && c[2] == 'Z';
}

/* One traced child to its end: 1 if its zombie leader could not be
 * reaped at once. */
static int one_run(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		pthread_t t[4];
		for (int i = 0; i < 4; i++)
			pthread_create(&t[i], NULL, briefly, NULL);
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
		_exit(4);
	}
	int st;
	waitpid(pid, &st, 0);
	ptrace(PTRACE_SETOPTIONS, pid, 0,
	       PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL);
	ptrace(PTRACE_CONT, pid, 0, 0);
	int exiting = 0;
	for (;;) {
		pid_t p = waitpid(-1, &st, __WALL | WNOHANG);
		if (p < 0) {
			perror("waitpid");
			return 1;
		}
		if (p == 0) {
			if (exiting && is_zombie(pid)) {
				p = waitpid(pid, &st, __WALL | WNOHANG);
				printf("%s, status %#x\n",
				       p == pid ? "zombie leader reaped at once" : "zombie leader NOT reapable",
				       p == pid ? st : 0);
				if (p != pid) {
					waitpid(pid, &st, __WALL);
					return 1;
				}
				return 0;
			}
			continue;
		}
		if (WIFSTOPPED(st)) {
			int event = st >> 16, sig = WSTOPSIG(st);
			if (p == pid && event == PTRACE_EVENT_EXIT)
				exiting = 1;
			int pass = event || sig == SIGTRAP || sig == SIGSTOP ? 0 : sig;
			ptrace(PTRACE_CONT, p, 0, pass);
			continue;
		}
		if (p == pid) {
			printf("exit reaped before the zombie was seen, status %#x\n", st);
			return 0;
		}
	}
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 20, late = 0;
	setvbuf(stdout, NULL, _IONBF, 0);
	for (int r = 0; r < runs; r++)
		late += one_run();
	printf("runs %d, zombie leader not reapable at once: %d\n", runs, late);
	return late != 0;
}
