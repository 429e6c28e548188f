/* SPDX-License-Identifier: MIT */
/*
 * malloc, free, malloc_usable_size, valloc, pvalloc, free_sized,
 * free_aligned_sized: the plain contracts and the edge sizes (0, SIZE_MAX
 * and its neighbours, PTRDIFF_MAX).
 */
#define _GNU_SOURCE /* asprintf, dladdr */
#include <stdint.h>
#include <string.h>

#include "api.h"

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static void test_size_zero(void) {
  void *a = F(malloc)(0), *b = F(malloc)(0);
  CHECK(a != NULL && b != NULL, "malloc(0) returns a pointer (glibc behaviour)");
  CHECK(a != b, "two malloc(0) calls return distinct pointers");
  CHECK(api_aligned(a, 16) && api_aligned(b, 16), "malloc(0) is 16-byte aligned");
  CHECK(F(malloc_usable_size)(a) < 64, "malloc(0) usable size is small (%zu)",
        F(malloc_usable_size)(a));
  F(free)(a);
  F(free)(b);
  F(free)(NULL);
  CHECK(F(malloc_usable_size)(NULL) == 0, "malloc_usable_size(NULL) == 0");
  F(free_sized)(NULL, 0);
  F(free_aligned_sized)(NULL, 64, 0);
  CHECK(1, "free(NULL), free_sized(NULL, 0), free_aligned_sized(NULL, ..) are no-ops");
  HEAP_OK("size 0");
}

/* Every impossible size must give NULL and errno ENOMEM, and leave the heap
 * sound and usable. */
static void test_huge(void) {
  static const size_t huge[] = {
      SIZE_MAX,          SIZE_MAX - 1,         SIZE_MAX - 7,
      SIZE_MAX - 15,     SIZE_MAX - 16,        SIZE_MAX - 31,
      SIZE_MAX - 32,     SIZE_MAX - 4095,      SIZE_MAX - 4096,
      SIZE_MAX - 65536,  SIZE_MAX / 2 + 1,     SIZE_MAX / 2,
      PTRDIFF_MAX,       (size_t)PTRDIFF_MAX + 1, (size_t)1 << 62,
      (size_t)1 << 50,   (size_t)1 << 47,
  };
  size_t bad = 0;
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    size_t n = huge[i];
    errno = 0;
    void *p = F(malloc)(n);
    int e = errno;
    CHECK(p == NULL && e == ENOMEM, "malloc(%#zx) -> NULL, ENOMEM (got %p, errno %d)",
          n, p, e);
    if (p)
      bad++;
    errno = 0;
    p = F(valloc)(n);
    e = errno;
    CHECK(p == NULL && e == ENOMEM, "valloc(%#zx) -> NULL, ENOMEM (errno %d)", n, e);
    errno = 0;
    p = F(pvalloc)(n);
    e = errno;
    CHECK(p == NULL && e == ENOMEM, "pvalloc(%#zx) -> NULL, ENOMEM (errno %d)", n, e);
    errno = 0;
    p = F(memalign)(64, n);
    e = errno;
    CHECK(p == NULL && e == ENOMEM, "memalign(64, %#zx) -> NULL, ENOMEM (errno %d)", n,
          e);
    errno = 0;
    p = F(aligned_alloc)(4096, n);
    e = errno;
    CHECK(p == NULL && e == ENOMEM, "aligned_alloc(4096, %#zx) -> NULL, ENOMEM (errno %d)",
          n, e);
    void *q = (void *)0x1;
    int r = F(posix_memalign)(&q, 32, n);
    CHECK(r == ENOMEM && q == (void *)0x1,
          "posix_memalign(32, %#zx) -> ENOMEM, *memptr untouched (got %d)", n, r);
  }
  (void)bad;
  HEAP_OK("huge requests");
  void *p = F(malloc)(100);
  CHECK(p != NULL, "malloc(100) still works after the impossible requests");
  F(free)(p);
}

/* usable >= request, and the whole usable area is writable without hurting
 * anything (the heap check afterwards proves it). */
