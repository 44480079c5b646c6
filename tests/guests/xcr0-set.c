/*
 * xcr0-set: the per-thread XCR0 calls, ARCH_SET_XCR0 (arch_prctl 0x1031)
 * and ARCH_GET_XCR0 (0x1032), as a program uses them. Prints "key=value"
 * lines: numbers in hex, call results as 0 or the errno's name. Before a
 * call that disables components it executes VZEROUPPER, so the upper YMM
 * halves are in their initial state, and prints XINUSE (XGETBV 1,
 * *xinuse=) where the CPU has it, for the record: the sandbox judges by
 * the saved state, not by XINUSE (which QEMU's TCG does not track).
 *
 *   xcr0-set errnos          default= (ARCH_GET_XCR0), xgetbv=,
 *                            supported= (CPUID 0xD.0 EDX:EAX); set_0x2=
 *                            and set_0x5= (EINVAL); enodev_value= (a valid
 *                            value with a bit outside supported) and
 *                            set_enodev=; when AVX is on, disabling AVX
 *                            (and AVX-512) into target=: set_live_avx=
 *                            (right after a 256-bit instruction),
 *                            set_after_vzeroupper=, xgetbv_after_set=,
 *                            get_after_set=; then set_all_ones= (~0: back
 *                            to the default), xgetbv_restored=,
 *                            get_restored=
 *   xcr0-set get-set-get V   get0=, set= (V), get1=, xgetbv1=, restore=
 *                            (~0), get2=, xgetbv2=
 *   xcr0-set threads A B [P] thread a sets A, thread b sets B and forks a
 *                            child that reports (and execs P if given);
 *                            each reports XGETBV after its change (a=, b=,
 *                            child=) and once both have met at a barrier
 *                            (a_after=, b_after=); main reports before
 *                            (main=) and after them (main_after=)
 *   xcr0-set compat V        the check rr forks make: arch_prctl(0x1021,
 *                            V), XGETBV, arch_prctl(0x1021, original),
 *                            XGETBV (orig= xinuse_set= set= xgetbv_set=
 *                            get_set= xinuse= restore= xgetbv_restored=);
 *                            meaningful with --arch-prctl-compat, without
 *                            which 0x1021 is ARCH_GET_XCOMP_SUPP and V an
 *                            address
 *   xcr0-set avx-after V     sets V (set=, xgetbv=), then executes a
 *                            256-bit AVX instruction (SIGILL without YMM
 *                            state) and prints avx=ran
 *   xcr0-set avx-per-thread V  a new thread sets V and executes a 256-bit
 *                            AVX instruction (thread_set=, thread=,
 *                            thread_avx=ran), then main does (main=,
 *                            main_avx=ran)
 *
 * Once a thread has disabled AVX, glibc's string functions (chosen for the
 * XCR0 the program started with) may fault: everything is printed with
 * write(2) and the little formatter below, and the tests build it with
 * -fno-tree-loop-distribute-patterns so that the compiler adds no memset
 * or memcpy calls. Once a thread has enabled more than the program started
 * with, a lazily bound PLT call overflows the XSAVE area glibc's
 * _dl_runtime_resolve sized at startup: the tests link it with -z now.
 */
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARCH_GET_XCOMP_SUPP 0x1021
#define ARCH_SET_XCR0 0x1031
#define ARCH_GET_XCR0 0x1032

#define XCR0_AVX 0x4ull
#define XCR0_AVX512 0xe0ull

static uint64_t xgetbv(uint32_t n)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(n));
	return ((uint64_t)hi << 32) | lo;
}

/* arch_prctl as the kernel returns it: 0 or -errno. */
static long arch_prctl(long code, uint64_t arg)
{
	long r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "0"((long)SYS_arch_prctl), "D"(code), "S"(arg)
			 : "rcx", "r11", "memory");
	return r;
}

/* One line per write(2), so that threads' lines do not mix. */
struct line {
	char buf[160];
	int n;
};

static void add(struct line *l, const char *s)
{
	while (*s && l->n < (int)sizeof(l->buf) - 1)
		l->buf[l->n++] = *s++;
}

static void add_hex(struct line *l, uint64_t v)
{
	char d[16];
	int k = 0;
	do {
		d[k++] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v);
	add(l, "0x");
	while (k > 0 && l->n < (int)sizeof(l->buf) - 1)
		l->buf[l->n++] = d[--k];
}

static void emit(struct line *l)
{
	l->buf[l->n++] = '\n';
	if (write(1, l->buf, l->n) != l->n)
		_exit(3);
}

