/* SPDX-License-Identifier: MIT */
/*
 * large — large blocks around the mmap threshold: a pool of 24 live blocks
 * of 64 KiB .. 32 MiB (log-uniform, so every power of two is as likely);
 * each step frees a random block and allocates a new one.  Half the blocks
 * are written in full (every page), half only at both ends, as buffers that
 * are sized generously and filled partly are.
 *
 *   large steps=N
 */
#include "common.h"

#define SLOTS 24

int main(int argc, char **argv) {
  long steps = arg_long(argc, argv, "steps", 3000);
  rng_t r;
  rng_seed(&r, 11);
  unsigned char *pool[SLOTS] = {0};
  size_t sizes[SLOTS] = {0};
  double t0 = now_s();
  size_t peak_live = 0, live = 0;
  for (long i = 0; i < steps; i++) {
    int k = (int)(rng_next(&r) % SLOTS);
    if (pool[k]) {
      if (pool[k][0] != (unsigned char)k || pool[k][sizes[k] - 1] != (unsigned char)k) {
        fprintf(stderr, "large: corrupted block\n");
        return 4;
      }
      free(pool[k]);
      live -= sizes[k];
    }
    size_t n = rng_logsize(&r, (size_t)64 << 10, (size_t)32 << 20);
    pool[k] = xmalloc(n);
    sizes[k] = n;
    live += n;
    if (live > peak_live)
      peak_live = live;
    if (rng_next(&r) & 1) {
      touch(pool[k], n, (unsigned char)k);
    } else {
      size_t edge = n < (128u << 10) ? n : (64u << 10);
      touch(pool[k], edge, (unsigned char)k);
      touch(pool[k] + n - edge, edge, (unsigned char)k);
    }
    pool[k][0] = (unsigned char)k;
    pool[k][n - 1] = (unsigned char)k;
  }
  for (int k = 0; k < SLOTS; k++)
    free(pool[k]);
  double t = now_s() - t0;
  printf("result steps=%ld peak_live_mib=%.1f secs=%.4f\n", steps, (double)peak_live / 1048576.0, t);
  return 0;
}
