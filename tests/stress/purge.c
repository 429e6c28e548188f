/* SPDX-License-Identifier: MIT */
/*
 * Giving memory back (issue 5), with default settings and no malloc_trim:
 *
 *  1. 4 threads build a working set of about 320 MiB, keeping one block
 *     in 64 alive (scattered through it); the rest is freed.  RSS from
 *     /proc/self/statm must fall below a bound within a deadline (polled
 *     every 50 ms; the deadline is generous, the documented decay is well
 *     under a second), and every live block must be intact afterwards.
 *  2. Purged memory comes back usable: calloc'd blocks over it are zero,
 *     malloc'd blocks hold what is written, the heap checker passes.
 *  3. Purging while other threads allocate and free: a short decay, a
 *     thread calling malloc_trim(0) in a loop, and 3 threads doing
 *     pattern-checked random work; no block may change under them.
 *  4. malloc_trim(0) with purging switched off returns 1 and RSS drops.
 *
 * Each part runs in its own forked process (th_isolated).  Two builds:
 * tide_* on the debug library, and (-std) the drop-in.
 */
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "tidemalloc.h"

#include "flavour.h"
#define NWORK 4
#define PER_THREAD_BYTES (80 * MiB)
#define KEEP_EVERY 64
#define DEADLINE_MS 5000


static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static unsigned char pat(uint64_t tag, size_t i) { return (unsigned char)(tag * 167u + i * 31u); }

static void fill(unsigned char *p, size_t n, uint64_t tag) {
  for (size_t i = 0; i < n; i++)
    p[i] = pat(tag, i);
}

static int intact(const unsigned char *p, size_t n, uint64_t tag) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != pat(tag, i))
      return 0;
  return 1;
}

/* ---- 1 and 2: the working set ---- */

struct kept {
  unsigned char *p;
  size_t n;
  uint64_t tag;
};

struct worker {
  int id;
  struct kept *kept;
  size_t nkept, kept_bytes, errors;
};

static void *build_and_free(void *arg) {
  struct worker *w = arg;
  struct th_rng r;
  th_rng_seed(&r, (uint64_t)w->id + 100);
  size_t cap = PER_THREAD_BYTES / 1000;
  unsigned char **all = malloc(cap * sizeof *all); /* bookkeeping: glibc or us, no matter */
  size_t *sz = malloc(cap * sizeof *sz);
  w->kept = malloc(cap / KEEP_EVERY * sizeof *w->kept + sizeof *w->kept);
  size_t n = 0, total = 0;
  while (total < PER_THREAD_BYTES && n < cap) {
    sz[n] = th_rng_range(&r, 1000, th_rng_range(&r, 0, 9) ? 20000 : 100000);
    all[n] = F(malloc)(sz[n]);
    if (!all[n]) {
      w->errors++;
      break;
    }
    memset(all[n], 0xEE, sz[n]); /* touch every page */
    total += sz[n];
    n++;
  }
  for (size_t i = 0; i < n; i++) {
    if (i % KEEP_EVERY == KEEP_EVERY / 2) {
      uint64_t tag = ((uint64_t)w->id << 32) | i;
      fill(all[i], sz[i], tag);
      w->kept[w->nkept++] = (struct kept){all[i], sz[i], tag};
      w->kept_bytes += sz[i];
    } else {
      F(free)(all[i]);
    }
  }
  free(all);
  free(sz);
  return NULL;
}

static void test_rss_follows(void) {
  size_t rss0 = th_rss_bytes();
  struct worker w[NWORK];
  pthread_t t[NWORK];
  memset(w, 0, sizeof w);
  for (int i = 0; i < NWORK; i++) {
    w[i].id = i;
    pthread_create(&t[i], NULL, build_and_free, &w[i]);
  }
  for (int i = 0; i < NWORK; i++)
    pthread_join(t[i], NULL);
  size_t errors = 0, live = 0;
  for (int i = 0; i < NWORK; i++) {
    errors += w[i].errors;
    live += w[i].kept_bytes;
  }
  size_t rss_full = th_rss_bytes();
  CHECK(errors == 0, "4 threads built %zu MiB and freed all but %zu MiB", NWORK * PER_THREAD_BYTES >> 20,
        live >> 20);
  /* the bound: where we started, the live bytes, and their pages' slack */
  size_t bound = rss0 + 2 * live + 48 * MiB;
  long start = now_ms(), waited = 0;
  size_t rss = th_rss_bytes();
  while (rss > bound && waited < DEADLINE_MS) {
    sleep_ms(50);
    waited = now_ms() - start;
    rss = th_rss_bytes();
  }
  NOTE("RSS: %zu MiB at start, %zu MiB at the peak, %zu MiB after %ld ms (bound %zu MiB)",
       rss0 >> 20, rss_full >> 20, rss >> 20, waited, bound >> 20);
  CHECK(rss <= bound, "RSS fell to %zu MiB (bound %zu MiB) within %d ms, no malloc_trim",
        rss >> 20, bound >> 20, DEADLINE_MS);
  size_t bad = 0;
  for (int i = 0; i < NWORK; i++)
    for (size_t k = 0; k < w[i].nkept; k++)
      if (!intact(w[i].kept[k].p, w[i].kept[k].n, w[i].kept[k].tag))
        bad++;
  CHECK(bad == 0, "every live block intact after the purge (%zu not)", bad);
  CHECK(tide_heap_check() == 0, "heap sound after the purge");

  /* 2: the purged memory, used again */
  enum { NR = 6000 };
  static unsigned char *re[NR];
  size_t notzero = 0;
  for (int i = 0; i < NR; i++) {
    size_t n = 1000 + (size_t)(i * 37 % 19000);
    re[i] = (i & 1) ? F(calloc)(1, n) : F(malloc)(n);
    if (!re[i]) {
      notzero++;
      continue;
    }
    if (i & 1)
      for (size_t k = 0; k < n; k++)
        if (re[i][k]) {
          notzero++;
          break;
        }
    fill(re[i], n, (uint64_t)i);
  }
  CHECK(notzero == 0, "calloc over purged memory returns zeroes (%zu blocks not)", notzero);
  bad = 0;
  for (int i = 0; i < NR; i++)
    if (re[i] && !intact(re[i], 1000 + (size_t)(i * 37 % 19000), (uint64_t)i))
      bad++;
  CHECK(bad == 0, "malloc'd blocks over purged memory keep what is written");
  CHECK(tide_heap_check() == 0, "heap sound with purged memory in use again");
  for (int i = 0; i < NR; i++)
    F(free)(re[i]);
  for (int i = 0; i < NWORK; i++) {
    for (size_t k = 0; k < w[i].nkept; k++)
      F(free)(w[i].kept[k].p);
    free(w[i].kept);
  }
}

