/* A tracer that waits late: it attaches (PTRACE_ATTACH, TRACECLONE; with
 * the argument "seize", PTRACE_SEIZE) to a grandchild that then starts a
 * thread, and sleeps before each waitpid(-1). By then a new task's first
 * stop (a SIGSTOP, or PTRACE_EVENT_STOP when seized) and its creator's
 * clone event both wait, and Linux reports the newest tracee's first.
 * Prints each stop and the end; the order may differ, the set may not. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

static void *worker(void *arg) {
    usleep(300000);
    return arg;
}

int main(int argc, char **argv) {
    int seize = argc > 1 && !strcmp(argv[1], "seize");
    int fds[2];
    if (pipe(fds))
        return 2;
    pid_t a = fork();
    if (a == 0) {
        pid_t b = fork();
        if (b == 0) {
            usleep(500000); /* time for the tracer to attach */
            pthread_t t;
            pthread_create(&t, 0, worker, 0);
            pthread_join(t, 0);
            _exit(3);
        }
        if (write(fds[1], &b, sizeof b) != sizeof b)
            _exit(2);
        int st;
        waitpid(b, &st, 0);
        _exit(0);
    }
    pid_t b;
    if (read(fds[0], &b, sizeof b) != sizeof b)
        return 2;
    int st;
    if (seize) {
        if (ptrace(PTRACE_SEIZE, b, 0, PTRACE_O_TRACECLONE)) {
            perror("seize");
            return 1;
        }
    } else {
        if (ptrace(PTRACE_ATTACH, b, 0, 0)) {
            perror("attach");
            return 1;
        }
        waitpid(b, &st, __WALL);
        ptrace(PTRACE_SETOPTIONS, b, 0, PTRACE_O_TRACECLONE);
        ptrace(PTRACE_CONT, b, 0, 0);
    }
    for (;;) {
        usleep(200000);
        pid_t p = waitpid(-1, &st, __WALL);
        if (p < 0)
            break;
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            if (p == b) {
                printf("traced exited %d\n", WEXITSTATUS(st));
                break;
            }
            continue;
        }
        int sig = WSTOPSIG(st), event = st >> 16;
        printf("stop of the %s: signal %d event %d\n", p == b ? "leader" : "new thread", sig, event);
        ptrace(PTRACE_CONT, p, 0, 0);
    }
    waitpid(a, &st, 0);
    return 0;
}
