/* PR_GET_TID_ADDRESS, then set_tid_address with what it gave (as
 * stress-ng's pthread stressor does) in threads that are then joined: the
 * address must be the thread's own tid word, or pthread_join never wakes. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *worker(void *arg) {
    uint64_t addr = 0;
    if (prctl(PR_GET_TID_ADDRESS, &addr, 0, 0, 0) != 0 || addr == 0)
        return (void *)1;
    syscall(SYS_set_tid_address, NULL);
    long tid = syscall(SYS_set_tid_address, (void *)addr);
    return (void *)(uintptr_t)(tid != syscall(SYS_gettid));
}

int main(void) {
    int bad = 0;
    for (int round = 0; round < 50; round++) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, worker, NULL);
        for (int i = 0; i < 4; i++) {
            void *r;
            pthread_join(t[i], &r);
            bad += r != NULL;
        }
    }
    printf("joined 200 threads, %d wrong addresses\n", bad);
    return bad != 0;
}
