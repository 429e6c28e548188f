/* SPDX-License-Identifier: MIT */
/*
 * The glibc extensions and tidemalloc's own: mallopt (accepted and refused
 * values, and the visible effect of the mmap parameters), mallinfo2 and
 * mallinfo, malloc_info, malloc_stats, malloc_trim, tide_stats_get,
 * tide_heap_dump.
 *
 * Between two readings of the counters nothing is printed, so in the std
 * build stdio does not allocate in the middle of a measurement.
 */
#include <fcntl.h>
#include <limits.h>
#include <string.h>

#include "api.h"

static void test_mallopt(void) {
  struct {
    int param, value, want;
    const char *what;
  } cases[] = {
      {TIDE_M_MXFAST, 0, 1, "M_MXFAST 0"},
      {TIDE_M_MXFAST, 64, 1, "M_MXFAST 64"},
      {TIDE_M_MXFAST, 160, 1, "M_MXFAST 160"},
      {TIDE_M_MXFAST, 100000, 0, "M_MXFAST 100000 (too big)"},
      {TIDE_M_MXFAST, -1, 0, "M_MXFAST -1"},
      {TIDE_M_MXFAST, 128, 1, "M_MXFAST 128 (back to the default)"},
      {TIDE_M_TRIM_THRESHOLD, 256 * 1024, 1, "M_TRIM_THRESHOLD 256K"},
      {TIDE_M_TRIM_THRESHOLD, 128 * 1024, 1, "M_TRIM_THRESHOLD 128K"},
      {TIDE_M_TOP_PAD, 65536, 1, "M_TOP_PAD 64K"},
      {TIDE_M_TOP_PAD, 0, 1, "M_TOP_PAD 0"},
      {TIDE_M_MMAP_THRESHOLD, 256 * 1024, 1, "M_MMAP_THRESHOLD 256K"},
      {TIDE_M_MMAP_MAX, 65536, 1, "M_MMAP_MAX 65536"},
      {TIDE_M_CHECK_ACTION, 3, 1, "M_CHECK_ACTION 3"},
      {TIDE_M_PERTURB, 0, 1, "M_PERTURB 0"},
      {TIDE_M_ARENA_TEST, 8, 1, "M_ARENA_TEST 8"},
      {TIDE_M_ARENA_MAX, 8, 1, "M_ARENA_MAX 8"},
      {TIDE_M_PURGE_DECAY_MS, 500, 1, "M_PURGE_DECAY_MS 500"},
      {TIDE_M_PURGE_DECAY_MS, -1, 1, "M_PURGE_DECAY_MS -1 (never)"},
      {TIDE_M_PURGE_DECAY_MS, -7, 0, "M_PURGE_DECAY_MS -7"},
      {TIDE_M_TCACHE_COUNT, 7, 1, "M_TCACHE_COUNT 7"},
      {TIDE_M_TCACHE_COUNT, -1, 0, "M_TCACHE_COUNT -1"},
      {TIDE_M_TCACHE_MAX, 1032, 1, "M_TCACHE_MAX 1032"},
      {TIDE_M_TCACHE_MAX, -1, 0, "M_TCACHE_MAX -1"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int r = F(mallopt)(cases[i].param, cases[i].value);
    CHECK(r == cases[i].want, "mallopt(%s) returns %d (got %d)", cases[i].what,
          cases[i].want, r);
  }
  HEAP_OK("mallopt values");
}

/* mallinfo2 and the mmap parameters, seen from outside. */
static void test_mallinfo2(void) {
  tm_mallinfo2 a, b, c;
  void *blocks[100];

  a = F(mallinfo2)();
  for (int i = 0; i < 100; i++)
    blocks[i] = F(malloc)(1000);
  b = F(mallinfo2)();
  for (int i = 0; i < 100; i++)
    F(free)(blocks[i]);
  c = F(mallinfo2)();
  CHECK(b.uordblks >= a.uordblks + 100 * 1000,
        "uordblks grows by >= 100000 after 100 x malloc(1000) (%zu -> %zu)", a.uordblks,
        b.uordblks);
  CHECK(b.arena >= b.uordblks, "arena (%zu) >= uordblks (%zu)", b.arena, b.uordblks);
  CHECK(b.arena == b.uordblks + b.fordblks, "arena == uordblks + fordblks (%zu, %zu + %zu)",
        b.arena, b.uordblks, b.fordblks);
  CHECK(c.arena == c.uordblks + c.fordblks, "arena == uordblks + fordblks after frees");
  CHECK(b.usmblks == 0, "usmblks is 0");
  CHECK(b.keepcost <= b.fordblks, "keepcost (%zu) <= fordblks (%zu)", b.keepcost,
        b.fordblks);
  CHECK(b.fsmblks <= b.fordblks, "fsmblks <= fordblks");

  /* an mmapped chunk shows in hblks/hblkhd and leaves them on free */
  F(mallopt)(TIDE_M_MMAP_THRESHOLD, 128 * 1024); /* fixed, not dynamic */
  a = F(mallinfo2)();
  void *m = F(malloc)(1 * MiB);
  b = F(mallinfo2)();
  F(free)(m);
  c = F(mallinfo2)();
  CHECK(b.hblks == a.hblks + 1, "malloc(1 MiB) adds one mmapped chunk (hblks %zu -> %zu)",
        a.hblks, b.hblks);
  CHECK(b.hblkhd >= a.hblkhd + MiB && b.hblkhd <= a.hblkhd + MiB + 2 * 4096 + 64,
        "hblkhd grows by about 1 MiB (%zu -> %zu)", a.hblkhd, b.hblkhd);
  CHECK(c.hblks == a.hblks && c.hblkhd == a.hblkhd, "free of it brings hblks/hblkhd back");

  /* M_MMAP_THRESHOLD moves the line */
  CHECK(F(mallopt)(TIDE_M_MMAP_THRESHOLD, 512 * 1024) == 1, "threshold set to 512K");
  a = F(mallinfo2)();
  void *below = F(malloc)(400000);
  b = F(mallinfo2)();
  void *above = F(malloc)(600000);
  c = F(mallinfo2)();
  CHECK(b.hblks == a.hblks, "400000 bytes come from the heap under a 512K threshold");
  CHECK(c.hblks == a.hblks + 1, "600000 bytes are mmapped under a 512K threshold");
  F(free)(below);
  F(free)(above);

  /* M_MMAP_MAX 0: nothing is mmapped */
  CHECK(F(mallopt)(TIDE_M_MMAP_MAX, 0) == 1, "M_MMAP_MAX 0 accepted");
  a = F(mallinfo2)();
  unsigned char *big = F(malloc)(3 * MiB);
  b = F(mallinfo2)();
  CHECK(big && b.hblks == a.hblks, "with M_MMAP_MAX 0 a 3 MiB block is not mmapped");
  if (big)
    memset(big, 1, 3 * MiB);
  F(free)(big);
  F(mallopt)(TIDE_M_MMAP_MAX, 65536);
  F(mallopt)(TIDE_M_MMAP_THRESHOLD, 128 * 1024);
  HEAP_OK("mmap parameters");

  /* fast chunks show in smblks/fsmblks once they are freed (enough of
   * them that a thread cache cannot hold them all) */
  enum { NF = 3000 };
  static void *fast[NF];
  for (int i = 0; i < NF; i++)
    fast[i] = F(malloc)(24);
  void *guard = F(malloc)(24);
  for (int i = 0; i < NF; i++)
    F(free)(fast[i]);
  b = F(mallinfo2)();
  CHECK(b.smblks > 0 && b.fsmblks >= 32 * b.smblks,
        "freed fast chunks appear in smblks (%zu) and fsmblks (%zu)", b.smblks, b.fsmblks);
  F(free)(guard);

  /* the old mallinfo: same figures, as ints */
  b = F(mallinfo2)();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  tm_mallinfo o = F(mallinfo)();
#pragma GCC diagnostic pop
#define SAT(x) ((x) > (size_t)INT_MAX ? INT_MAX : (int)(x))
  CHECK(o.arena == SAT(b.arena) && o.uordblks == SAT(b.uordblks) &&
            o.fordblks == SAT(b.fordblks) && o.hblks == SAT(b.hblks) &&
            o.hblkhd == SAT(b.hblkhd) && o.ordblks == SAT(b.ordblks),
        "mallinfo() agrees with mallinfo2() (arena %d vs %zu)", o.arena, b.arena);
  HEAP_OK("mallinfo");
}

/* Runs fn with fd 2 sent to a temporary file; returns what it wrote. */
static char *capture_stderr(void (*fn)(void)) {
  static char buf[65536];
  char path[] = "/tmp/tide-test-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return NULL;
  unlink(path);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  lseek(fd, 0, SEEK_SET);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static void call_malloc_stats(void) { F(malloc_stats)(); }

static void test_reports(void) {
  FILE *fp = tmpfile();
  int r = F(malloc_info)(0, fp);
  fflush(fp);
  rewind(fp);
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  CHECK(r == 0, "malloc_info(0, fp) returns 0");
  CHECK(strncmp(buf, "<malloc", 7) == 0, "malloc_info writes XML starting with \"<malloc\"");
  fp = tmpfile();
  r = F(malloc_info)(1, fp);
  CHECK(r != 0, "malloc_info(1, fp) fails: options must be 0 (got %d)", r);
  fclose(fp);

  char *out = capture_stderr(call_malloc_stats);
  CHECK(out && strlen(out) > 10, "malloc_stats prints to stderr (%zu bytes)",
        out ? strlen(out) : 0);
  CHECK(out && strstr(out, "bytes") != NULL, "malloc_stats output talks about bytes");

  void *blocks[40];
  for (int i = 0; i < 40; i++)
    blocks[i] = F(malloc)(60000);
  void *keep = F(malloc)(100);
  for (int i = 0; i < 40; i++)
    F(free)(blocks[i]);
  r = F(malloc_trim)(0);
  CHECK(r == 0 || r == 1, "malloc_trim(0) returns 0 or 1 (got %d)", r);
  r = F(malloc_trim)(1 << 20);
  CHECK(r == 0 || r == 1, "malloc_trim(1 MiB) returns 0 or 1 (got %d)", r);
  F(free)(keep);
  HEAP_OK("trim");

  char path[] = "/tmp/tide-dump-XXXXXX";
  int fd = mkstemp(path);
  void *live = F(malloc)(777);
  tide_heap_dump(fd);
  off_t len = lseek(fd, 0, SEEK_END);
  close(fd);
  unlink(path);
  F(free)(live);
  CHECK(len > 0, "tide_heap_dump writes a picture of the heap (%lld bytes)",
        (long long)len);
}

static void test_stats(void) {
  struct tide_stats a, b, c;
  void *blocks[1000];
  tide_stats_get(&a);
  for (int i = 0; i < 1000; i++)
    blocks[i] = F(malloc)(5000);
  tide_stats_get(&b);
  for (int i = 0; i < 1000; i++)
    F(free)(blocks[i]);
  tide_stats_get(&c);
  CHECK(b.malloc_calls == a.malloc_calls + 1000, "malloc_calls +1000 (%zu -> %zu)",
        a.malloc_calls, b.malloc_calls);
  CHECK(b.bytes_requested == a.bytes_requested + 5000 * 1000,
        "bytes_requested +5000000 (%zu -> %zu)", a.bytes_requested, b.bytes_requested);
  CHECK(b.in_use_bytes >= a.in_use_bytes + 5000 * 1000, "in_use_bytes grows by >= 5000000");
  CHECK(c.free_calls == b.free_calls + 1000, "free_calls +1000 (%zu -> %zu)", b.free_calls,
        c.free_calls);
  CHECK(c.in_use_bytes == a.in_use_bytes, "in_use_bytes back where it was (%zu, %zu)",
        a.in_use_bytes, c.in_use_bytes);
  CHECK(b.peak_in_use_bytes >= b.in_use_bytes, "peak_in_use >= in_use");
  CHECK(b.os_bytes >= b.in_use_bytes, "os_bytes (%zu) >= in_use_bytes (%zu)", b.os_bytes,
        b.in_use_bytes);
  CHECK(b.peak_os_bytes >= b.os_bytes, "peak_os >= os");
  CHECK(b.arenas >= 1, "at least one arena (%zu)", b.arenas);

  void *p = F(malloc)(100);
  tide_stats_get(&a);
  p = F(realloc)(p, 5000);
  p = F(realloc)(p, 50);
  tide_stats_get(&b);
  CHECK(b.realloc_calls == a.realloc_calls + 2, "realloc_calls +2");
  F(free)(p);

  tide_stats_get(&a);
  void *m = F(malloc)(4 * MiB);
  tide_stats_get(&b);
  F(free)(m);
  tide_stats_get(&c);
  CHECK(b.mmapped_chunks == a.mmapped_chunks + 1, "mmapped_chunks +1 for a 4 MiB block");
  CHECK(b.os_bytes >= a.os_bytes + 4 * MiB, "os_bytes counts the mapping");
  CHECK(c.mmapped_chunks == a.mmapped_chunks && c.os_bytes <= b.os_bytes - 4 * MiB,
        "and both drop when it is freed");
  CHECK(c.purged_bytes >= a.purged_bytes, "purged_bytes never decreases");
}

int main(void) {
  printf("# api/ext (%s)\n", FLAVOUR);
  test_mallopt();
  test_mallinfo2();
  test_reports();
  test_stats();
  HEAP_OK("the end");
  TEST_MAIN_END("api/ext-" FLAVOUR);
}
