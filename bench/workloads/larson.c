/* SPDX-License-Identifier: MIT */
/*
 * larson — a server simulation (modelled on the idea of Larson and
 * Krishnan's benchmark).  Each of T threads owns a table of live blocks
 * (sizes 8 B .. 1000 B) and replaces random entries.  Work runs in
 * generations: at the end of a generation every thread exits and a new
 * thread takes over a neighbour's table, so from then on it frees blocks
 * another thread allocated, and thread caches/arenas of dead threads must be
 * handed on.  Each thread does the same number of operations, so the
 * throughput with 1 and 2 threads can be compared directly.
 *
 * With sized=1 (larson-sized) every free of a block whose size the table
 * knows goes through C23's free_sized(p, size) when the allocator exports
 * it (looked up with dlsym at run time: glibc 2.36 has none), else through
 * plain free; the result line says which (sized=1 or 0).
 *
 *   larson threads=T ops=N (per thread) slots=N (per thread) gens=N sized=0|1
 */
#include "tables.h"
#include <dlfcn.h>

static void *worker(void *arg) {
  job_t *j = arg;
  table_t *t = j->table;
  rng_t r;
  rng_seed(&r, j->seed);
  for (long i = 0; i < j->ops; i++) {
    size_t k = (size_t)(rng_next(&r) % (uint64_t)t->nslots);
    if (!table_ok(t, k))
      j->bad++;
    free(t->slots[k]);
    table_put(t, (long)k, &r);
  }
  return NULL;
}

static void (*free_sized_fn)(void *, size_t);
static void free_plain(void *p, size_t n) {
  (void)n;
  free(p);
}

/* worker, with the size passed to the free. */
static void *worker_sized(void *arg) {
  job_t *j = arg;
  table_t *t = j->table;
  rng_t r;
  rng_seed(&r, j->seed);
  for (long i = 0; i < j->ops; i++) {
    size_t k = (size_t)(rng_next(&r) % (uint64_t)t->nslots);
    if (!table_ok(t, k))
      j->bad++;
    free_sized_fn(t->slots[k], t->sizes[k]);
    table_put(t, (long)k, &r);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int nthreads = (int)arg_long(argc, argv, "threads", 2);
  long ops = arg_long(argc, argv, "ops", 10000000);
  long nslots = arg_long(argc, argv, "slots", 5000);
  int gens = (int)arg_long(argc, argv, "gens", 50);
  int sized = (int)arg_long(argc, argv, "sized", 0);
  if (sized) {
    free_sized_fn = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    if (!free_sized_fn) {
      free_sized_fn = free_plain;
      sized = 0;
    }
  }
  table_t *tables = tables_make(nthreads, nslots);
  double t0 = now_s();
  long bad = tables_run(tables, nthreads, gens, ops, free_sized_fn ? worker_sized : worker);
  double t = now_s() - t0;
  if (bad) {
    fprintf(stderr, "larson: corrupted block\n");
    return 4;
  }
  tables_free(tables, nthreads);
  long total = (ops / gens) * gens * nthreads;
  if (free_sized_fn)
    printf("result threads=%d sized=%d ops=%ld secs=%.4f mops_per_s=%.3f\n", nthreads, sized, total, t,
           (double)total / t / 1e6);
  else
    printf("result threads=%d ops=%ld secs=%.4f mops_per_s=%.3f\n", nthreads, total, t, (double)total / t / 1e6);
  return 0;
}
