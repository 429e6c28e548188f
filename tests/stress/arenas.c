/* SPDX-License-Identifier: MIT */
/*
 * Arenas under contention, and their limit.  The binary re-executes itself
 * with an environment; the child runs 8 threads that allocate and free
 * blocks of 70-120 KB (past the caches) as fast as they can, so they meet
 * on arena locks, then prints
 * malloc_stats() (glibc's layout: one "Arena N:" block per arena) and
 * "arenas=N" from tide_stats_get to stderr.  The parent checks:
 *   MALLOC_ARENA_MAX=2                       at most 2 arenas
 *   GLIBC_TUNABLES=glibc.malloc.arena_max=1  exactly 1
 *   default                                  more than 1
 * and that every child's heap was sound (it calls tide_heap_check).  A
 * child of mode "light" runs 4 threads that allocate and free small
 * blocks their caches and runs serve, so they seldom take an arena lock:
 * by default they share the one arena (what one frees, another reuses;
 * with an arena each, bench's bulk peaked at 162 MB of RSS, not 120);
 * with TIDEMALLOC_CONF=arena_share=0 they get one each, as in glibc.  In
 * mode "moderate" one block in 64 is a 70-120 KB one, so each thread
 * takes the arena lock once per 64 mallocs: too seldom to move (a thread
 * moves at once per 16 or more), they stay on one arena too.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "harness.h"
#include "tidemalloc.h"

#define NTHREADS 8
#define OPS 300000

static const char *self;

static void *busy(void *arg) {
  struct th_rng r;
  th_rng_seed(&r, (uint64_t)(uintptr_t)arg);
  void *held[32] = {0};
  for (int op = 0; op < OPS; op++) {
    int i = (int)th_rng_range(&r, 0, 31);
    if (held[i]) {
      tide_free(held[i]);
      held[i] = NULL;
    } else {
      /* above the thread-cache sizes, so every call takes an arena lock */
      held[i] = tide_malloc(th_rng_range(&r, 70000, 120000));
    }
  }
  for (int i = 0; i < 32; i++)
    tide_free(held[i]);
  return NULL;
}

/* Light use: blocks of 16-512 B that caches and runs serve, and with
 * big_every, one block in that many past the caches (an arena-lock take
 * each). */
static int big_every;

static void *light(void *arg) {
  struct th_rng r;
  th_rng_seed(&r, (uint64_t)(uintptr_t)arg);
  void *held[256] = {0};
  for (int op = 0; op < OPS; op++) {
    int i = (int)th_rng_range(&r, 0, 255);
    tide_free(held[i]);
    bool big = big_every && op % big_every == 0;
    held[i] = tide_malloc(big ? th_rng_range(&r, 70000, 120000) : th_rng_range(&r, 16, 512));
  }
  for (int i = 0; i < 256; i++)
    tide_free(held[i]);
  return NULL;
}

/* Run n threads of fn, then report: heap checked, malloc_stats, "arenas=N". */
static int child_mode(void *(*fn)(void *), int n) {
  pthread_t t[NTHREADS];
  for (int i = 0; i < n; i++)
    pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)(i + 1));
  for (int i = 0; i < n; i++)
    pthread_join(t[i], NULL);
  tide_heap_check();
  struct tide_stats s;
  tide_stats_get(&s);
  tide_malloc_stats();
  fprintf(stderr, "arenas=%zu\n", s.arenas);
  return 0;
}

struct run {
  const char *env;
  const char *mode;
};

static void exec_child(void *arg) {
  const struct run *r = arg;
  char *envp[] = {(char *)r->env, NULL};
  char *argv[] = {(char *)self, (char *)r->mode, NULL};
  execve(self, argv, r->env ? envp : argv + 2);
  _exit(99);
}

static int count_arena_blocks(const char *s) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, "Arena ")) != NULL; p++)
    if (p == s || p[-1] == '\n')
      n++;
  return n;
}

static void run_with(const char *env, const char *mode, int min, int max) {
  struct run r = {env, mode};
  struct th_child c;
  th_run_child(&c, exec_child, &r, 60);
  const char *a = strstr(c.err, "arenas=");
  int arenas = a ? atoi(a + 7) : -1;
  int blocks = count_arena_blocks(c.err);
  char what[160];
  snprintf(what, sizeof what, "%s%s%s", env ? env : "default settings", strcmp(mode, "busy") ? ", use " : "",
           strcmp(mode, "busy") ? mode : "");
  CHECK(th_child_exited0(&c), "%s: %s threads ran, heap sound (%s)", what,
        strcmp(mode, "busy") == 0 ? "8 busy" : "4", th_status_str(c.status));
  CHECK(arenas >= min && arenas <= max, "%s: %d arenas, want %d..%d", what, arenas, min, max);
  CHECK(blocks == arenas, "%s: malloc_stats shows one \"Arena N:\" block per arena (%d)", what,
        blocks);
}

int main(int argc, char **argv) {
  self = argv[0];
  if (argc > 1) {
    big_every = strcmp(argv[1], "moderate") == 0 ? 64 : 0;
    return strcmp(argv[1], "busy") == 0 ? child_mode(busy, NTHREADS) : child_mode(light, 4);
  }
  printf("# stress/arenas: %d threads on %ld cores\n", NTHREADS, sysconf(_SC_NPROCESSORS_ONLN));
  run_with("MALLOC_ARENA_MAX=2", "busy", 1, 2);
  run_with("GLIBC_TUNABLES=glibc.malloc.arena_max=1", "busy", 1, 1);
  run_with(NULL, "busy", 2, 8 * 64 + 1);
  run_with(NULL, "light", 1, 1);
  run_with(NULL, "moderate", 1, 1);
  run_with("TIDEMALLOC_CONF=arena_share=0", "light", 2, 8 * 64 + 1);
  TEST_MAIN_END("stress/arenas");
}
