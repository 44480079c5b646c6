/* perf-events: perf_event_open on the calling thread, as a profiler or rr
 * uses it. Software counters (task-clock, context switches) counted over
 * known work; a counter's overflow signal delivered to this thread
 * (O_ASYNC, F_SETSIG, F_SETOWN_EX with the tid) with its siginfo; the
 * ioctls rr uses (RESET, ENABLE, DISABLE, PERIOD, ID); page-fault
 * counters over new pages touched, on this thread, another thread, a child
 * process, a thread they follow, across an exec, and rusage's faults
 * meanwhile; hardware events' answer on this machine; errors. Prints what it sees as facts that hold natively on
 * any machine. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/hw_breakpoint.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long open_event(struct perf_event_attr *a, pid_t pid, int cpu, int group)
{
	return syscall(SYS_perf_event_open, a, pid, cpu, group, PERF_FLAG_FD_CLOEXEC);
}

static struct perf_event_attr attr(unsigned type, unsigned long long config)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.type = type;
	a.config = config;
	a.disabled = 1;
	return a;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* This thread's CPU time. */
static double cpu_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static volatile unsigned long sink;

/* Spins for `ms` of this thread's CPU time (at most 10 s of wall time,
 * however loaded the machine). */
static void spin_ms(double ms)
{
	double end = cpu_ms() + ms, give_up = now_ms() + 10000;
	while (cpu_ms() < end && now_ms() < give_up)
		for (int i = 0; i < 1000; i++)
			sink += i;
}

static uint64_t count(int fd)
{
	uint64_t v = 0;
	if (read(fd, &v, sizeof v) != sizeof v)
		return (uint64_t)-1;
	return v;
}

static volatile int overflows, last_code, last_fd;

static void on_overflow(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	overflows++;
	last_code = si->si_code;
	last_fd = si->si_fd;
}

/* New pages, each its own fault (no transparent huge pages). */
static char *fresh(long pages)
{
	char *p = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(p, pages * 4096, MADV_NOHUGEPAGE);
	return p;
}

/* Touches each page once: one minor fault each. */
static void touch(char *p, long pages)
{
	for (long i = 0; i < pages; i++)
		p[i * 4096] = 1;
}

/* Minor faults in getrusage(who). */
static uint64_t minflt(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return ru.ru_minflt;
}

/* A child's own faults besides its 1000 pages: its start from a fork
 * (natively a few dozen; a sandbox's copy of itself, some hundred). */
#define CHILD_AT_MOST 1500

static int within(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v >= lo && v <= hi;
}

static volatile pid_t toucher_tid;
static int go[2];

/* Says its id, waits for the word, touches 1000 new pages. */
static void *toucher(void *arg)
{
	(void)arg;
	char *p = fresh(1000);
	toucher_tid = (pid_t)syscall(SYS_gettid);
	char c;
	if (read(go[0], &c, 1) == 1)
		touch(p, 1000);
	return NULL;
}

static void *touch_1000(void *arg)
{
	touch(arg, 1000);
	return NULL;
}

enum end { EXITS, KILLED, STOPS };

/* A child that, told to through pipe `told`, touches 1000 new pages, then
 * ends as `how` says; `*fd` is counter `a` opened on it before it was
 * told. */
static pid_t counted_child(struct perf_event_attr *a, enum end how, int told[2], int *fd)
{
	pid_t kid = fork();
	if (kid == 0) {
		char c;
		char *p = fresh(1000);
		alarm(120);
		if (read(told[0], &c, 1) == 1)
			touch(p, 1000);
		if (how == KILLED)
			kill(getpid(), SIGKILL);
		if (how == STOPS)
			raise(SIGSTOP);
		_exit(0);
	}
	*fd = open_event(a, kid, -1, -1);
	if (kid < 0 || write(told[1], "x", 1) != 1) {
		perror("counted child");
		exit(1);
	}
	return kid;
}

