/* seccomp-notify MODE: seccomp's user notification, printing what a
 * program sees so that a native run and a sandboxed one can be compared.
 *
 *   process   a child installs a filter with a listener and passes the
 *             listener to its parent (SCM_RIGHTS), which supervises: a
 *             value, an error, CONTINUE, ADDFD, ID_VALID, the notified
 *             thread id and arguments, the call's string argument read
 *             through /proc/PID/mem; then across fork and exec; then
 *             ENOSYS once the listener is closed
 *   thread    a thread supervises another thread of the same process
 *   signal    a signal while the child waits for the answer: EINTR, or
 *             under SA_RESTART a second notification (signal-restart)
 *   errors    the flags Linux refuses, a second listener (EBUSY),
 *             SECCOMP_GET_NOTIF_SIZES, SECCOMP_GET_ACTION_AVAIL
 *   own       (sandbox only) a call the sandbox carries out itself
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *self;

static void result(const char *what, long r)
{
	printf("%s: %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
}

/* USER_NOTIF for each of `nrs`, ALLOW otherwise. */
static int listen_on(unsigned flags, const int *nrs, int n)
{
	struct sock_filter f[16];
	int k = 0;
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	for (int i = 0; i < n; i++)
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nrs[i],
						      n - i, 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
	struct sock_fprog prog = { .len = k, .filter = f };
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

static void send_fd(int sock, int fd)
{
	char c = 'L';
	struct iovec iov = { &c, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct cmsghdr *c0 = CMSG_FIRSTHDR(&m);
	c0->cmsg_level = SOL_SOCKET;
	c0->cmsg_type = SCM_RIGHTS;
	c0->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c0), &fd, sizeof fd);
	if (sendmsg(sock, &m, 0) != 1)
		perror("sendmsg");
}

static int recv_fd(int sock)
{
	char c;
	struct iovec iov = { &c, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	if (recvmsg(sock, &m, 0) != 1)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
	return fd;
}

/* The string at `addr` in `pid`, through /proc/PID/mem. */
static void read_string(pid_t pid, unsigned long addr, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", pid);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : pread(fd, buf, len - 1, addr);
	buf[n < 0 ? 0 : n] = 0;
	buf[strnlen(buf, len - 1)] = 0;
	if (fd >= 0)
		close(fd);
}

static char dir[64];
static int stale_valid, stale_errno;

/* Answers notifications until the child's last call (getppid with 0xdead),
 * then checks the answered id is no longer valid. */
static void supervise(int listener, pid_t child)
{
	struct seccomp_notif_sizes sizes;
	syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes);
	struct seccomp_notif *req = calloc(1, sizes.seccomp_notif);
	struct seccomp_notif_resp *resp = calloc(1, sizes.seccomp_notif_resp);
	for (int last = 0; !last;) {
		struct pollfd p = { listener, POLLIN, 0 };
		if (poll(&p, 1, 20000) != 1 || !(p.revents & POLLIN)) {
			printf("supervisor: nothing to read (revents %#x)\n", p.revents);
			return;
		}
		memset(req, 0, sizes.seccomp_notif);
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req)) {
			printf("supervisor: RECV: %s\n", strerror(errno));
			continue;
		}
		memset(resp, 0, sizes.seccomp_notif_resp);
		resp->id = req->id;
		struct seccomp_data *d = &req->data;
		int valid = ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id);
		/* The notified task: the child, or a child of the child. */
		const char *who = req->pid == child ? "child" : "another task";
		printf("supervisor: %s, nr %d, arch %#x, id valid %d, ", who, d->nr, d->arch,
		       valid);
		char s[256];
		switch (d->nr) {
		case SYS_getppid:
			printf("args %llx %llx %llx: value 4242\n", d->args[0], d->args[1],
			       d->args[2]);
			resp->val = 4242;
			last = d->args[0] == 0xdead;
			break;
		case SYS_mkdir:
			read_string(req->pid, d->args[0], s, sizeof s);
			printf("mode %llo, path %s: %s\n", d->args[1], s + strlen(dir),
			       strstr(s, "deny") ? "EPERM" : "CONTINUE");
			if (strstr(s, "deny"))
				resp->error = -EPERM;
			else
				resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
			break;
		case SYS_memfd_create: {
			read_string(req->pid, d->args[0], s, sizeof s);
			int pipefd[2];
			if (pipe(pipefd))
				break;
			write(pipefd[1], "written by the supervisor\n", 26);
			close(pipefd[1]);
			struct seccomp_notif_addfd add = {
				.id = req->id,
				.flags = SECCOMP_ADDFD_FLAG_SEND,
				.srcfd = pipefd[0],
			};
			/* Said first: the child returns when the descriptor is in. */
			printf("name %s: ADDFD with SEND\n", s);
			if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add) < 0)
				printf("supervisor: ADDFD: %s\n", strerror(errno));
			close(pipefd[0]);
			continue;
		}
		default:
			printf("CONTINUE\n");
			resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		}
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp))
			printf("supervisor: SEND: %s\n", strerror(errno));
	}
	stale_valid = ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &resp->id);
	stale_errno = errno;
}

