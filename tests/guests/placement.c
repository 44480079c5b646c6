/* Where mappings without MAP_FIXED go: anonymous ones a multiple of 2 MiB
 * long and not, shared ones, a file's (argv[1], at offsets 0 and a page),
 * a hint that is free and one that is not, a mapping made again where one
 * was unmapped, one grown in place there (mremap), realloc moving a large
 * block (mremap), a thread's stack.
 * Prints /proc/self/maps, to compare with native's under setarch -R. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MiB (1UL << 20)

static void *anon(void *hint, size_t len, int flags) {
    void *p = mmap(hint, len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static void *worker(void *arg) {
    return arg;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    anon(0, 4 * MiB, MAP_PRIVATE);
    void *gone = anon(0, 4 * MiB + 4096, MAP_PRIVATE);
    anon(0, 4 * MiB, MAP_SHARED);
    if (mmap(0, 4 * MiB, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED ||
        mmap(0, 3 * MiB, PROT_READ, MAP_PRIVATE, fd, 4096) == MAP_FAILED) {
        perror("mmap file");
        return 1;
    }
    munmap(gone, 4 * MiB + 4096);
    anon(0, 1 * MiB, MAP_PRIVATE);
    /* A free hint is taken; one that is taken is not. */
    anon((void *)0x700000000000, 64 * 1024, MAP_PRIVATE);
    anon((void *)0x700000000000, 64 * 1024, MAP_PRIVATE);
    /* A mapping grows in place where the one above it was unmapped. */
    void *above = anon(0, 1 * MiB, MAP_PRIVATE);
    void *below = anon(0, 1 * MiB, MAP_PRIVATE);
    munmap(above, 1 * MiB);
    if (mremap(below, 1 * MiB, 2 * MiB, MREMAP_MAYMOVE) != below)
        printf("grown elsewhere\n");
    /* Large blocks are mmapped by malloc; growing them moves them. */
    char *block = malloc(1 * MiB);
    memset(block, 1, 1 * MiB);
    block = realloc(block, 6 * MiB);
    block = realloc(block, 16 * MiB);
    pthread_t t;
    if (pthread_create(&t, 0, worker, 0) || pthread_join(t, 0))
        return 1;
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    while (maps && fgets(line, sizeof line, maps))
        fputs(line, stdout);
    return block[0] == 1 ? 0 : 1;
}
