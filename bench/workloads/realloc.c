/* SPDX-License-Identifier: MIT */
/*
 * realloc — growth by realloc, as vectors and strings do it.  A set of live
 * vectors grow by doubling up to a random target (16 B .. 4 MiB), are
 * shrunk to fit, and are freed; a set of strings grow by small appends
 * (realloc to exactly the new length each time, as naive string builders
 * do) and are truncated.  Contents are checked after every move.
 *
 *   realloc rounds=N
 */
#include "common.h"

#define NVEC 64
#define NSTR 256

typedef struct {
  unsigned char *p;
  size_t len, cap, target;
} vec_t;

static int check(const unsigned char *p, size_t len, unsigned char seed) {
  /* sample a few positions: every byte of a buffer holds its seed */
  for (size_t i = 0; i < len; i += 1 + len / 8)
    if (p[i] != seed)
      return 0;
  return len == 0 || p[len - 1] == seed;
}

int main(int argc, char **argv) {
  long rounds = arg_long(argc, argv, "rounds", 3000000);
  rng_t r;
  rng_seed(&r, 3);
  vec_t v[NVEC], s[NSTR];
  memset(v, 0, sizeof v);
  memset(s, 0, sizeof s);
  uint64_t reallocs = 0;
  double t0 = now_s();
  for (long i = 0; i < rounds; i++) {
    if (i & 1) { /* a vector step */
      vec_t *x = &v[rng_next(&r) % NVEC];
      unsigned char seed = (unsigned char)(x - v);
      if (!x->target)
        x->target = rng_logsize(&r, 16, (size_t)4 << 20);
      size_t add = 1 + x->len / 4 + rng_range(&r, 0, 64);
      if (x->len + add > x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        while (cap < x->len + add)
          cap *= 2;
        x->p = realloc(x->p, cap);
        if (!x->p)
          return 3;
        x->cap = cap;
        reallocs++;
        if (!check(x->p, x->len, seed)) {
          fprintf(stderr, "realloc: vector lost its contents\n");
          return 4;
        }
      }
      memset(x->p + x->len, seed, add);
      x->len += add;
      if (x->len >= x->target) {
        if (rng_next(&r) & 1) { /* shrink to fit, keep for a while */
          x->p = realloc(x->p, x->len / 2);
          if (!x->p)
            return 3;
          x->len /= 2;
          x->cap = x->len;
          reallocs++;
          if (!check(x->p, x->len, seed)) {
            fprintf(stderr, "realloc: shrink lost contents\n");
            return 4;
          }
        } else {
          free(x->p);
          x->p = NULL;
          x->len = x->cap = 0;
        }
        x->target = 0;
      }
    } else { /* a string step: append 1..40 bytes, realloc to the exact length */
      vec_t *x = &s[rng_next(&r) % NSTR];
      unsigned char seed = (unsigned char)(x - s);
      size_t add = rng_range(&r, 1, 40);
      x->p = realloc(x->p, x->len + add);
      if (!x->p)
        return 3;
      reallocs++;
      memset(x->p + x->len, seed, add);
      x->len += add;
      if (x->len > 16384) { /* truncate */
        x->len = rng_range(&r, 0, 64);
        x->p = realloc(x->p, x->len + 1);
        if (!x->p)
          return 3;
        reallocs++;
      }
      if (!check(x->p, x->len, seed)) {
        fprintf(stderr, "realloc: string lost its contents\n");
        return 4;
      }
    }
  }
  for (int i = 0; i < NVEC; i++)
    free(v[i].p);
  for (int i = 0; i < NSTR; i++)
    free(s[i].p);
  double t = now_s() - t0;
  printf("result rounds=%ld reallocs=%llu secs=%.4f\n", rounds, (unsigned long long)reallocs, t);
  return 0;
}
