/* SPDX-License-Identifier: MIT */
/*
 * The run tier (src/run.h) under load, every block's contents checked:
 *
 *   own        a thread fills runs of every small and medium size and
 *              empties them itself, in several rounds; what it freed is
 *              free again (in use back where it started)
 *   cross      one thread allocates, another frees (and the other way
 *              round), the freeing thread checking each block first
 *   orphans    a thread exits with 20,000 blocks still out; another
 *              checks and frees them later; the orphaned runs are then
 *              released, and a third thread reuses the memory
 *   fork       fork while runs are half full: the child checks and frees
 *              what it inherited, allocates afresh, checks the heap
 *   calloc     calloc zeroes blocks taken again from runs
 *   purge      runs left empty and idle have their pages handed back by
 *              the background thread: RSS (/proc/self/statm) falls
 *              within 3 s, with no further call
 *   release    (debug build) the thread that gives back an orphan's last
 *              block is held just after it let go of the run's lock,
 *              while other threads try to adopt that run, empty it and
 *              release it; the run must be released once (it was released
 *              twice, corrupting the heap: found by review)
 *   sparse     a thread's runs of 64-byte blocks, one block in 200 kept
 *              live: once idle, the pages between the live blocks go back
 *              (mincore), and the blocks come out of them again intact
 *              and in order (the heap checker counts the purged ones)
 *   emptied    a thread fills runs of 40 sizes, another frees every block,
 *              both stay alive and idle: the emptied runs that are not
 *              their owner's current ones go back to the arena (the heap
 *              dump counts the runs left)
 *   dump       the heap inspector walks runs while short-lived threads
 *              carve new blocks in them (it read headers not yet written)
 *   few        a thread that takes a few blocks of a size gets few more
 *              into its cache: its refills start small (a full batch per
 *              size, cut and written, made a program that allocates one
 *              block of each of 26 sizes touch 113 pages; glibc 11)
 *   shared     two threads on one arena (M_ARENA_MAX 1): blocks of one's
 *              runs that the other frees go back to their run, not into
 *              the freer's cache (reused there, two threads' live blocks
 *              shared cache lines: larson 8-14 % slower on one arena),
 *              and come out of the owner's runs again intact
 *   reuse      blocks another thread gave back to a thread's older runs
 *              are taken again before its current run is cut further
 *              (it carved new blocks, touching new pages, while thousands
 *              of given-back ones sat resident: 2.3 x glibc's peak RSS in
 *              bench's sliding)
 *   aligned    requests aligned to 32..256 bytes of up to 700 B come from
 *              runs (memalign went through the arena path, its lock and
 *              two splits, 4-7 x slower than this: posix_memalign(64,
 *              100) took 570 ns, glibc's 156), aligned, intact, and a
 *              freed one serves the next such request; another thread
 *              frees some of them
 *
 * Two builds: tide_* on the debug library (the heap checker runs inside
 * the allocator every 64 arena operations, and runs are part of it), and
 * (-std) the drop-in.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tidemalloc.h"

#include "flavour.h"

#ifdef TIDE_TEST_STD
#define HEAP_CHECK() 0
#else
#define HEAP_CHECK() tide_heap_check()
#endif

/* Sizes spanning the small bins and the medium classes. */
static size_t size_of(unsigned i) {
  static const size_t sizes[] = {8, 24, 40, 64, 100, 200, 333, 512, 700, 1000, 1032,
                                 1100, 1500, 2000, 3000, 4000, 5000, 8000, 12000, 16000};
  return sizes[i % (sizeof sizes / sizeof sizes[0])];
}

/* A block's pattern: its first and last word and a byte in between,
 * derived from its tag. */
static void fill(unsigned char *p, size_t n, uint64_t tag) {
  memset(p, (int)(tag & 0xff), n);
  if (n >= 8)
    memcpy(p, &tag, 8);
}
static bool intact(const unsigned char *p, size_t n, uint64_t tag) {
  if (n >= 8) {
    uint64_t t;
    memcpy(&t, p, 8);
    if (t != tag)
      return false;
  }
  for (size_t i = n >= 8 ? 8 : 0; i < n; i += 61)
    if (p[i] != (unsigned char)(tag & 0xff))
      return false;
  return n <= 8 || p[n - 1] == (unsigned char)(tag & 0xff);
}

static size_t in_use(void) {
  struct tide_stats s;
  tide_stats_get(&s);
  return s.in_use_bytes;
}

/* ---- own */

static void test_own(void) {
  enum { N = 6000, ROUNDS = 4 };
  static unsigned char *b[N];
  size_t before = in_use(), bad = 0;
  for (int round = 0; round < ROUNDS; round++) {
    for (unsigned i = 0; i < N; i++) {
      b[i] = F(malloc)(size_of(i + (unsigned)round));
      fill(b[i], size_of(i + (unsigned)round), ((uint64_t)round << 32) | i);
    }
    for (unsigned i = 0; i < N; i++) {
      unsigned k = round % 2 ? N - 1 - i : i; /* forwards, then backwards */
      bad += !intact(b[k], size_of(k + (unsigned)round), ((uint64_t)round << 32) | k);
      F(free)(b[k]);
    }
  }
  size_t after = in_use();
  CHECK(bad == 0, "own: %d rounds of %d blocks of 20 sizes filled and freed by their thread, all intact (%zu bad)",
        ROUNDS, N, bad);
  CHECK(after <= before + 2 * MiB, "own: the bytes in use come back (%zu -> %zu KiB; a cache's worth may stay)",
        before / 1024, after / 1024);
  CHECK(HEAP_CHECK() == 0, "own: heap sound");
}

/* ---- cross */

enum { XN = 20000 };
static unsigned char *xb[XN];
static pthread_barrier_t xstep;
static atomic_size_t xbad;

