/* glibc's own two signals in a threaded program: setgroups broadcasts
 * SIGSETXID (33) so that every thread changes its credentials, and
 * pthread_cancel sends SIGCANCEL (32) to a thread blocked in pause(). */
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void *blocked(void *arg) {
    for (;;)
        pause();
    return arg;
}

/* The Groups: line of thread `tid`, as the kernel keeps it per thread. */
static void groups_of(pid_t tid, char *out, size_t n) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    out[0] = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Groups:", 7))
            snprintf(out, n, "%s", line);
    if (f)
        fclose(f);
}

static pid_t worker_tid;
static void *report_tid(void *arg) {
    worker_tid = gettid();
    for (;;)
        pause();
    return arg;
}

int main(void) {
    pthread_t t, w;
    pthread_create(&w, NULL, report_tid, NULL);
    while (!__atomic_load_n(&worker_tid, __ATOMIC_SEQ_CST))
        usleep(1000);
    gid_t list[] = {1, 2, 3};
    printf("setgroups=%d\n", setgroups(3, list));
    char mine[256], theirs[256];
    groups_of(gettid(), mine, sizeof mine);
    groups_of(worker_tid, theirs, sizeof theirs);
    printf("main %sworker %s", mine, theirs);

    pthread_create(&t, NULL, blocked, NULL);
    usleep(50000);
    void *r;
    printf("cancel=%d\n", pthread_cancel(t));
    printf("join=%d canceled=%d\n", pthread_join(t, &r), r == PTHREAD_CANCELED);
    return 0;
}
