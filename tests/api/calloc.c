/* SPDX-License-Identifier: MIT */
/*
 * calloc: zeroing of memory that was used and freed before (small, large,
 * the top chunk, mmapped, and heap memory reached after the dynamic mmap
 * threshold rose), multiplication overflow, and the zero-sized cases.
 */
#include <string.h>

#include "api.h"

/* malloc n, dirty every usable byte, free, calloc the same size: zero. */
static int dirty_then_calloc(size_t n, size_t count) {
  void *held[64];
  int ok = 1;
  if (count > 64)
    count = 64;
  for (size_t i = 0; i < count; i++) {
    held[i] = F(malloc)(n);
    if (!held[i])
      return 0;
    memset(held[i], 0xAA, F(malloc_usable_size)(held[i]));
  }
  for (size_t i = 0; i < count; i++)
    F(free)(held[i]);
  for (size_t i = 0; i < count; i++) {
    held[i] = F(calloc)(1, n);
    if (!held[i] || !api_all_bytes(held[i], n, 0))
      ok = 0;
  }
  for (size_t i = 0; i < count; i++)
    F(free)(held[i]);
  return ok;
}

static void test_reuse(void) {
  static const size_t sizes[] = {1,    8,     24,    100,    128,    129,   600,
                                 1000, 1024,  2000,  5000,   70000,  100000, 131072,
                                 200000, 1 << 20, 2 * MiB, 5 * MiB + 3};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    CHECK(dirty_then_calloc(n, 1), "calloc(1, %zu) after a dirty free of the same size is "
                                   "all zero", n);
    CHECK(dirty_then_calloc(n, n < 100000 ? 40 : 4),
          "calloc(1, %zu) x many after dirty frees is all zero", n);
  }
  HEAP_OK("calloc reuse");

  /* a freed block that merged into top, then calloc from top */
  unsigned char *fence = F(malloc)(64);
  unsigned char *p = F(malloc)(90000);
  memset(p, 0xAA, 90000);
  F(free)(p);
  p = F(calloc)(90000, 1);
  CHECK(p && api_all_bytes(p, 90000, 0), "calloc from a dirtied top chunk is all zero");
  F(free)(p);
  F(free)(fence);

  /* split remainders: a big dirty free, then many small callocs carved
   * from it */
  p = F(malloc)(60000);
  void *guard = F(malloc)(32);
  memset(p, 0x55, 60000);
  F(free)(p);
  size_t bad = 0;
  void *small[200];
  for (int i = 0; i < 200; i++) {
    small[i] = F(calloc)(10, 25);
    if (!small[i] || !api_all_bytes(small[i], 250, 0))
      bad++;
  }
  CHECK(bad == 0, "200 x calloc(10, 25) carved from a dirty free chunk are zero (%zu not)",
        bad);
  for (int i = 0; i < 200; i++)
    F(free)(small[i]);
  F(free)(guard);

  /* the dynamic mmap threshold: freeing a 2 MiB mmapped chunk lets
   * 1 MiB requests be served from the heap, where memory gets reused */
  void *big = F(malloc)(2 * MiB);
  memset(big, 0xAA, 2 * MiB);
  F(free)(big);
  CHECK(dirty_then_calloc(1 * MiB, 3), "1 MiB callocs after the threshold moved are zero");
  /* mremap'd memory */
  p = F(malloc)(300000);
  memset(p, 0xAA, 300000);
  p = F(realloc)(p, 6 * MiB);
  memset(p, 0xAA, 6 * MiB);
  F(free)(p);
  p = F(calloc)(6, MiB);
  CHECK(p && api_all_bytes(p, 6 * MiB, 0), "calloc(6, 1 MiB) after a dirty mremap'd block "
                                           "is zero");
  F(free)(p);
  HEAP_OK("calloc special reuse");
}

static void test_overflow(void) {
  static const size_t cases[][2] = {
      {SIZE_MAX, 2},
      {2, SIZE_MAX},
      {SIZE_MAX, SIZE_MAX},
      {(size_t)1 << 32, (size_t)1 << 32},
      {SIZE_MAX / 16 + 1, 16},
      {16, SIZE_MAX / 16 + 1},
      {3, SIZE_MAX / 3 + 1},
      {(size_t)1 << 33, (size_t)1 << 31},
      {1, SIZE_MAX},
      {SIZE_MAX - 8, 1},
      {1, PTRDIFF_MAX},
      {(size_t)1 << 25, (size_t)1 << 25}, /* 1 PiB: no overflow, just impossible */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    errno = 0;
    void *p = F(calloc)(cases[i][0], cases[i][1]);
    int e = errno;
    CHECK(p == NULL && e == ENOMEM, "calloc(%#zx, %#zx) -> NULL, ENOMEM (errno %d)",
          cases[i][0], cases[i][1], e);
    F(free)(p);
  }
  void *a = F(calloc)(0, 100), *b = F(calloc)(100, 0), *c = F(calloc)(0, 0);
  CHECK(a && b && c, "calloc with a zero factor acts as malloc(0): non-NULL");
  F(free)(a);
  F(free)(b);
  F(free)(c);
  unsigned char *d = F(calloc)((size_t)1 << 20, 3);
  CHECK(d && api_all_bytes(d, 3 * MiB, 0), "calloc(1M, 3) (no overflow) works and is zero");
  F(free)(d);
  HEAP_OK("calloc overflow");
}

int main(void) {
  printf("# api/calloc (%s)\n", FLAVOUR);
  test_reuse();
  test_overflow();
  TEST_MAIN_END("api/calloc-" FLAVOUR);
}
