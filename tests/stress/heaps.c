/* SPDX-License-Identifier: MIT */
/*
 * Non-main arenas on heaps (issue 4) and their return to the OS (issue 5).
 * A new thread gets an arena of its own, whose memory lives in 64 MiB
 * heaps (chunks carry the A bit).  The thread allocates about 180 MiB in
 * 100 KB blocks, so its arena spans several heaps; the blocks are checked,
 * then freed -- first in reverse order, then (after a second round) in a
 * scrambled order, with the main thread freeing half of them after the
 * owner exited.  Each time, the heaps must be given back (os_bytes falls
 * within a deadline), every block must have kept its contents until freed,
 * and the heap checker must pass.
 *
 * Two builds: tide_* on the debug library, and (-std) the drop-in.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "tidemalloc.h"

#include "flavour.h"
#define NB 1800
#define BS 100000

static unsigned char *blk[NB];
static size_t in_heap, bad_contents;

static void mark(unsigned char *p, size_t i) {
  memset(p, (int)(i & 0xFF), 64);
  memset(p + BS - 64, (int)(~i & 0xFF), 64);
}

static int marked(const unsigned char *p, size_t i) {
  for (int k = 0; k < 64; k++)
    if (p[k] != (unsigned char)(i & 0xFF) || p[BS - 64 + k] != (unsigned char)(~i & 0xFF))
      return 0;
  return 1;
}

static void *fill_arena(void *arg) {
  (void)arg;
  for (size_t i = 0; i < NB; i++) {
    blk[i] = F(malloc)(BS);
    if (!blk[i])
      continue;
    if (((size_t *)blk[i])[-1] & 4) /* A: the chunk lives in a heap */
      in_heap++;
    mark(blk[i], i);
  }
  for (size_t i = 0; i < NB; i++)
    if (blk[i] && !marked(blk[i], i))
      bad_contents++;
  return NULL;
}

static void *free_reverse(void *arg) {
  (void)arg;
  for (size_t i = NB; i-- > 0;) {
    if (blk[i] && !marked(blk[i], i))
      bad_contents++;
    F(free)(blk[i]);
    blk[i] = NULL;
  }
  return NULL;
}

static void *fill_and_free_half(void *arg) {
  fill_arena(arg);
  struct th_rng r;
  th_rng_seed(&r, 99);
  /* free a scrambled half here; the main thread frees the rest */
  for (size_t k = 0; k < NB; k++) {
    size_t i = th_rng_range(&r, 0, NB - 1);
    if (blk[i] && (i & 1)) {
      if (!marked(blk[i], i))
        bad_contents++;
      F(free)(blk[i]);
      blk[i] = NULL;
    }
  }
  return NULL;
}

static size_t os_bytes(void) {
  struct tide_stats s;
  tide_stats_get(&s);
  return s.os_bytes;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* os_bytes back under the bound within 5 s; returns the last reading */
static size_t wait_os_below(size_t bound) {
  size_t b = os_bytes();
  for (int i = 0; i < 100 && b > bound; i++) {
    sleep_ms(50);
    F(malloc_trim)(0); /* harmless if the decay already did it */
    b = os_bytes();
  }
  return b;
}

int main(void) {
  printf("# stress/heaps (%s)\n", FLAVOUR);
  fflush(stdout);
  CHECK(F(mallopt)(TIDE_M_MMAP_THRESHOLD, 1 << 20) == 1, "mmap threshold fixed at 1 MiB");
  /* Threads would share the main arena: this tests heaps. */
  CHECK(F(mallopt)(TIDE_M_ARENA_SHARE, 0) == 1, "an arena per thread (arena_share 0)");
  size_t base = os_bytes();
  pthread_t t;

  pthread_create(&t, NULL, fill_arena, NULL);
  pthread_join(t, NULL);
  size_t full = os_bytes();
  CHECK(in_heap == NB, "a new thread's %d blocks of 100 KB all live in heaps (A bit: %zu)", NB,
        in_heap);
  CHECK(full >= base + 170 * MiB, "its arena grew over several 64 MiB heaps (os_bytes +%zu MiB)",
        (full - base) >> 20);
  CHECK(bad_contents == 0, "contents intact");
  CHECK(tide_heap_check() == 0, "heap sound with a multi-heap arena");
  /* the owner has exited: another thread frees it all, newest first */
  pthread_create(&t, NULL, free_reverse, NULL);
  pthread_join(t, NULL);
  size_t after = wait_os_below(base + 16 * MiB);
  CHECK(after <= base + 16 * MiB, "freed in reverse: heaps given back (os_bytes %zu -> %zu MiB)",
        full >> 20, after >> 20);
  CHECK(tide_heap_check() == 0, "heap sound after the heaps went back");

  in_heap = 0;
  pthread_create(&t, NULL, fill_and_free_half, NULL);
  pthread_join(t, NULL);
  CHECK(in_heap == NB, "again: %zu of %d blocks in heaps", in_heap, NB);
  size_t bad = 0;
  for (size_t i = 0; i < NB; i++) {
    if (blk[i] && !marked(blk[i], i))
      bad++;
    F(free)(blk[i]); /* the other half, from the main thread */
    blk[i] = NULL;
  }
  CHECK(bad == 0 && bad_contents == 0, "scrambled half freed by the owner, the rest by main: "
                                       "contents intact until freed");
  after = wait_os_below(base + 16 * MiB);
  CHECK(after <= base + 16 * MiB, "heaps given back again (os_bytes %zu MiB, start %zu MiB)",
        after >> 20, base >> 20);
  CHECK(tide_heap_check() == 0, "heap sound at the end");
  void *p = F(malloc)(1000);
  CHECK(p != NULL, "the main thread still allocates");
  F(free)(p);
  TEST_MAIN_END("stress/heaps-" FLAVOUR);
}