static void test_usable_size(void) {
  size_t fails = 0, wasteful = 0, misaligned = 0;
  void *blocks[600];
  int nb = 0;
  for (size_t n = 0; n <= 4200; n += (n < 300 ? 1 : 37)) {
    unsigned char *p = F(malloc)(n);
    if (!p) {
      fails++;
      continue;
    }
    size_t u = F(malloc_usable_size)(p);
    if (u < n)
      fails++;
    /* 16-byte granularity and a one-word header: never more than a
     * granule of slack (minimum chunk aside) up to 136 B; past that a
     * request is rounded up to a size class of the thread cache (four a
     * doubling): at most a quarter more. */
    if (n >= 24 && u > (n <= 136 ? n + 16 : n + n / 4 + 16))
      wasteful++;
    if (!api_aligned(p, 16))
      misaligned++;
    memset(p, 0xC3, u);
    if (nb < 600)
      blocks[nb++] = p;
    else
      F(free)(p);
  }
  CHECK(fails == 0, "malloc(n) for n in 0..4200: non-NULL and usable >= n (%zu bad)",
        fails);
  CHECK(misaligned == 0, "every malloc result is 16-byte aligned (%zu not)", misaligned);
  CHECK(wasteful == 0, "usable size never exceeds request + 16 (past 136 B: + a quarter) below the mmap "
                       "threshold (%zu do)", wasteful);
  HEAP_OK("writing every usable byte");
  for (int i = 0; i < nb; i++)
    F(free)(blocks[i]);

  static const size_t big[] = {70000, 131072, 200000, 1 << 20, 3 * MiB + 5};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    unsigned char *p = F(malloc)(big[i]);
    size_t u = p ? F(malloc_usable_size)(p) : 0;
    CHECK(p && u >= big[i] && u < big[i] + 2 * page_size(),
          "malloc(%zu): usable %zu in [n, n + 2 pages)", big[i], u);
    if (p) {
      memset(p, 0x5A, u);
      F(free)(p);
    }
  }
  HEAP_OK("large and mmapped usable sizes");
}

/* Many live blocks at once: none overlaps another. */
static void test_no_overlap(void) {
  enum { N = 3000 };
  static unsigned char *p[N];
  static size_t sz[N];
  struct th_rng r;
  th_rng_seed(&r, 42);
  size_t nullcount = 0;
  for (int i = 0; i < N; i++) {
    unsigned k = (unsigned)th_rng_range(&r, 0, 99);
    sz[i] = k < 60 ? th_rng_range(&r, 1, 128)
            : k < 90 ? th_rng_range(&r, 129, 1024)
            : k < 99 ? th_rng_range(&r, 1025, 65536)
                     : th_rng_range(&r, 65537, 600000);
    p[i] = F(malloc)(sz[i]);
    if (!p[i])
      nullcount++;
    else
      api_fill(p[i], sz[i], (unsigned)i);
  }
  CHECK(nullcount == 0, "3000 mixed-size mallocs all succeed");
  /* free every third, verify the rest, allocate again into the holes */
  for (int i = 0; i < N; i += 3) {
    F(free)(p[i]);
    p[i] = F(malloc)(sz[i] / 2 + 1);
    sz[i] = sz[i] / 2 + 1;
    if (p[i])
      api_fill(p[i], sz[i], (unsigned)i);
  }
  size_t bad = 0;
  for (int i = 0; i < N; i++)
    if (p[i] && api_verify(p[i], sz[i], (unsigned)i) != sz[i])
      bad++;
  CHECK(bad == 0, "every live block keeps its own contents (%zu corrupted)", bad);
  HEAP_OK("3000 live blocks");
  for (int i = 0; i < N; i++)
    F(free)(p[i]);
  HEAP_OK("freeing 3000 blocks");
}

