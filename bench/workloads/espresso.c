/* SPDX-License-Identifier: MIT */
/*
 * espresso — a two-level logic minimiser in the manner of Berkeley's
 * espresso (issue 12, shape 6; our own small version).  A Boolean function
 * is a cover: a growing array of cubes, each a heap block of 1-3 words (two
 * bits a variable: 01 = x', 10 = x, 11 = don't care) with a checksum.  For
 * each of N problems (16-72 variables, 12-80 cubes made by splitting a few
 * random implicants), the program
 *   - merges cubes at distance 1 (consensus) and drops cubes contained in
 *     another, until nothing changes (the cover grows, then shrinks);
 *   - removes redundant cubes: c is redundant when the rest of the cover,
 *     cofactored against c, is a tautology, checked by Shannon expansion on
 *     the most binate variable: every level allocates two new covers of cube
 *     copies and frees them;
 *   - checks that the result is the same function as the problem (64
 *     minterms, half of them taken from the problem's cubes).
 * Every cube's checksum is verified when it is freed.  Single thread; many
 * 16-32 B blocks and small arrays (realloc'd) of mixed lifetimes.
 *
 *   espresso problems=N
 */
#include "common.h"

typedef struct {
  uint32_t check;
  uint32_t nw;
  uint64_t w[];
} cube_t;

typedef struct {
  cube_t **c;
  int n, cap;
} cover_t;

static int V, NW;        /* variables, words a cube, for the current problem */
static uint64_t VALID[3]; /* the bits of the V variables */
static uint64_t LO[3];    /* the low bit of each variable */
static long bad, nmalloc;

static uint32_t cube_sum(const cube_t *c) {
  uint64_t h = c->nw;
  for (uint32_t i = 0; i < c->nw; i++)
    h = mix64(h ^ c->w[i]);
  return (uint32_t)h;
}

static cube_t *cube_new(void) {
  cube_t *c = xmalloc(sizeof(cube_t) + (size_t)NW * 8);
  c->nw = (uint32_t)NW;
  nmalloc++;
  return c;
}
static cube_t *cube_seal(cube_t *c) {
  c->check = cube_sum(c);
  return c;
}
static cube_t *cube_copy(const cube_t *a) {
  cube_t *c = cube_new();
  memcpy(c->w, a->w, (size_t)NW * 8);
  return c;
}
static void cube_free(cube_t *c) {
  if (c->nw != (uint32_t)NW || c->check != cube_sum(c))
    bad++;
  free(c);
}

static cover_t *cover_new(void) {
  cover_t *f = xmalloc(sizeof *f);
  f->n = 0;
  f->cap = 4;
  f->c = xmalloc((size_t)f->cap * sizeof(cube_t *));
  nmalloc += 2;
  return f;
}
static void cover_add(cover_t *f, cube_t *c) {
  if (f->n == f->cap) {
    f->cap *= 2;
    f->c = realloc(f->c, (size_t)f->cap * sizeof(cube_t *));
    if (!f->c)
      exit(3);
  }
  f->c[f->n++] = c;
}
/* Drop the NULL entries; give memory back when the array is under a quarter full. */
static void cover_compact(cover_t *f) {
  int k = 0;
  for (int i = 0; i < f->n; i++)
    if (f->c[i])
      f->c[k++] = f->c[i];
  f->n = k;
  if (f->cap > 8 && f->n < f->cap / 4) {
    f->cap /= 2;
    f->c = realloc(f->c, (size_t)f->cap * sizeof(cube_t *));
    if (!f->c)
      exit(3);
  }
}
static void cover_free(cover_t *f) {
  for (int i = 0; i < f->n; i++)
    if (f->c[i])
      cube_free(f->c[i]);
  free(f->c);
  free(f);
}

