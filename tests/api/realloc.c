/* SPDX-License-Identifier: MIT */
/*
 * realloc and reallocarray: every pair of size kinds in both directions
 * with the contents kept, growth in small steps (the in-place paths),
 * mmapped growth and shrinking (mremap), realloc(NULL, n), realloc(p, 0),
 * and the failing cases, which must leave the old block untouched.
 */
#include <string.h>

#include "api.h"

static void test_matrix(void) {
  size_t bad = 0, total = 0;
  for (size_t i = 0; i < API_NKINDS; i++) {
    for (size_t j = 0; j < API_NKINDS; j++) {
      size_t from = api_kind_sizes[i], to = api_kind_sizes[j];
      unsigned tag = (unsigned)(i * 16 + j);
      /* a neighbour on each side, so in-place growth is not always
       * possible and the copy path runs too */
      void *before = F(malloc)(from);
      unsigned char *p = F(malloc)(from);
      void *after = (j % 2) ? F(malloc)(40) : NULL;
      total++;
      if (!p) {
        bad++;
        continue;
      }
      api_fill(p, from, tag);
      unsigned char *q = F(realloc)(p, to);
      size_t keep = from < to ? from : to;
      size_t at = q ? api_verify(q, keep, tag) : 0;
      int ok = q && at == keep && F(malloc_usable_size)(q) >= to && api_aligned(q, 16);
      if (!ok) {
        bad++;
        NOTE("bad: realloc %zu -> %zu: %s at offset %zu", from, to,
               q ? "contents differ" : "NULL", at);
      } else {
        memset(q + keep, 0xEE, to - keep); /* the new tail is ours to write */
      }
      F(free)(q);
      F(free)(before);
      F(free)(after);
    }
  }
  CHECK(bad == 0, "realloc between every pair of %zu kinds keeps contents (%zu of %zu bad)",
        (size_t)API_NKINDS, bad, total);
  HEAP_OK("realloc matrix");
}

/* One block grown a little at a time up through every kind, then shrunk
 * back down, verified at every step. */
static void test_steps(void) {
  size_t n = 1, bad = 0, steps = 0;
  unsigned char *p = F(malloc)(n);
  api_fill(p, n, 5);
  while (n < 3 * MiB) {
    size_t next = n + n / 5 + 1;
    unsigned char *q = F(realloc)(p, next);
    steps++;
    if (!q) {
      bad++;
      break;
    }
    if (api_verify(q, n, 5) != n)
      bad++;
    p = q;
    api_fill(p, next, 5);
    n = next;
  }
  CHECK(bad == 0, "growing 1 byte -> 3 MiB in %zu steps keeps contents", steps);
  while (n > 1) {
    size_t next = n - n / 4 - 1;
    unsigned char *q = F(realloc)(p, next);
    if (!q) {
      bad++;
      break;
    }
    if (api_verify(q, next, 5) != next)
      bad++;
    p = q;
    n = next;
  }
  CHECK(bad == 0, "shrinking 3 MiB -> 1 byte keeps the prefix");
  F(free)(p);
  HEAP_OK("stepwise realloc");

  /* the same while another block keeps being allocated behind it, so
   * growth in place meets a neighbour */
  n = 100;
  p = F(malloc)(n);
  api_fill(p, n, 9);
  void *fence[64] = {0};
  bad = 0;
  for (int i = 0; i < 64; i++) {
    fence[i] = F(malloc)(32 + (size_t)i * 8);
    size_t next = n * 3 / 2;
    unsigned char *q = F(realloc)(p, next);
    if (!q || api_verify(q, n, 9) != n) {
      bad++;
      break;
    }
    p = q;
    api_fill(p, next, 9);
    n = next;
    if (n > 4 * MiB)
      break;
  }
  CHECK(bad == 0, "growth with fences allocated between steps keeps contents");
  F(free)(p);
  for (int i = 0; i < 64; i++)
    F(free)(fence[i]);
  HEAP_OK("realloc with fences");
}

static void test_mmapped(void) {
  static const size_t path[] = {200000, 4 * MiB, 16 * MiB, 1 * MiB, 300000, 150000, 9 * MiB};
  size_t n = path[0], bad = 0;
  unsigned char *p = F(malloc)(n);
  api_fill(p, n, 77);
  for (size_t i = 1; i < sizeof path / sizeof path[0]; i++) {
    size_t to = path[i];
    unsigned char *q = F(realloc)(p, to);
    size_t keep = n < to ? n : to;
    if (!q || api_verify(q, keep, 77) != keep) {
      bad++;
      NOTE("bad: mmapped realloc %zu -> %zu", n, to);
      if (!q)
        break;
    }
    p = q;
    api_fill(p, to, 77);
    n = to;
  }
  CHECK(bad == 0, "mmapped realloc chain 200K->4M->16M->1M->300K->150K->9M keeps contents");
  F(free)(p);
  HEAP_OK("mmapped realloc");
}

