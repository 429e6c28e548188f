/* SPDX-License-Identifier: MIT */
/*
 * Memory kept for the decay time under the default settings, and given
 * back after it with no malloc_trim call (src/purge.c, src/mmapped.c):
 *
 *  - a freed mapping is kept: the next request it can hold gets the same
 *    pages, still as they were; calloc never gets one (it must be zero);
 *  - after the decay the background thread unmaps it;
 *  - memory freed at the top past the trim threshold stays while it is
 *    reused, and goes back once top has been left alone for the decay,
 *    also when the frees reach the arena from the thread cache;
 *  - at most 8 mappings are kept, 128 MiB in all;
 *  - malloc_trim gives kept mappings back at once;
 *  - once a glibc threshold is set with mallopt, frees unmap at once, as in
 *    glibc;
 *  - before the background thread exists, all of that happens at once,
 *    except that a mapping that keeps coming back is kept within a cap.
 *
 * The order matters: the last test turns the defaults off.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "harness.h"
#include "tidemalloc.h"

#define MiB ((size_t)1 << 20)
/* Blocks over 32 MiB are always mmapped and never move the threshold. */
#define BIG (40 * MiB)
#define DEADLINE_MS 3000

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Is address p inside some mapping of this process? */
static int mapped(const void *p) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f)
    return -1;
  unsigned long lo, hi, a = (unsigned long)p;
  char rest[512];
  int found = 0;
  while (fscanf(f, "%lx-%lx", &lo, &hi) == 2) {
    if (a >= lo && a < hi)
      found = 1;
    if (!fgets(rest, sizeof rest, f))
      break;
  }
  fclose(f);
  return found;
}

static size_t os_bytes(void) {
  struct tide_stats s;
  tide_stats_get(&s);
  return s.os_bytes;
}

/* What the heap inspector says is kept for reuse, in bytes (-1: not said). */
static long long kept_in_dump(void) {
  FILE *f = tmpfile();
  if (!f)
    return -1;
  tide_heap_dump(fileno(f));
  rewind(f);
  static char text[1 << 20];
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = 0;
  fclose(f);
  const char *at = strstr(text, "freed mappings kept for reuse: ");
  return at ? atoll(at + strlen("freed mappings kept for reuse: ")) : -1;
}

static void test_kept_mapping(void) {
  unsigned char *p = tide_malloc(BIG);
  CHECK(p != NULL, "malloc(40 MiB)");
  if (!p)
    return;
  memset(p, 0xAB, BIG);
  tide_free(p);
  CHECK(mapped(p) == 1, "its mapping is kept after free");
  long long k = kept_in_dump();
  CHECK(k >= (long long)BIG, "the heap inspector shows it kept for reuse (%lld B)", k);
  unsigned char *q = tide_malloc(BIG);
  CHECK(q == p, "the next malloc(40 MiB) gets it back (%p, was %p)", (void *)q, (void *)p);
  CHECK(q && q[0] == 0xAB && q[BIG / 2] == 0xAB && q[BIG - 100] == 0xAB,
        "with its pages as they were: resident, not faulted in afresh");
  tide_free(q);

  unsigned char *z = tide_calloc(1, BIG);
  CHECK(z != NULL, "calloc(1, 40 MiB)");
  size_t nonzero = 0;
  for (size_t i = 0; z && i < BIG; i++)
    nonzero += z[i] != 0;
  CHECK(nonzero == 0, "calloc never gets a kept mapping: all 40 MiB are zero (%zu bytes not)", nonzero);
  tide_free(z);

  long t0 = now_ms();
  while ((mapped(p) || mapped(z)) && now_ms() - t0 < DEADLINE_MS)
    sleep_ms(20);
  long took = now_ms() - t0;
  CHECK(!mapped(p) && !mapped(z), "both kept mappings are unmapped after the decay, with no "
                                  "malloc call (%ld ms)", took);
  CHECK(took >= 100, "and not at once: they waited for the decay (%ld ms)", took);
}

/* n blocks of size bytes, written; returns os_bytes afterwards. */
static size_t alloc_written(void **p, int n, size_t size) {
  for (int i = 0; i < n; i++) {
    p[i] = tide_malloc(size);
    if (p[i])
      memset(p[i], 0x31, size);
  }
  return os_bytes();
}

/* Freed last first, so they all end up in top. */
static void free_backwards(void **p, int n) {
  for (int i = n - 1; i >= 0; i--)
    tide_free(p[i]);
}

