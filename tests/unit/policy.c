/* SPDX-License-Identifier: MIT */
/*
 * The policies of the core allocator, seen through tide_stats_get and
 * mallinfo2 on the debug library:
 *
 *  - the dynamic mmap threshold: freeing an mmapped chunk raises the
 *    threshold to its size (so the same request next time comes from the
 *    heap), never past 32 MiB, and not at all once mallopt set it;
 *  - top is trimmed back to the OS above the trim threshold;
 *  - fast bins: requests up to 128 bytes are kept uncoalesced in fast bins
 *    when freed, bigger ones are not; a large request, or a free that
 *    coalesces past 64 KiB, consolidates them;
 *    M_MXFAST 0 turns them off.  (The thread cache is switched off first
 *    with mallopt(M_TCACHE_COUNT, 0), so frees reach the bins.)
 *  - realloc in place; calloc leaves fresh zero pages untouched (RSS).
 *  - blocks another thread frees go back to the thread that allocated
 *    them (through its arena's remote stacks) and are reused by it.
 *  - medium blocks (1-64 KiB): the thread cache keeps the last few freed
 *    and gives one back to a request it fits with at most 1/4 to spare;
 *    mallopt(M_TCACHE_MAX, 1032) turns that off.
 *
 * The order matters: the threshold test needs a fresh process.
 */
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "tidemalloc.h"

#define MiB ((size_t)1 << 20)

static size_t mmapped_now(void) {
  struct tide_stats s;
  tide_stats_get(&s);
  return s.mmapped_chunks;
}

static int is_mmapped(void *p) { return p && (((size_t *)p)[-1] & 2) != 0; }

static void test_dynamic_threshold(void) {
  size_t base = mmapped_now();
  void *p = tide_malloc(200000);
  CHECK(is_mmapped(p) && mmapped_now() == base + 1,
        "fresh process: malloc(200000) is mmapped (default threshold 128 KiB)");
  tide_free(p);
  CHECK(mmapped_now() == base, "free unmaps it");
  /* The break grew once, for the thread's cache: by that plus M_TOP_PAD
   * (128 KiB) and page rounding, as glibc's.  (It once grew by 64 KiB
   * more, the padding to a run boundary, and then malloc(200000) came
   * from top in one process of 16, by where the break lay.) */
  struct tide_mallinfo2 mi = tide_mallinfo2();
  CHECK(mi.arena <= mi.uordblks + 128 * 1024 + 2 * 4096,
        "the first top is the request plus 128 KiB of pad, no more (break %zu bytes, %zu in use)",
        mi.arena, mi.uordblks);
  p = tide_malloc(200000);
  CHECK(p && !is_mmapped(p) && mmapped_now() == base,
        "after that free the threshold rose: malloc(200000) comes from the heap");
  tide_free(p);
  p = tide_malloc(40 * MiB);
  CHECK(is_mmapped(p), "malloc(40 MiB) is mmapped");
  tide_free(p);
  p = tide_malloc(33 * MiB);
  CHECK(is_mmapped(p), "after freeing 40 MiB, malloc(33 MiB) is still mmapped: the "
                       "threshold never passes 32 MiB");
  if (p)
    memset(p, 1, 4096);
  tide_free(p);

  CHECK(tide_mallopt(TIDE_M_MMAP_THRESHOLD, 256 * 1024) == 1, "mallopt(M_MMAP_THRESHOLD, "
                                                                "256K)");
  p = tide_malloc(1 * MiB);
  CHECK(is_mmapped(p), "malloc(1 MiB) is mmapped under a 256K threshold");
  tide_free(p);
  p = tide_malloc(1 * MiB);
  CHECK(is_mmapped(p), "and still after a free: a threshold set by mallopt stays put");
  tide_free(p);
  CHECK(tide_heap_check() == 0, "heap sound after the threshold checks");
}

