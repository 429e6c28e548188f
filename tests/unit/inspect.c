/* SPDX-License-Identifier: MIT */
/*
 * The heap inspector (tide_heap_dump), read back and parsed.
 *
 * A fresh process builds a heap whose every interesting block it knows:
 * small blocks of a run (src/run.h) it holds, freed into its thread cache
 * and freed past the cache (the overflow goes back to the run: run-free);
 * small chunks of the arena itself (made with the thread cache off) freed
 * past the cache (the overflow parks in the fast bins); a large block sorted into a large bin,
 * a block waiting in the unsorted bin; and blocks freed by another thread:
 * run blocks go back to their run, arena chunks onto the main arena's
 * remote stack, the rest stays in that thread's cache.  The dump must
 * name each block's state at its address (runs of equal chunks folded
 * into "x N" lines are expanded), show the legend and a map per region,
 * agree with its own bin summary, change when the state changes (the
 * other thread exits, malloc_trim purges), and stay within its line cap.
 *
 * The background purge thread is off and the decay long, so nothing
 * moves between the frees and the dumps.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "tidemalloc.h"

/* ---- the dump, read back */

static char dump_text[1 << 20];

/* Dump into a temporary file (a pipe could fill while the arena locks
 * are held) and read it back, NUL-terminated. */
static const char *take_dump(void) {
  char path[] = "/tmp/tide-inspect-XXXXXX";
  int fd = mkstemp(path);
  dump_text[0] = '\0';
  if (fd < 0)
    return dump_text;
  unlink(path);
  tide_heap_dump(fd);
  size_t len = 0;
  ssize_t n;
  lseek(fd, 0, SEEK_SET);
  while (len < sizeof dump_text - 1 && (n = read(fd, dump_text + len, sizeof dump_text - 1 - len)) > 0)
    len += (size_t)n;
  dump_text[len] = '\0';
  close(fd);
  return dump_text;
}

/* One chunk line: "    0x55d0c8a2b2a0        48 B  tcache x 7". */
struct chunk_line {
  uintptr_t addr;
  size_t size, count;
  char state[64];
};

static struct chunk_line lines[8192];
static size_t nlines;

static void parse_chunk_line(const char *s) {
  struct chunk_line *l = &lines[nlines];
  unsigned long addr;
  int used = 0;
  if (nlines == sizeof lines / sizeof lines[0] || sscanf(s, " 0x%lx %zu B %n", &addr, &l->size, &used) != 2)
    return;
  const char *state = s + used, *end = strchr(state, '\n');
  size_t len = end ? (size_t)(end - state) : strlen(state);
  if (len >= sizeof l->state)
    len = sizeof l->state - 1;
  memcpy(l->state, state, len);
  l->state[len] = '\0';
  l->addr = addr;
  l->count = 1;
  char *x = strstr(l->state, " x ");
  if (x) {
    l->count = strtoul(x + 3, NULL, 10);
    *x = '\0';
  }
  nlines++;
}

/* The chunk lines of text up to end (NULL: all of it). */
static void parse_dump_upto(const char *text, const char *end) {
  nlines = 0;
  for (const char *s = text; *s && (!end || s < end); s = strchr(s, '\n') ? strchr(s, '\n') + 1 : s + strlen(s))
    if (strncmp(s, "    0x", 6) == 0)
      parse_chunk_line(s);
}

static void parse_dump(const char *text) { parse_dump_upto(text, NULL); }

/* The state the dump gives the block at user pointer p ("?" if none). */
static const char *state_of(const void *p) {
  uintptr_t a = (uintptr_t)p;
  for (size_t i = 0; i < nlines; i++) {
    const struct chunk_line *l = &lines[i];
    if (a >= l->addr && a < l->addr + l->count * l->size && (a - l->addr) % l->size == 0)
      return l->state;
  }
  return "?";
}

