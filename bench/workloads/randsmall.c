/* SPDX-License-Identifier: MIT */
/*
 * randsmall — a loop of random small mallocs and frees (issue 12, shape 6).
 * One thread, a table of `slots` entries; each step picks a random entry:
 * an empty one gets a new block of 1-128 B (half of them 1-32 B), written
 * with its pattern; a full one is checked and freed.  So the live set
 * random-walks around half the table, and the order of frees has nothing to
 * do with the order of mallocs (unlike churn, which replaces a block at
 * once, with blocks up to 1 KiB).
 *
 *   randsmall steps=N slots=N
 */
#include "common.h"

int main(int argc, char **argv) {
  long steps = arg_long(argc, argv, "steps", 50000000);
  long slots = arg_long(argc, argv, "slots", 5000);
  if (slots < 1)
    return 2;
  void **p = calloc((size_t)slots, sizeof *p);
  uint32_t *sz = calloc((size_t)slots, sizeof *sz);
  uint64_t *tag = calloc((size_t)slots, sizeof *tag);
  rng_t r;
  rng_seed(&r, 5);
  long bad = 0, mallocs = 0;
  double t0 = now_s();
  for (long i = 0; i < steps; i++) {
    uint64_t x = rng_next(&r);
    size_t k = (size_t)(((x >> 32) * (uint64_t)slots) >> 32);
    if (p[k]) {
      if (!pat_ok(p[k], sz[k], tag[k]))
        bad++;
      free(p[k]);
      p[k] = NULL;
    } else {
      uint32_t n = (x & 1) ? 1 + (uint32_t)((x >> 1) & 31) : 1 + (uint32_t)((x >> 1) & 127);
      p[k] = xmalloc(n);
      sz[k] = n;
      tag[k] = x;
      pat_fill(p[k], n, x);
      mallocs++;
    }
  }
  for (long k = 0; k < slots; k++)
    if (p[k]) {
      if (!pat_ok(p[k], sz[k], tag[k]))
        bad++;
      free(p[k]);
    }
  double t = now_s() - t0;
  if (bad) {
    fprintf(stderr, "randsmall: %ld corrupted blocks\n", bad);
    return 4;
  }
  free(p);
  free(sz);
  free(tag);
  printf("result steps=%ld mallocs=%ld secs=%.4f mops_per_s=%.3f\n", steps, mallocs, t, (double)steps / t / 1e6);
  return 0;
}
