/* SPDX-License-Identifier: MIT */
/*
 * The main arena and the program break, when tidemalloc is not alone:
 *
 *  1. someone else moves the break (this test calls sbrk itself, as glibc's
 *     malloc beside the prefixed library also does): tidemalloc keeps
 *     allocating without assuming its memory is contiguous, and trimming
 *     its top never gives back memory that is not its own;
 *  2. the break cannot grow at all (a mapping sits right above it):
 *     tidemalloc goes on with mmap'd regions;
 *  0. (first, in a fresh process) someone moves the break between
 *     tidemalloc's reading it and growing it, past the 64 KiB boundary its
 *     first segment starts at, with M_TOP_PAD 0: the segment still holds
 *     what was asked for (it came up 60 KiB short: the main arena gave up
 *     the break for good, or took a top larger than its memory).
 *
 * Linked with the debug library (tide_* names).
 */
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "tidemalloc.h"

#define NB 2000

static unsigned char *blk[2 * NB];
static size_t blk_n[2 * NB];

static void fill(unsigned char *p, size_t n, size_t tag) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(tag * 7 + i);
}

static int intact(const unsigned char *p, size_t n, size_t tag) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(tag * 7 + i))
      return 0;
  return 1;
}

static void test_foreign_sbrk(void) {
  size_t bad = 0;
  for (size_t i = 0; i < NB; i++) {
    blk_n[i] = 1000 + (i * 131) % 5000;
    blk[i] = tide_malloc(blk_n[i]);
    if (!blk[i]) {
      bad++;
      continue;
    }
    fill(blk[i], blk_n[i], i);
  }
  CHECK(bad == 0, "%d blocks before the break moves", NB);

  const size_t mine_len = 256 * 1024;
  unsigned char *mine = sbrk((intptr_t)mine_len);
  if (mine == (void *)-1) {
    CHECK(0, "sbrk(256 KiB) by the test itself failed (errno %d)", errno);
    return;
  }
  memset(mine, 0x6B, mine_len);
  NOTE("the test took [%p, %p) with sbrk", (void *)mine, (void *)(mine + mine_len));

  for (size_t i = NB; i < 2 * NB; i++) {
    blk_n[i] = 1000 + (i * 131) % 5000;
    blk[i] = tide_malloc(blk_n[i]);
    if (!blk[i]) {
      bad++;
      continue;
    }
    if (blk[i] < mine + mine_len && blk[i] + blk_n[i] > mine)
      bad++; /* handed out memory that is ours */
    fill(blk[i], blk_n[i], i);
  }
  CHECK(bad == 0, "%d more blocks after the break moved, none inside the test's region", NB);
  CHECK(tide_heap_check() == 0, "heap sound with a foreign region after the break");
  for (size_t i = 0; i < 2 * NB; i++)
    if (blk[i] && !intact(blk[i], blk_n[i], i))
      bad++;
  CHECK(bad == 0, "all blocks intact");
  for (size_t i = 0; i < 2 * NB; i++)
    tide_free(blk[i]);
  tide_malloc_trim(0);
  /* if tidemalloc had shrunk the break below our region, this faults */
  int still = 1;
  for (size_t i = 0; i < mine_len; i++)
    if (mine[i] != 0x6B)
      still = 0;
  CHECK(still, "the test's own sbrk region survives tidemalloc freeing and trimming");
  CHECK(tide_heap_check() == 0, "heap sound after freeing everything");

  /* the break moved down by someone else, too */
  void *p = tide_malloc(200);
  if (sbrk(0) == mine + mine_len)
    CHECK(sbrk(-(intptr_t)mine_len) != (void *)-1, "the test gives its region back");
  else
    NOTE("tidemalloc's memory lies above the test's region; it stays");
  void *q = tide_malloc(50000);
  CHECK(p && q, "tidemalloc still allocates after the break moved down");
  if (q)
    memset(q, 1, 50000);
  tide_free(p);
  tide_free(q);
  CHECK(tide_heap_check() == 0, "heap sound after the break moved down");
}

