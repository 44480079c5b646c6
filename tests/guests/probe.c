/*
 * probe: one small program, many behaviours, selected by argv[1]. Each
 * prints what it observed so that the tests compare it with the native run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

static __thread int tls_counter = 5;

static int cmd_args(int argc, char **argv)
{
	printf("argc=%d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d]=[%s]\n", i, argv[i]);
	const char *v = getenv("PROBE_VAR");
	printf("PROBE_VAR=[%s]\n", v ? v : "(unset)");
	tls_counter++;
	printf("tls=%d\n", tls_counter);
	return 0;
}

static int cmd_files(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/probe-file", dir);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0)
		return perror("open"), 1;
	printf("first_fd=%d\n", fd);
	const char msg[] = "written in the sandbox\n";
	if (write(fd, msg, sizeof msg - 1) != sizeof msg - 1)
		return perror("write"), 1;
	close(fd);
	char buf[128] = {0};
	fd = open(path, O_RDONLY);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	printf("read=%zd content=%s", n, buf);
	close(fd);
	return unlink(path) == 0 ? 0 : 1;
}

static int cmd_memory(void)
{
	/* malloc large and small (mmap and brk paths), realloc (mremap). */
	char *big = malloc(64 << 20);
	memset(big, 1, 64 << 20);
	big = realloc(big, 128 << 20);
	big[(128 << 20) - 1] = 2;
	void *before = sbrk(0);
	char *small = malloc(1000);
	strcpy(small, "heap");
	void *grown = sbrk(1 << 20);
	memset(grown, 3, 1 << 20);
	printf("brk_grew=%d small=%s big_end=%d\n", sbrk(0) > before, small, big[(128 << 20) - 1]);
	free(big);
	return 0;
}

/* Writes to a page after mprotect(PROT_READ): SIGSEGV natively. */
static int cmd_mprotect(void)
{
	char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p[0] = 1;
	p[4096] = 2;
	mprotect(p, 4096, PROT_READ);
	printf("read_after_protect=%d\n", p[0] + p[4096]);
	fflush(stdout);
	p[0] = 3;
	printf("wrote a read-only page\n");
	return 0;
}

static int cmd_munmap(void)
{
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p[0] = 1;
	munmap(p, 4096);
	printf("unmapped\n");
	fflush(stdout);
	return p[0];
}

/* The sandbox's own descriptors are invisible: closing them fails as for
 * any unused number, and the run goes on. */
static int cmd_fds(void)
{
	struct rlimit r;
	getrlimit(RLIMIT_NOFILE, &r);
	int closed = 0;
	for (long fd = 3; fd < (long)r.rlim_max && fd < (1 << 20); fd++)
		if (close((int)fd) == 0)
			closed++;
	long cr = syscall(SYS_close_range, 3, ~0U, 0);
	int fd = open("/dev/null", O_RDONLY);
	printf("closed=%d close_range=%ld next_fd=%d\n", closed, cr, fd);
	return 0;
}

/* Finds a writable mapping of the sandbox itself and tries to reach it. */
static int cmd_sandbox_memory(void)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long lo = 0;
	while (fgets(line, sizeof line, maps)) {
		unsigned long a, b;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && strstr(line, "/xcr0-sandbox\n") && perms[1] == 'w') {
			lo = a;
			break;
		}
	}
	fclose(maps);
	if (!lo)
		return printf("no sandbox mapping found\n"), 1;
	int zero = open("/dev/zero", O_RDONLY);
	ssize_t n = read(zero, (void *)lo, 16);
	printf("read_into_sandbox=%zd errno=%s\n", n, n < 0 ? strerrorname_np(errno) : "-");
	void *m = mmap((void *)lo, 4096, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("map_fixed_over_sandbox=%s\n", m == MAP_FAILED ? strerrorname_np(errno) : "mapped");
	m = mmap((void *)lo, 4096, PROT_READ, MAP_FIXED_NOREPLACE | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("map_noreplace_over_sandbox=%s\n", m == MAP_FAILED ? strerrorname_np(errno) : "mapped");
	printf("munmap_sandbox=%d\n", munmap((void *)lo, 4096));
	int f = open("/proc/self/cmdline", O_RDONLY);
	printf("ioctl_into_sandbox=%s\n", ioctl(f, 0x5460 /* FIOQSIZE */, (void *)lo) < 0 ? strerrorname_np(errno) : "done");
	fflush(stdout);
	*(volatile char *)lo = 1;
	printf("wrote into the sandbox\n");
	return 0;
}

static int cmd_auxv(void)
{
	printf("pagesz=%lu\n", getauxval(AT_PAGESZ));
	printf("minsigstksz=%lu\n", getauxval(AT_MINSIGSTKSZ));
	printf("hwcap=%#lx\n", getauxval(AT_HWCAP));
	printf("hwcap2=%#lx\n", getauxval(AT_HWCAP2));
	printf("platform=%s\n", (char *)getauxval(AT_PLATFORM));
	printf("execfn=%s\n", (char *)getauxval(AT_EXECFN));
	printf("entry_set=%d random_set=%d\n", getauxval(AT_ENTRY) != 0, getauxval(AT_RANDOM) != 0);
	/* The keys in the order the vector holds them, as /proc/self/auxv
	 * (and gdb's `info auxv`) shows them. */
	unsigned long kv[2];
	int f = open("/proc/self/auxv", O_RDONLY);
	printf("keys=");
	while (f >= 0 && read(f, kv, sizeof kv) == sizeof kv && kv[0])
		printf("%lu ", kv[0]);
	printf("\n");
	return 0;
}

static void on_usr1(int sig) { (void)sig; }

/* Descriptors of this process at the top of the table, fetched through a
 * pidfd, and /proc/self/mem: the sandbox's are not the program's. */
static int cmd_steal(void)
{
	struct rlimit r;
	getrlimit(RLIMIT_NOFILE, &r);
	int pidfd = syscall(SYS_pidfd_open, getpid(), 0);
	int got = 0;
	for (long fd = (long)r.rlim_max - 300; fd < (long)r.rlim_max; fd++)
		if (fd > 2 && syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0) >= 0)
			got++;
	printf("pidfd_getfd_high=%d\n", got);
	return 0;
}

