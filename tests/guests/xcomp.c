/* What mainline's XSTATE arch_prctls answer: ARCH_GET_XCOMP_SUPP, _PERM,
 * _GUEST_PERM, and ARCH_REQ_XCOMP_PERM for every index (errno names), then
 * the permission again and AT_MINSIGSTKSZ. One key=value line each. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

static void get(const char *name, long code) {
    uint64_t v = 0;
    long r = syscall(SYS_arch_prctl, code, &v);
    printf("%s=%s%#lx\n", name, r ? strerrorname_np(errno) : "", (unsigned long)v);
}

int main(void) {
    get("supp", 0x1021);
    get("perm", 0x1022);
    get("guest_perm", 0x1024);
    for (long i = 0; i < 66; i++) {
        long r = syscall(SYS_arch_prctl, 0x1023, i);
        printf("req%ld=%s\n", i, r ? strerrorname_np(errno) : "0");
    }
    get("perm_after", 0x1022);
    long r = syscall(SYS_arch_prctl, 0x1022, (void *)8);
    printf("perm_bad_pointer=%s\n", r ? strerrorname_np(errno) : "0");
    printf("minsigstksz=%lu\n", getauxval(AT_MINSIGSTKSZ));
    return 0;
}