static void put_hex(const char *key, uint64_t v)
{
	struct line l;
	l.n = 0;
	add(&l, key);
	add(&l, "=");
	add_hex(&l, v);
	emit(&l);
}

static const char *errname(long r)
{
	switch (r) {
	case 0:
		return "0";
	case -EINVAL:
		return "EINVAL";
	case -ENODEV:
		return "ENODEV";
	case -EPERM:
		return "EPERM";
	case -EFAULT:
		return "EFAULT";
	case -EIO:
		return "EIO";
	default:
		return "other";
	}
}

static void put_result(const char *key, long r)
{
	struct line l;
	l.n = 0;
	add(&l, key);
	add(&l, "=");
	add(&l, errname(r));
	emit(&l);
}

static uint64_t get_xcr0(void)
{
	uint64_t v = 0;
	long r = arch_prctl(ARCH_GET_XCR0, (uint64_t)&v);
	if (r) {
		put_result("get_xcr0_failed", r);
		_exit(1);
	}
	return v;
}

static uint64_t parse(const char *s)
{
	return strtoull(s, NULL, 0);
}

static uint64_t supported(void)
{
	unsigned a, b, c, d;
	__cpuid_count(0xd, 0, a, b, c, d);
	return ((uint64_t)d << 32) | a;
}

/* XGETBV with ECX=1 (XINUSE) exists: CPUID.(EAX=0DH,ECX=1):EAX[2]. */
static int has_xgetbv1(void)
{
	unsigned a, b, c, d;
	__cpuid_count(0xd, 1, a, b, c, d);
	return (a >> 2) & 1;
}

/* Before disabling components: VZEROUPPER (AVX state back to its initial
 * configuration), then XINUSE as the CPU reports it (xinuse=), if it can,
 * for the record. */
static void before_disabling(const char *key)
{
	if (xgetbv(0) & XCR0_AVX)
		__asm__ volatile("vzeroupper" ::: "xmm0");
	if (has_xgetbv1())
		put_hex(key, xgetbv(1));
}

static int errnos(void)
{
	uint64_t def = get_xcr0();
	uint64_t sup = supported();
	put_hex("default", def);
	put_hex("xgetbv", xgetbv(0));
	put_hex("supported", sup);
	put_result("set_0x2", arch_prctl(ARCH_SET_XCR0, 0x2));
	put_result("set_0x5", arch_prctl(ARCH_SET_XCR0, 0x5));

	/* Valid values, each with a component some KVMs lack: PKRU,
	 * AVX-512, MPX, AMX, APX. */
	static const uint64_t candidates[] = {0x207, 0xe7, 0x1b, 0x60003,
					      0x80003};
	for (unsigned i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		if (candidates[i] & ~sup) {
			put_hex("enodev_value", candidates[i]);
			put_result("set_enodev",
				   arch_prctl(ARCH_SET_XCR0, candidates[i]));
			break;
		}
	}

	if (xgetbv(0) & XCR0_AVX) {
		/* AVX and AVX-512 off, the rest as it is. */
		uint64_t target = def & ~(XCR0_AVX | XCR0_AVX512);
		long r;
		put_hex("target", target);
		/* YMM0's upper half is all ones at the call. */
		__asm__ volatile("vpcmpeqd %%ymm0, %%ymm0, %%ymm0\n\tsyscall"
				 : "=a"(r)
				 : "0"((long)SYS_arch_prctl), "D"((long)ARCH_SET_XCR0),
				   "S"(target)
				 : "rcx", "r11", "memory", "xmm0");
		put_result("set_live_avx", r);
		put_hex("xgetbv_after_eperm", xgetbv(0));
		before_disabling("xinuse");
		__asm__ volatile("vzeroupper\n\tsyscall"
				 : "=a"(r)
				 : "0"((long)SYS_arch_prctl), "D"((long)ARCH_SET_XCR0),
				   "S"(target)
				 : "rcx", "r11", "memory", "xmm0");
		put_result("set_after_vzeroupper", r);
		put_hex("xgetbv_after_set", xgetbv(0));
		put_hex("get_after_set", get_xcr0());
	}

	put_result("set_all_ones", arch_prctl(ARCH_SET_XCR0, ~0ull));
	put_hex("xgetbv_restored", xgetbv(0));
	put_hex("get_restored", get_xcr0());
	return 0;
}

static int get_set_get(uint64_t v)
{
	put_hex("get0", get_xcr0());
	put_result("set", arch_prctl(ARCH_SET_XCR0, v));
	put_hex("get1", get_xcr0());
	put_hex("xgetbv1", xgetbv(0));
	before_disabling("xinuse");
	put_result("restore", arch_prctl(ARCH_SET_XCR0, ~0ull));
	put_hex("get2", get_xcr0());
	put_hex("xgetbv2", xgetbv(0));
	return 0;
}