static void *cross_other(void *arg) {
  int rounds = (int)(intptr_t)arg;
  for (int r = 0; r < rounds; r++) {
    pthread_barrier_wait(&xstep); /* main made xb */
    for (unsigned i = 0; i < XN; i++) {
      if (!intact(xb[i], size_of(i), i ^ 0x5a5a))
        atomic_fetch_add(&xbad, 1);
      F(free)(xb[i]);
    }
    for (unsigned i = 0; i < XN; i++) { /* and ours for main to free */
      xb[i] = F(malloc)(size_of(i));
      fill(xb[i], size_of(i), i ^ 0xa5a5);
    }
    pthread_barrier_wait(&xstep);
    pthread_barrier_wait(&xstep); /* main freed them */
  }
  return NULL;
}

static void test_cross(void) {
  enum { ROUNDS = 3 };
  pthread_barrier_init(&xstep, NULL, 2);
  pthread_t t;
  pthread_create(&t, NULL, cross_other, (void *)(intptr_t)ROUNDS);
  for (int r = 0; r < ROUNDS; r++) {
    for (unsigned i = 0; i < XN; i++) {
      xb[i] = F(malloc)(size_of(i));
      fill(xb[i], size_of(i), i ^ 0x5a5a);
    }
    pthread_barrier_wait(&xstep);
    pthread_barrier_wait(&xstep); /* the other thread freed ours, made its own */
    for (unsigned i = 0; i < XN; i++) {
      if (!intact(xb[i], size_of(i), i ^ 0xa5a5))
        atomic_fetch_add(&xbad, 1);
      F(free)(xb[i]);
    }
    pthread_barrier_wait(&xstep);
  }
  pthread_join(t, NULL);
  CHECK(atomic_load(&xbad) == 0, "cross: %d rounds of %d blocks freed by the other thread, all intact (%zu bad)",
        ROUNDS, XN, atomic_load(&xbad));
  CHECK(HEAP_CHECK() == 0, "cross: heap sound");
}

/* ---- orphans */

enum { ON = 20000 };
static unsigned char *ob[ON];

static void *orphan_maker(void *arg) {
  (void)arg;
  for (unsigned i = 0; i < ON; i++) {
    ob[i] = F(malloc)(size_of(i));
    fill(ob[i], size_of(i), i * 7u + 1);
  }
  return NULL; /* exits with all of them out */
}

static void *orphan_freer(void *arg) {
  size_t *bad = arg;
  for (unsigned i = 0; i < ON; i++) {
    *bad += !intact(ob[i], size_of(i), i * 7u + 1);
    F(free)(ob[i]);
  }
  return NULL;
}

static void *orphan_reuser(void *arg) {
  size_t *bad = arg;
  for (unsigned i = 0; i < ON; i++) {
    ob[i] = F(malloc)(size_of(i));
    fill(ob[i], size_of(i), i + 99);
  }
  for (unsigned i = 0; i < ON; i++) {
    *bad += !intact(ob[i], size_of(i), i + 99);
    F(free)(ob[i]);
  }
  return NULL;
}

static void test_orphans(void) {
  size_t before = in_use(), bad = 0, bad2 = 0;
  pthread_t t;
  pthread_create(&t, NULL, orphan_maker, NULL);
  pthread_join(t, NULL);
  size_t held = in_use();
  CHECK(HEAP_CHECK() == 0, "orphans: heap sound with the maker gone and its runs orphaned");
  pthread_create(&t, NULL, orphan_freer, &bad);
  pthread_join(t, NULL);
  size_t after = in_use();
  CHECK(bad == 0, "orphans: %d blocks of an exited thread, freed by another, all intact (%zu bad)", ON, bad);
  CHECK(held > before + 4 * MiB && after <= before + 2 * MiB,
        "orphans: the orphaned runs are released once their blocks are back (in use %zu -> %zu -> %zu KiB)",
        before / 1024, held / 1024, after / 1024);
  pthread_create(&t, NULL, orphan_reuser, &bad2);
  pthread_join(t, NULL);
  CHECK(bad2 == 0, "orphans: a third thread reuses the memory, all intact (%zu bad)", bad2);
  CHECK(HEAP_CHECK() == 0, "orphans: heap sound");
}

/* ---- fork */

