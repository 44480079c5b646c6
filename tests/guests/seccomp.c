/* seccomp MODE: the program's own seccomp, one scenario per mode, printing
 * what it sees so that a native run and a sandboxed one can be compared.
 *   errors   what seccomp(2) and PR_SET_SECCOMP refuse, and why
 *   actions  ERRNO, LOG, ALLOW, USER_NOTIF without a listener, TRACE without
 *            a tracer, precedence among filters, arguments and arch seen
 *   trap     TRAP: SIGSYS's siginfo and registers, emulated by the handler
 *   kill-thread, kill-process, strict, strict-exit: how each ends
 *   threads  inheritance by a new thread, TSYNC and its failures
 *   fork     inheritance by a fork child and across exec
 *   trace    a tracer's PTRACE_EVENT_SECCOMP: message, syscall info, the
 *            call changed and skipped, its order among syscall stops
 *   suspend  PTRACE_O_SUSPEND_SECCOMP: the filters off while the tracer
 *            asks, and the option refused to a tracer under seccomp
 *   loop N   N getppid calls under a filter of 16 comparisons: ns per call
 *            (make bench) */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define NR offsetof(struct seccomp_data, nr)
#define ARG0 offsetof(struct seccomp_data, args[0])

static const char *self;

static long sc(long nr, long a0, long a1, long a2)
{
	return syscall(nr, a0, a1, a2);
}

static int install(unsigned flags, struct sock_filter *f, unsigned short n)
{
	struct sock_fprog p = {.len = n, .filter = f};
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &p);
}

/* A filter returning `ret` for system call `nr`, ALLOW otherwise. */
static int on_call(unsigned flags, int nr, unsigned ret)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NR),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, ret),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	return install(flags, f, 4);
}

static void result(const char *what, long r)
{
	printf("%s: %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
}

static void nnp(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		perror("no_new_privs");
}

static int errors(void)
{
	struct sock_filter ret = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_filter unaligned[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 2),
		ret,
	};
	struct sock_filter past[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, sizeof(struct seccomp_data)),
		ret,
	};
	struct sock_filter byte[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
		ret,
	};
	struct sock_filter open_end[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
	};
	struct sock_filter far[] = {
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, 0),
		ret,
	};
	unsigned actions[] = {
		SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP,
		SECCOMP_RET_ERRNO,        SECCOMP_RET_TRACE,       SECCOMP_RET_LOG,
		SECCOMP_RET_ALLOW,        0x00040000,
	};
	struct sock_fprog null_filter = {.len = 1, .filter = NULL};
	struct sock_fprog none = {.len = 0, .filter = &ret};
	long big = 4097;

	result("mode before", prctl(PR_GET_SECCOMP));
	result("unknown op", sc(SYS_seccomp, 99, 0, 0));
	result("strict with flags", sc(SYS_seccomp, SECCOMP_SET_MODE_STRICT, 1, 0));
	result("unknown flag", sc(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 1 << 12, (long)&none));
	result("NULL program", sc(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, 0));
	result("NULL program, TSYNC", sc(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
					   SECCOMP_FILTER_FLAG_TSYNC, 0));
	result("no instructions", sc(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, (long)&none));
	result("instructions at NULL", sc(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0,
					   (long)&null_filter));
	none.len = (unsigned short)big;
	result("4097 instructions", sc(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, (long)&none));
	result("unaligned load", install(0, unaligned, 2));
	result("load past the data", install(0, past, 2));
	result("byte load", install(0, byte, 2));
	result("no return", install(0, open_end, 1));
	result("jump past the end", install(0, far, 2));
	result("prctl bad mode", prctl(PR_SET_SECCOMP, 7, 0, 0, 0));
	for (unsigned i = 0; i < sizeof actions / sizeof *actions; i++) {
		char what[64];
		snprintf(what, sizeof what, "action %#x available", actions[i]);
		result(what, sc(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, (long)&actions[i]));
	}
	result("action available, flags", sc(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 1,
					      (long)&actions[0]));
	result("action available, NULL", sc(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, 0));
	/* Without no_new_privs, and without CAP_SYS_ADMIN. */
	pid_t pid = fork();
	if (pid == 0) {
		if (getuid() == 0 && setresuid(65534, 65534, 65534))
			perror("setresuid");
		result("unprivileged without no_new_privs", install(0, &ret, 1));
		nnp();
		result("unprivileged with no_new_privs", install(0, &ret, 1));
		result("prctl mode", prctl(PR_GET_SECCOMP));
		result("then strict", prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT));
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	/* Filters past 256 KiB of instructions in all. */
	nnp();
	static struct sock_filter full[4096];
	for (int i = 0; i < 4096; i++)
		full[i] = ret;
	int n, e = 0;
	for (n = 0; n < 10; n++)
		if (install(0, full, 4096)) {
			e = errno;
			break;
		}
	printf("filters of 4096 instructions installed: %d, then: %s\n", n, strerror(e));
	return 0;
}

