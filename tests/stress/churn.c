/* SPDX-License-Identifier: MIT */
/*
 * Thread churn: 2000 short-lived threads, 8 at a time.  Each allocates
 * blocks of every small and medium size (the thread-cache sizes most),
 * frees some itself, fills its thread cache by freeing more, hands a share
 * to the main thread, and exits with its cache full and blocks still live.
 * The main thread then verifies and frees everything it was handed: the
 * caches flushed at thread exit must not have lost, doubled or corrupted
 * a chunk.
 *
 * Two builds: tide_* on the debug library, and (-std) the drop-in.
 */
#include <inttypes.h>
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "tidemalloc.h"

#include "flavour.h"

#define NTHREADS 2000
#define WAVE 8
#define PER 60
#define HANDED 20

struct handed {
  unsigned char *p;
  size_t n;
  uint32_t tag;
};

static struct handed handed[NTHREADS * HANDED];
static size_t nhanded;
static pthread_mutex_t handed_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t thread_errors;

static void fill(unsigned char *p, size_t n, uint32_t tag) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(tag * 2654435761u >> 13 ^ i);
}

static int intact(const unsigned char *p, size_t n, uint32_t tag) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(tag * 2654435761u >> 13 ^ i))
      return 0;
  return 1;
}

static void *short_life(void *arg) {
  uint32_t me = (uint32_t)(uintptr_t)arg;
  struct th_rng r;
  th_rng_seed(&r, me);
  unsigned char *p[PER];
  size_t n[PER];
  size_t errs = 0;
  for (int i = 0; i < PER; i++) {
    n[i] = th_rng_range(&r, 0, 9) < 8 ? th_rng_range(&r, 1, 1032) : th_rng_range(&r, 1033, 20000);
    p[i] = F(malloc)(n[i]);
    if (!p[i]) {
      errs++;
      continue;
    }
    fill(p[i], n[i], me * PER + (uint32_t)i);
  }
  /* free the first 30 (into this thread's cache), allocate 10 again from it */
  for (int i = 0; i < 30; i++) {
    if (p[i] && !intact(p[i], n[i], me * PER + (uint32_t)i))
      errs++;
    F(free)(p[i]);
    p[i] = NULL;
  }
  for (int i = 0; i < 10; i++) {
    p[i] = F(malloc)(n[i]);
    if (p[i])
      fill(p[i], n[i], me * PER + (uint32_t)i);
  }
  /* hand 20 to the main thread; keep... nothing else: the rest is freed
   * by the main thread too, so the thread exits with live blocks */
  pthread_mutex_lock(&handed_lock);
  for (int i = 0; i < 10; i++) {
    handed[nhanded++] = (struct handed){p[i], n[i], me * PER + (uint32_t)i};
  }
  for (int i = 30; i < 40; i++) {
    handed[nhanded++] = (struct handed){p[i], n[i], me * PER + (uint32_t)i};
  }
  thread_errors += errs;
  pthread_mutex_unlock(&handed_lock);
  for (int i = 40; i < PER; i++) {
    if (p[i] && !intact(p[i], n[i], me * PER + (uint32_t)i)) {
      pthread_mutex_lock(&handed_lock);
      thread_errors++;
      pthread_mutex_unlock(&handed_lock);
    }
    F(free)(p[i]); /* last frees fill the cache the exit must flush */
  }
  return NULL;
}

int main(void) {
  printf("# stress/churn (%s): %d threads, %d at a time\n", FLAVOUR, NTHREADS, WAVE);
  fflush(stdout);
  struct tide_stats s0, s1;
  tide_stats_get(&s0);
  size_t create_fail = 0;
  for (int w = 0; w < NTHREADS; w += WAVE) {
    pthread_t t[WAVE];
    int made[WAVE];
    for (int i = 0; i < WAVE; i++)
      made[i] = pthread_create(&t[i], NULL, short_life, (void *)(uintptr_t)(w + i)) == 0;
    for (int i = 0; i < WAVE; i++) {
      if (made[i])
        pthread_join(t[i], NULL);
      else
        create_fail++;
    }
  }
  CHECK(create_fail == 0, "%d threads created and joined (%zu failed)", NTHREADS, create_fail);
  CHECK(thread_errors == 0, "inside the threads every block was intact (%zu errors)",
        thread_errors);
  size_t bad = 0, nulls = 0;
  for (size_t i = 0; i < nhanded; i++) {
    if (!handed[i].p) {
      nulls++;
      continue;
    }
    if (!intact(handed[i].p, handed[i].n, handed[i].tag))
      bad++;
  }
  CHECK(nulls == 0 && bad == 0,
        "%zu blocks outlived their threads intact (%zu corrupted, %zu NULL)", nhanded, bad,
        nulls);
  /* two handed blocks must never share memory */
  for (size_t i = 0; i < nhanded; i++)
    if (handed[i].p)
      memset(handed[i].p, 0, handed[i].n);
  for (size_t i = 0; i < nhanded; i++)
    if (handed[i].p)
      fill(handed[i].p, handed[i].n, handed[i].tag);
  for (size_t i = 0; i < nhanded; i++)
    if (handed[i].p && !intact(handed[i].p, handed[i].n, handed[i].tag))
      bad++;
  CHECK(bad == 0, "no two live blocks overlap (rewritten all, checked all)");
  CHECK(tide_heap_check() == 0, "heap sound after the churn, with the blocks live");
  for (size_t i = 0; i < nhanded; i++)
    F(free)(handed[i].p);
  CHECK(tide_heap_check() == 0, "heap sound after the main thread freed them");
  tide_stats_get(&s1);
  CHECK(s1.in_use_bytes <= s0.in_use_bytes + (4u << 20),
        "in_use_bytes back near the start (%zu -> %zu): the exited threads' caches were "
        "given back", s0.in_use_bytes, s1.in_use_bytes);
  TEST_MAIN_END("stress/churn-" FLAVOUR);
}
