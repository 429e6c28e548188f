/* SPDX-License-Identifier: MIT */
/*
 * The chunk format and the heap checker, seen from outside through the
 * debug library.  DESIGN.md fixes the layout these checks read:
 *
 *   chunk = [prev_size][size | R A M P][user data ...]
 *
 * (R: a block of a run, the thread-owned tier under the thread cache;
 * small requests get those once the thread has a cache.)
 *
 * with the user pointer right after the size word, 16-byte alignment, a
 * 32-byte minimum chunk, and request -> chunk size = max(32, n + 8 rounded
 * up to 16).  Then the heap checker is shown to fail: each kind of damage
 * is done in a forked child, which must die in tide_heap_check() with
 * "tidemalloc: heap_check(): ".
 */
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "tidemalloc.h"

#define FLAG_P ((size_t)1)
#define FLAG_M ((size_t)2)
#define FLAG_A ((size_t)4)
#define FLAG_R ((size_t)8)
#define FLAGS (FLAG_P | FLAG_M | FLAG_A | FLAG_R)

static size_t *hdr(void *mem) { return (size_t *)mem - 2; } /* [0]=prev_size [1]=size */
static size_t csize(void *mem) { return hdr(mem)[1] & ~FLAGS; }
static size_t cflags(void *mem) { return hdr(mem)[1] & FLAGS; }

static size_t request2size(size_t n) {
  size_t s = (n + 8 + 15) & ~(size_t)15;
  return s < 32 ? 32 : s;
}

/* The thread cache's medium classes: four a doubling from 1280 B. */
static size_t medium_class(size_t nb) {
  /* usable 1280 .. 16 KiB, four a doubling: chunk = usable + 16 */
  static const size_t classes[] = {1296, 1552, 1808, 2064, 2576, 3088, 3600, 4112,
                                   5136, 6160, 7184, 8208, 10256, 12304, 14352, 16400};
  for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
    if (classes[i] >= nb)
      return classes[i];
  return nb;
}

/* The small classes: 32..144 by 16, then four a doubling of the usable
 * size (256, 512 and 1024 B requests fit one exactly). */
static size_t small_class(size_t nb) {
  if (nb <= 144)
    return nb;
  size_t step = nb <= 272 ? 32 : nb <= 528 ? 64 : 128;
  return ((nb - 16 + step - 1) & ~(step - 1)) + 16;
}

/* In a thread of its own: its medium cache is empty (a cached chunk of
 * another size may serve a request with up to a quarter to spare). */
static size_t pow_bad, pow_first;
static void *pow_thread(void *x) {
  (void)x;
  for (size_t n = 128; n <= 16384; n *= 2) {
    void *q = tide_malloc(n);
    size_t u = q ? tide_malloc_usable_size(q) : 0;
    if (u < n + 8 || u >= n + 40) {
      if (!pow_bad++)
        pow_first = n;
    }
    tide_free(q);
  }
  return NULL;
}

static void test_sizes(void) {
  size_t wrong = 0, flagbad = 0, usable_bad = 0, run_small = 0, run_big = 0;
  size_t first_wrong = SIZE_MAX;
  void *keep[64];
  for (size_t n = 0; n <= 3000; n++) {
    void *p = tide_malloc(n);
    if (!p) {
      wrong++;
      continue;
    }
    /* The chunk of the size class holding the request: exact up to
     * 136 B, then four a doubling. */
    size_t want = request2size(n);
    want = want > 1040 ? medium_class(want) : small_class(want);
    if (csize(p) != want) {
      if (first_wrong == SIZE_MAX)
        first_wrong = n;
      wrong++;
    }
    if (cflags(p) & (FLAG_M | FLAG_A))
      flagbad++;
    if ((cflags(p) & FLAG_R) && n <= 4104) /* blocks up to 4 KiB usable */
      run_small++;
    else if (cflags(p) & FLAG_R)
      run_big++;
    if (tide_malloc_usable_size(p) != csize(p) - 8)
      usable_bad++;
    if (n % 50 == 0 && n / 50 < 64)
      keep[n / 50] = p; /* keep some, so the heap is not one chunk reused */
    else
      tide_free(p);
  }
  CHECK(wrong == 0, "chunk size == max(32, round16(n + 8)) for n in 0..136, past that its size class (%zu differ, "
                    "first at n=%zu)", wrong, first_wrong == SIZE_MAX ? 0 : first_wrong);
  CHECK(flagbad == 0, "main-arena heap chunks have neither M nor A set (%zu do)", flagbad);
  CHECK(run_small > 2900 && run_big == 0, "requests of 0..3000 B get blocks of runs (R set: %zu of 3001), "
        "no other block has R (%zu do)", run_small, run_big);
  CHECK(usable_bad == 0, "malloc_usable_size == chunk size - 8 for heap chunks (%zu not)",
        usable_bad);
  for (int i = 0; i < 61; i++)
    tide_free(keep[i]);

  /* A power of two is a class's usable size less 8: no block a quarter
   * bigger than asked (malloc(4096) had 5112 usable bytes).  On an arena
   * of its own: its runs, emptied as it exits, would otherwise go back
   * into the main arena (when the background thread gets to them) while
   * the checks below lay chunks out at its top. */
  tide_mallopt(TIDE_M_ARENA_SHARE, 0);
  pthread_t t;
  pthread_create(&t, NULL, pow_thread, NULL);
  pthread_join(t, NULL);
  tide_mallopt(TIDE_M_ARENA_SHARE, 1); /* the default again */
  CHECK(pow_bad == 0, "malloc(2^k), 128 B..16 KiB, in a new thread: usable size 2^k + 8 (or a remainder too small "
        "to split more: under 2^k + 40; %zu differ, first %zu)", pow_bad, pow_first);

  void *m = tide_malloc(1 << 20);
  long pg = sysconf(_SC_PAGESIZE);
  CHECK(m && (cflags(m) & FLAG_M), "a 1 MiB chunk is mmapped: M bit set");
  CHECK(m && csize(m) >= (1 << 20) + 8 && (csize(m) + hdr(m)[0]) % (size_t)pg == 0,
        "its size covers the request and, with prev_size (the offset), whole pages");
  CHECK(m && tide_malloc_usable_size(m) >= (1 << 20), "its usable size covers the request");
  tide_free(m);
  CHECK(tide_heap_check() == 0, "heap sound after the size checks");
}

