/* SPDX-License-Identifier: MIT */
/*
 * The free fast path finds a thread's own blocks with one range test (see
 * classify_chunk in src/api.c).  These check the blocks outside that
 * range that are the thread's own all the same: they must still go into
 * its cache.  A fresh process of its own: the first test needs a break
 * that has never come down.
 */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "tidemalloc.h"

#define MiB ((size_t)1 << 20)

/* The free fast path knows a thread's own blocks by a range: for a thread
 * of the main arena, its copy of the brk range, refreshed when its cache
 * refills; for another thread, the first heap of its arena.  A block
 * outside that range can still be the thread's own: then it must still go
 * into its cache (not on its way back to "another" arena), so the next
 * malloc of its size hands it out again. */

/* memalign(512, 48) (the arena path: no refill; alignments up to 256
 * come from runs) until a block lies outside
 * [lo, hi); the others stay allocated in probe[] until probe_free(). */
#define PROBES 65536
static void *probe[PROBES];
static int nprobe;
static void *small_outside(uintptr_t lo, uintptr_t hi) {
  nprobe = 0;
  while (nprobe < PROBES) {
    void *q = tide_memalign(512, 48);
    if ((uintptr_t)q < lo || (uintptr_t)q >= hi)
      return q;
    probe[nprobe++] = q;
  }
  return NULL;
}
static void probe_free(void) {
  for (int i = 0; i < nprobe; i++)
    tide_free(probe[i]);
  nprobe = 0;
}

/* free q, malloc of its usable size: 1 if the same block comes back */
static int comes_back(void *q) {
  size_t n = tide_malloc_usable_size(q);
  tide_free(q);
  void *again = tide_malloc(n);
  tide_free(again);
  return again == q;
}

static void test_own_blocks_past_the_range(void) {
  /* A fresh process: the break has only grown so far, so the range the
   * cache copied at its refill ends at or below the break now. */
  tide_free(tide_malloc(48)); /* the cache has refilled before this */
  char *mark = sbrk(0);
  void *big = tide_malloc(8 * MiB); /* the break grows; no refill */
  void *q = small_outside(0, (uintptr_t)mark);
  CHECK(q != NULL, "after an 8 MiB block, a small block lies past the break the cache last saw "
        "(%p >= %p, %d blocks before it)", q, (void *)mark, nprobe);
  CHECK(q && comes_back(q), "freed, it is in the main thread's cache: a malloc of its size hands it out again");
  probe_free();
  tide_free(big);
  CHECK(tide_heap_check() == 0, "heap sound after blocks past the range");
}

/* A heap-arena thread whose arena has grown into a second heap: a block
 * there lies outside its first heap, and is its own all the same. */
static void *second_heap_thread(void *arg) {
  int *ok = arg;
  void *home = tide_malloc(48);
  uintptr_t first = (uintptr_t)home & ~(uintptr_t)(64 * MiB - 1);
  extern char end; /* the program's data ends here; the brk heap follows */
  if ((char *)home >= &end && (char *)home < (char *)sbrk(0)) {
    *ok = 2; /* given the main arena: not the case under test */
    tide_free(home);
    return NULL;
  }
  /* Blocks of 1 MiB (under the 32 MiB threshold) until one is in a
   * second heap; then small blocks until one is there too. */
  void *fill[80];
  int n = 0;
  while (n < 80) {
    fill[n] = tide_malloc(MiB);
    if (((uintptr_t)fill[n++] & ~(uintptr_t)(64 * MiB - 1)) != first)
      break;
  }
  void *q = small_outside(first, first + 64 * MiB);
  *ok = q == NULL ? 0 : comes_back(q) ? 1 : -1;
  probe_free();
  for (int i = 0; i < n; i++)
    tide_free(fill[i]);
  tide_free(home);
  return NULL;
}

static void test_own_blocks_in_a_second_heap(void) {
  int ok = 0;
  pthread_t t;
  pthread_create(&t, NULL, second_heap_thread, &ok);
  pthread_join(t, NULL);
  CHECK(ok != 2, "a new thread has an arena of its own, on heaps (not the main arena)");
  CHECK(ok != 0, "a thread's arena grew into a second heap, and a small block lies there");
  CHECK(ok == 1, "freed, it is in the thread's cache: a malloc of its size hands it out again");
  CHECK(tide_heap_check() == 0, "heap sound after the second heap");
}

int main(void) {
  printf("# unit/ownrange\n");
  /* Blocks of 1-8 MiB from the heaps, not mappings of their own. */
  CHECK(tide_mallopt(TIDE_M_MMAP_THRESHOLD, 32 * MiB) == 1, "mallopt(M_MMAP_THRESHOLD, 32 MiB)");
  /* A thread of its own arena, on heaps (threads would share the main one). */
  CHECK(tide_mallopt(TIDE_M_ARENA_SHARE, 0) == 1, "mallopt(M_ARENA_SHARE, 0)");
  test_own_blocks_past_the_range();
  test_own_blocks_in_a_second_heap();
  TEST_MAIN_END("unit/ownrange");
}
