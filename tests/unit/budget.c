/* SPDX-License-Identifier: MIT */
/*
 * All threads' caches together stay within a budget (32 MiB): past 28
 * threads every thread's bins hold less, so a program with many threads
 * does not keep 1.2 MiB in each of them.
 *
 * T threads first make their caches (all alive at once), then each fills
 * every bin (64 blocks of each small size, freed: 20 classes) and its medium cache,
 * and waits.  What they hold is the growth of the bytes in use while they
 * are all alive; once they have exited it must be back.
 */
#include <pthread.h>

#include "harness.h"
#include "tidemalloc.h"

#define MiB ((size_t)1 << 20)
#define MAX_THREADS 96

static pthread_barrier_t started, filled, done;

static void *filler(void *arg) {
  (void)arg;
  tide_free(tide_malloc(16)); /* this thread's cache exists from here */
  pthread_barrier_wait(&started);
  void *b[64];
  for (size_t n = 24; n <= 1032; n += 16) { /* one size per bin */
    for (int i = 0; i < 64; i++)
      b[i] = tide_malloc(n);
    for (int i = 0; i < 64; i++)
      tide_free(b[i]);
  }
  for (int i = 0; i < 8; i++)
    b[i] = tide_malloc(30000);
  for (int i = 0; i < 8; i++)
    tide_free(b[i]);
  pthread_barrier_wait(&filled);
  pthread_barrier_wait(&done);
  return NULL;
}

/* Bytes T filled caches hold, all alive; *after: in use once they exited
 * (growth over the start, or 0). */
static size_t held_by(int nthreads, size_t *after) {
  struct tide_stats s0, s1, s2;
  pthread_t t[MAX_THREADS];
  pthread_barrier_init(&started, NULL, (unsigned)nthreads + 1);
  pthread_barrier_init(&filled, NULL, (unsigned)nthreads + 1);
  pthread_barrier_init(&done, NULL, (unsigned)nthreads + 1);
  tide_stats_get(&s0);
  for (int i = 0; i < nthreads; i++)
    pthread_create(&t[i], NULL, filler, NULL);
  pthread_barrier_wait(&started);
  pthread_barrier_wait(&filled);
  tide_stats_get(&s1);
  pthread_barrier_wait(&done);
  for (int i = 0; i < nthreads; i++)
    pthread_join(t[i], NULL);
  tide_stats_get(&s2);
  pthread_barrier_destroy(&started);
  pthread_barrier_destroy(&filled);
  pthread_barrier_destroy(&done);
  *after = s2.in_use_bytes > s0.in_use_bytes ? s2.in_use_bytes - s0.in_use_bytes : 0;
  return s1.in_use_bytes > s0.in_use_bytes ? s1.in_use_bytes - s0.in_use_bytes : 0;
}

int main(void) {
  printf("# unit/budget\n");
  size_t after;
  size_t h4 = held_by(4, &after);
  /* The frees fill each class's bin and hand half back (to its runs):
   * about half of each bin stays, at least 256 KiB a thread in all. */
  CHECK(h4 >= 4 * MiB / 4 && h4 <= 4 * MiB * 6 / 5,
        "4 threads keep their caches: %zu KiB, %zu KiB each (256 KiB..1.2 MiB)", h4 / 1024, h4 / 4 / 1024);
  CHECK(after < MiB, "and give them back when they exit (%zu KiB still in use)", after / 1024);
  size_t h96 = held_by(96, &after);
  /* 32 MiB, and 4 MiB of slack: a thread that moves to another arena
   * mid-fill (its own was busy) holds its first blocks as another arena's
   * on their way back, outside the cache proper. */
  CHECK(h96 <= 36 * MiB, "96 threads keep about 32 MiB in all: %zu KiB (%zu KiB each)", h96 / 1024,
        h96 / 96 / 1024);
  CHECK(h96 / 96 * 3 < h4 / 4, "each of them keeps under a third of what each of 4 threads does");
  CHECK(after < MiB, "and they give it back when they exit (%zu KiB still in use)", after / 1024);
  size_t h4b = held_by(4, &after);
  CHECK(h4b * 10 >= h4 * 9, "with 4 threads again the caches are whole again: %zu KiB (was %zu KiB)",
        h4b / 1024, h4 / 1024);
  CHECK(tide_heap_check() == 0, "heap sound");
  TEST_MAIN_END("unit/budget");
}