/* Does os_bytes fall to limit within the deadline, with no further call? */
static bool os_bytes_fall_to(size_t limit) {
  long t0 = now_ms();
  while (os_bytes() > limit && now_ms() - t0 < DEADLINE_MS)
    sleep_ms(20);
  return os_bytes() <= limit;
}

static void test_top_waits(void) {
  enum { N = 100, SIZE = 100000 };
  void *p[N];
  size_t grown = alloc_written(p, N, SIZE);
  free_backwards(p, N);
  size_t after_free = os_bytes();
  CHECK(after_free + 1 * MiB >= grown, "10 MB freed at the top stay for now (os_bytes %zu -> %zu)", grown,
        after_free);
  /* Used again at once: no new memory from the OS. */
  size_t again = alloc_written(p, N, SIZE);
  CHECK(again <= grown, "the same requests again take no more from the OS (%zu -> %zu)", grown, again);
  free_backwards(p, N);
  CHECK(os_bytes_fall_to(grown - 8 * MiB), "left alone, they go back to the OS within %d ms (os_bytes %zu -> %zu)",
        DEADLINE_MS, grown, os_bytes());
  CHECK(tide_heap_check() == 0, "heap sound after the top came down");
}

/* Freed through the thread cache's medium blocks (1-64 KiB): the frees
 * reach the arena when the cache evicts, not in free's own slow path, and
 * must still bring the background thread round. */
static void test_top_waits_medium(void) {
  enum { N = 4000, SIZE = 32 * 1024 };
  static void *p[N];
  size_t grown = alloc_written(p, N, SIZE);
  free_backwards(p, N);
  CHECK(os_bytes_fall_to(grown - 100 * MiB), "125 MB of 32 KiB blocks freed in a fresh process go back within %d "
        "ms with no further call (os_bytes %zu -> %zu)", DEADLINE_MS, grown, os_bytes());
}

/* Pages of [p, p+n) that are resident (mincore), or -1. */
static long resident_pages(void *p, size_t n) {
  uintptr_t lo = (uintptr_t)p & ~(uintptr_t)4095, hi = ((uintptr_t)p + n) & ~(uintptr_t)4095;
  if (hi <= lo)
    return 0;
  static unsigned char vec[1 << 16];
  size_t npages = (hi - lo) / 4096;
  if (npages > sizeof vec || mincore((void *)lo, hi - lo, vec) != 0)
    return -1;
  long r = 0;
  for (size_t i = 0; i < npages; i++)
    r += vec[i] & 1;
  return r;
}

/* Once a freed mapping has raised the mmap threshold (and with it the trim
 * threshold, to twice as much), a top under the trim threshold keeps its
 * address space as in glibc, but its pages still go back after the decay. */
static void test_idle_top(void) {
  void *m = tide_malloc(3 * MiB);
  tide_free(m); /* threshold 3 MiB, trim threshold 6 MiB */
  unsigned char *p = tide_malloc(2 * MiB);
  CHECK(p != NULL && (((size_t *)p)[-1] & 2) == 0, "malloc(2 MiB) comes from the heap now, not a mapping");
  if (!p)
    return;
  memset(p, 0x5A, 2 * MiB);
  long before = resident_pages(p + 256 * 1024, MiB);
  tide_free(p); /* back into top, which stays under 6 MiB */
  long t0 = now_ms(), now = 0;
  while ((now = resident_pages(p + 256 * 1024, MiB)) > 0 && now_ms() - t0 < DEADLINE_MS)
    sleep_ms(20);
  CHECK(before == 256 && now == 0, "the freed top's pages go back after the decay with no further call (%ld of "
        "256 resident before, %ld after %ld ms)", before, now, now_ms() - t0);
  unsigned char *z = tide_calloc(1, 2 * MiB);
  size_t nonzero = 0;
  for (size_t i = 0; z && i < 2 * MiB; i++)
    nonzero += z[i] != 0;
  CHECK(z && nonzero == 0, "calloc from that top reads zero (%zu bytes not)", nonzero);
  tide_free(z);
}

