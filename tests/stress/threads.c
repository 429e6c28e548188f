/* SPDX-License-Identifier: MIT */
/*
 * Threads: 8 workers (more than the cores) do random allocations of every size kind on their
 * own blocks and pass a share of them to the next worker through a
 * mutex-protected ring; the receiver verifies, sometimes reallocs, and
 * frees them.  So blocks are freed and reallocated by threads other than
 * the one that allocated them, while all eight keep allocating.
 *
 * A ninth thread runs tide_heap_check() over and over meanwhile.
 *
 * Two builds: tide_* on the debug library, and (-std) the standard names
 * on the drop-in, where stdio and pthread allocate through tidemalloc too.
 *
 * usage: threads [SEED [OPS_PER_THREAD]]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "tidemalloc.h"

#include "flavour.h"

#define NTHREADS 8
#define NLOCAL 512
#define RING 256

struct block {
  unsigned char *p;
  size_t n;
  uint64_t id;
};

struct ring {
  pthread_mutex_t lock;
  struct block b[RING];
  unsigned head, tail; /* tail - head = count */
};

static struct ring rings[NTHREADS];
static uint64_t seed_base, ops_per_thread = 100000;
static size_t errors[NTHREADS];
static size_t passed[NTHREADS];

static unsigned char pat(uint64_t id, size_t i) {
  return (unsigned char)((id * 0x9E3779B1u) >> 7 ^ (i * 13u) ^ (i >> 9));
}

static void fill(unsigned char *p, size_t from, size_t to, uint64_t id) {
  for (size_t i = from; i < to; i++)
    p[i] = pat(id, i);
}

static int ok(const unsigned char *p, size_t n, uint64_t id) {
  size_t lim = n < 8192 ? n : 8192;
  for (size_t i = 0; i < lim; i++)
    if (p[i] != pat(id, i))
      return 0;
  for (size_t i = n - (n - lim < 8192 ? n - lim : 8192); i < n; i++)
    if (p[i] != pat(id, i))
      return 0;
  return 1;
}

static size_t pick(struct th_rng *r) {
  uint64_t k = th_rng_range(r, 0, 999);
  if (k < 600)
    return th_rng_range(r, 1, 128);
  if (k < 850)
    return th_rng_range(r, 129, 1024);
  if (k < 995)
    return th_rng_range(r, 1025, 65536);
  return th_rng_range(r, 65537, 1 << 21);
}

static int ring_push(struct ring *rg, struct block b) {
  int done = 0;
  pthread_mutex_lock(&rg->lock);
  if (rg->tail - rg->head < RING) {
    rg->b[rg->tail++ % RING] = b;
    done = 1;
  }
  pthread_mutex_unlock(&rg->lock);
  return done;
}