static void calls(void)
{
	result("getppid", syscall(SYS_getppid, 0x11, 0x22, 0x33));
	char path[96];
	snprintf(path, sizeof path, "%s/deny", dir);
	result("mkdir deny", mkdir(path, 0700));
	snprintf(path, sizeof path, "%s/allow", dir);
	result("mkdir allow", mkdir(path, 0751));
	struct stat st;
	result("and the directory is there", stat(path, &st));
	rmdir(path);
	int fd = memfd_create("from-the-child", 0);
	char buf[64] = "";
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	printf("memfd_create gave a pipe: %s", n > 0 ? buf : "(nothing)\n");
}

static int process(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[2], "exec")) {
		/* The filter, and the way to its listener, came across exec. */
		printf("after exec:\n");
		result("getppid", syscall(SYS_getppid, 0x44, 0x55, 0x66));
		return 0;
	}
	snprintf(dir, sizeof dir, "/tmp/seccomp-notify.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		int nrs[] = { SYS_getppid, SYS_mkdir, SYS_memfd_create };
		int l = listen_on(SECCOMP_FILTER_FLAG_NEW_LISTENER, nrs, 3);
		if (l < 0) {
			result("listener", l);
			return 1;
		}
		printf("listener is close-on-exec: %d\n", !!(fcntl(l, F_GETFD) & FD_CLOEXEC));
		send_fd(sv[1], l);
		close(l);
		calls();
		/* A child inherits the filter. */
		pid_t g = fork();
		if (g == 0) {
			result("forked child's getppid", syscall(SYS_getppid, 1, 2, 3));
			_exit(0);
		}
		waitpid(g, NULL, 0);
		pid_t e = fork();
		if (e == 0) {
			execl(self, self, "process", "exec", (char *)NULL);
			_exit(127);
		}
		waitpid(e, NULL, 0);
		result("last getppid", syscall(SYS_getppid, 0xdead, 0, 0));
		/* The supervisor closes the listener, then says so. */
		char c;
		read(sv[1], &c, 1);
		result("getppid with the listener closed", syscall(SYS_getppid, 0, 0, 0));
		return 0;
	}
	close(sv[1]);
	int l = recv_fd(sv[0]);
	supervise(l, pid);
	close(l);
	write(sv[0], "c", 1);
	int st;
	waitpid(pid, &st, 0);
	printf("child: exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	/* Said after the child is done, whose output it would race. */
	errno = stale_errno;
	result("supervisor: ID_VALID of the answered id", stale_valid);
	rmdir(dir);
	return 0;
}

static int thread_listener = -1;
static int thread_pipe[2];