static void test_fork(void) {
  enum { N = 8000 };
  static unsigned char *b[N];
  for (unsigned i = 0; i < N; i++) {
    b[i] = F(malloc)(size_of(i));
    fill(b[i], size_of(i), i + 3);
  }
  for (unsigned i = 0; i < N; i += 2) { /* runs half full */
    F(free)(b[i]);
    b[i] = NULL;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    int bad = 0;
    for (unsigned i = 1; i < N; i += 2) {
      bad += !intact(b[i], size_of(i), i + 3);
      F(free)(b[i]);
    }
    for (unsigned i = 0; i < N; i++) {
      b[i] = F(malloc)(size_of(i));
      fill(b[i], size_of(i), i + 5);
    }
    for (unsigned i = 0; i < N; i++) {
      bad += !intact(b[i], size_of(i), i + 5);
      F(free)(b[i]);
    }
    bad += HEAP_CHECK();
    _exit(bad ? 3 : 0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork: the child checks and frees what it inherited from half-full runs, "
        "allocates afresh, heap sound (%s)", th_status_str(st));
  size_t bad = 0;
  for (unsigned i = 1; i < N; i += 2) {
    bad += !intact(b[i], size_of(i), i + 3);
    F(free)(b[i]);
  }
  CHECK(bad == 0, "fork: the parent's blocks intact after it (%zu bad)", bad);
}

/* ---- calloc */

/* ---- shared */

enum { SN = 512 };
static unsigned char *sb[SN];
static pthread_barrier_t sstep;
static size_t sreused;

static bool one_of_sb(const void *p) {
  for (unsigned j = 0; j < SN; j++)
    if (sb[j] == p)
      return true;
  return false;
}

static void *shared_other(void *arg) {
  size_t *bad = arg;
  pthread_barrier_wait(&sstep); /* the main thread's blocks are in sb */
  for (unsigned i = 0; i < SN; i++) {
    *bad += !intact(sb[i], 64, i + 3);
    F(free)(sb[i]);
  }
  static unsigned char *mine[SN];
  for (unsigned i = 0; i < SN; i++) {
    mine[i] = F(malloc)(64);
    fill(mine[i], 64, i + 11);
    sreused += one_of_sb(mine[i]);
  }
  pthread_barrier_wait(&sstep); /* the main thread takes its blocks again */
  pthread_barrier_wait(&sstep);
  for (unsigned i = 0; i < SN; i++) {
    *bad += !intact(mine[i], 64, i + 11);
    F(free)(mine[i]);
  }
  return NULL;
}

static void test_shared(void) {
  CHECK(F(mallopt)(TIDE_M_ARENA_MAX, 1) == 1, "shared: M_ARENA_MAX 1 taken");
  pthread_barrier_init(&sstep, NULL, 2);
  size_t bad = 0;
  for (unsigned i = 0; i < SN; i++) {
    sb[i] = F(malloc)(64);
    fill(sb[i], 64, i + 3);
  }
  pthread_t t;
  pthread_create(&t, NULL, shared_other, &bad);
  pthread_barrier_wait(&sstep);
  pthread_barrier_wait(&sstep); /* it freed ours and took SN of its own */
  size_t back = 0;
  static unsigned char *again[SN];
  for (unsigned i = 0; i < SN; i++) {
    again[i] = F(malloc)(64);
    fill(again[i], 64, i + 5);
    back += one_of_sb(again[i]);
  }
  pthread_barrier_wait(&sstep);
  pthread_join(t, NULL);
  for (unsigned i = 0; i < SN; i++) {
    bad += !intact(again[i], 64, i + 5);
    F(free)(again[i]);
  }
  struct tide_stats st;
  tide_stats_get(&st);
  CHECK(st.arenas == 1, "shared: both threads on one arena (%zu)", st.arenas);
  CHECK(sreused == 0, "shared: the other thread's %d mallocs got none of the %d blocks it freed of ours (%zu)", SN, SN,
        sreused);
  CHECK(back >= SN / 2, "shared: %zu of our %d mallocs got our own blocks back from our runs", back, SN);
  CHECK(bad == 0, "shared: every block intact (%zu bad)", bad);
  CHECK(HEAP_CHECK() == 0, "shared: heap sound");
}

static void test_calloc(void) {
  enum { N = 4000 };
  static unsigned char *b[N];
  size_t dirty = 0;
  for (int round = 0; round < 3; round++) {
    for (unsigned i = 0; i < N; i++) {
      b[i] = F(malloc)(size_of(i));
      memset(b[i], 0xAA, size_of(i));
    }
    for (unsigned i = 0; i < N; i++)
      F(free)(b[i]);
    for (unsigned i = 0; i < N; i++) {
      b[i] = F(calloc)(1, size_of(i));
      for (size_t k = 0; k < size_of(i); k++)
        dirty += b[i][k] != 0;
    }
    for (unsigned i = 0; i < N; i++)
      F(free)(b[i]);
  }
  CHECK(dirty == 0, "calloc: blocks taken again from runs read zero (%zu bytes not)", dirty);
}

/* ---- purge of idle runs */

static pthread_barrier_t pstep;
static unsigned char *last_block; /* in the run the filler cuts from at the end */
static size_t filled_rss;         /* RSS with every block written */

static void *purge_filler(void *arg) {
  (void)arg;
  /* Many runs of every size, written, then every block freed: the runs
   * it is cutting stay with it, empty, while it waits. */
  enum { N = 40000 };
  static unsigned char *b[N];
  for (unsigned i = 0; i < N; i++) {
    b[i] = F(malloc)(size_of(i));
    memset(b[i], 0x77, size_of(i));
  }
  /* A block of 4000 B (64 KiB runs of 4 KiB blocks) from the middle:
   * its run is cut whole, and the cache keeps none of its blocks once
   * all are freed (it keeps the first and the last ones freed). */
  last_block = b[N / 2 + 15];
  filled_rss = th_rss_bytes();
  for (unsigned i = 0; i < N; i++)
    F(free)(b[i]);
  pthread_barrier_wait(&pstep); /* freed */
  pthread_barrier_wait(&pstep); /* main has looked */
  return NULL;
}

static void test_purge(void) {
  pthread_barrier_init(&pstep, NULL, 2);
  size_t before = th_rss_bytes();
  pthread_t t;
  pthread_create(&t, NULL, purge_filler, NULL);
  pthread_barrier_wait(&pstep);
  size_t peak = filled_rss;
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t run = (uintptr_t)last_block & ~(uintptr_t)(64 * 1024 - 1); /* its 64 KiB run */
  unsigned char vec[16];
  int first = -1;
  if (mincore((void *)(run + (uintptr_t)page), 15 * (size_t)page, vec) == 0) {
    first = 0;
    for (int i = 0; i < 15; i++)
      first += vec[i] & 1;
  }
  struct timespec ts = {0, 50 * 1000000L};
  double waited = 0;
  while (th_rss_bytes() > before + 4 * MiB && waited < 3.0) {
    nanosleep(&ts, NULL);
    waited += 0.05;
  }
  size_t after = th_rss_bytes();
  /* That run is free, and not the one the filler cuts now: it goes back
   * to the arena as one chunk, whose pages the background thread hands
   * back once the decay has passed. */
  int resident = -1;
  for (double w = 0; w < 3.0; w += 0.05) {
    if (mincore((void *)(run + (uintptr_t)page), 15 * (size_t)page, vec) != 0)
      break;
    resident = 0;
    for (int i = 0; i < 15; i++)
      resident += vec[i] & 1;
    if (resident <= first / 2)
      break;
    nanosleep(&ts, NULL);
  }
  pthread_barrier_wait(&pstep);
  pthread_join(t, NULL);
  const char *bg = getenv("TIDEMALLOC_PURGE_THREAD");
  if (bg && strcmp(bg, "0") == 0)
    NOTE("purge: without the background thread an idle process keeps an emptied run's pages (%d of 15 "
         "resident)", resident);
  else
    CHECK(first >= 12 && resident >= 0 && resident <= first / 2,
          "purge: an idle thread's emptied run: its pages go back (%d of 15 resident, then %d)", first,
          resident);
  CHECK(peak > before + 16 * MiB, "purge: filling runs of every size raised RSS (%zu -> %zu MiB)", before / MiB,
        peak / MiB);
  /* Without the background thread nothing purges for an idle process:
   * the arena keeps its dirty cap (4 MiB) and the idle thread its cache
   * (up to 2.3 MiB). */
  bool no_thread = bg && strcmp(bg, "0") == 0;
  size_t slack = no_thread ? 7 * MiB : 4 * MiB;
  CHECK(after <= before + slack, "purge: all freed, the thread idle: RSS falls back within 3 s with no further "
        "call (%zu MiB after %.2f s; %zu MiB before; at most %zu more)", after / MiB, waited, before / MiB,
        slack / MiB);
}

/* ---- release */

/* The debug library's hook (src/internal.h); absent from the drop-in. */
extern void (*tide_test_hook)(const char *where) __attribute__((weak));

#define REL_N 15 /* a 64 KiB run of 4 KiB chunks holds 15 */
#define REL_SIZE 4088
static void *rel_blk[REL_N], *rel_held;
static atomic_int rel_parked, rel_go;
static __thread int rel_is_slow;

static void rel_hook(const char *where) {
  if (!rel_is_slow || strcmp(where, "run_give_back: empty, unlocked") != 0 || atomic_load(&rel_parked))
    return;
  atomic_store(&rel_parked, 1);
  for (int i = 0; i < 5000 && !atomic_load(&rel_go); i++) /* 5 s at most */
    nanosleep(&(struct timespec){0, 1000000}, NULL);
}
static void *rel_owner(void *x) { /* cuts a whole run, exits with every block out: an orphan */
  (void)x;
  for (int i = 0; i < REL_N; i++)
    rel_blk[i] = F(malloc)(REL_SIZE);
  return NULL;
}
static void *rel_slow(void *x) { /* gives them all back at its exit, and is held there */
  (void)x;
  rel_is_slow = 1;
  for (int i = 0; i < REL_N; i++)
    F(free)(rel_blk[i]);
  return NULL;
}
static void *rel_adopter(void *x) { /* may adopt the orphan; exits holding a block of it */
  (void)x;
  rel_held = F(malloc)(REL_SIZE);
  return NULL;
}
static void *rel_last(void *x) { /* empties whatever run that block is in */
  (void)x;
  F(free)(rel_held);
  return NULL;
}

static void test_release_race(void) {
  F(mallopt)(TIDE_M_ARENA_MAX, 1); /* every thread in the main arena */
  tide_test_hook = rel_hook;
  pthread_t t;
  pthread_create(&t, NULL, rel_owner, NULL);
  pthread_join(t, NULL);
  pthread_t slow;
  pthread_create(&slow, NULL, rel_slow, NULL);
  for (int i = 0; i < 5000 && !atomic_load(&rel_parked); i++)
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  CHECK(atomic_load(&rel_parked), "the thread giving back the orphan's last block is held after unlocking it");
  pthread_create(&t, NULL, rel_adopter, NULL);
  pthread_join(t, NULL);
  pthread_create(&t, NULL, rel_last, NULL);
  pthread_join(t, NULL);
  atomic_store(&rel_go, 1);
  pthread_join(slow, NULL);
  tide_test_hook = NULL;
  /* A run released twice leaves its chunk in the bins twice: the next
   * allocations of its size, and the checker, find it. */
  void *p[64];
  for (int i = 0; i < 64; i++) {
    p[i] = F(malloc)(70000);
    memset(p[i], 0, 70000);
  }
  for (int i = 0; i < 64; i++)
    F(free)(p[i]);
  CHECK(HEAP_CHECK() == 0, "the run was released once: the heap is sound");
}

/* ---- sparse */

#define SP_N 30000
#define SP_KEEP 200
static unsigned char *sp_blk[SP_N];
static pthread_barrier_t sp_step;

static void *sparse_owner(void *x) {
  (void)x;
  for (int i = 0; i < SP_N; i++) {
    sp_blk[i] = F(malloc)(64);
    fill(sp_blk[i], 64, (uint64_t)i);
  }
  for (int i = 0; i < SP_N; i++)
    if (i % SP_KEEP != 0) {
      F(free)(sp_blk[i]);
      sp_blk[i] = NULL;
    }
  pthread_barrier_wait(&sp_step); /* idle: the main thread watches */
  pthread_barrier_wait(&sp_step);
  /* Again: blocks come from the purged pages, written afresh. */
  for (int i = 0; i < SP_N; i++)
    if (!sp_blk[i]) {
      sp_blk[i] = F(malloc)(64);
      fill(sp_blk[i], 64, (uint64_t)i + 7);
    }
  return NULL;
}

static size_t sparse_resident(uintptr_t lo, uintptr_t hi, size_t *pages) {
  static unsigned char vec[8192];
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  lo &= ~(uintptr_t)(page - 1);
  size_t n = (hi - lo + page - 1) / page;
  if (n > sizeof vec || mincore((void *)lo, n * page, vec) != 0)
    return (size_t)-1;
  size_t res = 0;
  for (size_t i = 0; i < n; i++)
    res += vec[i] & 1;
  *pages = n;
  return res;
}

static void test_sparse(void) {
  pthread_barrier_init(&sp_step, NULL, 2);
  pthread_t t;
  pthread_create(&t, NULL, sparse_owner, NULL);
  pthread_barrier_wait(&sp_step);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < SP_N; i += SP_KEEP) {
    lo = (uintptr_t)sp_blk[i] < lo ? (uintptr_t)sp_blk[i] : lo;
    hi = (uintptr_t)sp_blk[i] + 64 > hi ? (uintptr_t)sp_blk[i] + 64 : hi;
  }
  size_t pages = 0, first = sparse_resident(lo, hi, &pages), now = first;
  for (double w = 0; w < 3.0 && now != (size_t)-1 && now > pages / 2; w += 0.05) {
    nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    now = sparse_resident(lo, hi, &pages);
  }
  const char *bg = getenv("TIDEMALLOC_PURGE_THREAD");
  if (bg && strcmp(bg, "0") == 0)
    NOTE("sparse: without the background thread idle runs keep their pages (%zu of %zu resident)", now, pages);
  else
    CHECK(first != (size_t)-1 && pages > 100 && now <= pages / 2,
          "sparse: one 64-byte block in %d live, the thread idle: the pages between go back (%zu of %zu resident, "
          "then %zu)", SP_KEEP, first, pages, now);
  pthread_barrier_wait(&sp_step);
  pthread_join(t, NULL);
  int bad = 0;
  for (int i = 0; i < SP_N; i++)
    bad += !intact(sp_blk[i], 64, i % SP_KEEP == 0 ? (uint64_t)i : (uint64_t)i + 7);
  CHECK(bad == 0, "sparse: the kept blocks and the %d taken again from purged pages are intact (%d bad)",
        SP_N - SP_N / SP_KEEP, bad);
  CHECK(HEAP_CHECK() == 0, "sparse: heap sound, purged blocks counted");
  for (int i = 0; i < SP_N; i++)
    F(free)(sp_blk[i]);
  CHECK(HEAP_CHECK() == 0, "sparse: heap sound after all are freed");
}

