/* SPDX-License-Identifier: MIT */
/*
 * tidemalloc's own background thread must not pin the program's memory.
 *
 * Starting a thread allocates (pthread_create asks malloc for its TLS
 * vector).  If that block were carved from the top of the main heap, the
 * break could never come down below it again: everything freed under it
 * would stay mapped for the life of the process.  So the background
 * thread is started while the heap is high (mallopt), then everything is
 * freed, and the break must come back down.
 *
 * A process of its own: the background thread must not have run before.
 * Run as the drop-in build (-std): only there does pthread_create
 * allocate through tidemalloc.
 */
#include <unistd.h>

#include "flavour.h"
#include "harness.h"
#include "tidemalloc.h"

#define BLOCKS 64
#define BLOCK (256 * 1024)

int main(void) {
  printf("# stress/ownthread (%s)\n", FLAVOUR);
  /* Blocks from the heap, not mappings of their own. */
  CHECK(F(mallopt)(TIDE_M_MMAP_THRESHOLD, 32 * MiB) == 1, "mallopt(M_MMAP_THRESHOLD, 32 MiB)");
  /* Small blocks low in the heap, big ones above them. */
  enum { SMALL = 24000 };
  static void *small[SMALL];
  for (int i = 0; i < SMALL; i++)
    small[i] = F(malloc)(48);
  char *brk0 = sbrk(0);
  void *p[BLOCKS];
  for (int i = 0; i < BLOCKS; i++)
    p[i] = F(malloc)(BLOCK);
  char *brk1 = sbrk(0);
  CHECK(brk1 >= brk0 + BLOCKS * BLOCK, "%d blocks of 256 KiB raise the break by %zu MiB", BLOCKS,
        (size_t)(brk1 - brk0) / MiB);
  /* Freeing the small ones parks over 1 MiB in the fast bins, work for
   * the background thread, which is made now, while the only free memory
   * it could be given is the top.  (It is made at safe points only, never
   * inside malloc or free: as here, mallopt.) */
  for (int i = 0; i < SMALL; i++)
    F(free)(small[i]);
  CHECK(F(mallopt)(TIDE_M_PURGE_THREAD, 2) == 1, "mallopt(TIDE_M_PURGE_THREAD, 2): the thread is made now");
  struct tide_stats s;
  int started = 0;
  for (int t = 0; t < 300 && !started; t++) {
    usleep(10000);
    tide_stats_get(&s);
    started = s.purged_bytes > 0; /* it has done a round */
  }
  CHECK(started, "the background thread ran (purged %zu bytes)", s.purged_bytes);
  for (int i = 0; i < BLOCKS; i++)
    F(free)(p[i]);
  char *brk2 = sbrk(0);
  CHECK(brk2 < brk0 + 4 * MiB, "after the big blocks are freed the break comes back down (%zu KiB "
        "above where they started; they had taken %zu MiB)",
        brk2 > brk0 ? (size_t)(brk2 - brk0) / 1024 : 0, (size_t)(brk1 - brk0) / MiB);
  CHECK(tide_heap_check() == 0, "heap sound");
  TEST_MAIN_END("stress/ownthread-" FLAVOUR);
}