static void *helper(void *arg)
{
	(void)arg;
	read(thread_pipe[0], &thread_listener, sizeof thread_listener);
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;
	memset(&req, 0, sizeof req);
	if (ioctl(thread_listener, SECCOMP_IOCTL_NOTIF_RECV, &req)) {
		printf("helper: RECV: %s\n", strerror(errno));
		return NULL;
	}
	printf("helper: nr %d from the main thread %d, its own call not notified %d\n",
	       req.data.nr, req.pid == getpid(), syscall(SYS_getppid) == getppid());
	memset(&resp, 0, sizeof resp);
	resp.id = req.id;
	resp.val = 7;
	ioctl(thread_listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	return NULL;
}

static int thread(void)
{
	pthread_t t;
	pipe(thread_pipe);
	pthread_create(&t, NULL, helper, NULL);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	int nrs[] = { SYS_getppid };
	int l = listen_on(SECCOMP_FILTER_FLAG_NEW_LISTENER, nrs, 1);
	write(thread_pipe[1], &l, sizeof l);
	result("main thread's getppid", syscall(SYS_getppid));
	pthread_join(t, NULL);
	return 0;
}

static int errors(void)
{
	unsigned a = SECCOMP_RET_USER_NOTIF;
	result("USER_NOTIF available", syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &a));
	struct seccomp_notif_sizes s;
	result("GET_NOTIF_SIZES", syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &s));
	printf("sizes %u %u %u\n", s.seccomp_notif, s.seccomp_notif_resp, s.seccomp_data);
	result("GET_NOTIF_SIZES with flags", syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 1, &s));
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	int nrs[] = { SYS_getppid };
	result("TSYNC with NEW_LISTENER",
	       listen_on(SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_NEW_LISTENER, nrs, 1));
	result("WAIT_KILLABLE_RECV alone", listen_on(SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, nrs, 1));
	int l = listen_on(SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH |
				  SECCOMP_FILTER_FLAG_NEW_LISTENER |
				  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
			  nrs, 1);
	printf("a listener with TSYNC_ESRCH: %s\n", l >= 0 ? "a descriptor" : strerror(errno));
	result("a second listener", listen_on(SECCOMP_FILTER_FLAG_NEW_LISTENER, nrs, 1));
	result("a filter without one on top", listen_on(0, nrs, 1));
	/* USER_NOTIF from the newest filter, which has no listener. */
	result("getppid", syscall(SYS_getppid));
	return 0;
}

static void *own_helper(void *arg)
{
	int l = *(int *)arg;
	struct pollfd p = { l, POLLIN, 0 };
	if (poll(&p, 1, 2000) != 1) {
		printf("mmap was not notified\n");
		return NULL;
	}
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;
	memset(&req, 0, sizeof req);
	ioctl(l, SECCOMP_IOCTL_NOTIF_RECV, &req);
	printf("mmap was notified\n");
	memset(&resp, 0, sizeof resp);
	resp.id = req.id;
	resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	return NULL;
}

static int own(void)
{
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	int nrs[] = { SYS_mmap };
	static int l;
	l = listen_on(SECCOMP_FILTER_FLAG_NEW_LISTENER, nrs, 1);
	pthread_t t;
	/* The helper has the filter too: its stack is not mapped. */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	static char stack[1 << 16] __attribute__((aligned(4096)));
	pthread_attr_setstack(&attr, stack, sizeof stack);
	pthread_create(&t, &attr, own_helper, &l);
	void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	result("mmap", p == MAP_FAILED ? -1 : 0);
	pthread_join(t, NULL);
	return 0;
}

static int handled[2];

static void on_usr1(int sig)
{
	(void)sig;
	write(1, "handler\n", 8);
	write(handled[1], "h", 1);
}

static int signal_(int restart)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = restart ? SA_RESTART : 0 };
	sigaction(SIGUSR1, &sa, NULL);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	int nrs[] = { SYS_getppid };
	int l = listen_on(SECCOMP_FILTER_FLAG_NEW_LISTENER, nrs, 1);
	pipe(handled);
	pid_t pid = fork();
	if (pid == 0) {
		result("child's getppid", syscall(SYS_getppid));
		_exit(0);
	}
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;
	memset(&req, 0, sizeof req);
	ioctl(l, SECCOMP_IOCTL_NOTIF_RECV, &req);
	printf("first notification\n");
	kill(pid, SIGUSR1);
	/* The child's wait is over and its handler has run. */
	char c;
	read(handled[0], &c, 1);
	if (!restart)
		waitpid(pid, NULL, 0);
	memset(&resp, 0, sizeof resp);
	resp.id = req.id;
	resp.val = 1;
	result("answer to the first", ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &resp));
	if (restart) {
		memset(&req, 0, sizeof req);
		ioctl(l, SECCOMP_IOCTL_NOTIF_RECV, &req);
		printf("second notification\n");
		resp.id = req.id;
		resp.val = 2;
		ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &resp);
		waitpid(pid, NULL, 0);
	}
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	self = argv[0];
	alarm(30);
	const char *m = argc > 1 ? argv[1] : "";
	if (!strcmp(m, "process"))
		return process(argc, argv);
	if (!strcmp(m, "thread"))
		return thread();
	if (!strcmp(m, "errors"))
		return errors();
	if (!strcmp(m, "signal"))
		return signal_(0);
	if (!strcmp(m, "signal-restart"))
		return signal_(1);
	if (!strcmp(m, "own"))
		return own();
	fprintf(stderr, "usage: seccomp-notify process|thread|signal|signal-restart|errors|own\n");
	return 2;
}