static void test_trim(void) {
  CHECK(tide_mallopt(TIDE_M_TRIM_THRESHOLD, 128 * 1024) == 1, "mallopt(M_TRIM_THRESHOLD, "
                                                               "128K)");
  enum { N = 100 };
  void *p[N];
  struct tide_stats a, b;
  for (int i = 0; i < N; i++) {
    p[i] = tide_malloc(100000);
    if (p[i])
      memset(p[i], 0x31, 100000);
  }
  tide_stats_get(&a);
  for (int i = N - 1; i >= 0; i--)
    tide_free(p[i]);
  tide_stats_get(&b);
  struct tide_mallinfo2 mi = tide_mallinfo2();
  CHECK(b.os_bytes + 8 * MiB <= a.os_bytes,
        "freeing 10 MB at the top gives it back to the OS (os_bytes %zu -> %zu)", a.os_bytes,
        b.os_bytes);
  CHECK(mi.keepcost < 128 * 1024 + 4096, "what is left at the top (keepcost %zu) is below "
                                         "the trim threshold", mi.keepcost);
  CHECK(tide_heap_check() == 0, "heap sound after trimming");
}

static void test_fastbins(void) {
  int r = tide_mallopt(TIDE_M_TCACHE_COUNT, 0);
  CHECK(r == 1, "mallopt(M_TCACHE_COUNT, 0) switches the thread cache off");
  CHECK(tide_mallopt(TIDE_M_MXFAST, 128) == 1, "mallopt(M_MXFAST, 128) (the default)");

  enum { N = 200 };
  void *f[N], *s[10], *g[10];
  for (int i = 0; i < N; i++)
    f[i] = tide_malloc(100);
  void *guard = tide_malloc(100);
  struct tide_mallinfo2 m0 = tide_mallinfo2();
  for (int i = 0; i < N; i++)
    tide_free(f[i]);
  struct tide_mallinfo2 m1 = tide_mallinfo2();
  CHECK(m1.smblks == m0.smblks + N, "200 freed 100-byte blocks sit in fast bins (smblks "
                                    "%zu -> %zu)", m0.smblks, m1.smblks);
  CHECK(m1.fsmblks == m0.fsmblks + N * 112, "fsmblks grows by 200 x 112 (%zu -> %zu)",
        m0.fsmblks, m1.fsmblks);

  for (int i = 0; i < 10; i++) {
    s[i] = tide_malloc(136);
    g[i] = tide_malloc(200); /* keeps the 136-byte chunks apart */
  }
  m0 = tide_mallinfo2();
  for (int i = 0; i < 10; i++)
    tide_free(s[i]);
  m1 = tide_mallinfo2();
  CHECK(m1.smblks == m0.smblks, "136-byte blocks (over the 128-byte limit) do not go to "
                                "fast bins");
  CHECK(m1.ordblks >= m0.ordblks + 10, "they are ordinary free chunks (ordblks %zu -> %zu)",
        m0.ordblks, m1.ordblks);

  void *big = tide_malloc(100000);
  m1 = tide_mallinfo2();
  CHECK(m1.smblks == 0 && m1.fsmblks == 0, "a large request consolidates the fast bins "
                                           "(smblks %zu)", m1.smblks);
  CHECK(tide_heap_check() == 0, "heap sound after consolidation");
  tide_free(big);

  /* a free that coalesces past 64 KiB consolidates them too */
  char *x = tide_malloc(70000);
  void *xg = tide_malloc(300);
  for (int i = 0; i < 50; i++)
    f[i] = tide_malloc(100);
  void *fg = tide_malloc(300);
  for (int i = 0; i < 50; i++)
    tide_free(f[i]);
  m0 = tide_mallinfo2();
  tide_free(x);
  m1 = tide_mallinfo2();
  CHECK(m0.smblks >= 50 && m1.smblks == 0,
        "freeing a 70000-byte block consolidates the fast bins (smblks %zu -> %zu)", m0.smblks,
        m1.smblks);
  tide_free(xg);
  tide_free(fg);
  for (int i = 0; i < 10; i++)
    tide_free(g[i]);

  CHECK(tide_mallopt(TIDE_M_MXFAST, 0) == 1, "mallopt(M_MXFAST, 0)");
  for (int i = 0; i < 20; i++)
    f[i] = tide_malloc(24);
  m0 = tide_mallinfo2();
  for (int i = 0; i < 20; i++)
    tide_free(f[i]);
  m1 = tide_mallinfo2();
  CHECK(m1.smblks == m0.smblks, "with M_MXFAST 0 nothing goes to fast bins (smblks %zu -> "
                                "%zu)", m0.smblks, m1.smblks);
  tide_mallopt(TIDE_M_MXFAST, 128);
  tide_free(guard);
  CHECK(tide_heap_check() == 0, "heap sound at the end");
}

/* realloc stays in place when it can: shrinking, and growing into a free
 * neighbour or into top. */
