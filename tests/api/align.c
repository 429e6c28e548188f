/* SPDX-License-Identifier: MIT */
/*
 * memalign, posix_memalign, aligned_alloc: every power-of-two alignment
 * from 1 to 1 MiB over sizes of every kind, the invalid alignments, and
 * aligned blocks living beside each other (the split-off remainders must
 * stay consistent: the heap checker looks at them).
 */
#include <string.h>

#include "api.h"

static const size_t sizes[] = {1, 24, 100, 600, 2000, 70000, 200000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static int is_pow2(size_t a) { return a && !(a & (a - 1)); }

static void test_every_alignment(void) {
  for (size_t a = 1; a <= MiB; a <<= 1) {
    size_t bad_m = 0, bad_p = 0, bad_a = 0;
    for (size_t i = 0; i < NSIZES; i++) {
      size_t n = sizes[i];
      size_t want = a < 16 ? 16 : a; /* malloc's own alignment is the floor */
      unsigned tm = (unsigned)(3 * i), tp = tm + 1, ta = tm + 2;

      unsigned char *m = F(memalign)(a, n);
      if (!m || !api_aligned(m, want) || F(malloc_usable_size)(m) < n)
        bad_m++;
      else
        api_fill(m, n, tm);

      void *pp = NULL;
      int r = F(posix_memalign)(&pp, a, n);
      if (a < sizeof(void *)) {
        if (r != EINVAL)
          bad_p++;
      } else if (r != 0 || !pp || !api_aligned(pp, want) ||
                 F(malloc_usable_size)(pp) < n) {
        bad_p++;
      } else {
        api_fill(pp, n, tp);
      }

      size_t an = (n + a - 1) / a * a;
      unsigned char *al = F(aligned_alloc)(a, an);
      if (!al || !api_aligned(al, want) || F(malloc_usable_size)(al) < an)
        bad_a++;
      else
        api_fill(al, an, ta);

      /* everything written is still there */
      if (m && api_verify(m, n, tm) != n)
        bad_m++;
      if (pp && api_verify(pp, n, tp) != n)
        bad_p++;
      if (al && api_verify(al, an, ta) != an)
        bad_a++;
      F(free)(m);
      F(free)(pp);
      F(free)(al);
    }
    CHECK(bad_m == 0, "memalign(%zu, n) aligned, usable >= n, for all sizes (%zu bad)", a,
          bad_m);
    if (a < sizeof(void *))
      CHECK(bad_p == 0, "posix_memalign(%zu, n) -> EINVAL (not a multiple of "
                        "sizeof(void *))", a);
    else
      CHECK(bad_p == 0, "posix_memalign(%zu, n) aligned, usable >= n (%zu bad)", a, bad_p);
    CHECK(bad_a == 0, "aligned_alloc(%zu, n) aligned, usable >= n (%zu bad)", a, bad_a);
  }
  HEAP_OK("every alignment");
}

static void test_invalid(void) {
  static const size_t bad[] = {3, 6, 12, 24, 48, 100, 4095, 4097, 3 * MiB, SIZE_MAX,
                               SIZE_MAX - 1};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t a = bad[i];
    void *p = (void *)0x1;
    int r = F(posix_memalign)(&p, a, 64);
    CHECK(r == EINVAL && p == (void *)0x1,
          "posix_memalign(%#zx, 64) -> EINVAL, *memptr untouched (got %d)", a, r);
    /* memalign keeps glibc's behaviour: an alignment that is not a power
     * of two is rounded up to the next one; one past SIZE_MAX/2+1 fails. */
    errno = 0;
    void *m = F(memalign)(a, 64);
    int e = errno;
    size_t up = 1;
    while (up < a && up <= SIZE_MAX / 4)
      up <<= 1;
    if (a > SIZE_MAX / 2 + 1)
      CHECK(m == NULL && e == EINVAL, "memalign(%#zx, 64) -> NULL, EINVAL (errno %d)", a, e);
    else
      CHECK(m != NULL && (uintptr_t)m % up == 0,
            "memalign(%#zx, 64) rounds the alignment up to %#zx, as glibc (got %p)", a, up, m);
    F(free)(m);
    errno = 0;
    void *al = F(aligned_alloc)(a, 64);
    e = errno;
    CHECK(al == NULL && e == EINVAL, "aligned_alloc(%#zx, 64) -> NULL, EINVAL (errno %d)",
          a, e);
    F(free)(al);
  }
  void *p = (void *)0x1;
  CHECK(F(posix_memalign)(&p, 0, 64) == EINVAL, "posix_memalign(0, 64) -> EINVAL");

  /* a power of two too large to honour: NULL, never a wrong pointer */
  size_t top = SIZE_MAX / 2 + 1;
  errno = 0;
  void *m = F(memalign)(top, 64);
  int e = errno;
  CHECK(m == NULL && (e == ENOMEM || e == EINVAL),
        "memalign(2^63, 64) -> NULL with ENOMEM or EINVAL (errno %d)", e);
  p = (void *)0x1;
  int r = F(posix_memalign)(&p, top, 64);
  CHECK((r == ENOMEM || r == EINVAL) && p == (void *)0x1,
        "posix_memalign(2^63, 64) fails with ENOMEM or EINVAL (got %d)", r);
  size_t big = (size_t)1 << 46;
  errno = 0;
  m = F(memalign)(4096, big);
  e = errno;
  CHECK(m == NULL && e == ENOMEM, "memalign(4096, 64 TiB) -> NULL, ENOMEM (errno %d)", e);
  HEAP_OK("invalid alignments");
}