static void page_faults(void)
{
	struct perf_event_attr a = attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS);
	int all = open_event(&a, 0, -1, -1);
	a.config = PERF_COUNT_SW_PAGE_FAULTS_MIN;
	int min = open_event(&a, 0, -1, -1);
	a.config = PERF_COUNT_SW_PAGE_FAULTS_MAJ;
	int maj = open_event(&a, 0, -1, -1);
	char *p = fresh(2000);
	uint64_t self0 = minflt(RUSAGE_SELF), thread0 = minflt(RUSAGE_THREAD);
	ioctl(all, PERF_EVENT_IOC_ENABLE, 0);
	ioctl(min, PERF_EVENT_IOC_ENABLE, 0);
	ioctl(maj, PERF_EVENT_IOC_ENABLE, 0);
	touch(p, 2000);
	ioctl(all, PERF_EVENT_IOC_DISABLE, 0);
	ioctl(min, PERF_EVENT_IOC_DISABLE, 0);
	ioctl(maj, PERF_EVENT_IOC_DISABLE, 0);
	printf("page faults over 2000 new pages: 2000 to 2100: %d, minor too: %d, major: %d\n",
	       within(count(all), 2000, 2100), within(count(min), 2000, 2100), (int)count(maj));
	uint64_t self1 = minflt(RUSAGE_SELF), thread1 = minflt(RUSAGE_THREAD);
	printf("rusage over them, counted once: 2000 to 2100: process %d, thread %d\n",
	       within(self1 - self0, 2000, 2100), within(thread1 - thread0, 2000, 2100));
	fprintf(stderr, "rusage: process %lu thread %lu\n", self1 - self0, thread1 - thread0);

	/* An overflow signal every 100 faults. */
	overflows = 0;
	a = attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS);
	a.sample_period = 100;
	a.wakeup_events = 1;
	int ov = open_event(&a, 0, -1, -1);
	struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = (pid_t)syscall(SYS_gettid)};
	fcntl(ov, F_SETFL, O_ASYNC);
	fcntl(ov, F_SETSIG, SIGUSR1);
	fcntl(ov, F_SETOWN_EX, &owner);
	p = fresh(1000);
	ioctl(ov, PERF_EVENT_IOC_ENABLE, 0);
	touch(p, 1000);
	ioctl(ov, PERF_EVENT_IOC_DISABLE, 0);
	printf("overflow signals over 1000 new pages every 100 faults: 9 to 11: %d\n",
	       overflows >= 9 && overflows <= 11);

	/* On another thread, by its id. */
	pthread_t t;
	if (pipe(go) != 0 || pthread_create(&t, NULL, toucher, NULL) != 0)
		return;
	while (!toucher_tid)
		usleep(100);
	a = attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS);
	a.disabled = 0;
	int other = open_event(&a, toucher_tid, -1, -1);
	if (write(go[1], "x", 1) != 1)
		return;
	pthread_join(t, NULL);
	printf("page faults of another thread over 1000 new pages: 1000 to 1100: %d\n",
	       within(count(other), 1000, 1100));

	/* On a child process, by its id (as `perf stat` counts its command). */
	a.inherit = 0;
	int child, status;
	struct rusage ru;
	pid_t kid = counted_child(&a, EXITS, go, &child);
	uint64_t children0 = minflt(RUSAGE_CHILDREN);
	wait4(kid, &status, 0, &ru);
	/* The child's own faults count too: a sandbox's some dozen more (its
	 * copy-on-write faults after the fork). */
	printf("page faults of a child process over 1000 new pages: 1000 to 1200: %d\n",
	       within(count(child), 1000, 1200));
	uint64_t children = minflt(RUSAGE_CHILDREN) - children0;
	printf("its rusage, counted once: 1000 to %d: wait4 %d, RUSAGE_CHILDREN %d\n", CHILD_AT_MOST,
	       within(ru.ru_minflt, 1000, CHILD_AT_MOST), within(children, 1000, CHILD_AT_MOST));
	fprintf(stderr, "rusage: wait4 %lu children %lu\n", ru.ru_minflt, children);

	/* Killed outright, it leaves its count all the same. */
	int killed;
	kid = counted_child(&a, KILLED, go, &killed);
	children0 = minflt(RUSAGE_CHILDREN);
	wait4(kid, &status, 0, &ru);
	children = minflt(RUSAGE_CHILDREN) - children0;
	printf("a child killed by SIGKILL over 1000 new pages: counted 1000 to 1200: %d; "
	       "its rusage 1000 to %d: wait4 %d, RUSAGE_CHILDREN %d\n",
	       within(count(killed), 1000, 1200), CHILD_AT_MOST,
	       WIFSIGNALED(status) && within(ru.ru_minflt, 1000, CHILD_AT_MOST),
	       within(children, 1000, CHILD_AT_MOST));
	fprintf(stderr, "rusage: killed: wait4 %lu children %lu\n", ru.ru_minflt, children);

	/* Stopped: a wait reports the rusage it has so far. */
	int stopped;
	kid = counted_child(&a, STOPS, go, &stopped);
	wait4(kid, &status, WUNTRACED, &ru);
	printf("a stopped child over 1000 new pages: counted 1000 to 1200: %d; "
	       "its rusage in WUNTRACED's wait4 1000 to %d: %d\n",
	       within(count(stopped), 1000, 1200), CHILD_AT_MOST,
	       WIFSTOPPED(status) && within(ru.ru_minflt, 1000, CHILD_AT_MOST));
	fprintf(stderr, "rusage: stopped: wait4 %lu\n", ru.ru_minflt);
	kill(kid, SIGKILL);
	waitpid(kid, &status, 0);
	close(child);
	close(killed);
	close(stopped);

	/* Followed into a thread made after (attr.inherit). */
	a.inherit = 1;
	int inh = open_event(&a, 0, -1, -1);
	p = fresh(1000);
	uint64_t before = count(inh);
	pthread_create(&t, NULL, touch_1000, p);
	pthread_join(t, NULL);
	printf("an inherited counter over a new thread's 1000 new pages: 1000 to 1200: %d\n",
	       within(count(inh) - before, 1000, 1200));
	close(inh);

	/* Across an exec: the new image counts its own new pages. */
	pid_t c = fork();
	if (c == 0) {
		a.inherit = 0;
		int fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
		p = fresh(1000);
		touch(p, 1000);
		/* A counted child, left to the new image to reap. */
		int ready[2], counted;
		if (pipe(ready) != 0)
			_exit(126);
		pid_t g = counted_child(&a, EXITS, ready, &counted);
		char arg[16], had[24], kid[16];
		snprintf(arg, sizeof arg, "%d", fd);
		snprintf(had, sizeof had, "%lu", (unsigned long)minflt(RUSAGE_SELF));
		snprintf(kid, sizeof kid, "%d", g);
		execl("/proc/self/exe", "perf-events", "exec", arg, had, kid, (char *)0);
		_exit(127);
	}
	int st;
	waitpid(c, &st, 0);
}

