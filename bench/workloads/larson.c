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
 *   larson threads=T ops=N (per thread) slots=N (per thread) gens=N
 */
#include "tables.h"

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

int main(int argc, char **argv) {
  int nthreads = (int)arg_long(argc, argv, "threads", 2);
  long ops = arg_long(argc, argv, "ops", 10000000);
  long nslots = arg_long(argc, argv, "slots", 5000);
  int gens = (int)arg_long(argc, argv, "gens", 50);
  table_t *tables = tables_make(nthreads, nslots);
  double t0 = now_s();
  long bad = tables_run(tables, nthreads, gens, ops, worker);
  double t = now_s() - t0;
  if (bad) {
    fprintf(stderr, "larson: corrupted block\n");
    return 4;
  }
  tables_free(tables, nthreads);
  long total = (ops / gens) * gens * nthreads;
  printf("result threads=%d ops=%ld secs=%.4f mops_per_s=%.3f\n", nthreads, total, t, (double)total / t / 1e6);
  return 0;
}