static pthread_barrier_t barrier;
static uint64_t want_a, want_b;
static char *child_exec;

static void *thread_a(void *arg)
{
	(void)arg;
	before_disabling("a_xinuse");
	put_result("a_set", arch_prctl(ARCH_SET_XCR0, want_a));
	put_hex("a", xgetbv(0));
	put_hex("a_get", get_xcr0());
	pthread_barrier_wait(&barrier);
	put_hex("a_after", xgetbv(0));
	return NULL;
}

static void *thread_b(void *arg)
{
	(void)arg;
	before_disabling("b_xinuse");
	put_result("b_set", arch_prctl(ARCH_SET_XCR0, want_b));
	put_hex("b", xgetbv(0));
	put_hex("b_get", get_xcr0());
	pid_t pid = fork();
	if (pid == 0) {
		put_hex("child", xgetbv(0));
		put_hex("child_get", get_xcr0());
		if (child_exec) {
			char *argv[] = {child_exec, NULL};
			execv(child_exec, argv);
			put_hex("execv_failed", errno);
		}
		_exit(0);
	}
	int status = -1;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
		put_hex("child_failed", (uint64_t)status);
	pthread_barrier_wait(&barrier);
	put_hex("b_after", xgetbv(0));
	return NULL;
}

static int threads(uint64_t a, uint64_t b, char *exec)
{
	want_a = a;
	want_b = b;
	child_exec = exec;
	put_hex("main", xgetbv(0));
	pthread_barrier_init(&barrier, NULL, 2);
	pthread_t ta, tb;
	if (pthread_create(&ta, NULL, thread_a, NULL) ||
	    pthread_create(&tb, NULL, thread_b, NULL)) {
		put_hex("pthread_create_failed", 1);
		return 1;
	}
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	put_hex("main_after", xgetbv(0));
	put_hex("main_get", get_xcr0());
	return 0;
}

static int compat(uint64_t v)
{
	uint64_t orig = xgetbv(0);
	put_hex("orig", orig);
	before_disabling("xinuse_set");
	put_result("set", arch_prctl(ARCH_GET_XCOMP_SUPP, v));
	put_hex("xgetbv_set", xgetbv(0));
	put_hex("get_set", get_xcr0());
	before_disabling("xinuse");
	put_result("restore", arch_prctl(ARCH_GET_XCOMP_SUPP, orig));
	put_hex("xgetbv_restored", xgetbv(0));
	return 0;
}

static void avx_ran(const char *key)
{
	struct line l;
	l.n = 0;
	add(&l, key);
	add(&l, "=ran");
	emit(&l);
}

static int avx_after(uint64_t v)
{
	before_disabling("xinuse");
	long r = arch_prctl(ARCH_SET_XCR0, v);
	put_result("set", r);
	put_hex("xgetbv", xgetbv(0));
	if (r)
		return 1;
	__asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0" ::: "xmm0");
	avx_ran("avx");
	return 0;
}

static void *avx_thread(void *arg)
{
	long r = arch_prctl(ARCH_SET_XCR0, *(uint64_t *)arg);
	put_result("thread_set", r);
	put_hex("thread", xgetbv(0));
	if (r == 0) {
		__asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0" ::: "xmm0");
		avx_ran("thread_avx");
	}
	return NULL;
}

static int avx_per_thread(uint64_t v)
{
	pthread_t t;
	if (pthread_create(&t, NULL, avx_thread, &v)) {
		put_hex("pthread_create_failed", 1);
		return 1;
	}
	pthread_join(t, NULL);
	put_hex("main", xgetbv(0));
	__asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0" ::: "xmm0");
	avx_ran("main_avx");
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	const char *a = argc > 2 ? argv[2] : "0x3";
	const char *b = argc > 3 ? argv[3] : "0x7";
	if (!strcmp(mode, "errnos"))
		return errnos();
	if (!strcmp(mode, "get-set-get"))
		return get_set_get(parse(a));
	if (!strcmp(mode, "threads"))
		return threads(parse(a), parse(b), argc > 4 ? argv[4] : NULL);
	if (!strcmp(mode, "compat"))
		return compat(parse(a));
	if (!strcmp(mode, "avx-after"))
		return avx_after(parse(a));
	if (!strcmp(mode, "avx-per-thread"))
		return avx_per_thread(parse(a));
	put_hex("usage", 0);
	return 2;
}