/* ---- 3: purging under load ---- */

static atomic_int stop;
static atomic_size_t load_errors, trims;

static void *trimmer(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    F(malloc_trim)(0);
    atomic_fetch_add(&trims, 1);
    sleep_ms(2);
  }
  return NULL;
}

static void *loader(void *arg) {
  struct th_rng r;
  th_rng_seed(&r, (uint64_t)(uintptr_t)arg);
  struct kept b[256];
  memset(b, 0, sizeof b);
  uint64_t tag = (uint64_t)(uintptr_t)arg << 40;
  for (int op = 0; op < 120000; op++) {
    struct kept *k = &b[th_rng_range(&r, 0, 255)];
    if (k->p) {
      if (!intact(k->p, k->n, k->tag))
        atomic_fetch_add(&load_errors, 1);
      F(free)(k->p);
      k->p = NULL;
    } else {
      k->n = th_rng_range(&r, 1, th_rng_range(&r, 0, 20) ? 5000 : 300000);
      k->tag = tag++;
      k->p = (op & 1) ? F(calloc)(1, k->n) : F(malloc)(k->n);
      if (!k->p) {
        atomic_fetch_add(&load_errors, 1);
        continue;
      }
      if (op & 1)
        for (size_t i = 0; i < k->n; i++)
          if (k->p[i]) {
            atomic_fetch_add(&load_errors, 1);
            break;
          }
      fill(k->p, k->n, k->tag);
    }
  }
  for (int i = 0; i < 256; i++) {
    if (b[i].p && !intact(b[i].p, b[i].n, b[i].tag))
      atomic_fetch_add(&load_errors, 1);
    F(free)(b[i].p);
  }
  return NULL;
}

static void test_purge_under_load(void) {
  CHECK(F(mallopt)(TIDE_M_PURGE_DECAY_MS, 1) == 1, "decay set to 1 ms: purging all the time");
  pthread_t tt, tl[3];
  pthread_create(&tt, NULL, trimmer, NULL);
  for (int i = 0; i < 3; i++)
    pthread_create(&tl[i], NULL, loader, (void *)(uintptr_t)(i + 1));
  for (int i = 0; i < 3; i++)
    pthread_join(tl[i], NULL);
  atomic_store(&stop, 1);
  pthread_join(tt, NULL);
  CHECK(atomic_load(&load_errors) == 0,
        "3 threads x 120000 checked ops while purging and %zu malloc_trim calls: no block "
        "changed, every calloc zero (%zu errors)",
        atomic_load(&trims), atomic_load(&load_errors));
  CHECK(tide_heap_check() == 0, "heap sound after purging under load");
}

/* ---- 4: malloc_trim ---- */

static void test_trim(void) {
  CHECK(F(mallopt)(TIDE_M_PURGE_DECAY_MS, -1) == 1, "decay -1: nothing goes back on its own");
  enum { N = 3000 };
  static void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = F(malloc)(30000);
    if (p[i])
      memset(p[i], 1, 30000);
  }
  void *keep = F(malloc)(100); /* after the others: top cannot simply shrink past it */
  for (int i = 0; i < N; i++)
    if (i % 50)
      F(free)(p[i]);
  sleep_ms(300);
  size_t before = th_rss_bytes();
  int r = F(malloc_trim)(0);
  size_t after = th_rss_bytes();
  CHECK(r == 1, "malloc_trim(0) returns 1 when it gave memory back (got %d)", r);
  CHECK(after + 40 * MiB < before, "and RSS dropped: %zu -> %zu MiB", before >> 20, after >> 20);
  for (int i = 0; i < N; i += 50)
    F(free)(p[i]);
  F(free)(keep);
  F(mallopt)(TIDE_M_PURGE_DECAY_MS, 200);
  CHECK(tide_heap_check() == 0, "heap sound after malloc_trim");
}

int main(void) {
  printf("# stress/purge (%s)\n", FLAVOUR);
  fflush(stdout);
  /* each part in its own process: a crash in one does not hide the others */
  th_isolated("1-2: RSS follows live memory; purged memory reused", test_rss_follows, 60);
  th_isolated("3: purging under load", test_purge_under_load, 60);
  th_isolated("4: malloc_trim", test_trim, 60);
  TEST_MAIN_END("stress/purge-" FLAVOUR);
}
