/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmark workloads: argument parsing, a fast
 * random generator, clocks, RSS.  Workloads are plain C11 + pthreads and
 * call the libc malloc; the allocator under test is chosen by LD_PRELOAD.
 *
 * Every workload takes key=value arguments and prints its results as
 * key=value pairs on stdout (one "result" line, sometimes more), which
 * bench/report.py reads.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* key=value argument lookup; returns def when the key is absent. */
static inline long arg_long(int argc, char **argv, const char *key, long def) {
  size_t n = strlen(key);
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], key, n) == 0 && argv[i][n] == '=')
      return strtol(argv[i] + n + 1, NULL, 0);
  return def;
}

/* xorshift64*: small, fast, good enough to pick sizes and slots. */
typedef struct {
  uint64_t s;
} rng_t;
static inline void rng_seed(rng_t *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 1; }
static inline uint64_t rng_next(rng_t *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}
/* Uniform in [lo, hi]. */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi) {
  return lo + (size_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}
/* Log-uniform in [lo, hi]: as many 16..32 B requests as 512..1024 B ones. */
static inline size_t rng_logsize(rng_t *r, size_t lo, size_t hi) {
  unsigned lo_bits = 63u - (unsigned)__builtin_clzll(lo), hi_bits = 63u - (unsigned)__builtin_clzll(hi);
  unsigned b = lo_bits + (unsigned)(rng_next(r) % (hi_bits - lo_bits + 1));
  size_t base = (size_t)1 << b;
  size_t s = base + (size_t)(rng_next(r) % base);
  return s < lo ? lo : s > hi ? hi : s;
}

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident set size of this process in bytes, from /proc/self/statm. */
static inline size_t rss_bytes(void) {
  long pages_total = 0, pages_res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return 0;
  if (fscanf(f, "%ld %ld", &pages_total, &pages_res) != 2)
    pages_res = 0;
  fclose(f);
  return (size_t)pages_res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Write to a block so its pages are really used (and the work is not
 * optimised away): first, last and every 4 KiB in between. */
static inline void touch(void *p, size_t n, unsigned char v) {
  unsigned char *c = p;
  if (n == 0)
    return;
  for (size_t i = 0; i < n; i += 4096)
    c[i] = v;
  c[n - 1] = v;
}

static inline void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    fprintf(stderr, "bench: malloc(%zu) returned NULL\n", n);
    exit(3);
  }
  return p;
}

/* Block contents.  pat_fill writes a pattern derived from a 64-bit tag into
 * a block of n bytes, pat_ok checks it before the block is freed: all of a
 * block of up to PAT_FULL bytes (so overlapping small blocks, or allocator
 * metadata written into a live block, show), and for larger blocks the
 * first 64 bytes, one word in every 4 KiB page and the last 8 bytes (which
 * also touches every page, as a program using the block would). */
#define PAT_FULL 256
static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}
static inline uint64_t pat_at(uint64_t tag, size_t off) { return tag + (uint64_t)off * 0x9E3779B97F4A7C15ull; }
static inline void pat_fill(void *p, size_t n, uint64_t tag) {
  unsigned char *c = p;
  size_t head = n <= PAT_FULL ? n & ~(size_t)7 : 64;
  uint64_t w;
  for (size_t o = 0; o < head; o += 8) {
    w = pat_at(tag, o);
    memcpy(c + o, &w, 8);
  }
  if (n <= PAT_FULL) {
    for (size_t o = head; o < n; o++)
      c[o] = (unsigned char)(tag >> (8 * (o & 7)));
    return;
  }
  for (size_t o = 4096; o + 16 <= n; o += 4096) {
    w = pat_at(tag, o);
    memcpy(c + o, &w, 8);
  }
  w = pat_at(tag, n - 8);
  memcpy(c + n - 8, &w, 8);
}
static inline int pat_ok(const void *p, size_t n, uint64_t tag) {
  const unsigned char *c = p;
  size_t head = n <= PAT_FULL ? n & ~(size_t)7 : 64;
  uint64_t w;
  for (size_t o = 0; o < head; o += 8) {
    memcpy(&w, c + o, 8);
    if (w != pat_at(tag, o))
      return 0;
  }
  if (n <= PAT_FULL) {
    for (size_t o = head; o < n; o++)
      if (c[o] != (unsigned char)(tag >> (8 * (o & 7))))
        return 0;
    return 1;
  }
  for (size_t o = 4096; o + 16 <= n; o += 4096) {
    memcpy(&w, c + o, 8);
    if (w != pat_at(tag, o))
      return 0;
  }
  memcpy(&w, c + n - 8, 8);
  return w == pat_at(tag, n - 8);
}

/* A checksum sink so the compiler keeps every read. */
static volatile uint64_t bench_sink;

#endif
