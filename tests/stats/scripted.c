/* SPDX-License-Identifier: MIT */
/*
 * A heap in a known state, for tests/stats/stats.sh (linked with the
 * drop-in archive: the standard names and tide_*).
 *
 *   scripted-std dump DIR     the pattern below, then in this order, with
 *                             no allocation in between: DIR/heap.json
 *                             (tide_heap_dump_json), DIR/info.xml
 *                             (malloc_info), DIR/stats.json
 *                             (tide_stats_json); DIR/facts.json: the
 *                             pointers and the figures of mallinfo2 and
 *                             tide_stats_get
 *   scripted-std threads DIR  4 threads each keep 20 cached 64 B blocks;
 *                             DIR/stats.json written while they wait
 *   scripted-std idle MS      prints its pid, then sleeps MS ms (a signal
 *                             may ask it for its statistics meanwhile)
 *   scripted-std busy MS      the same, with a malloc/free every 20 ms
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tidemalloc.h"

static int create(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    perror(path);
    exit(2);
  }
  return fd;
}

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int dump(const char *dir) {
  /* Every file and buffer first: nothing allocates once the dumps start. */
  int heap_fd = create(dir, "heap.json"), stats_fd = create(dir, "stats.json");
  int xml_fd = create(dir, "info.xml"), facts_fd = create(dir, "facts.json");
  FILE *xml = fdopen(xml_fd, "w");
  static char xml_buf[1 << 20];
  setvbuf(xml, xml_buf, _IOFBF, sizeof xml_buf);

  void *kept = malloc(1 << 20);      /* mmapped */
  void *binned = malloc(100 * 1024); /* freed into a bin */
  void *guard = malloc(200);         /* keeps it from the top */
  void *cached[7];
  for (int i = 0; i < 7; i++)
    cached[i] = malloc(40); /* 48-byte chunks, then in this thread's cache */
  void *used = malloc(3000);
  memset(kept, 1, 1 << 20);
  memset(used, 2, 3000);
  free(binned);
  for (int i = 0; i < 7; i++)
    free(cached[i]);

  tide_heap_dump_json(heap_fd);
  malloc_info(0, xml);
  fflush(xml);
  tide_stats_json(stats_fd);
  struct mallinfo2 mi = mallinfo2();
  struct tide_stats st;
  tide_stats_get(&st);

  char facts[4096];
  int n = snprintf(facts, sizeof facts,
                   "{\"kept\": \"%p\", \"binned\": \"%p\", \"guard\": \"%p\", \"used\": \"%p\", \"cached\": [",
                   kept, binned, guard, used);
  for (int i = 0; i < 7; i++)
    n += snprintf(facts + n, sizeof facts - (size_t)n, "%s\"%p\"", i ? ", " : "", cached[i]);
  n += snprintf(facts + n, sizeof facts - (size_t)n,
                "], \"mallinfo2\": {\"arena\": %zu, \"uordblks\": %zu, \"fordblks\": %zu, \"hblkhd\": %zu,"
                " \"smblks\": %zu, \"fsmblks\": %zu, \"ordblks\": %zu},"
                " \"stats\": {\"in_use_bytes\": %zu, \"cached_bytes\": %zu, \"live_bytes\": %zu}}\n",
                mi.arena, mi.uordblks, mi.fordblks, mi.hblkhd, mi.smblks, mi.fsmblks, mi.ordblks, st.in_use_bytes,
                st.cached_bytes, st.live_bytes);
  if (write(facts_fd, facts, (size_t)n) != n)
    return 2;
  close(heap_fd);
  close(stats_fd);
  fclose(xml);
  close(facts_fd);
  free(kept);
  free(guard);
  free(used);
  return 0;
}

static pthread_barrier_t ready, done;

static void *cache_some(void *unused) {
  (void)unused;
  void *p[20];
  for (int i = 0; i < 20; i++)
    p[i] = malloc(60);
  for (int i = 0; i < 20; i++)
    free(p[i]);
  pthread_barrier_wait(&ready);
  pthread_barrier_wait(&done);
  return NULL;
}

static int threads(const char *dir) {
  int fd = create(dir, "stats.json");
  pthread_t t[4];
  pthread_barrier_init(&ready, NULL, 5);
  pthread_barrier_init(&done, NULL, 5);
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, cache_some, NULL);
  pthread_barrier_wait(&ready);
  tide_stats_json(fd);
  pthread_barrier_wait(&done);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "dump") == 0)
    return dump(argv[2]);
  if (argc == 3 && strcmp(argv[1], "threads") == 0)
    return threads(argv[2]);
  if (argc == 3 && (strcmp(argv[1], "idle") == 0 || strcmp(argv[1], "busy") == 0)) {
    printf("%d\n", (int)getpid());
    fflush(stdout);
    long ms = atol(argv[2]);
    void *keep = malloc(5000);
    memset(keep, 3, 5000);
    for (long t = 0; t < ms; t += 20) {
      nap_ms(20);
      if (argv[1][0] == 'b')
        free(malloc(200 * 1024)); /* the slow path, each time */
    }
    free(keep);
    return 0;
  }
  fprintf(stderr, "usage: %s dump DIR | threads DIR | idle MS | busy MS\n", argv[0]);
  return 2;
}