static int actions(void)
{
	nnp();
	result("ERRNO 42", on_call(0, SYS_getppid, SECCOMP_RET_ERRNO | 42));
	result("getppid", getppid());
	result("mode", prctl(PR_GET_SECCOMP));
	/* Both ERRNO: the newest wins. */
	on_call(0, SYS_getppid, SECCOMP_RET_ERRNO | 7);
	result("getppid, ERRNO 7 on top", getppid());
	/* TRACE is less than ERRNO: ERRNO still wins. */
	on_call(0, SYS_getppid, SECCOMP_RET_TRACE | 1);
	result("getppid, TRACE on top", getppid());
	/* ERRNO's data past MAX_ERRNO. */
	on_call(0, SYS_getpgrp, SECCOMP_RET_ERRNO | 0xffff);
	errno = 0;
	long r = syscall(SYS_getpgrp);
	printf("getpgrp, ERRNO 0xffff: %ld errno %d\n", r, errno);
	on_call(SECCOMP_FILTER_FLAG_LOG, SYS_getuid, SECCOMP_RET_LOG);
	result("getuid under LOG (uid)", getuid());
	on_call(0, SYS_getgid, SECCOMP_RET_USER_NOTIF);
	result("getgid under USER_NOTIF, no listener", syscall(SYS_getgid));
	on_call(0, SYS_getsid, SECCOMP_RET_TRACE | 3);
	result("getsid under TRACE, no tracer", syscall(SYS_getsid, 0));
	/* The arguments, the arch and the instruction pointer's presence. */
	struct sock_filter args[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NR),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_dup3, 0, 8),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 6),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0 + 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x5, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer) + 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 0),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_STMT(BPF_RET | BPF_A, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	result("argument filter", install(0, args, sizeof args / sizeof *args));
	/* dup3(0x5_00000001, 9, ERRNO|33): the filter returns args[2]. */
	result("dup3 with high word 5", sc(SYS_dup3, 0x500000001L, 9, SECCOMP_RET_ERRNO | 33));
	result("dup3 with high word 0", sc(SYS_dup3, 0x1L, 9, SECCOMP_RET_ERRNO | 33));
	result("close 9", close(9));
	result("strict after filter", prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT));
	return 0;
}

static void no_core(void)
{
	struct rlimit r = {0, 0};
	setrlimit(RLIMIT_CORE, &r);
}

extern char after_trapped[];
static volatile long seen_nr = -1, seen_rax = -1, seen_errno = -1, seen_code = -1;
static volatile long seen_arch = -1, at_call = -1;

static void on_sys(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	(void)sig;
	seen_nr = si->si_syscall;
	seen_arch = si->si_arch;
	seen_errno = si->si_errno;
	seen_code = si->si_code;
	at_call = si->si_call_addr == (void *)after_trapped;
	seen_rax = uc->uc_mcontext.gregs[REG_RAX];
	/* Emulated: the call returns 1234. */
	uc->uc_mcontext.gregs[REG_RAX] = 1234;
}