static int is(const void *p, const char *state) { return strcmp(state_of(p), state) == 0; }
static int starts(const void *p, const char *prefix) { return strncmp(state_of(p), prefix, strlen(prefix)) == 0; }
static int ends(const void *p, const char *suffix) {
  const char *s = state_of(p);
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* How many of blocks[0..n) the dump shows in state. */
static int count_in(void *const *blocks, int n, const char *state) {
  int k = 0;
  for (int i = 0; i < n; i++)
    k += is(blocks[i], state);
  return k;
}

/* Chunks and bytes on lines whose state starts with prefix. */
static void sum_lines(const char *prefix, size_t *chunks, size_t *bytes) {
  *chunks = *bytes = 0;
  for (size_t i = 0; i < nlines; i++)
    if (strncmp(lines[i].state, prefix, strlen(prefix)) == 0) {
      *chunks += lines[i].count;
      *bytes += lines[i].count * lines[i].size;
    }
}

/* Every map line: "|" + only map characters + "|  1 char = N B". */
static int maps_well_formed(const char *text, int *nmaps) {
  *nmaps = 0;
  for (const char *s = strstr(text, "    map |"); s; s = strstr(s + 1, "    map |")) {
    const char *c = s + 9;
    size_t n = strspn(c, "#c._T|?");
    /* the closing '|' is one of the map characters too (a fence) */
    if (n < 2 || c[n - 1] != '|' || strncmp(c + n, "  1 char = ", 11) != 0)
      return 0;
    (*nmaps)++;
  }
  return *nmaps > 0;
}

/* ---- another thread frees blocks of the main arena and waits */

enum { NSMALL = 100, NREMOTE = 100, NALIGNED = 100 };
static void *remote_blocks[NREMOTE];  /* run blocks the other thread frees */
static void *remote_aligned[NREMOTE]; /* arena chunks (88 B) the other thread frees */
static int to_thread[2], from_thread[2];

static void *remote_freer(void *arg) {
  (void)arg;
  char c = 0;
  for (int i = 0; i < NREMOTE; i++)
    tide_free(remote_blocks[i]);
  for (int i = 0; i < NREMOTE; i++)
    tide_free(remote_aligned[i]);
  if (write(from_thread[1], "f", 1) != 1 || read(to_thread[0], &c, 1) != 1)
    return NULL;
  return NULL;
}

/* ---- the heap under test */

static void *small[NSMALL]; /* 40 B; the first 50 and every other after freed */
static void *aligned[NALIGNED]; /* 72 B arena chunks (not run blocks), all freed */
static void *g1, *g2, *g3;  /* 20000 B guards (arena chunks), held */
static void *large, *big;   /* large: 80000 B, freed and sorted into a large bin */
static void *unsorted;      /* 70000 B, freed after it: waits in the unsorted bin */

static void build_heap(void) {
  /* First, from the top in this order: guards between two big blocks. */
  g1 = tide_malloc(20000);
  large = tide_malloc(80000);
  g2 = tide_malloc(20000);
  unsorted = tide_malloc(70000);
  g3 = tide_malloc(20000);
  for (int i = 0; i < NSMALL; i++)
    small[i] = tide_malloc(40);
  for (int i = 0; i < NREMOTE; i++)
    remote_blocks[i] = tide_malloc(56);
  /* With the thread cache off, small requests take the arena path: these
   * are arena chunks, not run blocks (the cache is back for their frees). */
  tide_mallopt(TIDE_M_TCACHE_COUNT, 0);
  for (int i = 0; i < NREMOTE; i++)
    remote_aligned[i] = tide_malloc(88);
  for (int i = 0; i < NALIGNED; i++)
    aligned[i] = tide_malloc(72);
  tide_mallopt(TIDE_M_TCACHE_COUNT, 64);
  /* Blocks this big (past any thread cache, under the mmap threshold)
   * are not cached: freed, they go to the unsorted bin, and the next request
   * the bins cannot serve (bigger, so nothing is split) sorts the first
   * into its large bin.  Both free before any fast-bin chunk exists, so
   * the consolidation such frees start finds nothing to move. */
  tide_free(large);
  big = tide_malloc(100000);
  tide_free(unsorted);
  /* 75 frees of one size: more than a cache bin holds (64), so the oldest
   * half overflows back into the run at least once; then 100 arena chunks
   * of that size, whose overflow goes to the fast bins. */
  for (int i = 0; i < NSMALL / 2; i++)
    tide_free(small[i]);
  for (int i = NSMALL / 2; i < NSMALL; i += 2)
    tide_free(small[i]);
  for (int i = 0; i < NALIGNED; i++)
    tide_free(aligned[i]);
}

static void test_legend_and_maps(const char *text) {
  CHECK(strncmp(text, "tidemalloc heap dump\n", 21) == 0, "the dump opens with its title");
  CHECK(strstr(text, "  map: '#' used  'c' cached") != NULL && strstr(text, "'_' free, purged") != NULL,
        "the legend explains the map characters");
  const char *first = strstr(text, "  states: "), *again = first ? strstr(first + 1, "  states: ") : NULL;
  CHECK(first && !again, "the legend is printed once");
  int nmaps = 0;
  CHECK(maps_well_formed(text, &nmaps), "every region has a well-formed map line (%d maps)", nmaps);
  const char *arena0 = strstr(text, "arena 0 (main): system ");
  const char *map = arena0 ? strstr(arena0, "    map |") : NULL;
  const char *chunk = arena0 ? strstr(arena0, "    0x") : NULL;
  CHECK(map && chunk && map < chunk, "the main arena's map comes before its chunk lines");
  size_t len = map ? strspn(map + 9, "#c._T|?") : 0;
  CHECK(len > 0 && memchr(map + 9, '#', len) && memchr(map + 9, 'c', len) && memchr(map + 9, 'T', len),
        "the main arena's map shows used, cached and top memory");
}

static void test_headers(const char *text) {
  const char *a0 = strstr(text, "arena 0 (main): system ");
  CHECK(a0 && strstr(a0, " B, in use ") && strstr(a0, " B, threads ") && strstr(a0, ", dirty ") &&
            strstr(a0, " B, fast "),
        "arena header: system, in use, threads, dirty, fast");
  CHECK(a0 && strstr(a0, "\n  used ") && strstr(a0, "), tcache ") && strstr(a0, "), remote "),
        "arena header: bytes and chunks by state");
  CHECK(strstr(text, "this thread's cache: [48 B] x") != NULL, "this thread's cache lists its 48 B bin");
  CHECK(strstr(text, "  fast bins: [80 B] x") != NULL, "the fast bins list the 80 B overflow");
  CHECK(strstr(text, "  remote stacks: [96 B] x") != NULL, "the remote stacks list 96 B blocks");
  const char *runs = strstr(text, "  runs: ");
  CHECK(runs && strtoul(runs + 8, NULL, 10) > 0 && strstr(runs, " blocks given back to them)"),
        "the main arena lists its runs and the blocks given back to them");
  CHECK(strstr(text, " large[") != NULL && strstr(text, " unsorted x") != NULL,
        "the bin summary names bins by size (\"large[lo-hi B]\", \"unsorted\")");
  CHECK(strstr(text, "mmapped chunks: ") != NULL, "the dump closes with the mmapped chunks");
}

static void test_states(void) {
  CHECK(is(g1, "used") && is(g2, "used") && is(g3, "used") && is(big, "used"), "blocks we hold: used");
  CHECK(is(small[99], "used") && is(small[51], "used"), "small blocks we hold: used");
  /* Which of them went back depends on what the bin held before the
   * frees (the refills' leftovers): the first full bin's newest half,
   * some of the first 50 freed. */
  int early_back = count_in(small, NSMALL / 2, "run-free");
  CHECK(early_back > 0, "small blocks freed early, flushed from the full cache: run-free (%d of the first %d freed)",
        early_back, NSMALL / 2);
  CHECK(is(aligned[NALIGNED - 1], "tcache"), "the block freed last: tcache (is \"%s\")",
        state_of(aligned[NALIGNED - 1]));
  /* A full bin hands back its newest entries down to half: of 100 frees
   * into a bin of 64, the 33rd-96th went to the fast bins. */
  CHECK(is(aligned[NALIGNED / 2], "fast"), "an arena chunk flushed from the full cache: fast (is \"%s\")",
        state_of(aligned[NALIGNED / 2]));
  int freed[NSMALL], nfreed = 0;
  for (int i = 0; i < NSMALL; i++)
    if (i < NSMALL / 2 || i % 2 == 0)
      freed[nfreed++] = i;
  int tc = 0, back = 0, held = 0, fast = 0, atc = 0;
  for (int k = 0; k < nfreed; k++) {
    tc += is(small[freed[k]], "tcache");
    back += is(small[freed[k]], "run-free");
  }
  for (int i = NSMALL / 2 + 1; i < NSMALL; i += 2)
    held += is(small[i], "used");
  for (int i = 0; i < NALIGNED; i++) {
    fast += is(aligned[i], "fast");
    atc += is(aligned[i], "tcache");
  }
  CHECK(tc + back == nfreed && back > 0, "each of the %d freed run blocks: tcache (%d) or run-free (%d)", nfreed, tc,
        back);
  CHECK(fast > 0 && atc > 0 && fast + atc == NALIGNED, "each of the %d freed arena chunks: tcache (%d) or fast (%d)",
        NALIGNED, atc, fast);
  CHECK(held == 25, "each of the 25 held small blocks: used (%d)", held);
  CHECK(starts(large, "free large#") && ends(large, " dirty"),
        "the 80000 B block freed and sorted: free large#N dirty (is \"%s\")", state_of(large));
  CHECK(is(unsorted, "free unsorted dirty"), "the 70000 B block freed after it: free unsorted dirty (is \"%s\")",
        state_of(unsorted));
}

static void test_remote(void) {
  int back = count_in(remote_blocks, NREMOTE, "run-free");
  int other = count_in(remote_blocks, NREMOTE, "tcache-other");
  CHECK(is(remote_blocks[0], "run-free"), "a run block freed first by the other thread, past its cache: run-free "
        "(is \"%s\")", state_of(remote_blocks[0]));
  CHECK(is(remote_blocks[NREMOTE - 1], "tcache-other"),
        "freed last by the other thread: in its cache, tcache-other (is \"%s\")", state_of(remote_blocks[NREMOTE - 1]));
  CHECK(back > 0 && other > 0 && back + other == NREMOTE,
        "all %d run blocks the other thread freed: run-free (%d) or tcache-other (%d)", NREMOTE, back, other);
  int remote = count_in(remote_aligned, NREMOTE, "remote");
  other = count_in(remote_aligned, NREMOTE, "tcache-other");
  CHECK(is(remote_aligned[0], "remote"), "an arena chunk freed first by the other thread: remote (is \"%s\")",
        state_of(remote_aligned[0]));
  CHECK(remote > 0 && other > 0 && remote + other == NREMOTE,
        "all %d arena chunks the other thread freed: remote (%d) or tcache-other (%d)", NREMOTE, remote, other);
}

/* The folded lines: a run of equal chunks is one line. */
static void test_folding(void) {
  size_t lines_for_remote = 0;
  for (size_t i = 0; i < nlines; i++)
    for (int k = 0; k < NREMOTE; k++)
      if ((uintptr_t)remote_blocks[k] >= lines[i].addr &&
          (uintptr_t)remote_blocks[k] < lines[i].addr + lines[i].count * lines[i].size) {
        lines_for_remote++;
        break;
      }
  CHECK(lines_for_remote > 0 && lines_for_remote <= 4, "the 100 run blocks freed by the other thread take %zu lines",
        lines_for_remote);
  size_t folded = 0;
  for (size_t i = 0; i < nlines; i++)
    folded += lines[i].count > 1;
  CHECK(folded > 0, "some lines carry a repeat count (%zu)", folded);
}

/* The main arena's bin summary agrees with its chunk lines. */
static void test_summary_agrees(const char *all) {
  const char *text = strstr(all, "arena 0 (main)"), *next = text ? strstr(text, "\narena ") : NULL;
  if (!text)
    text = all;
  parse_dump_upto(text, next);
  size_t chunks, bytes;
  sum_lines("free unsorted", &chunks, &bytes);
  char want[96];
  snprintf(want, sizeof want, "  bins: unsorted x%zu (%zu B)", chunks, bytes);
  CHECK(chunks > 0 && strstr(text, want) != NULL, "bins summary \"%s\" matches the unsorted chunk lines", want);
  sum_lines("remote", &chunks, &bytes);
  snprintf(want, sizeof want, "  remote stacks: [96 B] x%zu (%zu B)\n", chunks, bytes);
  CHECK(chunks > 0 && strstr(text, want) != NULL, "remote stacks summary matches the remote chunk lines (%zu)", chunks);
}

static void test_after_thread_exit(void) {
  const char *text = take_dump();
  parse_dump(text);
  CHECK(count_in(remote_blocks, NREMOTE, "tcache-other") == 0 && count_in(remote_aligned, NREMOTE, "remote") == 0 &&
            count_in(remote_aligned, NREMOTE, "tcache-other") == 0,
        "after the other thread exits, none of its blocks is remote or in its cache");
  CHECK(count_in(remote_blocks, NREMOTE, "run-free") == NREMOTE, "its cache's run blocks went back to their run "
        "(%d of %d run-free)", count_in(remote_blocks, NREMOTE, "run-free"), NREMOTE);
  CHECK(is(remote_aligned[0], "fast"), "its remote stack went to the fast bins: fast (is \"%s\")",
        state_of(remote_aligned[0]));
}

static void test_after_trim(void) {
  CHECK(tide_malloc_trim(0) == 1, "malloc_trim(0) released memory");
  const char *text = take_dump();
  parse_dump(text);
  CHECK(starts(large, "free ") && ends(large, " purged"), "after malloc_trim the 80000 B block is purged (is \"%s\")",
        state_of(large));
  const char *arena0 = strstr(text, "arena 0 (main)"), *map = arena0 ? strstr(arena0, "    map |") : NULL;
  const char *map_end = map ? strchr(map, '\n') : NULL;
  CHECK(map && map_end && memchr(map, '_', (size_t)(map_end - map)) != NULL, "the map shows the purged pages as '_'");
  CHECK(is(g1, "used") && is(small[99], "used"), "held blocks are still used");
}

/* Where the lines of the region whose header line starts at region end:
 * the first line after it not indented by four spaces. */
static const char *region_end(const char *region) {
  const char *s = strchr(region, '\n');
  while (s && strncmp(s + 1, "    ", 4) == 0)
    s = strchr(s + 1, '\n');
  return s ? s + 1 : region + strlen(region);
}

/* A heap of many alternating runs is cut at the line cap. */
static void test_line_cap(void) {
  enum { N = 1200 };
  static void *p[N];
  for (int i = 0; i < N; i++)
    p[i] = tide_malloc(200);
  for (int i = 0; i < N; i += 2)
    tide_free(p[i]);
  const char *text = take_dump();
  parse_dump(text);
  /* The main arena's first region: its lines up to the next header. */
  const char *region = strstr(text, "  brk segment ");
  const char *end = region ? region_end(region) : NULL, *more = region ? strstr(region, "    ... ") : NULL;
  parse_dump_upto(region ? region : text, end);
  CHECK(more && (!end || more < end) && strstr(more, " more chunks (") == more + 8 + strspn(more + 8, "0123456789"),
        "a region with more runs than the cap has a \"... N more chunks (M B)\" line");
  CHECK(nlines > 0 && nlines <= 256 + 1, "at most 256 chunk lines in it, and the top (%zu)", nlines);
  CHECK(nlines > 0 && strcmp(lines[nlines - 1].state, "TOP") == 0 && more && strstr(more, "B)\n    0x") != NULL,
        "its last line, after the \"...\" line, is still the top");
  for (int i = 1; i < N; i += 2)
    tide_free(p[i]);
}

/* Someone else moves the break: the main arena closes its brk segment
 * with two fence chunks and starts another. */
static void test_fence(void) {
  void *foreign = sbrk(4096);
  /* Until the heap must grow past what is free in it already. */
  enum { NP = 32 };
  void *ps[NP];
  const char *text = NULL, *second = NULL;
  int np = 0;
  while (np < NP && !second) {
    ps[np++] = tide_malloc(100000);
    text = take_dump();
    second = strstr(text, "  brk segment ");
    second = second ? strstr(second + 1, "  brk segment ") : NULL;
  }
  void *p = ps[np - 1];
  parse_dump(text);
  CHECK(foreign != (void *)-1 && p && second, "after a foreign sbrk the main arena has a second brk segment");
  int fences = 0;
  for (size_t i = 0; i < nlines; i++)
    fences += strcmp(lines[i].state, "fence") == 0 && lines[i].count == 2 && lines[i].size == 16;
  CHECK(fences == 1, "the closed segment ends in one \"16 B fence x 2\" line (%d)", fences);
  CHECK(is(p, "used"), "the block in the new segment: used (is \"%s\")", state_of(p));
  for (int i = 0; i < np; i++)
    tide_free(ps[i]);
}

/* More parked chunks than the lookup table holds (4096): the dump says how
 * many it could not place, and still names them as cached, never used.
 * (A guard keeps each run from emptying, which would give it back.) */
static void test_table_overflow(void) {
  enum { N = 6000 };
  static void *p[N];
  for (int i = 0; i < N; i++)
    p[i] = tide_malloc(24);
  for (int i = 0; i < N; i++)
    if (i % 500 != 499)
      tide_free(p[i]);
  const char *text = take_dump();
  parse_dump(text);
  const char *note = strstr(text, "  note: ");
  unsigned long missed = note ? strtoul(note + 8, NULL, 10) : 0;
  CHECK(note && missed > 0 &&
            strstr(note, " listed chunks did not fit the lookup table") == note + 8 + strspn(note + 8, "0123456789"),
        "%d parked chunks: the dump notes %lu that did not fit its table", N, missed);
  /* (some may sit past the line cap of a region: "?") */
  int used = count_in(p, N, "used"), unseen = count_in(p, N, "?");
  int parked = count_in(p, N, "run-free") + count_in(p, N, "tcache") + count_in(p, N, "tcache-other");
  CHECK(used == N / 500 && parked > N / 2 && parked + unseen + used == N,
        "none of the freed shows as used (%d used: the %d guards); parked %d, past the line cap %d", used, N / 500,
        parked, unseen);
  for (int i = 499; i < N; i += 500)
    tide_free(p[i]);
}

int main(void) {
  CHECK(tide_mallopt(TIDE_M_PURGE_THREAD, 0) == 1 && tide_mallopt(TIDE_M_PURGE_DECAY_MS, 600000) == 1,
        "background purge off, decay 10 min: nothing moves on its own");
  /* The other thread on an arena of its own: its frees of ours are remote. */
  CHECK(tide_mallopt(TIDE_M_ARENA_SHARE, 0) == 1, "an arena per thread (arena_share 0)");
  build_heap();
  CHECK(pipe(to_thread) == 0 && pipe(from_thread) == 0, "pipes");
  pthread_t t;
  char c = 0;
  int started = pthread_create(&t, NULL, remote_freer, NULL) == 0;
  CHECK(started && read(from_thread[0], &c, 1) == 1, "another thread freed %d blocks of ours and waits", NREMOTE);

  const char *text = take_dump();
  parse_dump(text);
  CHECK(nlines > 10, "the dump has chunk lines (%zu)", nlines);
  test_legend_and_maps(text);
  test_headers(text);
  test_states();
  test_remote();
  test_folding();
  test_summary_agrees(text);

  if (started) {
    CHECK(write(to_thread[1], "g", 1) == 1 && pthread_join(t, NULL) == 0, "the other thread exits");
    test_after_thread_exit();
  }
  test_after_trim();
  test_line_cap();
  test_fence();
  test_table_overflow();
  CHECK(tide_heap_check() == 0, "heap sound after the dumps");
  TEST_MAIN_END("unit/inspect");
}
