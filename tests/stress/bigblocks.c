/* SPDX-License-Identifier: MIT */
/*
 * Large blocks from several threads at once (issue 5): what the kept
 * mappings and the deferred trims must survive.  Four threads each run a
 * random mix of malloc, calloc, realloc (growing and shrinking),
 * aligned_alloc and free on blocks of 100 KiB .. 48 MiB (log-uniform, so
 * blocks around the mmap threshold, mappings of every size and the heaps'
 * tops all take part), and hand some blocks to a neighbour to free.
 *
 * Every block carries a pattern on its first and last pages and on one
 * page in the middle, checked before it is resized or freed; calloc'd
 * memory must read zero on those pages; realloc must keep the prefix.
 * At the end the heap checker must pass and, with no further call, the
 * memory must go back to the OS within a deadline.
 *
 *   bigblocks [seed] [ops per thread]
 * Two builds: tide_* on the debug library, and (-std) the drop-in.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "tidemalloc.h"

#include "flavour.h"
#define NTHREADS 4
#define SLOTS 6
#define PAGE 4096
#define DEADLINE_MS 5000
#define RSS_BOUND (16 * MiB)

struct blk {
  unsigned char *p;
  size_t n;
  uint64_t tag;
};

struct worker {
  uint64_t seed;
  long ops;
  struct blk slot[SLOTS];
  size_t bad_contents, bad_zero, bad_align, failed;
};

static struct worker workers[NTHREADS];
/* One hand-over box per thread: a block a neighbour frees. */
static struct blk box[NTHREADS];
static pthread_mutex_t box_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned char pat(uint64_t tag, size_t i) { return (unsigned char)(tag * 131u + i * 7u + 1u); }

/* The pages that carry the pattern: first, middle, last. */
static void pages_of(size_t n, size_t at[3]) {
  at[0] = 0;
  at[1] = n / 2 / PAGE * PAGE;
  at[2] = n > PAGE ? n - PAGE : 0;
}

static void mark(struct blk *b) {
  size_t at[3];
  pages_of(b->n, at);
  for (int k = 0; k < 3; k++)
    for (size_t i = at[k]; i < at[k] + PAGE && i < b->n; i++)
      b->p[i] = pat(b->tag, i);
}

/* Bytes of the pattern that are wrong in the first `upto` bytes. */
static size_t wrong(const struct blk *b, size_t upto) {
  size_t at[3], bad = 0;
  pages_of(b->n, at);
  for (int k = 0; k < 3; k++)
    for (size_t i = at[k]; i < at[k] + PAGE && i < b->n && i < upto; i++)
      bad += b->p[i] != pat(b->tag, i);
  return bad;
}

static size_t big_size(struct th_rng *r) {
  /* log-uniform in [100 KiB, 48 MiB] */
  unsigned lg = (unsigned)th_rng_range(r, 17, 25);
  size_t lo = (size_t)1 << lg;
  size_t n = (size_t)th_rng_range(r, lo, 2 * lo);
  if (n < 100 * 1024)
    n = 100 * 1024;
  return n > 48 * MiB ? 48 * MiB : n;
}

static void drop(struct worker *w, struct blk *b) {
  if (!b->p)
    return;
  if (wrong(b, b->n))
    w->bad_contents++;
  F(free)(b->p);
  b->p = NULL;
}

