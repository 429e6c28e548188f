/* SPDX-License-Identifier: MIT */
/*
 * Regressions: short call sequences that once broke the allocator, each
 * run in a fresh process (the binary re-executes itself with the case's
 * name), because most of them need the heap exactly as a new process has
 * it.  A case passes when its process exits 0 with a sound heap.
 */
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "tidemalloc.h"

/* A free chunk alone in the unsorted bin, then a small request that the
 * thread cache refills in a batch: the second carve of the batch crashed
 * in sweep_unsorted (found by stress/purge). */
static void r_unsorted_refill(void) {
  char *p = tide_malloc(62817);
  char *q = tide_calloc(1, 3946);
  tide_free(p);
  char *r = tide_malloc(38);
  memset(r, 1, 38);
  tide_free(r);
  tide_free(q);
}

/* The same shape with malloc in place of calloc and other sizes. */
static void r_unsorted_refill_variants(void) {
  static const size_t big[] = {5000, 20000, 62817, 100000};
  static const size_t small[] = {1, 24, 38, 100, 500, 1000};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    for (size_t j = 0; j < sizeof small / sizeof small[0]; j++) {
      char *p = tide_malloc(big[i]);
      char *q = tide_malloc(3946);
      tide_free(p);
      char *r[40];
      for (int k = 0; k < 40; k++) {
        r[k] = tide_malloc(small[j]);
        memset(r[k], 2, small[j]);
      }
      for (int k = 0; k < 40; k++)
        tide_free(r[k]);
      tide_free(q);
      tide_heap_check();
    }
  }
}

/* The first thing a process does is a huge request (overflow in the
 * request-to-chunk-size conversion on the thread-cache path). */
static void r_first_call_huge(void) {
  void *w = tide_malloc(10);
  tide_free(w);
  if (tide_malloc(SIZE_MAX) || tide_malloc(SIZE_MAX - 16) || tide_calloc(1, SIZE_MAX))
    _exit(3);
}

/* A free that finds the free key in a block's second word takes the block
 * for free already (a double free), so no block may be handed out with the
 * key still there.  Chunks on a fast bin carry it, and leave it behind
 * when they merge; blocks carved there again through the arena (thread
 * cache off) and freed untouched must not look freed twice.  The same for
 * medium blocks and for memalign. */
static void r_handed_out_without_key(void) {
  void *b[80];
  for (int i = 0; i < 80; i++)
    b[i] = tide_malloc(48);
  void *guard = tide_malloc(48);
  for (int i = 0; i < 80; i++)
    tide_free(b[i]); /* the oldest half goes to a fast bin */
  tide_malloc_trim(0); /* merges the fast bins' chunks */
  if (tide_mallopt(TIDE_M_TCACHE_COUNT, 0) != 1)
    _exit(3);
  for (int i = 0; i < 80; i++)
    b[i] = tide_malloc(48); /* carved where the merged chunks were */
  for (int i = 0; i < 80; i++)
    tide_free(b[i]);
  if (tide_mallopt(TIDE_M_TCACHE_COUNT, 64) != 1)
    _exit(3);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 8; i++)
      b[i] = tide_malloc(8000 + (size_t)i * 16);
    for (int i = 0; i < 8; i++)
      tide_free(b[i]);
  }
  for (int i = 0; i < 80; i++)
    b[i] = tide_memalign(512, 48); /* (the arena path: alignments up to 256 come from runs) */
  for (int i = 0; i < 80; i++)
    tide_free(b[i]);
  tide_free(guard);
}

/* A refill carves chunks from the top where a fast-bin chunk once merged
 * and left its free key; the cache refused them as "already cached" and
 * they were lost, in use in no list (found by review).  After the thread
 * exits (its cache flushed) everything it used must be free again. */
static void *refill_thread(void *arg) {
  (void)arg;
  void *b[104];
  for (int i = 0; i < 96; i++)
    b[i] = tide_malloc(48);
  for (int i = 95; i >= 0; i--)
    tide_free(b[i]); /* the highest half goes to a fast bin, next to top */
  tide_free(tide_malloc(100000)); /* merges the fast bins into top */
  for (int i = 0; i < 104; i++)
    b[i] = tide_malloc(48);
  for (int i = 0; i < 104; i++)
    tide_free(b[i]);
  return NULL;
}
static void r_refill_over_stale_key(void) {
  struct tide_stats s0, s1;
  tide_stats_get(&s0);
  pthread_t t;
  pthread_create(&t, NULL, refill_thread, NULL);
  pthread_join(t, NULL);
  tide_stats_get(&s1);
  if (s1.in_use_bytes != s0.in_use_bytes) {
    fprintf(stderr, "in use %zu -> %zu after the thread exited\n", s0.in_use_bytes, s1.in_use_bytes);
    _exit(3);
  }
}

struct rcase {
  const char *name;
  void (*fn)(void);
};

static const struct rcase cases[] = {
    {"unsorted-refill", r_unsorted_refill},
    {"unsorted-refill-variants", r_unsorted_refill_variants},
    {"first-call-huge", r_first_call_huge},
    {"handed-out-without-key", r_handed_out_without_key},
    {"refill-over-stale-key", r_refill_over_stale_key},
};
#define NCASES (sizeof cases / sizeof cases[0])

static const char *self;

static void exec_case(void *arg) {
  char *argv[] = {(char *)self, (char *)arg, NULL};
  char *envp[] = {NULL};
  execve(self, argv, envp);
  _exit(99);
}

int main(int argc, char **argv) {
  self = argv[0];
  if (argc > 1) {
    for (size_t i = 0; i < NCASES; i++) {
      if (strcmp(argv[1], cases[i].name) == 0) {
        cases[i].fn();
        tide_heap_check();
        return 0;
      }
    }
    return 2;
  }
  printf("# unit/regress\n");
  for (size_t i = 0; i < NCASES; i++) {
    struct th_child c;
    th_run_child(&c, exec_case, (void *)cases[i].name, 30);
    CHECK(th_child_exited0(&c), "%s: %s %s", cases[i].name, th_status_str(c.status),
          th_first_line(&c));
  }
  TEST_MAIN_END("unit/regress");
}
