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
#include "common.h"

typedef struct {
  void **slots;
  size_t *sizes;
  long nslots;
} table_t;

typedef struct {
  table_t *table;
  long ops;
  uint64_t seed;
  int bad;
} job_t;

static void *worker(void *arg) {
  job_t *j = arg;
  table_t *t = j->table;
  rng_t r;
  rng_seed(&r, j->seed);
  for (long i = 0; i < j->ops; i++) {
    size_t k = (size_t)(rng_next(&r) % (uint64_t)t->nslots);
    unsigned char *old = t->slots[k];
    if (old[0] != (unsigned char)t->sizes[k] || old[t->sizes[k] - 1] != (unsigned char)k)
      j->bad = 1;
    free(old);
    size_t n = rng_range(&r, 8, 1000);
    unsigned char *p = xmalloc(n);
    p[0] = (unsigned char)n;
    p[n - 1] = (unsigned char)k;
    t->slots[k] = p;
    t->sizes[k] = n;
  }
  return NULL;
}

int main(int argc, char **argv) {
  int nthreads = (int)arg_long(argc, argv, "threads", 2);
  long ops = arg_long(argc, argv, "ops", 10000000);
  long nslots = arg_long(argc, argv, "slots", 5000);
  int gens = (int)arg_long(argc, argv, "gens", 50);
  table_t *tables = calloc((size_t)nthreads, sizeof *tables);
  rng_t r;
  rng_seed(&r, 99);
  for (int i = 0; i < nthreads; i++) {
    tables[i].nslots = nslots;
    tables[i].slots = calloc((size_t)nslots, sizeof(void *));
    tables[i].sizes = calloc((size_t)nslots, sizeof(size_t));
    for (long k = 0; k < nslots; k++) {
      size_t n = rng_range(&r, 8, 1000);
      unsigned char *p = xmalloc(n);
      p[0] = (unsigned char)n;
      p[n - 1] = (unsigned char)k;
      tables[i].slots[k] = p;
      tables[i].sizes[k] = n;
    }
  }
  pthread_t *th = calloc((size_t)nthreads, sizeof *th);
  job_t *jobs = calloc((size_t)nthreads, sizeof *jobs);
  double t0 = now_s();
  int bad = 0;
  for (int g = 0; g < gens; g++) {
    for (int i = 0; i < nthreads; i++) {
      /* generation g: thread i takes over table (i + g) mod T */
      jobs[i].table = &tables[(i + g) % nthreads];
      jobs[i].ops = ops / gens;
      jobs[i].seed = (uint64_t)(g * 1000 + i + 1);
      pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    for (int i = 0; i < nthreads; i++) {
      pthread_join(th[i], NULL);
      bad |= jobs[i].bad;
    }
  }
  double t = now_s() - t0;
  if (bad) {
    fprintf(stderr, "larson: corrupted block\n");
    return 4;
  }
  for (int i = 0; i < nthreads; i++) {
    for (long k = 0; k < nslots; k++)
      free(tables[i].slots[k]);
    free(tables[i].slots);
    free(tables[i].sizes);
  }
  long total = (ops / gens) * gens * nthreads;
  printf("result threads=%d ops=%ld secs=%.4f mops_per_s=%.3f\n", nthreads, total, t, (double)total / t / 1e6);
  return 0;
}