/* At most 8 freed mappings are kept, 128 MiB in all (src/mmapped.c). */
static void test_kept_bounds(void) {
  enum { N = 12, NB = 5 };
  void *p[N];
  int mm = 0, still = 0;
  /* A long decay, so none expires while they are counted. */
  CHECK(tide_mallopt(TIDE_M_PURGE_DECAY_MS, 10000) == 1, "mallopt(decay, 10 s)");
  for (int i = 0; i < N; i++) {
    p[i] = tide_malloc(MiB);
    mm += p[i] && (((size_t *)p[i])[-1] & 2) != 0;
  }
  CHECK(mm == N, "12 blocks of 1 MiB are mappings of their own (%d are; the threshold is still low)", mm);
  for (int i = 0; i < N; i++)
    tide_free(p[i]);
  for (int i = 0; i < N; i++)
    still += mapped(p[i]) == 1;
  CHECK(still == 8, "of 12 freed 1 MiB mappings, 8 are kept (%d)", still);
  tide_malloc_trim(0);
  void *b[NB];
  for (int i = 0; i < NB; i++)
    b[i] = tide_malloc(BIG); /* not written: no RSS */
  for (int i = 0; i < NB; i++)
    tide_free(b[i]);
  still = 0;
  for (int i = 0; i < NB; i++)
    still += mapped(b[i]) == 1;
  long long k = kept_in_dump();
  CHECK(still == 3 && k <= (long long)(128 * MiB), "of 5 freed 40 MiB mappings, 3 are kept (%d; "
        "%lld B, at most 128 MiB)", still, k);
  tide_malloc_trim(0);
  CHECK(tide_mallopt(TIDE_M_PURGE_DECAY_MS, 200) == 1, "mallopt(decay, 200 ms): the default again");
}

static void test_trim_now(void) {
  void *p = tide_malloc(BIG);
  tide_free(p);
  CHECK(p && mapped(p) == 1, "a freed 40 MiB mapping is kept");
  CHECK(tide_malloc_trim(0) == 1, "malloc_trim(0) says it released memory");
  CHECK(!mapped(p), "and the mapping is gone at once");
}

static void test_glibc_settings(void) {
  void *k = tide_malloc(BIG);
  tide_free(k);
  CHECK(k && mapped(k) == 1, "a freed 40 MiB mapping is kept");
  CHECK(tide_mallopt(TIDE_M_MMAP_THRESHOLD, 256 * 1024) == 1, "mallopt(M_MMAP_THRESHOLD, 256K)");
  CHECK(!mapped(k), "the setting gives back at once what was kept");
  void *p = tide_malloc(BIG);
  tide_free(p);
  CHECK(p && !mapped(p), "with a threshold set by the user, free unmaps at once, as glibc does");
  CHECK(tide_heap_check() == 0, "heap sound");
}

/* Before the background thread exists (a process that made no thread,
 * as this one so far) nothing waits for it: a freed mapping and memory
 * freed at the top go back at once, as in glibc, and an arena keeps few
 * dirty pages (issue 11: the thread is made only at a safe point). */
static void test_without_thread(void) {
  void *p = tide_malloc(BIG);
  tide_free(p);
  CHECK(p && !mapped(p), "no background thread yet: a freed 40 MiB mapping is unmapped at once");
  enum { NT = 100 };
  void *t[NT];
  for (int i = 0; i < NT; i++) {
    t[i] = tide_malloc(100 * 1024);
    memset(t[i], 1, 100 * 1024);
  }
  size_t grown = os_bytes();
  for (int i = NT - 1; i >= 0; i--)
    tide_free(t[i]);
  size_t after = os_bytes();
  CHECK(after + 8 * MiB <= grown, "and 10 MB freed at the top go back at once (os_bytes %zu -> %zu)", grown, after);
  /* 40 MB of free chunks between live guards: purged down to the cap at
   * once (4 MiB, or an eighth of the memory in use). */
  enum { ND = 400 };
  void *d[ND], *g[ND];
  for (int i = 0; i < ND; i++) {
    d[i] = tide_malloc(100 * 1024);
    memset(d[i], 2, 100 * 1024);
    g[i] = tide_malloc(64);
  }
  struct tide_stats s0, s1;
  tide_stats_get(&s0);
  for (int i = 0; i < ND; i++)
    tide_free(d[i]);
  tide_stats_get(&s1);
  size_t purged = s1.purged_bytes - s0.purged_bytes;
  CHECK(purged >= 30 * MiB, "40 MB freed between live blocks: all but the cap purged at once (%zu MiB)", purged / MiB);
  for (int i = 0; i < ND; i++)
    tide_free(g[i]);
  tide_malloc_trim(0);
  /* A program that frees and reuses more than the cap every cycle: the
   * cap grows until what it reuses stays (purging it each cycle would
   * make every cycle fault the pages in again). */
  enum { NC = 80, ROUNDS = 60 };
  void *cb[NC], *cg[NC];
  size_t purged_late = 0;
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < NC; i++) {
      cb[i] = tide_malloc(100 * 1024);
      memset(cb[i], 5, 100 * 1024);
      cg[i] = tide_malloc(48);
    }
    tide_stats_get(&s0);
    for (int i = 0; i < NC; i++)
      tide_free(cb[i]);
    tide_stats_get(&s1);
    if (round >= ROUNDS / 2)
      purged_late += s1.purged_bytes - s0.purged_bytes;
    for (int i = 0; i < NC; i++)
      tide_free(cg[i]);
  }
  CHECK(purged_late == 0, "8 MB freed and allocated again in each of %d cycles: none purged in the last %d (%zu KiB)",
        ROUNDS, ROUNDS / 2, purged_late / 1024);

  CHECK(tide_heap_check() == 0, "heap sound");
}