/* Boundary tags: freeing a binned chunk clears the next chunk's P bit and
 * writes the foot; fast chunks keep looking allocated. */
static void test_tags(void) {
  char *x = tide_malloc(2000), *a = tide_malloc(2000), *b = tide_malloc(2000);
  char *g = tide_malloc(2000);
  int adjacent = a + csize(a) == b && x + csize(x) == a;
  CHECK(adjacent, "consecutive 2000-byte mallocs from top are adjacent chunks");
  if (adjacent) {
    CHECK(cflags(b) & FLAG_P, "in-use neighbour: next chunk's P bit set");
    size_t asz = csize(a);
    tide_free(a);
    CHECK(!(cflags(b) & FLAG_P), "after free(a): the next chunk's P bit is clear");
    CHECK(hdr(b)[0] == asz, "after free(a): next chunk's prev_size == a's size (%zu, %zu)",
          hdr(b)[0], asz);
    CHECK(csize(a) == asz && (cflags(a) & FLAG_P), "a free chunk keeps its size, and P (x in "
                                                   "use)");
    CHECK(tide_heap_check() == 0, "heap sound with a free chunk between used ones");
    /* freeing b now must coalesce with a: x's next chunk is a free chunk
     * of at least both sizes, and g's P bit is clear */
    tide_free(b);
    CHECK(!(cflags(g) & FLAG_P) && hdr(g)[0] >= 2 * asz,
          "free(b) coalesced a and b: g's prev_size %zu >= %zu", hdr(g)[0], 2 * asz);
    CHECK(tide_heap_check() == 0, "heap sound after coalescing");
  } else {
    tide_free(a);
    tide_free(b);
  }
  tide_free(x);
  tide_free(g);

  char *f1 = tide_malloc(24), *f2 = tide_malloc(24), *fg = tide_malloc(24);
  if (f1 + csize(f1) == f2) {
    tide_free(f1);
    CHECK(cflags(f2) & FLAG_P, "after freeing a 24-byte (fast) chunk its neighbour's P bit "
                               "stays set");
  }
  tide_free(f2);
  tide_free(fg);
  CHECK(tide_heap_check() == 0, "heap sound after the tag checks");
}

/* ---- the heap checker must fail on damage ---- */

struct setup {
  char *x, *a, *b, *g;
};

static void make(struct setup *s) {
  s->x = tide_malloc(2000);
  s->a = tide_malloc(2000);
  s->b = tide_malloc(2000);
  s->g = tide_malloc(2000);
}

static void d_free_size(void *arg) {
  (void)arg;
  struct setup s;
  make(&s);
  tide_free(s.a);
  hdr(s.a)[1] += 48; /* a free chunk's size no longer matches its foot */
  tide_heap_check();
}

static void d_free_fd(void *arg) {
  (void)arg;
  struct setup s;
  make(&s);
  tide_free(s.a);
  ((size_t *)s.a)[0] = 0x4141414141414140ull; /* fd */
  tide_heap_check();
}