static int var_of(const cube_t *c, int v) { return (int)(c->w[v / 32] >> (2 * (v % 32))) & 3; }
static void set_var(cube_t *c, int v, int bits) {
  c->w[v / 32] = (c->w[v / 32] & ~(3ull << (2 * (v % 32)))) | ((uint64_t)bits << (2 * (v % 32)));
}
/* The variables where a and b have no value in common. */
static uint64_t void_bits(const cube_t *a, const cube_t *b, int i) {
  uint64_t x = a->w[i] & b->w[i];
  return LO[i] & ~(x | (x >> 1));
}
/* The distance between a and b: the variables where they are disjoint, 0, 1 or 2 (for 2 or more). */
static int distance(const cube_t *a, const cube_t *b) {
  int d = 0;
  for (int i = 0; i < NW; i++) {
    uint64_t x = void_bits(a, b, i);
    if (x)
      d += (x & (x - 1)) ? 2 : 1;
  }
  return d > 2 ? 2 : d;
}
static int contains(const cube_t *big, const cube_t *small) {
  for (int i = 0; i < NW; i++)
    if (small->w[i] & ~big->w[i])
      return 0;
  return 1;
}
static int is_full(const cube_t *c) {
  for (int i = 0; i < NW; i++)
    if (c->w[i] != VALID[i])
      return 0;
  return 1;
}

/* Cofactor against variable v = b: the cubes that allow it, v raised. */
static cover_t *cofactor_var(const cover_t *f, int v, int b) {
  cover_t *g = cover_new();
  for (int i = 0; i < f->n; i++)
    if (var_of(f->c[i], v) & (1 << b)) {
      cube_t *c = cube_copy(f->c[i]);
      set_var(c, v, 3);
      cover_add(g, cube_seal(c));
    }
  return g;
}

/* Cofactor against cube p, leaving out entry skip: the cubes that meet p,
 * with p's literals raised. */
static cover_t *cofactor_cube(const cover_t *f, const cube_t *p, int skip) {
  cover_t *g = cover_new();
  for (int i = 0; i < f->n; i++) {
    if (i == skip || !f->c[i] || distance(f->c[i], p))
      continue;
    cube_t *c = cube_copy(f->c[i]);
    for (int k = 0; k < NW; k++) {
      uint64_t dash = p->w[k] & (p->w[k] >> 1) & LO[k];
      c->w[k] |= VALID[k] & ~(dash | (dash << 1));
    }
    cover_add(g, cube_seal(c));
  }
  return g;
}

static long taut_budget;

static int tautology(const cover_t *f) {
  if (f->n == 0)
    return 0;
  for (int i = 0; i < f->n; i++)
    if (is_full(f->c[i]))
      return 1;
  if (--taut_budget < 0)
    return 0;
  /* split on the first binate variable (one that appears as x and as x') */
  int best = -1;
  for (int k = 0; k < NW && best < 0; k++) {
    uint64_t zeros = 0, ones = 0;
    for (int i = 0; i < f->n; i++) {
      uint64_t w = f->c[i]->w[k];
      zeros |= w & ~(w >> 1);
      ones |= (w >> 1) & ~w;
    }
    uint64_t binate = zeros & ones & LO[k];
    if (binate)
      best = 32 * k + __builtin_ctzll(binate) / 2;
  }
  if (best < 0) /* unate, and no full cube: not a tautology */
    return 0;
  cover_t *g = cofactor_var(f, best, 0);
  int r = tautology(g);
  cover_free(g);
  if (r) {
    g = cofactor_var(f, best, 1);
    r = tautology(g);
    cover_free(g);
  }
  return r;
}

/* Merge cubes at distance 1 and drop contained ones until nothing changes. */
static void merge(cover_t *f) {
  for (int pass = 0; pass < 8; pass++) {
    int n = f->n, added = 0;
    for (int i = 0; i < n; i++)
      for (int j = i + 1; j < n; j++) {
        if (distance(f->c[i], f->c[j]) != 1)
          continue;
        cube_t *c = cube_new();
        for (int k = 0; k < NW; k++) {
          uint64_t m = void_bits(f->c[i], f->c[j], k);
          c->w[k] = (f->c[i]->w[k] & f->c[j]->w[k]) | m | (m << 1);
        }
        int dup = 0;
        for (int k = 0; k < f->n && !dup; k++)
          dup = contains(f->c[k], c);
        if (dup) {
          cube_free(cube_seal(c));
        } else {
          cover_add(f, cube_seal(c));
          added++;
        }
      }
    for (int i = 0; i < f->n; i++)
      for (int j = 0; j < f->n && f->c[i]; j++)
        if (j != i && f->c[j] && contains(f->c[j], f->c[i]) && (j < i || !contains(f->c[i], f->c[j]))) {
          cube_free(f->c[i]);
          f->c[i] = NULL;
        }
    cover_compact(f);
    if (!added)
      break;
  }
}