static void test_realloc_in_place(void) {
  char *p = tide_malloc(5000);
  char *g = tide_malloc(100);
  memset(p, 0x21, 5000);
  char *q = tide_realloc(p, 1000);
  CHECK(q == p, "realloc(5000 -> 1000) shrinks in place");
  tide_free(q);
  tide_free(g);

  char *a = tide_malloc(3000), *b = tide_malloc(3000), *g2 = tide_malloc(100);
  if (b == a + tide_malloc_usable_size(a) + 8) {
    tide_free(b);
    memset(a, 0x22, 3000);
    q = tide_realloc(a, 5500);
    CHECK(q == a, "realloc(3000 -> 5500) grows in place into the free next chunk");
    int kept = 1;
    for (int i = 0; q && i < 3000; i++)
      if (q[i] != 0x22)
        kept = 0;
    CHECK(kept, "and keeps the contents");
    tide_free(q);
  } else {
    CHECK(0, "two consecutive 3000-byte mallocs are adjacent");
    tide_free(a);
    tide_free(b);
  }
  tide_free(g2);

  char *t = tide_malloc(60000);
  q = tide_realloc(t, 100000);
  CHECK(q == t, "realloc(60000 -> 100000) of the chunk before top grows in place");
  tide_free(q);
  CHECK(tide_heap_check() == 0, "heap sound after in-place reallocs");
}


/* calloc does not write memory that is known to be fresh zero pages (a
 * new mapping, or top just grown from the OS): seen as RSS that does not
 * grow with the zeroed bytes. */
static void test_calloc_fresh(void) {
  size_t r0 = th_rss_bytes();
  char *m = tide_calloc(1, 64 * MiB);
  size_t r1 = th_rss_bytes();
  CHECK(m && r1 < r0 + 8 * MiB, "calloc(64 MiB) (a fresh mapping) is not memset: RSS +%zu KiB",
        (r1 - r0) >> 10);
  int zero = 1;
  for (size_t i = 0; m && i < 64 * MiB; i += 4096)
    if (m[i])
      zero = 0;
  CHECK(zero, "and reads as zero");
  tide_free(m);

  enum { N = 150 };
  char *p[N];
  r0 = th_rss_bytes();
  for (int i = 0; i < N; i++)
    p[i] = tide_calloc(1, 100000); /* below the threshold: from top, grown fresh */
  r1 = th_rss_bytes();
  CHECK(r1 < r0 + 5 * MiB, "150 x calloc(100000) from freshly grown top are not memset: RSS "
                           "+%zu KiB for 15 MB", (r1 - r0) >> 10);
  zero = 1;
  for (int i = 0; i < N; i++)
    for (size_t k = 0; p[i] && k < 100000; k += 512)
      if (p[i][k])
        zero = 0;
  CHECK(zero, "and read as zero");
  for (int i = 0; i < N; i++)
    tide_free(p[i]);
  CHECK(tide_heap_check() == 0, "heap sound after the fresh callocs");
}

/* Many mmapped chunks at once (the registry of mappings grows and
 * rehashes), freed in a scrambled order. */
static void test_many_mmapped(void) {
  enum { N = 3000 };
  static char *m[N];
  size_t base = mmapped_now(), bad = 0;
  for (int i = 0; i < N; i++) {
    m[i] = tide_malloc(600000 + (size_t)i * 64); /* above the 256K threshold set above */
    if (!is_mmapped(m[i]))
      bad++;
    else
      m[i][0] = (char)i, m[i][599999] = (char)~i;
  }
  CHECK(bad == 0 && mmapped_now() == base + N, "%d live mmapped chunks (%zu counted)", N,
        mmapped_now() - base);
  struct th_rng r;
  th_rng_seed(&r, 5);
  for (int k = 0; k < N; k++) {
    int i = (int)th_rng_range(&r, 0, N - 1);
    while (!m[i])
      i = (i + 1) % N;
    if (m[i][0] != (char)i || m[i][599999] != (char)~i)
      bad++;
    if (k % 7 == 0) {
      char *q = tide_realloc(m[i], 3 * MiB); /* mremap while the registry is full */
      if (!q || q[0] != (char)i)
        bad++;
      m[i] = q;
    }
    tide_free(m[i]);
    m[i] = NULL;
  }
  CHECK(bad == 0 && mmapped_now() == base, "all freed in a scrambled order, some after a "
                                           "realloc (%zu bad, %zu left)", bad,
        mmapped_now() - base);
  CHECK(tide_heap_check() == 0, "heap sound after the mmapped chunks");
}

