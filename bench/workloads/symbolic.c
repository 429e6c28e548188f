/* SPDX-License-Identifier: MIT */
/*
 * symbolic — a long-lived symbolic computation (modelled on the idea of
 * cfrac and espresso): arithmetic on small heap-allocated big numbers makes
 * a stream of short-lived temporaries (24..150 B), while every few steps a
 * "relation" (a short list of 16-byte cells pointing at exact-size copies of
 * numbers) is kept in a table that only grows, with an occasional relation
 * dropped.  Many tiny objects, a growing working set, long run.
 *
 *   symbolic steps=N
 */
#include "common.h"

typedef struct {
  uint32_t len;
  uint32_t w[];
} big_t;

typedef struct cell {
  struct cell *next;
  big_t *val;
} cell_t;

static big_t *big_new(uint32_t len) {
  big_t *b = xmalloc(sizeof(big_t) + len * sizeof(uint32_t));
  b->len = len;
  return b;
}

static big_t *big_copy(const big_t *a) {
  big_t *b = big_new(a->len);
  memcpy(b->w, a->w, a->len * sizeof(uint32_t));
  return b;
}

/* Product of a and b, truncated to at most maxlen words. */
static big_t *big_mul(const big_t *a, const big_t *b, uint32_t maxlen) {
  uint32_t n = a->len + b->len;
  if (n > maxlen)
    n = maxlen;
  big_t *r = big_new(n);
  memset(r->w, 0, n * sizeof(uint32_t));
  for (uint32_t i = 0; i < a->len && i < n; i++) {
    uint64_t carry = 0;
    for (uint32_t j = 0; j < b->len && i + j < n; j++) {
      uint64_t t = (uint64_t)a->w[i] * b->w[j] + r->w[i + j] + carry;
      r->w[i + j] = (uint32_t)t;
      carry = t >> 32;
    }
    if (i + b->len < n)
      r->w[i + b->len] = (uint32_t)carry;
  }
  while (r->len > 1 && r->w[r->len - 1] == 0)
    r->len--;
  return r;
}

static big_t *big_add_small(const big_t *a, uint32_t s) {
  big_t *r = big_new(a->len + 1);
  uint64_t carry = s;
  for (uint32_t i = 0; i < a->len; i++) {
    uint64_t t = (uint64_t)a->w[i] + carry;
    r->w[i] = (uint32_t)t;
    carry = t >> 32;
  }
  r->w[a->len] = (uint32_t)carry;
  if (!carry)
    r->len = a->len;
  return r;
}

static void rel_free(cell_t *c) {
  while (c) {
    cell_t *n = c->next;
    free(c->val);
    free(c);
    c = n;
  }
}

int main(int argc, char **argv) {
  long steps = arg_long(argc, argv, "steps", 4000000);
  rng_t r;
  rng_seed(&r, 7);
  big_t *x = big_new(1);
  x->w[0] = 12345;
  big_t *a = big_new(3);
  a->w[0] = 0x9E3779B9u, a->w[1] = 0x7F4A7C15u, a->w[2] = 3;
  size_t nrel = 0, caprel = 1024, live_rel = 0;
  cell_t **rels = xmalloc(caprel * sizeof *rels);
  double t0 = now_s();
  for (long s = 0; s < steps; s++) {
    uint32_t maxlen = 2 + (uint32_t)(s % 31); /* numbers of 2..32 words */
    big_t *t = big_mul(x, a, maxlen);
    big_t *u = big_add_small(t, (uint32_t)s);
    free(t);
    free(x);
    x = u;
    if ((rng_next(&r) & 7) == 0) { /* keep a relation: 2..6 cells */
      cell_t *head = NULL;
      int k = 2 + (int)(rng_next(&r) % 5);
      for (int i = 0; i < k; i++) {
        cell_t *c = xmalloc(sizeof *c);
        c->val = big_copy(i ? a : x);
        if (i)
          c->val->w[0] ^= (uint32_t)i;
        c->next = head;
        head = c;
      }
      if (nrel == caprel) {
        caprel *= 2;
        rels = realloc(rels, caprel * sizeof *rels);
        if (!rels)
          return 3;
      }
      rels[nrel++] = head;
      live_rel++;
    }
    if (nrel && (rng_next(&r) & 63) == 0) { /* drop an old relation */
      size_t k = (size_t)(rng_next(&r) % nrel);
      if (rels[k]) {
        rel_free(rels[k]);
        rels[k] = NULL;
        live_rel--;
      }
    }
  }
  double t = now_s() - t0;
  uint64_t sum = 0;
  for (uint32_t i = 0; i < x->len; i++)
    sum = sum * 31 + x->w[i];
  for (size_t i = 0; i < nrel; i++)
    for (cell_t *c = rels[i]; c; c = c->next)
      sum += c->val->w[0];
  for (size_t i = 0; i < nrel; i++)
    rel_free(rels[i]);
  free(rels);
  free(x);
  free(a);
  printf("result steps=%ld live_relations=%zu checksum=%016llx secs=%.4f mops_per_s=%.3f\n", steps, live_rel,
         (unsigned long long)sum, t, (double)steps / t / 1e6);
  return 0;
}