/* Aligned blocks held together, freed in an interleaved order, with plain
 * mallocs filling the holes the alignment leaves. */
static void test_mixed_live(void) {
  enum { N = 400 };
  static unsigned char *p[N];
  static size_t n[N], al[N];
  struct th_rng r;
  th_rng_seed(&r, 7);
  size_t bad = 0;
  for (int i = 0; i < N; i++) {
    al[i] = (size_t)1 << th_rng_range(&r, 4, 16);
    n[i] = th_rng_range(&r, 1, i % 10 == 0 ? 300000 : 3000);
    if (i % 3 == 0) {
      p[i] = F(memalign)(al[i], n[i]);
    } else if (i % 3 == 1) {
      void *q = NULL;
      if (F(posix_memalign)(&q, al[i], n[i]) != 0)
        q = NULL;
      p[i] = q;
    } else {
      p[i] = F(malloc)(n[i]);
      al[i] = 16;
    }
    if (!p[i] || !api_aligned(p[i], al[i]))
      bad++;
    else
      api_fill(p[i], n[i], (unsigned)i);
  }
  CHECK(bad == 0, "400 mixed aligned/plain blocks allocated and aligned (%zu bad)", bad);
  HEAP_OK("400 live aligned blocks");
  for (int i = 0; i < N; i += 2)
    F(free)(p[i]);
  for (int i = 0; i < N; i += 2) {
    p[i] = F(memalign)(al[i], n[i]);
    if (p[i])
      api_fill(p[i], n[i], (unsigned)i);
  }
  bad = 0;
  for (int i = 0; i < N; i++)
    if (!p[i] || api_verify(p[i], n[i], (unsigned)i) != n[i])
      bad++;
  CHECK(bad == 0, "contents intact after freeing half and re-aligning into holes (%zu bad)",
        bad);
  HEAP_OK("re-aligned into holes");
  for (int i = N - 1; i >= 0; i--)
    F(free)(p[i]);
  HEAP_OK("freeing aligned blocks");
  /* realloc of an aligned block keeps contents (alignment need not be kept) */
  unsigned char *q = F(memalign)(4096, 3000);
  if (q)
    api_fill(q, 3000, 99);
  unsigned char *q2 = q ? F(realloc)(q, 9000) : NULL;
  CHECK(q2 && api_verify(q2, 3000, 99) == 3000, "realloc of a memalign'd block keeps "
                                                "contents");
  F(free)(q2);
  HEAP_OK("realloc of an aligned block");
  (void)is_pow2;
}

int main(void) {
  printf("# api/align (%s)\n", FLAVOUR);
  test_every_alignment();
  test_invalid();
  test_mixed_live();
  TEST_MAIN_END("api/align-" FLAVOUR);
}
