/* SPDX-License-Identifier: MIT */
/*
 * fork while other threads are inside malloc: 4 threads allocate and free
 * without pause while the main thread forks 100 times.  Each child
 * allocates and frees blocks of every kind, checks the heap and exits 0;
 * a child that deadlocks on a lock held at the moment of fork is killed
 * by its alarm and counts as a failure.
 *
 * Two builds: tide_* on the debug library, and (-std) the drop-in.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"
#include "tidemalloc.h"

#include "flavour.h"

#define NFORKS 100
#define NHAMMER 4

static atomic_int stop;

static void *hammer(void *arg) {
  struct th_rng r;
  th_rng_seed(&r, (uint64_t)(intptr_t)arg);
  void *held[64] = {0};
  while (!atomic_load(&stop)) {
    int i = (int)th_rng_range(&r, 0, 63);
    if (held[i]) {
      F(free)(held[i]);
      held[i] = NULL;
    } else {
      uint64_t k = th_rng_range(&r, 0, 99);
      size_t n = k < 70 ? th_rng_range(&r, 1, 512)
                 : k < 97 ? th_rng_range(&r, 513, 60000)
                          : th_rng_range(&r, 131072, 600000);
      held[i] = F(malloc)(n);
      if (held[i])
        memset(held[i], i, n < 256 ? n : 256);
    }
  }
  for (int i = 0; i < 64; i++)
    F(free)(held[i]);
  return NULL;
}

static int child_work(void) {
  void *p[200];
  for (int i = 0; i < 200; i++) {
    size_t n = (size_t)(i % 4 == 3 ? 200000 : 16 + i * 37);
    p[i] = F(malloc)(n);
    if (!p[i])
      return 2;
    memset(p[i], 0x5C, n);
  }
  for (int i = 0; i < 200; i += 2)
    F(free)(p[i]);
  for (int i = 0; i < 200; i += 2) {
    p[i] = F(calloc)(1, 3000);
    if (!p[i])
      return 3;
  }
  for (int i = 0; i < 200; i++)
    F(free)(p[i]);
  tide_heap_check();
  return 0;
}

int main(void) {
  printf("# stress/fork (%s): %d threads hammering, %d forks\n", FLAVOUR, NHAMMER, NFORKS);
  fflush(stdout);
  pthread_t t[NHAMMER];
  for (int i = 0; i < NHAMMER; i++)
    pthread_create(&t[i], NULL, hammer, (void *)(intptr_t)(i + 1));
  int good = 0, hung = 0, bad = 0;
  int last_status = 0;
  for (int k = 0; k < NFORKS; k++) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(10);
      _exit(child_work());
    }
    if (pid < 0) {
      bad++;
      continue;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
      good++;
    } else {
      last_status = st;
      if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
        hung++;
      else
        bad++;
    }
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < NHAMMER; i++)
    pthread_join(t[i], NULL);
  CHECK(hung == 0, "no child deadlocked after fork (%d hung)", hung);
  CHECK(good == NFORKS, "%d of %d children allocated, freed, checked the heap and exited 0 "
                        "(last bad: %s)",
        good, NFORKS, good == NFORKS ? "none" : th_status_str(last_status));
  CHECK(tide_heap_check() == 0, "the parent's heap is sound after the forks");
  TEST_MAIN_END("stress/fork-" FLAVOUR);
}