/* Without the thread, memory that comes and goes at the top: trimmed at
 * once the first time, as glibc does, but a top that grows again right
 * after its trim raises the trim threshold, so later cycles keep it (a
 * process of its own: nothing before it may have raised it). */
static void test_top_churn_without_thread(void) {
  enum { NC = 80, ROUNDS = 60 };
  void *cb[NC];
  int trims_late = 0, trims_first = 0;
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < NC; i++) {
      cb[i] = tide_malloc(100 * 1024);
      memset(cb[i], 6, 100 * 1024);
    }
    size_t before = os_bytes();
    for (int i = NC - 1; i >= 0; i--)
      tide_free(cb[i]);
    bool trimmed = os_bytes() + 4 * MiB < before;
    if (round == 0)
      trims_first = trimmed;
    if (round >= ROUNDS / 2)
      trims_late += trimmed;
  }
  CHECK(trims_first && trims_late == 0, "8 MB freed at the top and taken again, %d cycles: trimmed the first time (%d), "
        "not in the last %d (%d)", ROUNDS, trims_first, ROUNDS / 2, trims_late);
}

/* Without the thread, a large block that comes and goes: its mapping is
 * unmapped at once the first times (more than the cap of what is
 * live), but one mapped again right after such an unmap raises the cap,
 * so later cycles reuse the kept mapping; once it has waited the decay,
 * the next large call unmaps it. */
static void test_mapping_churn_without_thread(void) {
  enum { ROUNDS = 30 };
  int kept_late = 0, kept_first = 0;
  char *p = NULL;
  for (int round = 0; round < ROUNDS; round++) {
    p = tide_malloc(BIG);
    if (!p)
      break;
    p[0] = p[BIG - 1] = 7;
    tide_free(p);
    int kept = mapped(p) == 1;
    if (round == 0)
      kept_first = kept;
    if (round >= ROUNDS / 2)
      kept_late += kept;
  }
  CHECK(!kept_first && kept_late == ROUNDS / 2, "a 40 MiB block freed and taken again, %d cycles: unmapped the first "
        "time (%s), kept in each of the last %d (%d)", ROUNDS, kept_first ? "kept" : "yes", ROUNDS / 2, kept_late);
  sleep_ms(600); /* the default decay is 200 ms */
  void *q = tide_malloc(MiB);
  tide_free(q);
  CHECK(mapped(p) == 0, "after the decay, the next large malloc unmaps it");
}

int main(void) {
  printf("# unit/keep\n");
  /* In a child: what follows needs a fresh process. */
  th_isolated("without the background thread", test_without_thread, 60);
  th_isolated("without the background thread, at the top", test_top_churn_without_thread, 60);
  th_isolated("without the background thread, a mapping", test_mapping_churn_without_thread, 60);
  /* From here on with the thread: made now (a safe point), as the shared
   * library makes it when the program makes its first thread. */
  CHECK(tide_mallopt(TIDE_M_PURGE_THREAD, 2) == 1, "mallopt(TIDE_M_PURGE_THREAD, 2) starts the background thread");
  test_top_waits_medium(); /* first: nothing has woken the thread yet */
  test_kept_bounds();     /* next: no mapping under 32 MiB freed yet (the threshold is low) */
  test_kept_mapping();
  test_top_waits();
  test_idle_top();
  test_trim_now();
  test_glibc_settings();
  TEST_MAIN_END("unit/keep");
}
