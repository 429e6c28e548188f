/* SPDX-License-Identifier: MIT */
/*
 * A scripted heap for tests/view/view.sh: a known pattern of blocks, held
 * until the heap is dumped.
 *
 *   - 1 MiB, used (written to): an mmapped chunk;
 *   - 40 KiB freed into a bin (run with tcache_max=1032, glibc's cache
 *     limit, so that the medium-block cache does not take it), between two
 *     used 4 KiB blocks so that it joins neither a neighbour nor the top;
 *   - seven 40-byte requests (48-byte chunks) freed into this thread's cache.
 *
 * -std (linked with libtidemalloc.a): `pattern-std FILE [threads]` writes
 * the heap dump with tide_heap_dump_json to FILE.  With "threads", a
 * second thread first fills and keeps a cache of its own (tcache-other in
 * the dump) and hands 40 blocks to this one, which frees them; it waits
 * until the dump is written.  -plain: the pattern, then exit (under
 * `tidemalloc run --view`, the library writes the dump at exit).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef TIDE_TEST_STD
#include "tidemalloc.h"
#endif

static void *volatile keep[8]; /* (so that nothing is optimised away) */

static pthread_barrier_t step;
static void *handed[40];

static void *worker(void *arg) {
  (void)arg;
  void *mine[30];
  for (int i = 0; i < 30; i++)
    mine[i] = malloc(700);
  for (int i = 0; i < 30; i++)
    free(mine[i]);
  for (int i = 0; i < 40; i++)
    handed[i] = malloc(96);
  keep[3] = malloc(20000);
  pthread_barrier_wait(&step); /* the blocks are handed over */
  pthread_barrier_wait(&step); /* the dump is written */
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 2 && strcmp(argv[2], "threads") == 0;
  pthread_t t;
  if (threads) {
    pthread_barrier_init(&step, NULL, 2);
    if (pthread_create(&t, NULL, worker, NULL) != 0)
      return 1;
    pthread_barrier_wait(&step);
  }
  char *big = malloc((size_t)1 << 20);
  char *before = malloc(4096), *mid = malloc(40 * 1024), *after = malloc(4096);
  if (!big || !before || !mid || !after)
    return 1;
  memset(big, 0x11, (size_t)1 << 20);
  memset(mid, 0x22, 40 * 1024);
  free(mid);
  void *small[7];
  for (int i = 0; i < 7; i++)
    if (!(small[i] = malloc(40)))
      return 1;
  for (int i = 0; i < 7; i++)
    free(small[i]);
  keep[0] = big;
  keep[1] = before;
  keep[2] = after;
  if (threads)
    for (int i = 0; i < 40; i++)
      free(handed[i]);
#ifdef TIDE_TEST_STD
  if (argc < 2) {
    fprintf(stderr, "usage: %s dump.json [threads]\n", argv[0]);
    return 2;
  }
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  tide_heap_dump_json(fd);
  if (close(fd) != 0)
    return 1;
  if (threads) {
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
  }
#else
  (void)argc;
  (void)argv;
#endif
  return 0;
}
