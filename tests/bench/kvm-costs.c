/* kvm-costs WHAT [N]: what this host's KVM itself costs, with no sandbox:
 * the floor under the sandbox's start-up and per-call figures. N rounds
 * (default 20), each making a VM with one 64 MiB memslot and one vCPU,
 * running it through N exits, and destroying it; prints the median of WHAT
 * in microseconds:
 *   vm       KVM_CREATE_VM
 *   memslot  KVM_SET_USER_MEMORY_REGION of 64 MiB (the sandbox's chunk)
 *   vcpu     KVM_CREATE_VCPU
 *   first    the vCPU's first KVM_RUN (KVM finishes setting it up, and
 *            makes the VM's NX huge page recovery thread)
 *   exit     one KVM_RUN round trip of a guest `out` at CPL0 in real mode,
 *            the cheapest exit to user space there is
 *   destroy  closing the vCPU and the VM (KVM tears the VM down)
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEMSLOT_SIZE (64UL << 20)
#define EXITS 200

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void fail(const char *what)
{
	perror(what);
	exit(1);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static const char *names[] = {"vm", "memslot", "vcpu", "first", "exit", "destroy"};
	int what = -1, rounds = argc > 2 ? atoi(argv[2]) : 20;
	for (int i = 0; argc > 1 && i < 6; i++)
		if (strcmp(argv[1], names[i]) == 0)
			what = i;
	if (what < 0 || rounds < 1) {
		fprintf(stderr, "usage: kvm-costs vm|memslot|vcpu|first|exit|destroy [ROUNDS]\n");
		return 2;
	}
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		fail("/dev/kvm");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		fail("KVM_GET_VCPU_MMAP_SIZE");
	/* Guest code at 0x1000: out 0x10, al; jmp back to it. */
	unsigned char *mem = mmap(NULL, MEMSLOT_SIZE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		fail("mmap");
	memcpy(mem + 0x1000, "\xe6\x10\xeb\xfc", 4);

	double *t[6];
	for (int i = 0; i < 6; i++)
		t[i] = calloc(rounds, sizeof(double));
	for (int r = 0; r < rounds; r++) {
		double a = now_us();
		int vm = ioctl(kvm, KVM_CREATE_VM, 0);
		double b = now_us();
		if (vm < 0)
			fail("KVM_CREATE_VM");
		struct kvm_userspace_memory_region region = {
			.slot = 0,
			.memory_size = MEMSLOT_SIZE,
			.userspace_addr = (unsigned long)mem,
		};
		if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			fail("KVM_SET_USER_MEMORY_REGION");
		double c = now_us();
		int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
		double d = now_us();
		if (vcpu < 0)
			fail("KVM_CREATE_VCPU");
		struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
		if (run == MAP_FAILED)
			fail("mmap kvm_run");
		struct kvm_sregs sregs;
		if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
			fail("KVM_GET_SREGS");
		sregs.cs.base = 0;
		sregs.cs.selector = 0;
		struct kvm_regs regs = {.rip = 0x1000, .rflags = 2};
		if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
			fail("KVM_SET_SREGS/REGS");
		double d2 = now_us();
		if (ioctl(vcpu, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_IO)
			fail("KVM_RUN (no I/O exit)");
		double e = now_us();
		for (int i = 0; i < EXITS; i++)
			if (ioctl(vcpu, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_IO)
				fail("KVM_RUN");
		double f = now_us();
		munmap(run, run_size);
		close(vcpu);
		close(vm);
		double g = now_us();
		t[0][r] = b - a;
		t[1][r] = c - b;
		t[2][r] = d - c;
		t[3][r] = e - d2;
		t[4][r] = (f - e) / EXITS;
		t[5][r] = g - f;
	}
	qsort(t[what], rounds, sizeof(double), cmp);
	printf("%.2f\n", t[what][rounds / 2]);
	return 0;
}