/* The new image after an exec kept counter `fd`; `kid` is a counted
 * child the old image made. */
static int after_exec(int fd, uint64_t had, pid_t kid)
{
	struct rusage ru;
	int status;
	wait4(kid, &status, 0, &ru);
	printf("a counted child the old image made, reaped by the new: "
	       "its rusage 1000 to %d: %d\n",
	       CHILD_AT_MOST, WIFEXITED(status) && within(ru.ru_minflt, 1000, CHILD_AT_MOST));
	fprintf(stderr, "rusage: reaped after exec: wait4 %lu\n", ru.ru_minflt);

	/* The exec's own faults: natively some dozen, a sandbox's new image
	 * some hundred; the 1000 taken before would show here twice. */
	uint64_t exec_faults = minflt(RUSAGE_SELF) - had;
	printf("rusage goes on across an exec: its own faults at most 600: %d\n",
	       exec_faults <= 600);
	fprintf(stderr, "rusage: exec %lu\n", (unsigned long)exec_faults);
	char *p = fresh(1000);
	uint64_t before = count(fd);
	touch(p, 1000);
	printf("after an exec, the counter kept over 1000 new pages: 1000 to 1100: %d\n",
	       within(count(fd) - before, 1000, 1100));
	return 0;
}

/* breakpoint: a hardware breakpoint event on this thread over ten writes
 * to a variable (`perf stat -e mem:ADDR:w`). */