static int trap(void)
{
	struct sigaction sa = {.sa_sigaction = on_sys, .sa_flags = SA_SIGINFO};
	sigaction(SIGSYS, &sa, NULL);
	no_core();
	nnp();
	result("TRAP 0x77", on_call(0, SYS_getppid, SECCOMP_RET_TRAP | 0x77));
	long ret;
	__asm__ volatile("syscall\n\t.globl after_trapped\nafter_trapped:"
			 : "=a"(ret)
			 : "a"((long)SYS_getppid)
			 : "rcx", "r11", "memory");
	printf("returned %ld; si_code %ld si_errno %#lx si_syscall %ld si_arch %#lx "
	       "call_addr after the syscall %ld, RAX %ld\n",
	       ret, seen_code, seen_errno, seen_nr, seen_arch, at_call, seen_rax);
	fflush(stdout);
	/* Blocked, SIGSYS kills. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGSYS);
	sigprocmask(SIG_BLOCK, &set, NULL);
	getppid();
	puts("not reached");
	return 0;
}

static void *kill_me(void *arg)
{
	(void)arg;
	on_call(0, SYS_getppid, SECCOMP_RET_KILL_THREAD);
	getppid();
	puts("not reached");
	return NULL;
}


static int kill_thread(void)
{
	pthread_t t;
	no_core();
	nnp();
	pthread_create(&t, NULL, kill_me, NULL);
	pthread_join(t, NULL);
	puts("joined the killed thread; getppid here works");
	fflush(stdout);
	if (getppid() <= 0)
		return 3;
	/* The last thread: the process dies by SIGSYS. */
	on_call(0, SYS_getppid, SECCOMP_RET_KILL_THREAD);
	getppid();
	puts("not reached");
	return 0;
}

static void *exit_later(void *arg)
{
	usleep(200000);
	puts("the other thread: exit(2)");
	fflush(stdout);
	syscall(SYS_exit, 5);
	return arg;
}

/* The leader killed alone while another thread runs, which then ends by
 * exit(2): the process ends with that last thread's status (measured). */
static int kill_leader(void)
{
	pthread_t t;
	no_core();
	nnp();
	pthread_create(&t, NULL, exit_later, NULL);
	on_call(0, SYS_getppid, SECCOMP_RET_KILL_THREAD);
	puts("leader: killed next");
	fflush(stdout);
	getppid();
	puts("not reached");
	return 0;
}

static int kill_process(void)
{
	no_core();
	nnp();
	/* Even with a handler. */
	struct sigaction sa = {.sa_sigaction = on_sys, .sa_flags = SA_SIGINFO};
	sigaction(SIGSYS, &sa, NULL);
	on_call(0, SYS_getppid, SECCOMP_RET_KILL_PROCESS);
	puts("installed");
	fflush(stdout);
	getppid();
	puts("not reached");
	return 0;
}

static int strict(int exits)
{
	/* stdout's buffer is allocated now: brk is not allowed after. */
	puts("entering strict mode");
	result("strict", prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT));
	static const char ok[] = "write and read work\n";
	syscall(SYS_write, 1, ok, sizeof ok - 1);
	if (exits)
		syscall(SYS_exit, 7);
	/* exit_group is not among them. */
	syscall(SYS_exit_group, 0);
	return 1;
}

static int ready[2], go[2];

static void *waits(void *arg)
{
	char c;
	(void)arg;
	if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
		return (void *)-1L;
	return (void *)syscall(SYS_getppid);
}

static void *own_filter(void *arg)
{
	char c;
	(void)arg;
	on_call(0, SYS_getuid, SECCOMP_RET_ERRNO | 1);
	if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
		return (void *)-1L;
	return (void *)(long)gettid();
}

static int threads(void)
{
	pthread_t t;
	void *r;
	char c;
	if (pipe(ready) || pipe(go))
		return 2;
	nnp();
	/* Inherited by a new thread. */
	on_call(0, SYS_getpgrp, SECCOMP_RET_ERRNO | 11);
	pthread_create(&t, NULL, waits, NULL);
	if (read(ready[0], &c, 1) != 1)
		return 2;
	/* TSYNC: the waiting thread gets this filter too. */
	result("TSYNC", on_call(SECCOMP_FILTER_FLAG_TSYNC, SYS_getppid, SECCOMP_RET_ERRNO | 12));
	if (write(go[1], "g", 1) != 1)
		return 2;
	pthread_join(t, &r);
	printf("the other thread's getppid: %ld\n", (long)r);
	/* A thread whose filter is not one of ours: TSYNC names it. */
	pthread_create(&t, NULL, own_filter, NULL);
	if (read(ready[0], &c, 1) != 1)
		return 2;
	long failed = on_call(SECCOMP_FILTER_FLAG_TSYNC, SYS_getpid, SECCOMP_RET_ERRNO | 13);
	errno = 0;
	long esrch = on_call(SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
			     SYS_getpid, SECCOMP_RET_ERRNO | 13);
	int e = errno;
	result("getpid (no filter was added)", getpid() > 0);
	if (write(go[1], "g", 1) != 1)
		return 2;
	pthread_join(t, &r);
	printf("TSYNC failed naming that thread: %d; with TSYNC_ESRCH: %ld %s\n",
	       failed == (long)r, esrch, strerror(e));
	return 0;
}