static void test_valloc_pvalloc(void) {
  size_t pg = page_size();
  static const size_t sizes[] = {1, 100, 4095, 4096, 4097, 20000, 200000, 1 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    unsigned char *v = F(valloc)(n);
    CHECK(v && api_aligned(v, pg) && F(malloc_usable_size)(v) >= n,
          "valloc(%zu) page-aligned, usable >= n", n);
    unsigned char *pv = F(pvalloc)(n);
    size_t rounded = (n + pg - 1) / pg * pg;
    CHECK(pv && api_aligned(pv, pg) && F(malloc_usable_size)(pv) >= rounded,
          "pvalloc(%zu) page-aligned, usable >= %zu (got %zu)", n, rounded,
          pv ? F(malloc_usable_size)(pv) : 0);
    if (v)
      memset(v, 1, n);
    if (pv)
      memset(pv, 2, rounded);
    F(free)(v);
    F(free)(pv);
  }
  unsigned char *z = F(pvalloc)(0);
  CHECK(z && api_aligned(z, pg), "pvalloc(0) gives a page-aligned block");
  if (z)
    memset(z, 3, F(malloc_usable_size)(z));
  F(free)(z);
  HEAP_OK("valloc/pvalloc");
}

static void test_free_sized(void) {
  struct tide_stats before, after;
  size_t bad = 0;
  for (size_t i = 0; i < API_NKINDS; i++) {
    size_t n = api_kind_sizes[i];
    void *p = F(malloc)(n);
    if (!p) {
      bad++;
      continue;
    }
    memset(p, 0x11, n);
    tide_stats_get(&before);
    F(free_sized)(p, n);
    tide_stats_get(&after);
    if (after.free_calls < before.free_calls + 1 && n > 1032)
      bad++;
  }
  CHECK(bad == 0, "free_sized(p, n) frees blocks of every kind (%zu bad)", bad);
  bad = 0;
  for (size_t a = 16; a <= 65536; a *= 4) {
    for (size_t i = 0; i < API_NKINDS; i++) {
      size_t n = (api_kind_sizes[i] + a - 1) / a * a; /* aligned_alloc wants a multiple */
      void *p = F(aligned_alloc)(a, n);
      if (!p || !api_aligned(p, a)) {
        bad++;
        continue;
      }
      memset(p, 0x22, n);
      F(free_aligned_sized)(p, a, n);
    }
  }
  CHECK(bad == 0, "aligned_alloc + free_aligned_sized for alignments 16..64K (%zu bad)",
        bad);
  /* the memory really goes back: a loop that would need gigabytes if it
   * leaked runs through in constant space */
  tide_stats_get(&before);
  for (int i = 0; i < 2000; i++) {
    void *p = F(malloc)(1 << 20);
    if (!p) {
      bad++;
      break;
    }
    memset(p, 0, 4096);
    F(free_sized)(p, 1 << 20);
  }
  tide_stats_get(&after);
  CHECK(bad == 0 && after.in_use_bytes <= before.in_use_bytes + (1 << 20),
        "2000 x malloc(1 MiB) + free_sized leave in_use where it was (%zu -> %zu)",
        before.in_use_bytes, after.in_use_bytes);
  HEAP_OK("free_sized/free_aligned_sized");
}

#ifdef TIDE_TEST_STD
/* glibc's own allocations (strdup, asprintf, getline, open_memstream) must
 * come from the same malloc as free, or free would refuse them. */
static void test_libc_interposed(void) {
  struct tide_stats a, b;
  tide_stats_get(&a);
  char *s = strdup("interposed");
  char *t = NULL;
  int n = asprintf(&t, "%s-%d", s, 42);
  tide_stats_get(&b);
  CHECK(s && n > 0 && b.malloc_calls >= a.malloc_calls + 2,
        "strdup and asprintf allocate through tidemalloc (malloc_calls +%zu)",
        b.malloc_calls - a.malloc_calls);
  CHECK(F(malloc_usable_size)(s) >= 11, "malloc_usable_size knows strdup's block");
  free(s);
  free(t);
  char *buf = NULL;
  size_t cap = 0;
  FILE *mf = open_memstream(&buf, &cap);
  for (int i = 0; i < 5000; i++)
    fprintf(mf, "line %d\n", i);
  fclose(mf);
  CHECK(buf && cap > 40000, "open_memstream grew its buffer to %zu bytes", cap);
  free(buf);
  HEAP_OK("freeing libc's allocations");
}
#endif