static void test_blocked_brk(void) {
  long pg = sysconf(_SC_PAGESIZE);
  uintptr_t cur = (uintptr_t)sbrk(0);
  uintptr_t at = (cur + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
  void *wall = mmap((void *)at, 1 << 20, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (wall == MAP_FAILED || wall != (void *)at) {
    CHECK(0, "could not place a mapping at the break (%p)", (void *)at);
    return;
  }
  void *probe = sbrk(pg * 4);
  CHECK(probe == (void *)-1, "with a mapping above it, the break cannot grow");

  enum { N = 3000 };
  static unsigned char *p[N];
  size_t bad = 0, got = 0;
  for (size_t i = 0; i < N; i++) {
    size_t n = 20000 + (i % 7) * 1000;
    p[i] = tide_malloc(n);
    if (!p[i]) {
      bad++;
      continue;
    }
    got += n;
    fill(p[i], 256, i);
    memset(p[i] + 256, 0x3C, n - 256);
  }
  CHECK(bad == 0, "%d blocks (%zu MiB) allocated while brk cannot grow", N, got >> 20);
  CHECK(tide_heap_check() == 0, "heap sound with mmap'd regions in the main arena");
  for (size_t i = 0; i < N; i += 2) {
    tide_free(p[i]);
    p[i] = NULL;
  }
  for (size_t i = 0; i < N; i += 2) {
    p[i] = tide_malloc(700);
    if (p[i])
      fill(p[i], 256, i);
  }
  for (size_t i = 0; i < N; i++)
    if (!p[i] || !intact(p[i], 256, i))
      bad++;
  CHECK(bad == 0, "blocks intact after freeing half and reusing the holes");
  for (size_t i = 0; i < N; i++)
    tide_free(p[i]);
  CHECK(tide_heap_check() == 0, "heap sound after freeing it all");
  munmap(wall, 1 << 20);
}

extern void (*tide_test_hook)(const char *where);
static unsigned char *moved_lo, *moved_hi;

/* Just after tidemalloc read the break: take from there to 4 KiB past
 * the next 64 KiB boundary. */
static void move_break(const char *where) {
  if (strcmp(where, "grow_brk: break read") != 0 || moved_lo)
    return;
  uintptr_t cur = (uintptr_t)sbrk(0), boundary = (cur + 0xffff) & ~(uintptr_t)0xffff;
  moved_lo = sbrk((intptr_t)(boundary - cur + 4096));
  if (moved_lo == (void *)-1) {
    moved_lo = NULL;
    return;
  }
  moved_hi = (unsigned char *)boundary + 4096;
  memset(moved_lo, 0x5A, (size_t)(moved_hi - moved_lo));
}

static void test_moved_between(void) {
  tide_mallopt(TIDE_M_TOP_PAD, 0);
  tide_test_hook = move_break;
  unsigned char *p = tide_malloc(100);
  tide_test_hook = NULL;
  CHECK(moved_lo != NULL, "the test moved the break while tidemalloc was growing it (to %p)", (void *)moved_hi);
  unsigned char *q = tide_malloc(20000);
  unsigned char *end = sbrk(0);
  CHECK(p && q && p >= moved_hi && p < end && q >= moved_hi && q < end && !(((size_t *)q)[-1] & 4),
        "the first blocks come from the break above the test's region (%p, %p; break at %p)", (void *)p,
        (void *)q, (void *)end);
  if (q)
    memset(q, 0x11, 20000);
  size_t intact_bytes = 0;
  for (unsigned char *b = moved_lo; moved_lo && b < moved_hi; b++)
    intact_bytes += *b == 0x5A;
  CHECK(moved_lo && intact_bytes == (size_t)(moved_hi - moved_lo), "the test's region is untouched");
  CHECK(tide_heap_check() == 0, "heap sound after the break moved under tidemalloc");
  tide_free(p);
  tide_free(q);
  tide_mallopt(TIDE_M_TOP_PAD, 128 * 1024);
}

int main(void) {
  printf("# stress/brk\n");
  test_moved_between();
  test_foreign_sbrk();
  test_blocked_brk();
  TEST_MAIN_END("stress/brk");
}
