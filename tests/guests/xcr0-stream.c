/*
 * xcr0-stream: a deterministic byte stream for pipelines between programs
 * under different XCR0s. The stream is 64-bit little-endian words, word i
 * being word(i) below, cut at N bytes.
 *
 *   xcr0-stream produce N   writes the first N bytes of the stream to
 *                           stdout
 *   xcr0-stream consume N   reads stdin to its end, checks it is the first
 *                           N bytes of the stream, prints "ok N" (else
 *                           "bad at OFFSET" or "short COUNT", exit 1)
 *
 * Both print "NAME xgetbv=0x..." (NAME: producer or consumer) on stderr.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 65536

static uint64_t word(uint64_t i)
{
	uint64_t x = i * 0x9e3779b97f4a7c15ull;
	return x ^ (x >> 29) ^ i;
}

/* The stream's bytes from offset `pos` (a multiple of 8), `len` of them. */
static void expected(unsigned char *buf, uint64_t pos, size_t len)
{
	for (size_t k = 0; k < len; k += 8) {
		uint64_t w = word((pos + k) / 8);
		size_t n = len - k < 8 ? len - k : 8;
		memcpy(buf + k, &w, n);
	}
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static unsigned char buf[CHUNK], want[CHUNK];

static int produce(uint64_t total)
{
	for (uint64_t pos = 0; pos < total;) {
		size_t len = total - pos < CHUNK ? total - pos : CHUNK;
		expected(buf, pos, len);
		for (size_t done = 0; done < len;) {
			ssize_t n = write(1, buf + done, len - done);
			if (n <= 0) {
				perror("producer: write");
				return 1;
			}
			done += n;
		}
		pos += len;
	}
	return 0;
}

static int consume(uint64_t total)
{
	uint64_t pos = 0;
	for (;;) {
		/* A whole chunk (or what is left before the end), so that
		 * each check starts on a word. */
		size_t have = 0;
		ssize_t n = 1;
		while (have < CHUNK && (n = read(0, buf + have, CHUNK - have)) > 0)
			have += n;
		if (n < 0) {
			perror("consumer: read");
			return 1;
		}
		if (have == 0)
			break;
		if (pos + have > total) {
			printf("long: more than %llu bytes\n", (unsigned long long)total);
			return 1;
		}
		expected(want, pos, have);
		if (memcmp(buf, want, have)) {
			size_t k = 0;
			while (buf[k] == want[k])
				k++;
			printf("bad at %llu\n", (unsigned long long)(pos + k));
			return 1;
		}
		pos += have;
		if (n == 0)
			break;
	}
	if (pos != total) {
		printf("short %llu\n", (unsigned long long)pos);
		return 1;
	}
	printf("ok %llu\n", (unsigned long long)pos);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: xcr0-stream produce|consume N\n");
		return 2;
	}
	uint64_t total = strtoull(argv[2], NULL, 0);
	int consumer = !strcmp(argv[1], "consume");
	fprintf(stderr, "%s xgetbv=%#llx\n", consumer ? "consumer" : "producer",
		(unsigned long long)xgetbv0());
	return consumer ? consume(total) : produce(total);
}
