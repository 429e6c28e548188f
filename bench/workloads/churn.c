/* SPDX-License-Identifier: MIT */
/*
 * churn — small-object churn on one thread (modelled on glibc-simple /
 * alloc-test).  A pool of live objects, sizes 8 B .. 1 KiB; each step frees
 * a random slot and puts a fresh object of a random size in its place.
 * Every object carries a tag checked when it is freed.
 *
 *   churn iters=N slots=N
 */
#include "common.h"

int main(int argc, char **argv) {
  long iters = arg_long(argc, argv, "iters", 20000000);
  long slots = arg_long(argc, argv, "slots", 10000);
  rng_t r;
  rng_seed(&r, 42);
  uint64_t **pool = calloc((size_t)slots, sizeof *pool);
  double t0 = now_s();
  for (long i = 0; i < iters; i++) {
    size_t k = (size_t)(rng_next(&r) % (uint64_t)slots);
    if (pool[k]) {
      if (pool[k][0] != (uint64_t)k) {
        fprintf(stderr, "churn: corrupted object\n");
        return 4;
      }
      free(pool[k]);
    }
    size_t n = rng_range(&r, 8, 1024);
    pool[k] = xmalloc(n);
    pool[k][0] = (uint64_t)k;
    if (n > 8)
      ((unsigned char *)pool[k])[n - 1] = (unsigned char)i;
  }
  for (long k = 0; k < slots; k++)
    free(pool[k]);
  free(pool);
  double t = now_s() - t0;
  printf("result ops=%ld secs=%.4f mops_per_s=%.3f\n", iters, t, (double)iters / t / 1e6);
  return 0;
}
