// The time as libc reads it (through the vDSO where the auxiliary vector
// offers one) against the kernel's own answer (a raw system call): each
// vDSO reading must lie between two system-call readings taken around it.
//
//   clock check      checks every clock in this thread, a new thread and a
//                    forked child; prints "vdso 1|0", "check ok", "cpu ok"
//   clock loop N     N clock_gettime calls (for --stats), prints "loop ok"
//   clock bench N    prints the cost of clock_gettime in ns per call
//   clock unmap      moves a page onto part of the vDSO, unmaps it, forks,
//                    then reads where it was
//   clock write      writes into the vDSO: SIGSEGV, reported by a handler
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void fail(const char *what, long long a, long long b, long long c) {
    printf("FAIL %s: %lld %lld %lld\n", what, a, b, c);
    failures++;
}

static long long ns(struct timespec t) {
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static struct timespec sys_clock(clockid_t c) {
    struct timespec t;
    syscall(SYS_clock_gettime, c, &t);
    return t;
}

static const struct {
    clockid_t id;
    const char *name;
} clocks[] = {
    {CLOCK_REALTIME, "realtime"},
    {CLOCK_MONOTONIC, "monotonic"},
    {CLOCK_BOOTTIME, "boottime"},
    {CLOCK_TAI, "tai"},
    {CLOCK_MONOTONIC_RAW, "monotonic_raw"},
    {CLOCK_REALTIME_COARSE, "realtime_coarse"},
    {CLOCK_MONOTONIC_COARSE, "monotonic_coarse"},
};

static void check_clocks(void) {
    for (size_t i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        clockid_t c = clocks[i].id;
        for (int n = 0; n < 1000; n++) {
            struct timespec a = sys_clock(c), v, b;
            clock_gettime(c, &v);
            b = sys_clock(c);
            if (!(ns(a) <= ns(v) && ns(v) <= ns(b))) {
                fail(clocks[i].name, ns(a), ns(v), ns(b));
                break;
            }
        }
        struct timespec r1, r2;
        clock_getres(c, &r1);
        syscall(SYS_clock_getres, c, &r2);
        if (ns(r1) != ns(r2))
            fail("clock_getres", c, ns(r1), ns(r2));
    }
    // Successive readings never go back.
    struct timespec prev, now;
    clock_gettime(CLOCK_MONOTONIC, &prev);
    for (int n = 0; n < 100000; n++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (ns(now) < ns(prev)) {
            fail("monotonic went back", ns(prev), ns(now), n);
            break;
        }
        prev = now;
    }
    struct timeval ta, tv, tb;
    syscall(SYS_gettimeofday, &ta, NULL);
    gettimeofday(&tv, NULL);
    syscall(SYS_gettimeofday, &tb, NULL);
    long long us_a = ta.tv_sec * 1000000LL + ta.tv_usec;
    long long us_v = tv.tv_sec * 1000000LL + tv.tv_usec;
    long long us_b = tb.tv_sec * 1000000LL + tb.tv_usec;
    if (!(us_a <= us_v && us_v <= us_b))
        fail("gettimeofday", us_a, us_v, us_b);
    time_t sa = syscall(SYS_time, NULL), sv = time(NULL), sb = syscall(SYS_time, NULL);
    if (!(sa <= sv && sv <= sb))
        fail("time", sa, sv, sb);
}

// The CPU libc reports (the vDSO's getcpu) must be a CPU of this machine.
static void check_cpu(void) {
    int cpu = sched_getcpu();
    unsigned sys_cpu = 0;
    syscall(SYS_getcpu, &sys_cpu, NULL, NULL);
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    if (cpu < 0 || cpu >= cpus)
        fail("sched_getcpu", cpu, sys_cpu, cpus);
}

static void *thread_main(void *arg) {
    (void)arg;
    check_clocks();
    return NULL;
}

static int check(void) {
    printf("vdso %d\n", getauxval(AT_SYSINFO_EHDR) != 0);
    check_clocks();
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        check_clocks();
        fflush(stdout);
        _exit(failures != 0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("forked child", st, 0, 0);
    printf("check %s\n", failures ? "FAILED" : "ok");
    int before = failures;
    check_cpu();
    printf("cpu %s\n", failures > before ? "FAILED" : "ok");
    return failures != 0;
}

static int loop(long n) {
    struct timespec t, prev = {0, 0};
    for (long i = 0; i < n; i++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (ns(t) < ns(prev))
            fail("loop went back", ns(prev), ns(t), i);
        prev = t;
    }
    printf("loop %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}

static int bench(long n) {
    struct timespec a, b, t;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        clock_gettime(CLOCK_MONOTONIC, &t);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("clock_gettime %.1f ns/call\n", (double)(ns(b) - ns(a)) / n);
    return 0;
}

// Natively a process may unmap its vDSO, whole (a special mapping is
// not split), unless the kernel sealed it; only its own view changes.
static int unmap(void) {
    unsigned long base = getauxval(AT_SYSINFO_EHDR), start = 0, end = 0;
    char line[512];
    FILE *maps = fopen("/proc/self/maps", "r");
    while (maps && fgets(line, sizeof line, maps))
        if (strstr(line, "[vdso]") && sscanf(line, "%lx-%lx", &start, &end) == 2)
            break;
    if (!base || start != base) {
        printf("no vdso\n");
        return 1;
    }
    printf("munmap part %d\n", munmap((void *)base, 4096) == 0 ? 0 : -1);
    // A mapping moved over part of it: the target is unmapped first,
    // which a special mapping refuses.
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *moved = mremap(page, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)base);
    printf("mremap onto part %s\n", moved == MAP_FAILED ? strerror(errno) : "ok");
    int r = munmap((void *)base, end - base);
    printf("munmap %s\n", r == 0 ? "ok" : strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    int st;
    waitpid(pid, &st, 0);
    printf("child %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    fflush(stdout);
    return *(volatile unsigned char *)base; // SIGSEGV
}

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    printf("signal %d code %d at the vdso %d\n", sig, si->si_code,
           si->si_addr == (void *)getauxval(AT_SYSINFO_EHDR));
    _exit(0);
}

// The vDSO is read-only: a write is SIGSEGV SEGV_ACCERR at its address.
static int write_vdso(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    volatile char *p = (char *)getauxval(AT_SYSINFO_EHDR);
    printf("elf magic %c%c%c\n", p[1], p[2], p[3]);
    // The kernel reads it for the program too.
    int null = open("/dev/null", O_WRONLY);
    printf("write from it %zd\n", write(null, (const void *)p, 4096));
    p[0] = 0;
    return 1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "check";
    long n = argc > 2 ? atol(argv[2]) : 1000;
    if (!strcmp(mode, "check"))
        return check();
    if (!strcmp(mode, "loop"))
        return loop(n);
    if (!strcmp(mode, "bench"))
        return bench(n);
    if (!strcmp(mode, "unmap"))
        return unmap();
    if (!strcmp(mode, "write"))
        return write_vdso();
    return 2;
}