#ifdef TIDE_TEST_PRELOAD
/* The shared drop-in exports every function of the header under its tide_
 * name and the standard names, and the standard names are the ones bound. */
static void test_exports(void) {
  static const char *names[] = {
      "malloc", "free", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign",
      "aligned_alloc", "valloc", "pvalloc", "malloc_usable_size", "free_sized",
      "free_aligned_sized", "mallopt", "mallinfo2", "mallinfo", "malloc_trim",
      "malloc_stats", "malloc_info"};
  static const char *tide_only[] = {"tide_stats_get", "tide_heap_check", "tide_heap_dump"};
  void *so = dlopen(NULL, RTLD_NOW);
  Dl_info where;
  size_t missing = 0, elsewhere = 0;
  char buf[64];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(buf, sizeof buf, "tide_%s", names[i]);
    if (!dlsym(RTLD_DEFAULT, buf)) {
      NOTE("not exported: %s", buf);
      missing++;
    }
    void *f = dlsym(RTLD_DEFAULT, names[i]);
    if (!f || !dladdr(f, &where) || !strstr(where.dli_fname, "libtidemalloc")) {
      NOTE("%s resolves to %s", names[i], f ? where.dli_fname : "nothing");
      elsewhere++;
    }
  }
  for (size_t i = 0; i < sizeof tide_only / sizeof tide_only[0]; i++) {
    if (!dlsym(RTLD_DEFAULT, tide_only[i])) {
      NOTE("not exported: %s", tide_only[i]);
      missing++;
    }
  }
  (void)so;
  CHECK(missing == 0, "every function of the header is exported under its tide_ name (%zu "
                      "missing)", missing);
  CHECK(elsewhere == 0, "every standard name resolves to libtidemalloc.so (%zu do not)",
        elsewhere);
}
#endif

/* free(a), then a's bytes -- the free key in them too -- copied into the
 * live blocks b and c: freeing b and c is correct and must not be taken
 * for a double free (issue 11, item 8).  In a child, so an abort shows as
 * a failed check. */
static size_t copy_sizes[] = {24, 40, 600, 1000, 4000, 20000};
static void copy_freed_bytes(void *arg) {
  size_t n = *(size_t *)arg;
  char *a = F(malloc)(n), *b = F(malloc)(n), *c = F(malloc)(n);
  if (!a || !b || !c)
    _exit(3);
  memset(a, 0x11, n);
  F(free)(a);
  memcpy(b, a, 16); /* the free key sits in the second word */
  memcpy(c, a, 16);
  F(free)(b);
  F(free)(c);
  void *d = F(malloc)(n);
  F(free)(d);
  _exit(0);
}

static void test_copied_free_key(void) {
  for (size_t i = 0; i < sizeof copy_sizes / sizeof copy_sizes[0]; i++) {
    struct th_child ch;
    th_run_child(&ch, copy_freed_bytes, &copy_sizes[i], 20);
    CHECK(th_child_exited0(&ch), "%zu B: a freed block's bytes copied into two live ones, both freed: no abort (%s%s%s)",
          copy_sizes[i], th_status_str(ch.status), ch.errlen ? ", " : "", th_first_line(&ch));
  }
}

int main(void) {
  printf("# api/basic (%s)\n", FLAVOUR);
#ifdef TIDE_TEST_PRELOAD
  test_exports();
#endif
  test_size_zero();
  test_huge();
  test_usable_size();
  test_no_overlap();
  test_valloc_pvalloc();
  test_free_sized();
  test_copied_free_key();
#ifdef TIDE_TEST_STD
  test_libc_interposed();
#endif
  TEST_MAIN_END("api/basic-" FLAVOUR);
}