static void irredundant(cover_t *f) {
  for (int i = 0; i < f->n; i++) {
    cover_t *g = cofactor_cube(f, f->c[i], i);
    taut_budget = 4000;
    if (tautology(g)) {
      cube_free(f->c[i]);
      f->c[i] = NULL;
    }
    cover_free(g);
  }
  cover_compact(f);
}

static int covers(const cover_t *f, const cube_t *m) {
  for (int i = 0; i < f->n; i++)
    if (contains(f->c[i], m))
      return 1;
  return 0;
}

int main(int argc, char **argv) {
  long problems = arg_long(argc, argv, "problems", 2000);
  rng_t r;
  rng_seed(&r, 2024);
  uint64_t sum = 0;
  long cubes_in = 0, cubes_out = 0, wrong = 0;
  double t0 = now_s();
  for (long p = 0; p < problems; p++) {
    V = (int)rng_range(&r, 16, 72);
    NW = (V + 31) / 32;
    for (int i = 0; i < 3; i++) {
      int nv = V - 32 * i;
      nv = nv < 0 ? 0 : nv > 32 ? 32 : nv;
      VALID[i] = nv == 32 ? ~0ull : (1ull << (2 * nv)) - 1;
      LO[i] = VALID[i] & 0x5555555555555555ull;
    }
    /* the problem: a few implicants, each split into cubes by fixing 1-3 of its free variables */
    cover_t *orig = cover_new();
    int seeds = (int)rng_range(&r, 4, 10);
    for (int s = 0; s < seeds; s++) {
      cube_t *seed = cube_new();
      for (int k = 0; k < NW; k++)
        seed->w[k] = VALID[k];
      for (int v = 0; v < V; v++)
        if (rng_next(&r) % 3 == 0)
          set_var(seed, v, 1 + (int)(rng_next(&r) & 1));
      int kids = (int)rng_range(&r, 3, 8);
      for (int k = 0; k < kids; k++) {
        cube_t *c = cube_copy(seed);
        int fix = (int)rng_range(&r, 1, 3);
        for (int t = 0; t < fix; t++) {
          int v = (int)(rng_next(&r) % (uint64_t)V);
          if (var_of(c, v) == 3)
            set_var(c, v, 1 + (int)(rng_next(&r) & 1));
        }
        cover_add(orig, cube_seal(c));
      }
      cube_free(cube_seal(seed));
    }
    cover_t *f = cover_new();
    for (int i = 0; i < orig->n; i++)
      cover_add(f, cube_seal(cube_copy(orig->c[i])));
    merge(f);
    irredundant(f);
    cubes_in += orig->n;
    cubes_out += f->n;
    /* the same function? */
    cube_t *m = cube_new();
    for (int t = 0; t < 64; t++) {
      const cube_t *from = t & 1 ? orig->c[rng_next(&r) % (uint64_t)orig->n] : NULL;
      for (int v = 0; v < V; v++) {
        int b = from ? var_of(from, v) : 3;
        set_var(m, v, b == 3 ? 1 + (int)(rng_next(&r) & 1) : b);
      }
      if (covers(orig, m) != covers(f, m))
        wrong++;
    }
    cube_free(cube_seal(m));
    for (int i = 0; i < f->n; i++)
      sum = mix64(sum ^ f->c[i]->w[0]);
    cover_free(f);
    cover_free(orig);
  }
  double t = now_s() - t0;
  if (bad || wrong) {
    fprintf(stderr, "espresso: %ld corrupted cubes, %ld minterms where the result differs\n", bad, wrong);
    return 4;
  }
  printf("result problems=%ld cubes_in=%ld cubes_out=%ld mallocs=%ld checksum=%016llx secs=%.4f mops_per_s=%.3f\n",
         problems, cubes_in, cubes_out, nmalloc, (unsigned long long)sum, t, (double)nmalloc / t / 1e6);
  return 0;
}