/* ---- emptied */

#define EM_SIZES 40
#define EM_PER 1500
static void *em_blk[EM_SIZES * EM_PER];
static pthread_barrier_t em_step;

static void *emptied_owner(void *x) {
  (void)x;
  for (int i = 0; i < EM_SIZES * EM_PER; i++)
    em_blk[i] = F(malloc)(16 + (size_t)(i % EM_SIZES) * 48);
  pthread_barrier_wait(&em_step); /* the main thread frees them all */
  pthread_barrier_wait(&em_step); /* idle meanwhile */
  return NULL;
}

/* The runs the heap dump counts, over all arenas. */
/* What dump(fd) writes, read back into text (NUL-terminated); false if
 * no temporary file could be made. */
static bool read_dump(void (*dump)(int), char *text, size_t cap) {
  char path[] = "/tmp/tide-runs-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return false;
  unlink(path);
  dump(fd);
  lseek(fd, 0, SEEK_SET);
  size_t len = 0;
  ssize_t n;
  while (len < cap - 1 && (n = read(fd, text + len, cap - 1 - len)) > 0)
    len += (size_t)n;
  text[len] = 0;
  close(fd);
  return true;
}

static long dump_runs(void) {
  static char text[1 << 20];
  if (!read_dump(tide_heap_dump, text, sizeof text))
    return -1;
  long runs = 0;
  for (const char *at = text; (at = strstr(at, "\n  runs: ")) != NULL; at++)
    runs += atol(at + strlen("\n  runs: "));
  return runs;
}