#define REMOTE_N 256
static void *remote_set[REMOTE_N];
static pthread_barrier_t remote_step;

static void *remote_freer(void *arg) {
  int *taken = arg;
  pthread_barrier_wait(&remote_step); /* the owner has allocated */
  for (int i = 0; i < REMOTE_N; i++)
    tide_free(remote_set[i]);
  /* The freer's own mallocs must not hand it the owner's blocks: they
   * lie between the owner's live ones (false sharing). */
  void *mine[REMOTE_N];
  for (int i = 0; i < REMOTE_N; i++) {
    mine[i] = tide_malloc(64);
    for (int k = 0; k < REMOTE_N; k++)
      if (mine[i] == remote_set[k])
        (*taken)++;
  }
  for (int i = 0; i < REMOTE_N; i++)
    tide_free(mine[i]);
  pthread_barrier_wait(&remote_step); /* freed; the owner looks */
  pthread_barrier_wait(&remote_step); /* the owner is done */
  return NULL;
}

static void *remote_owner(void *arg) {
  int *reused = arg;
  for (int i = 0; i < REMOTE_N; i++)
    remote_set[i] = tide_malloc(64);
  pthread_barrier_wait(&remote_step);
  pthread_barrier_wait(&remote_step);
  void *again[REMOTE_N];
  for (int i = 0; i < REMOTE_N; i++) {
    again[i] = tide_malloc(64);
    for (int k = 0; k < REMOTE_N; k++)
      if (again[i] == remote_set[k]) {
        (*reused)++;
        break;
      }
  }
  for (int i = 0; i < REMOTE_N; i++)
    tide_free(again[i]);
  pthread_barrier_wait(&remote_step);
  return NULL;
}

static void test_remote_frees_come_back(void) {
  tide_mallopt(TIDE_M_TCACHE_COUNT, 64);
  tide_mallopt(TIDE_M_PURGE_THREAD, 0);
  pthread_barrier_init(&remote_step, NULL, 2);
  int reused = 0, taken = 0;
  pthread_t owner, freer;
  pthread_create(&owner, NULL, remote_owner, &reused);
  pthread_create(&freer, NULL, remote_freer, &taken);
  pthread_join(owner, NULL);
  pthread_join(freer, NULL);
  CHECK(taken == 0, "a thread does not reuse blocks of another thread's arena that it freed (%d "
        "of its %d mallocs did)", taken, REMOTE_N);
  /* Up to a batch (32) may still be on its way back. */
  CHECK(reused >= REMOTE_N / 2, "blocks another thread freed are reused by their owner: %d of the "
        "next %d mallocs of that size", reused, REMOTE_N);
  CHECK(tide_heap_check() == 0, "heap sound after cross-thread frees");
  tide_mallopt(TIDE_M_PURGE_THREAD, 1);
}

/* A thread that frees other threads' blocks and then stops keeps at most
 * 64 KiB of them on their way back (fewer than a batch of each size). */
#define OUT_SIZES 20
#define OUT_EACH 30
static void *out_blocks[OUT_SIZES * OUT_EACH];
static pthread_barrier_t out_step;
static void *out_freer(void *arg) {
  (void)arg;
  for (int i = 0; i < OUT_SIZES * OUT_EACH; i++)
    tide_free(out_blocks[i]);
  pthread_barrier_wait(&out_step); /* freed */
  pthread_barrier_wait(&out_step); /* the main thread has looked */
  return NULL;
}

static void test_out_bound(void) {
  size_t total = 0;
  for (int k = 0; k < OUT_SIZES; k++)
    for (int i = 0; i < OUT_EACH; i++) {
      size_t n = 400 + (size_t)k * 32;
      out_blocks[k * OUT_EACH + i] = tide_malloc(n);
      total += tide_malloc_usable_size(out_blocks[k * OUT_EACH + i]) + 8;
    }
  struct tide_stats s0, s1;
  tide_stats_get(&s0);
  pthread_barrier_init(&out_step, NULL, 2);
  pthread_t t;
  pthread_create(&t, NULL, out_freer, NULL);
  pthread_barrier_wait(&out_step);
  tide_malloc_trim(0); /* what reached this arena counts as free */
  tide_stats_get(&s1);
  size_t back = s0.in_use_bytes > s1.in_use_bytes ? s0.in_use_bytes - s1.in_use_bytes : 0;
  CHECK(back + 64 * 1024 + 16 * 1024 >= total, "another thread freed %zu bytes of this thread's "
        "blocks and stopped: %zu came back, at most 64 KiB wait with it", total, back);
  pthread_barrier_wait(&out_step);
  pthread_join(t, NULL);
}