static void test_special(void) {
  struct tide_stats s0, s1;

  errno = 0;
  unsigned char *p = F(realloc)(NULL, 300);
  CHECK(p && F(malloc_usable_size)(p) >= 300 && api_aligned(p, 16),
        "realloc(NULL, 300) acts as malloc(300)");
  void *z = F(realloc)(NULL, 0);
  CHECK(z != NULL, "realloc(NULL, 0) acts as malloc(0): non-NULL");
  F(free)(z);
  F(free)(p);

  /* above the thread-cache sizes (64 KiB), so the counters are exact at once */
  p = F(malloc)(70000);
  tide_stats_get(&s0);
  void *r = F(realloc)(p, 0);
  tide_stats_get(&s1);
  CHECK(r == NULL, "realloc(p, 0) returns NULL (glibc behaviour)");
  CHECK(s1.free_calls == s0.free_calls + 1, "realloc(p, 0) counts as a free (%zu -> %zu)",
        s0.free_calls, s1.free_calls);
  CHECK(s1.in_use_bytes < s0.in_use_bytes, "realloc(p, 0) gives the block back (in use "
                                           "%zu -> %zu)",
        s0.in_use_bytes, s1.in_use_bytes);
  /* 40 MiB: above the highest the dynamic threshold can rise (32 MiB),
   * so it is mmapped whatever the earlier frees did */
  void *mm = F(malloc)(40 * MiB);
  tide_stats_get(&s0);
  r = F(realloc)(mm, 0);
  tide_stats_get(&s1);
  CHECK(r == NULL && s1.mmapped_chunks + 1 == s0.mmapped_chunks,
        "realloc(mmapped, 0) returns NULL and unmaps (%zu -> %zu mmapped chunks)",
        s0.mmapped_chunks, s1.mmapped_chunks);

  /* failures leave the block as it was */
  static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 8, SIZE_MAX - 4096, PTRDIFF_MAX,
                                (size_t)1 << 50};
  for (int k = 0; k < 2; k++) {
    size_t n = k ? 500000 : 600;
    p = F(malloc)(n);
    api_fill(p, n, 3);
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
      errno = 0;
      void *q = F(realloc)(p, huge[i]);
      int e = errno;
      CHECK(q == NULL && e == ENOMEM && api_verify(p, n, 3) == n,
            "realloc(%zu-byte block, %#zx) -> NULL, ENOMEM, block intact", n, huge[i]);
    }
    F(free)(p);
  }

  /* reallocarray */
  p = F(reallocarray)(NULL, 10, 30);
  CHECK(p && F(malloc_usable_size)(p) >= 300, "reallocarray(NULL, 10, 30) allocates");
  if (p)
    api_fill(p, 300, 4);
  unsigned char *q = p ? F(reallocarray)(p, 100, 30) : NULL;
  CHECK(q && api_verify(q, 300, 4) == 300, "reallocarray grows and keeps contents");
  p = q;
  static const size_t ovf[][2] = {{SIZE_MAX, 2},
                                  {2, SIZE_MAX},
                                  {(size_t)1 << 32, (size_t)1 << 32},
                                  {SIZE_MAX / 16 + 1, 16},
                                  {3, SIZE_MAX / 3 + 1}};
  for (size_t i = 0; i < sizeof ovf / sizeof ovf[0]; i++) {
    errno = 0;
    void *o = F(reallocarray)(p, ovf[i][0], ovf[i][1]);
    int e = errno;
    CHECK(o == NULL && e == ENOMEM && api_verify(p, 300, 4) == 300,
          "reallocarray(p, %#zx, %#zx) overflows -> NULL, ENOMEM, p intact", ovf[i][0],
          ovf[i][1]);
    errno = 0;
    o = F(reallocarray)(NULL, ovf[i][0], ovf[i][1]);
    e = errno;
    CHECK(o == NULL && e == ENOMEM, "reallocarray(NULL, %#zx, %#zx) -> NULL, ENOMEM",
          ovf[i][0], ovf[i][1]);
  }
  F(free)(p);
  HEAP_OK("special reallocs");
}

int main(void) {
  printf("# api/realloc (%s)\n", FLAVOUR);
  test_matrix();
  test_steps();
  test_mmapped();
  test_special();
  TEST_MAIN_END("api/realloc-" FLAVOUR);
}