static void test_emptied(void) {
  pthread_barrier_init(&em_step, NULL, 2);
  pthread_t t;
  pthread_create(&t, NULL, emptied_owner, NULL);
  pthread_barrier_wait(&em_step);
  long full = dump_runs();
  for (int i = 0; i < EM_SIZES * EM_PER; i++)
    F(free)(em_blk[i]);
  long left = full;
  for (double w = 0; w < 3.0 && left > EM_SIZES + 10; w += 0.05) {
    nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    left = dump_runs();
  }
  const char *bg = getenv("TIDEMALLOC_PURGE_THREAD");
  if (bg && strcmp(bg, "0") == 0)
    NOTE("emptied: without the background thread an idle thread keeps its emptied runs (%ld of %ld)", left, full);
  else
    CHECK(full > 2 * EM_SIZES && left <= EM_SIZES + 10,
          "emptied: %ld runs of an idle thread, all blocks freed by another: %ld left within 3 s (its current ones)",
          full, left);
  pthread_barrier_wait(&em_step);
  pthread_join(t, NULL);
  CHECK(HEAP_CHECK() == 0, "emptied: heap sound");
}

/* An idle thread's runs, emptied by another thread that then exits:
 * within the decay their pages go back, the current run of each size
 * (which the thread keeps) included -- all but the pages that the
 * blocks still in the idle thread's cache reach into (its last refill's
 * extra blocks: a cache keeps its blocks until its thread exits). */
#define IC_SIZES 6
static const size_t ic_size[IC_SIZES] = {200, 360, 600, 880, 1800, 3000}; /* classes 208..3088 */
#define IC_PER 400
static void *ic_blk[IC_SIZES * IC_PER];
static pthread_barrier_t ic_step;

static void *ic_owner(void *x) {
  (void)x;
  for (int i = 0; i < IC_SIZES * IC_PER; i++) {
    ic_blk[i] = F(malloc)(ic_size[i % IC_SIZES]);
    memset(ic_blk[i], 0x5a, ic_size[i % IC_SIZES]);
  }
  pthread_barrier_wait(&ic_step); /* another thread frees them all */
  pthread_barrier_wait(&ic_step); /* idle meanwhile */
  return NULL;
}

static void *ic_freer(void *x) {
  (void)x;
  for (int i = 0; i < IC_SIZES * IC_PER; i++)
    F(free)(ic_blk[i]);
  return NULL; /* its cache goes back at exit */
}

/* The runs of the test's block sizes, from one JSON dump taken before
 * any purge (a dump reads every carved block's header, which would map
 * a purged page again): their ranges, and the pages that may stay --
 * each run's first page (its header; a released run's free chunk keeps
 * its header there too) and every page that a block not free reaches
 * into, with the header after it. */
#define IC_MAX_RUNS 256
#define RUN_SIZE_T ((size_t)64 * 1024) /* src/run.h RUN_SIZE */
static uintptr_t ic_lo[IC_MAX_RUNS];
static uint64_t ic_keep[IC_MAX_RUNS]; /* a bit per page of the run */
static long ic_nruns;

static bool ic_ours(size_t bs) {
  for (int k = 0; k < IC_SIZES; k++)
    if (bs >= ic_size[k] + 8 && bs <= ic_size[k] + 8 + ic_size[k] / 4 + 16)
      return true;
  return false;
}