/* The program's own /proc/self/mem, as gdb uses it: its variables
 * written and read at their addresses, a transfer cut where a mapping
 * ends, EIO outside the program (in the sandbox: where the sandbox's own
 * executable is mapped), a read-only page written (FOLL_FORCE), the file
 * position, a duplicate, a reopened O_PATH descriptor, a thread's file,
 * and a fork child writing its parent's memory through the inherited
 * descriptor. */
static volatile int mem_var = 1;

static void mem_result(const char *what, long r)
{
	printf("%s: %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
}

static int cmd_mem(void)
{
	int fd = open("/proc/self/mem", O_RDWR);
	if (fd < 0)
		return perror("open /proc/self/mem"), 1;
	int two = 2, got = 0;
	mem_result("pwrite of a variable", pwrite(fd, &two, 4, (off_t)&mem_var));
	printf("variable now %d\n", mem_var);
	mem_result("pread of it", pread(fd, &got, 4, (off_t)&mem_var));
	printf("read %d\n", got);
	char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(p, 'a', 4096);
	munmap(p + 4096, 4096);
	static char buf[8192];
	mem_result("pread across a mapping's end", pread(fd, buf, 8192, (off_t)p));
	mem_result("pread past it", pread(fd, buf, 16, (off_t)(p + 4096)));
	/* The sandbox's executable where it is mapped; natively nothing. */
	unsigned long outside = (unsigned long)p + 4096, start, end;
	char line[512];
	FILE *maps = fopen("/proc/self/maps", "r");
	while (maps && fgets(line, sizeof line, maps))
		if (strstr(line, "xcr0-sandbox") && sscanf(line, "%lx-%lx", &start, &end) == 2) {
			outside = start;
			break;
		}
	if (maps)
		fclose(maps);
	mem_result("pread outside the program", pread(fd, buf, 16, (off_t)outside));
	mem_result("pwrite outside the program", pwrite(fd, buf, 16, (off_t)outside));
	mprotect(p, 4096, PROT_READ);
	mem_result("pwrite of a read-only page", pwrite(fd, "b", 1, (off_t)p));
	printf("read-only page now %c\n", p[0]);
	lseek(fd, (off_t)&mem_var, SEEK_SET);
	mem_result("read at the file position", read(fd, &got, 4));
	printf("read %d\n", got);
	lseek(fd, (off_t)outside, SEEK_SET);
	mem_result("write at a position outside", write(fd, &two, 4));
	struct iovec iov[2] = { { buf, 100 }, { buf + 100, 100 } };
	mem_result("preadv in the program", preadv(fd, iov, 2, (off_t)p));
	int dup_fd = dup(fd);
	mem_result("duplicate's pread outside", pread(dup_fd, buf, 16, (off_t)outside));
	int path_fd = open("/proc/self/mem", O_PATH);
	char name[64];
	snprintf(name, sizeof name, "/proc/self/fd/%d", path_fd);
	int reopened = open(name, O_RDONLY);
	mem_result("reopened O_PATH's pread outside", reopened < 0 ? -1 : pread(reopened, buf, 16, (off_t)outside));
	snprintf(name, sizeof name, "/proc/self/task/%d/mem", gettid());
	int task = open(name, O_RDWR);
	mem_result("thread's file: pread of the variable", task < 0 ? -1 : pread(task, &got, 4, (off_t)&mem_var));
	mem_result("thread's file: pwrite outside", task < 0 ? -1 : pwrite(task, buf, 16, (off_t)outside));
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int seven = 7;
		long w = pwrite(fd, &seven, 4, (off_t)&mem_var);
		long o = pwrite(fd, buf, 16, (off_t)outside);
		printf("child: pwrite of the variable %ld, outside %ld %s, own variable %d\n", w, o,
		       o < 0 ? strerror(errno) : "", mem_var);
		fflush(stdout);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("parent's variable after the child's write: %d\n", mem_var);
	return 0;
}

/* Huge reservations and sparse use of a huge writable mapping, then a
 * write to a part made read-only: SIGSEGV. */
static int cmd_huge(void)
{
	size_t sz = 64UL << 30;
	char *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	void *r = mmap(NULL, 1UL << 40, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED || r == MAP_FAILED)
		return perror("mmap"), 1;
	for (size_t off = 0; off < sz; off += 1UL << 30)
		p[off] = 1;
	p[sz - 1] = 2;
	printf("huge=%d,%d\n", p[0], p[sz - 1]);
	fflush(stdout);
	mprotect(p, 1UL << 30, PROT_READ);
	p[4096] = 3;
	return 0;
}

static int recurse(int depth)
{
	volatile char frame[4096];
	frame[0] = (char)depth;
	return depth ? recurse(depth - 1) + frame[0] : 0;
}

static int cmd_signals(void)
{
	struct sigaction sa;
	sigaction(SIGINT, NULL, &sa);
	printf("sigint_ignored=%d\n", sa.sa_handler == SIG_IGN);
	signal(SIGTRAP, SIG_IGN);
	raise(SIGTRAP);
	printf("survived_ignored_sigtrap=1\n");
	fflush(stdout);
	raise(SIGBUS);
	printf("survived SIGBUS\n");
	return 0;
}

/* Across execve: close-on-exec descriptors close, others stay; handled
 * signals revert to default, ignored ones stay ignored. */
static int cmd_exec(char **argv)
{
	int keep = open("/dev/null", O_RDONLY);
	int drop = open("/dev/null", O_RDONLY | O_CLOEXEC);
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, SIG_IGN);
	char a[16], b[16];
	snprintf(a, sizeof a, "%d", keep);
	snprintf(b, sizeof b, "%d", drop);
	char *args[] = {argv[0], "after-exec", a, b, NULL};
	execv("/proc/self/exe", args);
	perror("execv");
	return 1;
}