static volatile long watched;
static int breakpoint(void)
{
	struct perf_event_attr a = attr(PERF_TYPE_BREAKPOINT, 0);
	a.bp_type = HW_BREAKPOINT_W;
	a.bp_addr = (unsigned long)&watched;
	a.bp_len = HW_BREAKPOINT_LEN_8;
	a.exclude_kernel = 1;
	long fd = open_event(&a, 0, -1, -1);
	if (fd < 0) {
		printf("breakpoint event: %s\n", strerror(errno));
		return 0;
	}
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	for (int i = 0; i < 10; i++)
		watched = i;
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	printf("breakpoint event: %llu of 10 writes\n", (unsigned long long)count(fd));
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Bounded: a child's stop or death a wait never sees ends the run
	 * (SIGALRM) rather than hanging it. */
	alarm(120);
	if (argc == 2 && !strcmp(argv[1], "breakpoint"))
		return breakpoint();
	if (argc == 5 && !strcmp(argv[1], "exec"))
		return after_exec(atoi(argv[2]), strtoull(argv[3], NULL, 10), atoi(argv[4]));

	struct perf_event_attr a = attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK);
	int clock = open_event(&a, 0, -1, -1);
	if (clock < 0) {
		printf("task-clock: %s\n", strerror(errno));
		return 1;
	}
	ioctl(clock, PERF_EVENT_IOC_RESET, 0);
	double cpu0 = cpu_ms();
	ioctl(clock, PERF_EVENT_IOC_ENABLE, 0);
	spin_ms(50);
	ioctl(clock, PERF_EVENT_IOC_DISABLE, 0);
	double cpu = cpu_ms() - cpu0;
	uint64_t ns = count(clock);
	printf("task-clock over 50 ms of spinning: within 20%% of the thread's CPU time: %d\n",
	       ns / 1e6 > 0.8 * cpu && ns / 1e6 < 1.2 * cpu);
	spin_ms(20);
	printf("task-clock disabled does not move: %d\n", count(clock) == ns);
	uint64_t id = 0;
	printf("PERF_EVENT_IOC_ID: %d\n", ioctl(clock, PERF_EVENT_IOC_ID, &id));

	a = attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES);
	int cs = open_event(&a, 0, -1, -1);
	ioctl(cs, PERF_EVENT_IOC_ENABLE, 0);
	for (int i = 0; i < 10; i++)
		usleep(2000);
	ioctl(cs, PERF_EVENT_IOC_DISABLE, 0);
	printf("context switches over 10 sleeps: at least 10: %d\n", count(cs) >= 10);

	/* Overflow signals, as rr's ticks counter uses them: every 2 ms of
	 * task-clock, SIGUSR1 to this thread with POLL_IN and the fd. */
	struct sigaction sa = {.sa_sigaction = on_overflow, .sa_flags = SA_SIGINFO | SA_RESTART};
	sigaction(SIGUSR1, &sa, NULL);
	a = attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK);
	a.sample_period = 2000000;
	a.wakeup_events = 1;
	int ov = open_event(&a, 0, -1, -1);
	struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = (pid_t)syscall(SYS_gettid)};
	int r = fcntl(ov, F_SETFL, O_ASYNC);
	r |= fcntl(ov, F_SETSIG, SIGUSR1);
	r |= fcntl(ov, F_SETOWN_EX, &owner);
	struct f_owner_ex back;
	r |= fcntl(ov, F_GETOWN_EX, &back);
	printf("fcntl O_ASYNC, F_SETSIG, F_SETOWN_EX: %d, owner is this thread %d\n", r,
	       back.type == F_OWNER_TID && back.pid == owner.pid);
	ioctl(ov, PERF_EVENT_IOC_ENABLE, 0);
	spin_ms(60);
	ioctl(ov, PERF_EVENT_IOC_DISABLE, 0);
	printf("overflow signals over 60 ms every 2 ms: at least 5: %d; si_code POLL_IN %d, "
	       "si_fd the counter's %d\n",
	       overflows >= 5, last_code == POLL_IN, last_fd == ov);
	uint64_t period = 1000000;
	printf("PERF_EVENT_IOC_PERIOD: %d\n", ioctl(ov, PERF_EVENT_IOC_PERIOD, &period));

	page_faults();

	/* Hardware events: this machine's answer (no PMU: ENOENT). */
	a = attr(PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS);
	a.exclude_kernel = 1;
	long hw = open_event(&a, 0, -1, -1);
	printf("hardware instructions: %s\n", hw < 0 ? strerror(errno) : "opened");
	/* rr's ticks: retired conditional branches, a raw event. */
	a = attr(PERF_TYPE_RAW, 0x5101c4);
	a.exclude_kernel = 1;
	a.exclude_guest = 1;
	a.sample_period = 1ULL << 40;
	hw = open_event(&a, 0, -1, -1);
	printf("raw conditional branches: %s\n", hw < 0 ? strerror(errno) : "opened");

	/* Errors. */
	a = attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK);
	errno = 0;
	long e = syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
	printf("NULL attr: %ld %s\n", e, strerror(errno));
	e = syscall(SYS_perf_event_open, &a, 0, -1, -1, 1UL << 20);
	printf("unknown flag: %ld %s\n", e, strerror(errno));
	e = syscall(SYS_perf_event_open, &a, -1, -1, -1, 0);
	printf("no task, no CPU: %ld %s\n", e, strerror(errno));
	e = syscall(SYS_perf_event_open, &a, 0, -1, 12345, 0);
	printf("group fd not open: %ld %s\n", e, strerror(errno));
	a.size = 7;
	e = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
	printf("size 7: %ld %s, size now %u\n", e, strerror(errno), a.size);
	return 0;
}