static int forks(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[2], "exec")) {
		result("after exec: mode", prctl(PR_GET_SECCOMP));
		result("after exec: getppid", getppid());
		result("after exec: getpgrp", syscall(SYS_getpgrp));
		return 0;
	}
	nnp();
	on_call(0, SYS_getppid, SECCOMP_RET_ERRNO | 21);
	on_call(0, SYS_getpgrp, SECCOMP_RET_ERRNO | 22);
	pid_t pid = fork();
	if (pid == 0) {
		result("fork child: getppid", getppid());
		fflush(stdout);
		execl(self, self, "fork", "exec", (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("child status %#x\n", st);
	pid = vfork();
	if (pid == 0) {
		execl(self, self, "fork", "exec", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	printf("vfork child status %#x\n", st);
	return 0;
}

static void stop_info(pid_t pid, int st)
{
	struct __ptrace_syscall_info info;
	struct user_regs_struct r;
	unsigned long msg = 0;
	memset(&info, 0, sizeof info);
	int event = (st >> 16) & 0xff;
	long n = ptrace(PTRACE_GET_SYSCALL_INFO, pid, sizeof info, &info);
	ptrace(PTRACE_GETREGS, pid, 0, &r);
	printf("stop: signal %d event %d", WSTOPSIG(st), event);
	if (event) {
		ptrace(PTRACE_GETEVENTMSG, pid, 0, &msg);
		printf(" msg %#lx", msg);
	}
	printf(" info size %ld op %d", n, info.op);
	if (info.op == PTRACE_SYSCALL_INFO_SECCOMP)
		printf(" nr %llu arg0 %llu ret_data %#x", (unsigned long long)info.seccomp.nr,
		       (unsigned long long)info.seccomp.args[0], info.seccomp.ret_data);
	if ((long long)r.rax == getpid())
		printf(" orig_rax %lld rax <the tracer's pid>\n", (long long)r.orig_rax);
	else
		printf(" orig_rax %lld rax %lld\n", (long long)r.orig_rax, (long long)r.rax);
}

/* Resumes the tracee with `how`, waits for its next stop and prints it. */
static int next_stop(pid_t pid, int how)
{
	int st;
	ptrace(how, pid, 0, 0);
	waitpid(pid, &st, 0);
	if (WIFSTOPPED(st))
		stop_info(pid, st);
	else
		printf("child status %#x\n", st);
	return st;
}

static void set_call(pid_t pid, long nr, long rax)
{
	struct user_regs_struct r;
	ptrace(PTRACE_GETREGS, pid, 0, &r);
	r.orig_rax = nr;
	r.rax = rax;
	ptrace(PTRACE_SETREGS, pid, 0, &r);
}

static int trace(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		pid_t parent = getppid();
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		nnp();
		on_call(0, SYS_getppid, SECCOMP_RET_TRACE | 0x55);
		long a = syscall(SYS_getppid, 1);
		long b = syscall(SYS_getppid, 2);
		long c = syscall(SYS_getppid, 3);
		long d = syscall(SYS_getppid, 4);
		printf("child: changed to getpid: %d, skipped: %ld, as is: %d %d\n", a == getpid(),
		       b, c == parent, d == parent);
		fflush(stdout);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	ptrace(PTRACE_SETOPTIONS, pid, 0,
	       PTRACE_O_TRACESECCOMP | PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
	/* The first call's seccomp stop: made getpid instead. */
	next_stop(pid, PTRACE_CONT);
	set_call(pid, SYS_getpid, -ENOSYS);
	/* The second's: skipped, returning 777; its exit stop still comes. */
	next_stop(pid, PTRACE_CONT);
	set_call(pid, -1, 777);
	next_stop(pid, PTRACE_SYSCALL);
	/* The third under PTRACE_SYSCALL: entry, seccomp, exit stops. */
	next_stop(pid, PTRACE_SYSCALL);
	next_stop(pid, PTRACE_SYSCALL);
	next_stop(pid, PTRACE_SYSCALL);
	/* The fourth's seccomp stop, which PTRACE_SYSCALL resumes: its exit
	 * stop comes (strace --seccomp-bpf), though the call entered
	 * untraced. */
	next_stop(pid, PTRACE_CONT);
	next_stop(pid, PTRACE_SYSCALL);
	while (WIFSTOPPED(next_stop(pid, PTRACE_CONT)))
		;
	return 0;
}

/* PTRACE_O_SUSPEND_SECCOMP: the child's filter (ERRNO 7 for getppid) is
 * not applied while its tracer asks so; the option wants a tracer with
 * CAP_SYS_ADMIN and without seccomp. */
static int suspend(void)
{
	int go[2];
	pipe(go);
	pid_t pid = fork();
	if (pid == 0) {
		pid_t parent = getppid();
		nnp();
		on_call(0, SYS_getppid, SECCOMP_RET_ERRNO | 7);
		char c;
		read(go[0], &c, 1);
		long r = syscall(SYS_getppid);
		printf("child: getppid under suspension is the parent's: %d\n", r == parent);
		read(go[0], &c, 1);
		r = syscall(SYS_getppid);
		printf("child: getppid after the detach: %ld errno %d\n", r, errno);
		_exit(0);
	}
	int st;
	result("SEIZE with SUSPEND_SECCOMP", ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_SUSPEND_SECCOMP));
	write(go[1], "g", 1);
	/* The child prints, then waits again: stop it there to detach. */
	usleep(100000);
	ptrace(PTRACE_INTERRUPT, pid, 0, 0);
	waitpid(pid, &st, 0);
	result("detach", ptrace(PTRACE_DETACH, pid, 0, 0));
	write(go[1], "g", 1);
	waitpid(pid, &st, 0);
	/* A tracer under seccomp may not. */
	pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	nnp();
	on_call(0, SYS_getppid, SECCOMP_RET_ERRNO | 7);
	result("SEIZE with SUSPEND_SECCOMP by a filtered tracer",
	       ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_SUSPEND_SECCOMP));
	result("SEIZE without it", ptrace(PTRACE_SEIZE, pid, 0, 0));
	ptrace(PTRACE_INTERRUPT, pid, 0, 0);
	waitpid(pid, &st, 0);
	result("SETOPTIONS with it, stopped", ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_SUSPEND_SECCOMP));
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 0;
}

static int loop(long n)
{
	struct sock_filter f[40];
	int k = 0;
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NR);
	for (int i = 0; i < 16; i++)
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 400 + i, 0, 1),
		f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 1);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	nnp();
	if (install(0, f, k))
		return 2;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.0f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}

int main(int argc, char **argv)
{
	self = argv[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *m = argc > 1 ? argv[1] : "";
	if (!strcmp(m, "errors"))
		return errors();
	if (!strcmp(m, "actions"))
		return actions();
	if (!strcmp(m, "trap"))
		return trap();
	if (!strcmp(m, "kill-thread"))
		return kill_thread();
	if (!strcmp(m, "kill-process"))
		return kill_process();
	if (!strcmp(m, "kill-leader"))
		return kill_leader();
	if (!strcmp(m, "strict"))
		return strict(0);
	if (!strcmp(m, "strict-exit"))
		return strict(1);
	if (!strcmp(m, "threads"))
		return threads();
	if (!strcmp(m, "fork"))
		return forks(argc, argv);
	if (!strcmp(m, "trace"))
		return trace();
	if (!strcmp(m, "suspend"))
		return suspend();
	if (!strcmp(m, "loop"))
		return loop(argc > 2 ? atol(argv[2]) : 1000000);
	fprintf(stderr, "usage: seccomp errors|actions|trap|kill-thread|kill-process|"
			"strict|strict-exit|threads|fork|trace|loop [N]\n");
	return 2;
}