static int cmd_after_exec(char **argv)
{
	struct sigaction usr1, usr2;
	sigaction(SIGUSR1, NULL, &usr1);
	sigaction(SIGUSR2, NULL, &usr2);
	printf("kept_fd_open=%d dropped_fd_open=%d usr1_default=%d usr2_ignored=%d tls=%d\n",
	       fcntl(atoi(argv[2]), F_GETFD) >= 0, fcntl(atoi(argv[3]), F_GETFD) >= 0,
	       usr1.sa_handler == SIG_DFL, usr2.sa_handler == SIG_IGN, tls_counter);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "args";
	if (!strcmp(cmd, "args"))
		return cmd_args(argc, argv);
	if (!strcmp(cmd, "exit"))
		return atoi(argv[2]);
	if (!strcmp(cmd, "files"))
		return cmd_files(argv[2]);
	if (!strcmp(cmd, "memory"))
		return cmd_memory();
	if (!strcmp(cmd, "mprotect"))
		return cmd_mprotect();
	if (!strcmp(cmd, "munmap"))
		return cmd_munmap();
	if (!strcmp(cmd, "fds"))
		return cmd_fds();
	if (!strcmp(cmd, "sandbox-memory"))
		return cmd_sandbox_memory();
	if (!strcmp(cmd, "auxv"))
		return cmd_auxv();
	if (!strcmp(cmd, "huge"))
		return cmd_huge();
	if (!strcmp(cmd, "steal"))
		return cmd_steal();
	if (!strcmp(cmd, "mem"))
		return cmd_mem();
	if (!strcmp(cmd, "signals"))
		return cmd_signals();
	if (!strcmp(cmd, "deep-stack")) /* 24 MiB of frames */
		return printf("recursed=%d\n", recurse(6000) >= 0), 0;
	if (!strcmp(cmd, "exec"))
		return cmd_exec(argv);
	if (!strcmp(cmd, "after-exec"))
		return cmd_after_exec(argv);
	if (!strcmp(cmd, "segv"))
		return *(volatile int *)8;
	if (!strcmp(cmd, "abort"))
		abort();
	if (!strcmp(cmd, "ud2"))
		__builtin_trap();
	if (!strcmp(cmd, "port-io")) /* #GP at CPL3 with IOPL 0: SIGSEGV */
		__asm__ volatile("outb %%al, $0x10" : : "a"(0));
	if (!strcmp(cmd, "sigterm-self"))
		return kill(getpid(), SIGTERM);
	fprintf(stderr, "probe: unknown command %s\n", cmd);
	return 2;
}