/* The library's own (the unit tests link its archive). */
extern uint16_t tcache_nbins;
extern size_t tcache_max_request;

static void test_medium_cache(void) {
  CHECK(tide_mallopt(TIDE_M_TCACHE_MAX, 65528) == 1, "mallopt(M_TCACHE_MAX, 65528) (the default)");
  /* Set explicitly past 1032 B, it must leave the small bins as they
   * are: it read past the end of the request-to-bin table (bins in use
   * 80 of 64, the fast path taking requests up to 1288 B), and a request
   * of 1033-1288 B was served from whatever bin that read gave. */
  CHECK(tcache_nbins == 64 && tcache_max_request == 1032,
        "after it the small bins are all 64 in use, up to 1032 B requests (%u, %zu)", (unsigned)tcache_nbins,
        tcache_max_request);
  size_t short_blocks = 0;
  for (size_t n = 1000; n <= 1300; n += 8) {
    void *m = tide_malloc(n);
    short_blocks += tide_malloc_usable_size(m) < n;
    tide_free(m);
  }
  CHECK(short_blocks == 0, "requests of 1000-1300 B get blocks that hold them (%zu did not)", short_blocks);
  /* (Up to 16 KiB, requests have size classes of their own in the
   * cache's bins; the medium cache holds blocks past them.) */
  void *guard = tide_malloc(100);
  void *p = tide_malloc(24000);
  void *g2 = tide_malloc(100); /* p does not border top */
  struct tide_stats s0, s1;
  tide_stats_get(&s0);
  tide_free(p);
  tide_stats_get(&s1);
  CHECK(s1.in_use_bytes == s0.in_use_bytes, "a freed 24000 B block stays with the thread (in use "
        "%zu -> %zu)", s0.in_use_bytes, s1.in_use_bytes);
  void *q = tide_malloc(21000);
  CHECK(q == p, "malloc(21000) takes it back (fits with under 1/4 to spare)");
  tide_free(q);
  void *r = tide_malloc(18000);
  CHECK(r != p, "malloc(18000) does not (24000 would waste over 1/4)");
  tide_free(r);
  /* 8 slots of 60000 B would be 480 KB: the byte bound must bite first. */
  void *big[12];
  tide_stats_get(&s0);
  for (int i = 0; i < 12; i++)
    big[i] = tide_malloc(60000);
  for (int i = 0; i < 12; i++)
    tide_free(big[i]);
  tide_stats_get(&s1);
  CHECK(s1.in_use_bytes <= s0.in_use_bytes + 256 * 1024, "12 freed 60000 B blocks: the cache "
        "keeps at most 256 KiB of them (in use %zu -> %zu)", s0.in_use_bytes, s1.in_use_bytes);
  CHECK(tide_mallopt(TIDE_M_TCACHE_MAX, 1032) == 1, "mallopt(M_TCACHE_MAX, 1032)");
  p = tide_malloc(8000);
  tide_stats_get(&s0);
  tide_free(p);
  tide_stats_get(&s1);
  CHECK(s1.in_use_bytes < s0.in_use_bytes, "after it a freed 8000 B block goes back to the arena "
        "at once (in use %zu -> %zu)", s0.in_use_bytes, s1.in_use_bytes);
  tide_free(guard);
  tide_free(g2);
  CHECK(tide_mallopt(TIDE_M_TCACHE_MAX, 65528) == 1, "and back to the default");
  CHECK(tide_heap_check() == 0, "heap sound after the medium-cache checks");
}

int main(void) {
  printf("# unit/policy\n");
  test_dynamic_threshold();
  test_trim();
  test_fastbins();
  test_realloc_in_place();
  test_calloc_fresh();
  test_many_mmapped();
  test_remote_frees_come_back();
  test_out_bound();
  test_medium_cache();
  TEST_MAIN_END("unit/policy");
}