static void d_free_bk(void *arg) {
  (void)arg;
  struct setup s;
  make(&s);
  tide_free(s.a);
  ((size_t *)s.a)[1] = (size_t)s.x - 16; /* bk to a chunk in use */
  tide_heap_check();
}

static void d_clear_p(void *arg) {
  (void)arg;
  struct setup s;
  make(&s);
  hdr(s.b)[1] &= ~FLAG_P; /* claims a (in use) is free */
  hdr(s.b)[0] = csize(s.a);
  tide_heap_check();
}

static void d_used_size(void *arg) {
  (void)arg;
  struct setup s;
  make(&s);
  hdr(s.b)[1] = 0x4141414141414141ull; /* an overflow from a into b's header */
  tide_heap_check();
}

static void d_foot(void *arg) {
  (void)arg;
  struct setup s;
  make(&s);
  tide_free(s.a);
  hdr(s.b)[0] = 32; /* the foot of the free chunk a is wrong */
  tide_heap_check();
}

static void d_top_size(void *arg) {
  (void)arg;
  char *t = tide_malloc(100000); /* carved from top: the next chunk is top */
  size_t u = tide_malloc_usable_size(t);
  size_t *next_size = (size_t *)(t + u);
  *next_size += (size_t)64 << 20; /* top (or whatever follows) now runs past its region */
  tide_heap_check();
}

static void d_large_nextsize(void *arg) {
  (void)arg;
  /* guards above the thread-cache sizes, so they sit between a and b */
  char *a = tide_malloc(3000), *g1 = tide_malloc(2000), *b = tide_malloc(4000);
  char *g2 = tide_malloc(2000);
  tide_free(a);
  tide_free(b);
  char *c = tide_malloc(9000); /* sweeps the unsorted bin: a and b go to large bins */
  ((size_t *)a)[2] = 0x4242424242424240ull; /* fd_nextsize */
  tide_heap_check();
  tide_free(c);
  tide_free(g1);
  tide_free(g2);
}

/* the only chunk of its large bin: its nextsize links point to itself */
static void d_lone_nextsize(void *arg) {
  (void)arg;
  char *a = tide_malloc(3000), *g1 = tide_malloc(2000);
  tide_free(a);
  char *c = tide_malloc(9000); /* a goes from the unsorted bin to its large bin */
  ((size_t *)a)[2] = 0x4242424242424240ull;
  tide_heap_check();
  tide_free(c);
  tide_free(g1);
}

static void d_fast_fd(void *arg) {
  (void)arg;
  char *f[300];
  for (int i = 0; i < 300; i++)
    f[i] = tide_malloc(40);
  char *g = tide_malloc(40);
  for (int i = 0; i < 300; i++)
    tide_free(f[i]); /* more than a thread cache holds: the rest go to fast bins */
  for (int i = 0; i < 300; i++) /* a use-after-free write into every one of them */
    ((size_t *)f[i])[0] = 0x4343434343434340ull;
  tide_heap_check();
  tide_free(g);
}

static void expect_check_abort(const char *what, void (*fn)(void *)) {
  struct th_child c;
  th_run_child(&c, fn, NULL, 20);
  CHECK(th_child_aborted(&c) && strstr(c.err, "tidemalloc: heap_check(): ") != NULL,
        "heap_check catches: %s (%s, \"%s\")", what, th_status_str(c.status),
        th_first_line(&c));
}

int main(void) {
  printf("# unit/chunk\n");
  test_sizes();
  /* Medium blocks straight to the bins (no thread cache above 1032
   * bytes), as the boundary-tag and checker cases below need. */
  CHECK(tide_mallopt(TIDE_M_TCACHE_MAX, 1032) == 1, "mallopt(M_TCACHE_MAX, 1032)");
  test_tags();
  expect_check_abort("a free chunk's size changed", d_free_size);
  expect_check_abort("a free chunk's fd overwritten", d_free_fd);
  expect_check_abort("a free chunk's bk pointing at a chunk in use", d_free_bk);
  expect_check_abort("a P bit cleared under a chunk in use", d_clear_p);
  expect_check_abort("an in-use chunk's size overwritten", d_used_size);
  expect_check_abort("a free chunk's foot (next prev_size) wrong", d_foot);
  expect_check_abort("the top chunk's size grown past its region", d_top_size);
  expect_check_abort("a large-bin chunk's fd_nextsize overwritten", d_large_nextsize);
  expect_check_abort("the fd_nextsize of a large bin's only chunk overwritten",
                     d_lone_nextsize);
  expect_check_abort("the links of 300 freed fast chunks overwritten", d_fast_fd);
  CHECK(tide_heap_check() == 0, "the parent's heap is sound");
  TEST_MAIN_END("unit/chunk");
}
