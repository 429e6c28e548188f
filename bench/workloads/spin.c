/* SPDX-License-Identifier: MIT */
/*
 * spin — calibration, no allocation in the timed part.  It tells how much
 * parallel speed-up this machine gives at all, the ceiling for any
 * allocator's thread scaling: time(1 thread) * T / time(T threads).
 *
 *   spin threads=T loops=N
 *     Each thread runs the same pure arithmetic loop.  On shared or
 *     hyper-threaded cores this is well below T.
 *
 *   spin threads=T tables=N ops=N gens=N
 *     larson without the allocator: each thread owns a table of N blocks
 *     (8..1000 bytes, made before the clock starts) and does larson's
 *     per-operation memory work on random entries (check the first and last
 *     byte, draw a new size, write the first and last byte), in generations
 *     of fresh threads that take over a neighbour's table.  Where the two
 *     threads share caches or memory bandwidth, this scales below the
 *     arithmetic loop, and larson can scale no better than this.
 */
#include "tables.h"

static long loops;

static void *arith(void *arg) {
  uint64_t x = (uint64_t)(uintptr_t)arg + 1;
  for (long i = 0; i < loops; i++)
    x = x * 6364136223846793005ull + 1442695040888963407ull;
  bench_sink = x;
  return NULL;
}

/* larson's worker (larson.c) with its free and malloc taken out: the same
 * check, the same draw of a size, the same two writes, into the block that
 * is there. */
static void *tables_worker(void *arg) {
  job_t *j = arg;
  table_t *t = j->table;
  rng_t r;
  rng_seed(&r, j->seed);
  size_t drawn = 0;
  for (long i = 0; i < j->ops; i++) {
    size_t k = (size_t)(rng_next(&r) % (uint64_t)t->nslots);
    if (!table_ok(t, k))
      j->bad++;
    drawn += rng_range(&r, 8, 1000);
    unsigned char *p = t->slots[k];
    p[0] = (unsigned char)t->sizes[k];
    p[t->sizes[k] - 1] = (unsigned char)k;
  }
  bench_sink = drawn;
  return NULL;
}

int main(int argc, char **argv) {
  int nthreads = (int)arg_long(argc, argv, "threads", 1);
  loops = arg_long(argc, argv, "loops", 200000000);
  long nslots = arg_long(argc, argv, "tables", 0);
  long ops = arg_long(argc, argv, "ops", 20000000);
  int gens = (int)arg_long(argc, argv, "gens", 50);
  if (nthreads < 1 || nthreads > 64 || nslots < 0 || gens < 1)
    return 2;
  table_t *tables = nslots > 0 ? tables_make(nthreads, nslots) : NULL;
  double t0 = now_s();
  long bad = 0;
  if (!tables) {
    pthread_t th[64];
    for (int i = 0; i < nthreads; i++)
      pthread_create(&th[i], NULL, arith, (void *)(uintptr_t)i);
    for (int i = 0; i < nthreads; i++)
      pthread_join(th[i], NULL);
  } else {
    bad = tables_run(tables, nthreads, gens, ops, tables_worker);
  }
  double t = now_s() - t0;
  if (bad) {
    fprintf(stderr, "spin: a table entry changed under its owner\n");
    return 4;
  }
  if (tables)
    tables_free(tables, nthreads);
  printf("result threads=%d secs=%.4f\n", nthreads, t);
  return 0;
}
