/* SPDX-License-Identifier: MIT */
/*
 * aligned — small blocks aligned to a cache line or more, as C++ programs
 * get them for alignas(64) types (operator new with std::align_val_t is
 * memalign) and concurrent code for its per-thread counters and queue
 * nodes.  T threads, each with a table of `slots` entries: every step
 * replaces a random entry with a block of 40-512 B (mostly 40-192: each
 * size of 64, 128, ... 512 B or 24 B short of it) aligned to 64 B
 * (posix_memalign), one in four aligned to 32 or 128 B
 * (aligned_alloc), written with its pattern; the block it replaces is
 * checked and freed.  Every `burst` steps the thread also takes `burst`
 * aligned blocks at once and frees them again, as a batch of tasks would.
 *
 *   aligned threads=T steps=N (per thread) slots=N burst=N
 */
#include "common.h"

#include <pthread.h>

static long steps, slots, burst;

static size_t draw_size(rng_t *r) {
  static const size_t sizes[8] = {64, 64, 128, 128, 192, 256, 384, 512};
  uint64_t x = rng_next(r);
  return sizes[x & 7] - ((x >> 3) & 1) * 24;
}

static void *take(rng_t *r, size_t n) {
  uint64_t x = rng_next(r);
  void *p = NULL;
  size_t align = (x & 3) != 0 ? 64 : (x & 4) ? 32 : 128;
  if (align == 64) {
    if (posix_memalign(&p, 64, n) != 0)
      p = NULL;
  } else {
    p = aligned_alloc(align, (n + align - 1) / align * align);
  }
  if (!p || ((uintptr_t)p & (align - 1))) {
    fprintf(stderr, "aligned: no aligned block of %zu bytes\n", n);
    exit(3);
  }
  return p;
}

static void *worker(void *arg) {
  long id = (long)(intptr_t)arg, bad = 0;
  rng_t r;
  rng_seed(&r, 40 + (uint64_t)id);
  void **p = calloc((size_t)slots, sizeof *p);
  uint32_t *sz = calloc((size_t)slots, sizeof *sz);
  uint64_t *tag = calloc((size_t)slots, sizeof *tag);
  void **batch = calloc((size_t)burst, sizeof *batch);
  for (long i = 0; i < steps; i++) {
    size_t k = (size_t)(rng_next(&r) % (uint64_t)slots);
    if (p[k]) {
      bad += !pat_ok(p[k], sz[k], tag[k]);
      free(p[k]);
    }
    size_t n = draw_size(&r);
    p[k] = take(&r, n);
    sz[k] = (uint32_t)n;
    tag[k] = rng_next(&r);
    pat_fill(p[k], n, tag[k]);
    if (burst > 0 && i % burst == 0) {
      for (long b = 0; b < burst; b++) {
        batch[b] = take(&r, 128);
        *(volatile long *)batch[b] = b;
      }
      for (long b = 0; b < burst; b++) {
        bad += *(long *)batch[b] != b;
        free(batch[b]);
      }
    }
  }
  for (long k = 0; k < slots; k++)
    if (p[k]) {
      bad += !pat_ok(p[k], sz[k], tag[k]);
      free(p[k]);
    }
  free(p);
  free(sz);
  free(tag);
  free(batch);
  return (void *)(intptr_t)bad;
}

int main(int argc, char **argv) {
  long nthreads = arg_long(argc, argv, "threads", 2);
  steps = arg_long(argc, argv, "steps", 2000000);
  slots = arg_long(argc, argv, "slots", 20000);
  burst = arg_long(argc, argv, "burst", 256);
  if (nthreads < 1 || nthreads > 64 || slots < 1 || burst < 0)
    return 2;
  pthread_t t[64];
  double t0 = now_s();
  for (long i = 0; i < nthreads; i++)
    pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
  long bad = 0;
  for (long i = 0; i < nthreads; i++) {
    void *res;
    pthread_join(t[i], &res);
    bad += (long)(intptr_t)res;
  }
  double secs = now_s() - t0;
  if (bad) {
    fprintf(stderr, "aligned: %ld corrupted blocks\n", bad);
    return 4;
  }
  printf("result threads=%ld steps=%ld secs=%.4f mops_per_s=%.3f\n", nthreads, steps, secs,
         (double)nthreads * (double)steps / secs / 1e6);
  return 0;
}