static void ic_layout(void) {
  static char text[8 << 20];
  ic_nruns = 0;
  if (!read_dump(tide_heap_dump_json, text, sizeof text))
    return;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  long cur = -1;
  for (const char *e = text; (e = strstr(e, "{\"addr\":\"0x")) != NULL; e++) {
    const char *end = strchr(e, '}');
    const char *st = strstr(e, "\"state\":\""), *sz = strstr(e, "\"size\":"), *cnt = strstr(e, "\"count\":");
    if (!end || !st || !sz || !cnt || st > end)
      continue;
    st += strlen("\"state\":\"");
    uintptr_t addr = (uintptr_t)strtoull(e + strlen("{\"addr\":\""), NULL, 16);
    if (strncmp(st, "run\"", 4) == 0) {
      const char *b = strstr(e, "\"block_size\":");
      cur = -1;
      if (b && b < end && ic_ours((size_t)atol(b + strlen("\"block_size\":"))) && ic_nruns < IC_MAX_RUNS) {
        cur = ic_nruns++;
        ic_lo[cur] = addr;
        ic_keep[cur] = 1; /* the header's page */
      }
      continue;
    }
    const char *in = strstr(e, "\"in_run\":true");
    if (cur < 0 || !in || in > end) {
      cur = in && in < end ? cur : -1;
      continue;
    }
    if (strncmp(st, "run-free\"", 9) == 0 || strncmp(st, "run-uncarved\"", 13) == 0)
      continue;
    uintptr_t hi = addr + (uintptr_t)atol(sz + strlen("\"size\":")) * (uintptr_t)atol(cnt + strlen("\"count\":")) + 16;
    for (uintptr_t p = addr & ~(page - 1); p < hi; p += page)
      if (p >= ic_lo[cur] && p < ic_lo[cur] + RUN_SIZE_T)
        ic_keep[cur] |= (uint64_t)1 << ((p - ic_lo[cur]) / page);
  }
}

/* mincore only: resident pages of those runs outside what may stay. */
static long ic_extra(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  long extra = 0;
  for (long r = 0; r < ic_nruns; r++) {
    unsigned char vec[64];
    if (RUN_SIZE_T / page > 64 || mincore((void *)ic_lo[r], RUN_SIZE_T, vec) != 0)
      return -1;
    for (size_t k = 0; k < RUN_SIZE_T / page; k++)
      extra += (vec[k] & 1) && !(ic_keep[r] >> k & 1);
  }
  return extra;
}

static void test_idle_current(void) {
  pthread_barrier_init(&ic_step, NULL, 2);
  pthread_t t, f;
  pthread_create(&t, NULL, ic_owner, NULL);
  pthread_barrier_wait(&ic_step);
  pthread_create(&f, NULL, ic_freer, NULL);
  pthread_join(f, NULL);
  ic_layout();
  long first = ic_extra(), left = first;
  double waited = 0;
  for (; waited < 3.0 && left != 0; waited += 0.05) {
    nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    left = ic_extra();
  }
  const char *bg = getenv("TIDEMALLOC_PURGE_THREAD");
  if (bg && strcmp(bg, "0") == 0)
    NOTE("idle current: without the background thread an idle thread's emptied runs stay resident (%ld pages)",
         left);
  else
    CHECK(ic_nruns >= IC_SIZES && first > 100 && left == 0,
          "idle current: %ld runs of an idle thread, emptied by another: %ld resident pages that no block in use or "
          "cached reaches into, %ld after %.2f s", ic_nruns, first, left, waited);
  pthread_barrier_wait(&ic_step);
  pthread_join(t, NULL);
  CHECK(HEAP_CHECK() == 0, "idle current: heap sound");
}

/* ---- dump */

static atomic_int dump_stop;
static void *dump_worker(void *x) {
  size_t n = (size_t)x;
  void *p[2000];
  for (int i = 0; i < 2000; i++) {
    p[i] = F(malloc)(n);
    memset(p[i], 0xff, n);
  }
  for (int i = 0; i < 2000; i++)
    F(free)(p[i]);
  return NULL;
}
static void *dump_spawner(void *x) {
  (void)x;
  static const size_t sizes[] = {24, 40, 56, 72, 100, 200, 300, 500, 700, 1000};
  for (unsigned k = 0; !atomic_load(&dump_stop); k++) {
    pthread_t t;
    pthread_create(&t, NULL, dump_worker, (void *)sizes[k % 10]);
    pthread_join(t, NULL);
  }
  return NULL;
}
static void test_dump_while_carving(void) {
  FILE *null = fopen("/dev/null", "w");
  pthread_t t;
  pthread_create(&t, NULL, dump_spawner, NULL);
  int dumps = 0;
  for (time_t end = time(NULL) + 3; time(NULL) < end; dumps++)
    tide_heap_dump(fileno(null));
  atomic_store(&dump_stop, 1);
  pthread_join(t, NULL);
  fclose(null);
  CHECK(dumps > 0, "%d heap dumps while threads carved blocks in their runs", dumps);
}

/* ---- reuse */

/* Over the JSON heap dump: the runs of blocks of bs bytes, and the bytes
 * not cut from them yet. */
static void run_figures(size_t bs, long *runs, long *uncarved) {
  static char text[8 << 20];
  *runs = *uncarved = -1;
  if (!read_dump(tide_heap_dump_json, text, sizeof text))
    return;
  *runs = *uncarved = 0;
  bool in_ours = false;
  for (const char *e = text; (e = strstr(e, "{\"addr\":")) != NULL; e++) {
    const char *end = strchr(e, '}');
    const char *size = strstr(e, "\"size\":"), *state = strstr(e, "\"state\":\"");
    if (!end || !size || !state || state > end)
      continue;
    state += strlen("\"state\":\"");
    if (strncmp(state, "run\"", 4) == 0) {
      const char *b = strstr(e, "\"block_size\":");
      in_ours = b && b < end && (size_t)atol(b + strlen("\"block_size\":")) == bs;
      *runs += in_ours;
    } else if (in_ours && strncmp(state, "run-uncarved\"", 13) == 0) {
      *uncarved += atol(size + strlen("\"size\":"));
      in_ours = false;
    }
  }
}

