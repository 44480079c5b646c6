/* What rr does after replaying an exec, in small: map fresh memory at
 * each address range given ("START-END", hex), where a native process's
 * mappings were. Prints the personality and RLIMIT_DATA first (to compare
 * with native), then each range's outcome: "mapped", "own stack" for one
 * that meets this program's own stack (which it cannot replace), or the
 * error. Exit 1 if any range fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>

/* The mapping that holds `addr`, from /proc/self/maps. */
static void mapping_of(unsigned long addr, unsigned long *start, unsigned long *end) {
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    *start = *end = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s <= addr && addr < e) {
            *start = s;
            *end = e;
            break;
        }
    }
    if (maps)
        fclose(maps);
}

int main(int argc, char **argv) {
    unsigned long stack_start, stack_end;
    mapping_of((unsigned long)&stack_start, &stack_start, &stack_end);
    struct rlimit data;
    getrlimit(RLIMIT_DATA, &data);
    printf("personality %#x data %#lx/%#lx\n", personality(0xffffffff),
           (unsigned long)data.rlim_cur, (unsigned long)data.rlim_max);
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        unsigned long start, end;
        if (sscanf(argv[i], "%lx-%lx", &start, &end) != 2 || end <= start) {
            fprintf(stderr, "room: bad range %s\n", argv[i]);
            return 2;
        }
        if (start < stack_end && stack_start < end) {
            printf("%s: own stack\n", argv[i]);
            continue;
        }
        char *p = mmap((void *)start, end - start, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED || p != (char *)start) {
            printf("%s: %s\n", argv[i], p == MAP_FAILED ? strerror(errno) : "elsewhere");
            failed = 1;
            continue;
        }
        p[0] = 1;
        p[end - start - 1] = 2;
        printf("%s: %s\n", argv[i], p[0] + p[end - start - 1] == 3 ? "mapped" : "lost");
    }
    return failed;
}