static int ring_pop(struct ring *rg, struct block *out) {
  int done = 0;
  pthread_mutex_lock(&rg->lock);
  if (rg->tail != rg->head) {
    *out = rg->b[rg->head++ % RING];
    done = 1;
  }
  pthread_mutex_unlock(&rg->lock);
  return done;
}

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;
  struct th_rng r;
  th_rng_seed(&r, seed_base * 31 + (uint64_t)me);
  struct block local[NLOCAL];
  memset(local, 0, sizeof local);
  uint64_t id = ((uint64_t)me << 48) + 1;
  struct ring *out = &rings[(me + 1) % NTHREADS], *in = &rings[me];

  for (uint64_t op = 0; op < ops_per_thread; op++) {
    struct block *b = &local[th_rng_range(&r, 0, NLOCAL - 1)];
    if (!b->p) {
      b->n = pick(&r);
      b->id = id++;
      b->p = (th_rng_next(&r) & 3) == 0 ? F(calloc)(1, b->n) : F(malloc)(b->n);
      if (!b->p) {
        errors[me]++;
        continue;
      }
      fill(b->p, 0, b->n, b->id);
    } else {
      if (!ok(b->p, b->n, b->id))
        errors[me]++;
      uint64_t k = th_rng_range(&r, 0, 9);
      if (k < 4 && ring_push(out, *b)) {
        b->p = NULL; /* the next thread frees it */
      } else if (k < 6) {
        size_t n = pick(&r);
        unsigned char *q = F(realloc)(b->p, n);
        if (!q) {
          errors[me]++;
          continue;
        }
        size_t keep = n < b->n ? n : b->n;
        if (!ok(q, keep, b->id))
          errors[me]++;
        fill(q, keep, n, b->id);
        b->p = q;
        b->n = n;
      } else {
        F(free)(b->p);
        b->p = NULL;
      }
    }
    struct block got;
    if ((op & 1) && ring_pop(in, &got)) {
      if (!ok(got.p, got.n, got.id))
        errors[me]++;
      if (th_rng_range(&r, 0, 3) == 0) {
        /* realloc a block another thread allocated, then free it */
        unsigned char *q = F(realloc)(got.p, got.n * 2 + 1);
        if (!q || !ok(q, got.n, got.id))
          errors[me]++;
        F(free)(q);
      } else {
        F(free)(got.p);
      }
      passed[me]++;
    }
  }
  for (int i = 0; i < NLOCAL; i++) {
    if (local[i].p && !ok(local[i].p, local[i].n, local[i].id))
      errors[me]++;
    F(free)(local[i].p);
  }
  return NULL;
}

/* The heap checker is public API: calling it while other threads allocate
 * and free must be safe (and find nothing wrong). */
static atomic_int checker_stop;
static int checks_done;
static void *check_loop(void *arg) {
  (void)arg;
  while (!atomic_load(&checker_stop)) {
    tide_heap_check();
    checks_done++;
    /* A pause between checks: back to back, a check of a large heap
     * holds the one arena lock (arena_max=1) so much of the time that the
     * workers barely get it (seed 1796245804 ran past the 120 s limit). */
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return NULL;
}

int main(int argc, char **argv) {
  seed_base = argc > 1 ? strtoull(argv[1], NULL, 0) : (uint64_t)time(NULL);
  if (argc > 2)
    ops_per_thread = strtoull(argv[2], NULL, 0);
  printf("# stress/threads (%s): seed %" PRIu64 ", %d threads x %" PRIu64 " ops\n", FLAVOUR,
         seed_base, NTHREADS, ops_per_thread);
  fflush(stdout);
  for (int i = 0; i < NTHREADS; i++)
    pthread_mutex_init(&rings[i].lock, NULL);
  pthread_t t[NTHREADS], checker;
  int started = 0;
  pthread_create(&checker, NULL, check_loop, NULL);
  for (int i = 0; i < NTHREADS; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0)
      started++;
  CHECK(started == NTHREADS, "%d threads started", started);
  for (int i = 0; i < started; i++)
    pthread_join(t[i], NULL);
  atomic_store(&checker_stop, 1);
  pthread_join(checker, NULL);
  CHECK(checks_done > 0, "tide_heap_check ran %d times while the workers ran", checks_done);
  size_t errs = 0, handed = 0, leftover = 0;
  for (int i = 0; i < NTHREADS; i++) {
    errs += errors[i];
    handed += passed[i];
    struct block b;
    while (ring_pop(&rings[i], &b)) {
      if (!ok(b.p, b.n, b.id))
        errs++;
      F(free)(b.p);
      leftover++;
    }
  }
  CHECK(errs == 0, "every block intact, every call succeeded (%zu errors)", errs);
  CHECK(handed > 1000, "%zu blocks were freed by a thread that did not allocate them "
                       "(+%zu at the end)", handed, leftover);
  CHECK(tide_heap_check() == 0, "heap sound after the threads are done");
  void *p = F(malloc)(1000);
  CHECK(p != NULL, "the main thread allocates afterwards");
  F(free)(p);
  TEST_MAIN_END("stress/threads-" FLAVOUR);
}