/* Sizes nothing else in this process uses (4 small, 2 medium classes). */
static const size_t few_sizes[] = {600, 744, 872, 952, 6000, 9000};
#define FEW_SIZES (sizeof few_sizes / sizeof few_sizes[0])
static size_t few_cached;
static int few_bad;

static void *few_thread(void *x) {
  (void)x;
  struct tide_stats before, after;
  void *blk[FEW_SIZES][3];
  tide_stats_get(&before);
  for (size_t i = 0; i < FEW_SIZES; i++)
    for (int k = 0; k < 3; k++) {
      blk[i][k] = F(malloc)(few_sizes[i]);
      fill(blk[i][k], few_sizes[i], i * 3 + (size_t)k);
    }
  tide_stats_get(&after);
  few_cached = after.cached_bytes - before.cached_bytes;
  static void *many[3000];
  for (int k = 0; k < 3000; k++) {
    many[k] = F(malloc)(few_sizes[0]);
    fill(many[k], few_sizes[0], (uint64_t)k + 100);
  }
  for (int k = 0; k < 3000; k++) {
    few_bad += !intact(many[k], few_sizes[0], (uint64_t)k + 100);
    F(free)(many[k]);
  }
  for (size_t i = 0; i < FEW_SIZES; i++)
    for (int k = 0; k < 3; k++) {
      few_bad += !intact(blk[i][k], few_sizes[i], i * 3 + (size_t)k);
      F(free)(blk[i][k]);
    }
  return NULL;
}

static void test_few(void) {
  pthread_t t;
  pthread_create(&t, NULL, few_thread, NULL);
  pthread_join(t, NULL);
  /* The refills' extra blocks: at most a few KiB a size (a full batch
   * was 32 blocks: 19 KiB for 600 bytes, 96 KiB for 6000). */
  CHECK(few_cached <= FEW_SIZES * 4096,
        "few: a new thread's 3 blocks of each of %zu sizes: %zu bytes more cached (at most %zu)", FEW_SIZES,
        few_cached, FEW_SIZES * (size_t)4096);
  CHECK(few_bad == 0, "few: all blocks intact, 3000 more of one size too (%d bad)", few_bad);
  CHECK(HEAP_CHECK() == 0, "few: heap sound");
}

/* ---- classes */

/* Over the JSON heap dump: how many runs cut blocks of lo..hi bytes, and
 * of how many sizes. */
static void run_census(size_t lo, size_t hi, long *runs, long *sizes) {
  static char text[8 << 20];
  size_t seen[64];
  *runs = *sizes = -1;
  if (!read_dump(tide_heap_dump_json, text, sizeof text))
    return;
  *runs = *sizes = 0;
  for (const char *e = text; (e = strstr(e, "\"block_size\":")) != NULL; e++) {
    size_t bs = (size_t)atol(e + strlen("\"block_size\":"));
    if (bs < lo || bs > hi)
      continue;
    (*runs)++;
    long k = 0;
    while (k < *sizes && seen[k] != bs)
      k++;
    if (k == *sizes && k < 64)
      seen[(*sizes)++] = bs;
  }
}

/* Requests of 48 sizes 16 B apart, 265..1017 B, 20 blocks each: blocks
 * of few sizes in few runs (each size a thread uses keeps a run partly
 * cut; with a size per 16 B, these took 48 runs of 48 sizes). */
#define CL_SIZES 48
#define CL_PER 20
static long cl_runs, cl_sizes;
static int cl_bad;

static void *classes_thread(void *x) {
  (void)x;
  static void *blk[CL_SIZES][CL_PER];
  long runs0, sizes0;
  run_census(257, 1296, &runs0, &sizes0);
  for (int i = 0; i < CL_PER; i++)
    for (int k = 0; k < CL_SIZES; k++) {
      size_t n = 265 + 16 * (size_t)k;
      blk[k][i] = F(malloc)(n);
      fill(blk[k][i], n, (uint64_t)(k * CL_PER + i));
    }
  run_census(257, 1296, &cl_runs, &cl_sizes);
  cl_runs -= runs0;
  for (int i = 0; i < CL_PER; i++)
    for (int k = 0; k < CL_SIZES; k++) {
      size_t n = 265 + 16 * (size_t)k;
      cl_bad += !intact(blk[k][i], n, (uint64_t)(k * CL_PER + i));
      F(free)(blk[k][i]);
    }
  return NULL;
}

static void test_classes(void) {
  pthread_t t;
  pthread_create(&t, NULL, classes_thread, NULL);
  pthread_join(t, NULL);
  CHECK(cl_sizes > 0 && cl_sizes <= 9 && cl_runs > 0 && cl_runs <= 24,
        "classes: %d blocks of each of %d sizes 265..1017 B come from runs of %ld block sizes (at most 9), "
        "%ld new runs (at most 24)", CL_PER, CL_SIZES, cl_sizes, cl_runs);
  CHECK(cl_bad == 0, "classes: all blocks intact (%d bad)", cl_bad);
  CHECK(HEAP_CHECK() == 0, "classes: heap sound");
}

#define RU_SIZE 330 /* a size nothing else in this process uses */
static void *ru_blk[6000];
static size_t ru_count;
static pthread_barrier_t ru_step;
static long ru_before, ru_after, ru_runs;

static void *reuse_owner(void *x) {
  (void)x;
  size_t bs = 0;
  long runs, uncarved;
  /* Blocks until the current run is cut less than halfway: its uncut
   * part is what the old order would have cut next. */
  for (;;) {
    for (int k = 0; k < 50; k++)
      ru_blk[ru_count++] = F(malloc)(RU_SIZE);
    if (!bs)
      bs = F(malloc_usable_size)(ru_blk[0]) + 8;
    run_figures(bs, &runs, &uncarved);
    if ((ru_count >= 2500 && uncarved * 2 > 65536) || ru_count + 50 > 4000)
      break;
  }
  pthread_barrier_wait(&ru_step); /* main frees the first 2000 */
  pthread_barrier_wait(&ru_step);
  run_figures(bs, &ru_runs, &ru_before);
  for (int k = 0; k < 1500; k++)
    ru_blk[ru_count + (size_t)k] = F(malloc)(RU_SIZE);
  run_figures(bs, &runs, &ru_after);
  for (size_t i = 2000; i < ru_count + 1500; i++)
    F(free)(ru_blk[i]);
  return NULL;
}