static void *run(void *arg) {
  struct worker *w = arg;
  int me = (int)(w - workers);
  struct th_rng r;
  th_rng_seed(&r, w->seed);
  for (long op = 0; op < w->ops; op++) {
    struct blk *b = &w->slot[th_rng_next(&r) % SLOTS];
    unsigned what = (unsigned)(th_rng_next(&r) % 10);
    if (b->p && what < 3) { /* realloc, keeping the prefix */
      size_t n = big_size(&r);
      unsigned char *q = F(realloc)(b->p, n);
      if (!q) {
        w->failed++;
        continue;
      }
      struct blk old = *b;
      old.p = q;
      if (wrong(&old, n < old.n ? n : old.n))
        w->bad_contents++;
      b->p = q;
      b->n = n;
      b->tag++;
      mark(b);
      continue;
    }
    if (b->p && what < 5) { /* to the neighbour, who frees it next round */
      pthread_mutex_lock(&box_lock);
      struct blk give = box[(me + 1) % NTHREADS];
      box[(me + 1) % NTHREADS] = *b;
      pthread_mutex_unlock(&box_lock);
      b->p = NULL;
      drop(w, &give);
      continue;
    }
    drop(w, b);
    if (what == 9) { /* and whatever was handed to us */
      pthread_mutex_lock(&box_lock);
      struct blk got = box[me];
      box[me].p = NULL;
      pthread_mutex_unlock(&box_lock);
      drop(w, &got);
    }
    size_t n = big_size(&r);
    b->tag = th_rng_next(&r);
    b->n = n;
    if (what < 7) {
      b->p = F(malloc)(n);
    } else if (what < 9) {
      b->p = F(calloc)(1, n);
      if (b->p) {
        size_t at[3];
        pages_of(n, at);
        for (int k = 0; k < 3; k++)
          for (size_t i = at[k]; i < at[k] + PAGE && i < n; i++)
            w->bad_zero += b->p[i] != 0;
      }
    } else {
      size_t align = (size_t)PAGE << th_rng_range(&r, 0, 9); /* 4 KiB .. 2 MiB */
      b->p = F(aligned_alloc)(align, (n + align - 1) / align * align);
      if (b->p && ((uintptr_t)b->p & (align - 1)))
        w->bad_align++;
    }
    if (!b->p) {
      w->failed++;
      continue;
    }
    mark(b);
  }
  for (int i = 0; i < SLOTS; i++)
    drop(w, &w->slot[i]);
  return NULL;
}

static size_t os_bytes(void) {
  struct tide_stats s;
  tide_stats_get(&s);
  return s.os_bytes;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv) {
  uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
  long ops = argc > 2 ? atol(argv[2]) : 400;
  printf("# stress/bigblocks (%s), seed %llu, %ld operations per thread\n", FLAVOUR, (unsigned long long)seed,
         ops);
  pthread_t t[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    workers[i].seed = seed * 1000 + (uint64_t)i;
    workers[i].ops = ops;
    pthread_create(&t[i], NULL, run, &workers[i]);
  }
  size_t bad = 0, zero = 0, align = 0, failed = 0;
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(t[i], NULL);
    bad += workers[i].bad_contents;
    zero += workers[i].bad_zero;
    align += workers[i].bad_align;
    failed += workers[i].failed;
  }
  struct worker last = {0};
  for (int i = 0; i < NTHREADS; i++)
    drop(&last, &box[i]);
  bad += last.bad_contents;
  CHECK(failed == 0, "every request of 100 KiB .. 48 MiB succeeded (%zu failed)", failed);
  CHECK(bad == 0, "every block kept its pattern until resized or freed (%zu bytes wrong)", bad);
  CHECK(zero == 0, "calloc'd memory read zero (%zu bytes not)", zero);
  CHECK(align == 0, "aligned_alloc honoured every alignment (%zu not)", align);
  CHECK(tide_heap_check() == 0, "heap checker: every arena sound");
  /* RSS, not os_bytes: purged pages in the middle of a heap stay
   * reserved (and counted there) but are not resident.  With the
   * background thread turned off nothing comes back for free memory of
   * idle arenas (tops under the trim threshold, blocks parked for their
   * owners): then malloc_trim is the documented way. */
  const char *bg = getenv("TIDEMALLOC_PURGE_THREAD");
  if (bg && strcmp(bg, "0") == 0) {
    NOTE("TIDEMALLOC_PURGE_THREAD=0: %zu MiB resident before malloc_trim", th_rss_bytes() / MiB);
    F(malloc_trim)(0);
    CHECK(th_rss_bytes() <= RSS_BOUND, "background thread off: after malloc_trim(0) RSS is at most %zu MiB (%zu MiB)",
          RSS_BOUND / MiB, th_rss_bytes() / MiB);
    TEST_MAIN_END("stress/bigblocks");
  }
  long t0 = now_ms();
  while (th_rss_bytes() > RSS_BOUND && now_ms() - t0 < DEADLINE_MS) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  CHECK(th_rss_bytes() <= RSS_BOUND, "with everything freed, RSS falls to %zu MiB with no malloc_trim within %d ms "
        "(%zu MiB after %ld ms; os_bytes %zu MiB)", RSS_BOUND / MiB, DEADLINE_MS, th_rss_bytes() / MiB,
        now_ms() - t0, os_bytes() / MiB);
  TEST_MAIN_END("stress/bigblocks");
}
