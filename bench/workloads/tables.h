/* SPDX-License-Identifier: MIT */
/*
 * larson's tables, shared by larson.c (which replaces blocks with malloc
 * and free) and spin.c (which does the same memory work without them, to
 * measure what the machine gives it): T tables of live blocks, 8..1000
 * bytes, each tagged with its size in the first byte and its slot in the
 * last; work runs in generations of fresh threads, and in generation g
 * thread i takes over table (i + g) mod T.
 */
#ifndef BENCH_TABLES_H
#define BENCH_TABLES_H

#include "common.h"

typedef struct {
  unsigned char **slots;
  size_t *sizes;
  long nslots;
} table_t;

typedef struct {
  table_t *table;
  long ops;
  uint64_t seed;
  long bad;
} job_t;

/* A new tagged block of a random size for slot k of t. */
static inline void table_put(table_t *t, long k, rng_t *r) {
  size_t n = rng_range(r, 8, 1000);
  unsigned char *p = xmalloc(n);
  p[0] = (unsigned char)n;
  p[n - 1] = (unsigned char)k;
  t->slots[k] = p;
  t->sizes[k] = n;
}

/* Is slot k's block as it was put there? */
static inline int table_ok(const table_t *t, size_t k) {
  const unsigned char *p = t->slots[k];
  return p[0] == (unsigned char)t->sizes[k] && p[t->sizes[k] - 1] == (unsigned char)k;
}

static table_t *tables_make(int ntables, long nslots) {
  table_t *tables = calloc((size_t)ntables, sizeof *tables);
  rng_t r;
  rng_seed(&r, 99);
  for (int i = 0; i < ntables; i++) {
    tables[i].nslots = nslots;
    tables[i].slots = calloc((size_t)nslots, sizeof(void *));
    tables[i].sizes = calloc((size_t)nslots, sizeof(size_t));
    for (long k = 0; k < nslots; k++)
      table_put(&tables[i], k, &r);
  }
  return tables;
}

static void tables_free(table_t *tables, int ntables) {
  for (int i = 0; i < ntables; i++) {
    for (long k = 0; k < tables[i].nslots; k++)
      free(tables[i].slots[k]);
    free(tables[i].slots);
    free(tables[i].sizes);
  }
  free(tables);
}

/* gens generations of nthreads fresh threads running worker on a job of
 * ops / gens operations each; returns the bad entries they found. */
static long tables_run(table_t *tables, int nthreads, int gens, long ops, void *(*worker)(void *)) {
  pthread_t *th = calloc((size_t)nthreads, sizeof *th);
  job_t *jobs = calloc((size_t)nthreads, sizeof *jobs);
  long bad = 0;
  for (int g = 0; g < gens; g++) {
    for (int i = 0; i < nthreads; i++) {
      jobs[i] = (job_t){&tables[(i + g) % nthreads], ops / gens, (uint64_t)(g * 1000 + i + 1), 0};
      pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    for (int i = 0; i < nthreads; i++) {
      pthread_join(th[i], NULL);
      bad += jobs[i].bad;
    }
  }
  free(th);
  free(jobs);
  return bad;
}

#endif