static void test_reuse(void) {
  pthread_barrier_init(&ru_step, NULL, 2);
  pthread_t t;
  pthread_create(&t, NULL, reuse_owner, NULL);
  pthread_barrier_wait(&ru_step);
  for (int i = 0; i < 2000; i++)
    F(free)(ru_blk[i]);
  pthread_barrier_wait(&ru_step);
  pthread_join(t, NULL);
  /* 2000 blocks came back (all but a last batch of at most 31 waiting in
   * this thread's out list); 1500 taken again: from them, not from the
   * uncut part, but for at most a refill's worth (65 blocks). */
  size_t bs = 352;
  CHECK(ru_before > 0 && ru_before - ru_after <= 65 * (long)bs,
        "reuse: %zu blocks out, 2000 given back by another thread, 1500 taken: %ld of %ld uncut bytes cut (%ld runs)",
        ru_count, ru_before - ru_after, ru_before, ru_runs);
  CHECK(HEAP_CHECK() == 0, "reuse: heap sound");
}

#define AL_N 3000
static void *al_blk[AL_N];
static size_t al_len[AL_N];

static void *al_free_odd(void *x) {
  (void)x;
  for (int i = 1; i < AL_N; i += 2)
    if (intact(al_blk[i], al_len[i], (uint64_t)i * 0x9e3779b97f4a7c15ull))
      F(free)(al_blk[i]);
  return NULL;
}

static void test_aligned(void) {
  static const size_t aligns[] = {32, 64, 128, 256};
  int misaligned = 0, not_run = 0, bad = 0, failed = 0;
  for (int i = 0; i < AL_N; i++) {
    size_t align = aligns[i % 4], n = 1 + (size_t)(i * 37) % 700; /* (aligned_alloc's multiple too) */
    void *p = NULL;
    if (i % 3 == 0)
      p = F(aligned_alloc)(align, (n + align - 1) / align * align), n = (n + align - 1) / align * align;
    else if (F(posix_memalign)(&p, align, n) != 0)
      p = NULL;
    al_blk[i] = p;
    al_len[i] = n;
    if (!p) {
      failed++;
      continue;
    }
    misaligned += ((uintptr_t)p & (align - 1)) != 0;
    not_run += (((size_t *)p)[-1] & 8) == 0; /* the R flag: a run's block */
    fill(p, n, (uint64_t)i * 0x9e3779b97f4a7c15ull);
  }
  CHECK(failed == 0 && misaligned == 0, "aligned: %d requests aligned to 32..256, up to 700 B: all served (%d "
        "not), aligned (%d not)", AL_N, failed, misaligned);
  CHECK(not_run == 0, "aligned: all of them blocks of runs (%d came from the arena path)", not_run);
  pthread_t t;
  pthread_create(&t, NULL, al_free_odd, NULL);
  pthread_join(t, NULL);
  for (int i = 0; i < AL_N; i += 2) {
    bad += !intact(al_blk[i], al_len[i], (uint64_t)i * 0x9e3779b97f4a7c15ull);
    F(free)(al_blk[i]);
  }
  CHECK(bad == 0, "aligned: another thread freed the odd ones; the even ones intact (%d bad)", bad);
  void *p = NULL, *q = NULL;
  int r1 = F(posix_memalign)(&p, 64, 200);
  F(free)(p);
  int r2 = F(posix_memalign)(&q, 64, 200);
  CHECK(r1 == 0 && r2 == 0 && p == q && ((uintptr_t)q & 63) == 0,
        "aligned: a freed 64-aligned block of 200 B serves the next such request (%p, %p)", p, q);
  F(free)(q);
  /* An arena chunk of a size only aligned requests' bins take (192: a
   * realloc shrank it) goes back to the arena, where it coalesces, not
   * into such a bin. */
  char *a = F(malloc)(20000), *b = F(realloc)(a, 184);
  F(free)(b);
  char *c = F(malloc)(20000);
  CHECK(a && b == a && c == a,
        "aligned: a 20000-byte block shrunk to 184 and freed coalesces again (%p, %p, %p)", (void *)a, (void *)b,
        (void *)c);
  F(free)(c);
  CHECK(HEAP_CHECK() == 0, "aligned: heap sound");
}

int main(void) {
  printf("# stress/runs (%s)\n", FLAVOUR);
  /* First, in a child of a process that has done nothing yet: its RSS
   * figures are its own (what earlier tests leave -- dirty memory, a
   * dirty cap they raised -- made them pass or fail by chance). */
  th_isolated("purge of idle runs", test_purge, 60);
  th_isolated("small aligned requests come from runs", test_aligned, 60);
  th_isolated("a few blocks of a size bring few more", test_few, 60);
  th_isolated("sizes 16 B apart share a few classes' runs", test_classes, 60);
  th_isolated("blocks given back are reused before new ones are cut", test_reuse, 60);
  th_isolated("two threads on one arena cache only their own runs' blocks", test_shared, 60);
  th_isolated("heap dumps while runs are carved", test_dump_while_carving, 60);
  th_isolated("sparse runs", test_sparse, 60);
  th_isolated("emptied runs of an idle thread", test_emptied, 60);
  th_isolated("an idle thread's current runs, emptied, give their pages back", test_idle_current, 60);
  if (&tide_test_hook != NULL)
    th_isolated("release of an orphan while others adopt it", test_release_race, 60);
  test_own();
  test_cross();
  test_orphans();
  test_fork();
  test_calloc();
  CHECK(HEAP_CHECK() == 0, "heap sound at the end");
  TEST_MAIN_END("stress/runs-" FLAVOUR);
}
