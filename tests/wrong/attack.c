/* SPDX-License-Identifier: MIT */
/*
 * Heap-exploitation techniques, as an attacker would run them against the
 * default build (issue 13).  Each case runs in a forked child and plays
 * one technique through to its end: if the allocator hands out the
 * attacker's address, writes where the attacker chose, or unmaps a live
 * neighbour, the child prints "EXPLOITED: ..." and exits 0.  The parent
 * wants each child to die of SIGABRT with "tidemalloc: <function>(): "
 * first, before the attacker gets anything -- or, for the leak case, to
 * exit 3: the read revealed nothing.
 *
 * The cases know tidemalloc's layout (tests/README.md, src/chunk.h): a
 * chunk's header is the two words before the block; a cached block holds
 * its safe-linked next pointer and a key; a free chunk in a bin holds
 * fd, bk, fd_nextsize, bk_nextsize.
 *
 * Built on the prefixed archive (tide_* names): the default checks, no
 * heap checker.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "tidemalloc.h"

#define W(p, i) (((uintptr_t *)(void *)(p))[i])
#define SIZE_FIELD(mem) W(mem, -1)
#define PREV_SIZE(mem) W(mem, -2)

static void exploited(const char *what) {
  fprintf(stderr, "EXPLOITED: %s\n", what);
  _exit(0);
}

/* glibc 2.36's mangling, which an attacker who knows the scheme applies. */
static uintptr_t glibc_mangle(void *slot, uintptr_t p) { return ((uintptr_t)slot >> 12) ^ p; }

/* A fake chunk on the stack: size field, and a plausible next header. */
struct fake {
  uintptr_t w[64];
} __attribute__((aligned(64)));

/* 1. One read of a freed, cached block reveals a heap address when links
 *    are mangled as glibc does: (slot >> 12) ^ next. */
static void c_leak(void *arg) {
  (void)arg;
  char *a = tide_malloc(40), *b = tide_malloc(40);
  tide_free(a);
  tide_free(b); /* b's next is a */
  uintptr_t seen = W(b, 0);                             /* use after free: a read */
  if ((seen ^ ((uintptr_t)b >> 12)) == (uintptr_t)a) /* unmangled with the public formula */
    exploited("a cached block's link reveals a heap address");
  _exit(3);
}

/* 1, 2. Fast-bin poisoning (no thread cache: ptmalloc's own path): the
 *    freed chunk's link is pointed at a fake chunk on the stack, mangled
 *    as glibc does; two mallocs later the stack comes back. */
static void c_fastbin_to_stack(void *arg) {
  (void)arg;
  tide_mallopt(TIDE_M_TCACHE_COUNT, 0);
  struct fake f;
  memset(&f, 0, sizeof f);
  f.w[1] = 0x30 | 1; /* size 48, P */
  f.w[7] = 0x30 | 1;
  char *a = tide_malloc(40), *g = tide_malloc(40);
  tide_free(a);
  W(a, 0) = glibc_mangle(a, (uintptr_t)&f.w[0]); /* use after free: a write */
  char *x = tide_malloc(40);
  char *y = tide_malloc(40);
  if (y == (char *)&f.w[2])
    exploited("malloc returned a stack address (fast-bin poisoning)");
  (void)x;
  (void)g;
  _exit(3);
}

/* 2. Thread-cache poisoning with a key read from another freed block:
 *    the key of one block must not vouch for a forged one. */
static void c_tcache_forged_key(void *arg) {
  (void)arg;
  struct fake f;
  memset(&f, 0, sizeof f);
  char *a = tide_malloc(40), *b = tide_malloc(40);
  tide_free(a);
  tide_free(b);
  uintptr_t key = W(b, 1); /* a leaked key */
  f.w[1] = 0x30 | 1;
  f.w[3] = key;                                  /* the fake entry carries it */
  W(b, 0) = glibc_mangle(b, (uintptr_t)&f.w[2]); /* b's next: the fake */
  char *x = tide_malloc(40);
  char *y = tide_malloc(40);
  if (y == (char *)&f.w[2])
    exploited("malloc returned a stack address (thread-cache poisoning)");
  (void)x;
  _exit(3);
}

/* 3. Unsafe unlink in blocks over 64 KiB: a fake free chunk inside a's
 *    data whose fd/bk point around a global that holds its address, and
 *    b's header overwritten (prev_size, P clear) so that freeing b merges
 *    backwards into the fake one.  The unlink then writes &ptr - 3 words
 *    into ptr: the program's own pointer now points at itself. */
static uintptr_t *victim_ptr[4];
static void c_unsafe_unlink(void *arg) {
  (void)arg;
  enum { N = 100 * 1024 };
  char *a = tide_malloc(N), *b = tide_malloc(N), *g = tide_malloc(64);
  if (b != a + tide_malloc_usable_size(a) + 8)
    fprintf(stderr, "a and b not adjacent\n");
  uintptr_t *fake = (uintptr_t *)(void *)a; /* the fake chunk starts at a's data */
  size_t fsize = (size_t)(b - 16 - a);      /* from a's data to b's header */
  victim_ptr[0] = fake;
  fake[0] = 0;
  fake[1] = fsize | 1;
  fake[2] = (uintptr_t)&victim_ptr[0] - 3 * sizeof(void *); /* fd: fd->bk is victim_ptr[0] */
  fake[3] = (uintptr_t)&victim_ptr[0] - 2 * sizeof(void *); /* bk: bk->fd is victim_ptr[0] */
  PREV_SIZE(b) = fsize;                                     /* the overflow into b's header */
  SIZE_FIELD(b) &= ~(uintptr_t)1;
  tide_free(b);
  if (victim_ptr[0] != fake)
    exploited("unlink wrote an attacker-chosen value into the program's data");
  (void)g;
  _exit(3);
}

/* 4. Large-bin attack: a chunk in a large bin has its bk_nextsize pointed
 *    at (target - 4 words); a smaller chunk sorted into that bin then
 *    writes its own address into target. */
static uintptr_t target_word;
static void c_largebin_attack(void *arg) {
  (void)arg;
  /* Guards over 64 KiB: arena chunks (small ones would come from runs),
   * so l1 and l2 do not merge into top when freed. */
  char *l1 = tide_malloc(100000), *g1 = tide_malloc(70000);
  char *l2 = tide_malloc(90000), *g2 = tide_malloc(70000);
  tide_free(l1);
  char *s1 = tide_malloc(120000); /* l1 is sorted into its large bin */
  W(l1, 3) = (uintptr_t)&target_word - 4 * sizeof(void *); /* its bk_nextsize */
  tide_free(l2);
  char *s2 = tide_malloc(120000); /* l2: smaller than everything in the bin */
  if (target_word != 0)
    exploited("sorting a chunk into a large bin wrote to an attacker-chosen address");
  (void)g1;
  (void)g2;
  (void)s1;
  (void)s2;
  _exit(3);
}

/* 5. A live block's size enlarged by an overflow from the block before
 *    it, so that it covers its live neighbour; freed and allocated again,
 *    it overlaps that neighbour.  Blocks of runs: a small size class and
 *    a medium one.  (An arena chunk -- a block over 4 KiB -- enlarged
 *    exactly onto a later chunk's boundary is not caught: the boundary-tag
 *    format has nothing that tells, in glibc either; see README,
 *    "Hardening".) */
static void enlarge_then_reuse(size_t n) {
  char *a = tide_malloc(n), *b = tide_malloc(n), *g = tide_malloc(n);
  if (b != a + tide_malloc_usable_size(a) + 8)
    fprintf(stderr, "a and b not adjacent\n");
  size_t chunk = (size_t)(b - a);
  uintptr_t flags = SIZE_FIELD(a) & 15;
  SIZE_FIELD(a) = (2 * chunk) | flags; /* the overflow into a's header */
  tide_free(a);
  char *c = tide_malloc(2 * chunk - 16);
  if (c == a)
    exploited("a block overlapping a live one was handed out");
  (void)g;
  _exit(3);
}
static void c_enlarged_run_block(void *arg) { (void)arg; enlarge_then_reuse(200); }
static void c_enlarged_medium(void *arg) { (void)arg; enlarge_then_reuse(3000); }
/* ... and past the end of its region: its size reaches beyond top. */
static void c_enlarged_past_top(void *arg) {
  (void)arg;
  tide_mallopt(TIDE_M_TCACHE_COUNT, 0);
  char *a = tide_malloc(100000);
  SIZE_FIELD(a) = SIZE_FIELD(a) + ((uintptr_t)64 << 20);
  tide_free(a);
  char *c = tide_malloc(60 << 20);
  if (c == a)
    exploited("a block reaching past its region was handed out");
  _exit(3);
}

/* 6. An mmapped chunk's size enlarged to cover the mapping after it:
 *    free would unmap (or keep, and later hand out) the live neighbour.
 *    (Blocks over 32 MiB: always mapped, never kept without the thread.) */
static void c_mmapped_size(void *arg) {
  (void)arg;
  enum { N = 40 << 20 };
  char *q = tide_malloc(N), *p = tide_malloc(N);
  size_t len = (size_t)(SIZE_FIELD(p) & ~(uintptr_t)15);
  if (p - 16 + len != q - 16)
    fprintf(stderr, "p's mapping does not end at q's\n");
  memset(q, 1, N);
  SIZE_FIELD(p) += (SIZE_FIELD(q) & ~(uintptr_t)15);
  tide_free(p);
  unsigned char vec;
  if (mincore(q - 16, 4096, &vec) != 0)
    exploited("free unmapped a live neighbouring mapping");
  char *r = tide_malloc(2 * N);
  if (r == p)
    exploited("a kept mapping overlapping a live one was handed out");
  _exit(3);
}

/* 7. House of force: top's size set to all ones, then one malloc of the
 *    distance to the target and the next malloc returns the target. */
static void c_house_of_force(void *arg) {
  (void)arg;
  tide_mallopt(TIDE_M_TCACHE_COUNT, 0);
  tide_mallopt(TIDE_M_MMAP_MAX, 0);
  struct fake target; /* on the stack: above the heap */
  char *a = tide_malloc(100000); /* the last chunk before top */
  char *top = a + tide_malloc_usable_size(a) + 8 - 16;
  W(top, 1) = ~(uintptr_t)0; /* the overflow into top's header */
  uintptr_t want = (uintptr_t)&target.w[2];
  size_t dist = (size_t)(want - 32 - (uintptr_t)top); /* wraps when the target is below */
  char *x = tide_malloc(dist);
  char *y = tide_malloc(64);
  if (y == (char *)want)
    exploited("malloc returned an attacker-chosen address (house of force)");
  (void)x;
  _exit(3);
}

/* 8. One byte of a cached block's link written after free (XOR
 *    safe-linking keeps the other bytes, so no secret is needed): the
 *    link now leads to a live neighbour in the same run, whose first word
 *    the attacker made a copy of a freed block's link, so the list goes
 *    on cleanly.  When the cache is flushed (its thread exits), the live
 *    block must not go back to its run as free: its memory would be
 *    written, and it would be handed out again. */
#define FL_SIZE 56
#define FL_N 640
static char *fl_live;
static void *fl_thread(void *arg) {
  (void)arg;
  static char *p[FL_N];
  for (int i = 0; i < FL_N; i++) {
    p[i] = tide_malloc(FL_SIZE);
    memset(p[i], 0x5a, FL_SIZE);
  }
  int j = -1;
  for (int i = 100; i + 2 < FL_N && j < 0; i++) {
    uintptr_t f = (uintptr_t)p[i], l = (uintptr_t)p[i + 1], e = (uintptr_t)p[i + 2];
    if (l == f + 64 && e == l + 64 && (f ^ l) < 256 && (l >> 12) == (e >> 12))
      j = i;
  }
  if (j < 0)
    _exit(4); /* no such layout: the case cannot be played */
  char *f = p[j], *e = p[j + 2];
  fl_live = p[j + 1];
  tide_free(f);
  tide_free(e);                    /* e's link leads to f */
  W(fl_live, 0) = W(e, 0);         /* the live block's first word: a link that leads on to f */
  W(e, 0) ^= (uintptr_t)f ^ (uintptr_t)fl_live; /* one byte: e's link now leads to the live block */
  for (int i = 0; i < FL_N; i++)
    if (i < j || i > j + 2)
      tide_free(p[i]);
  return NULL; /* the exit flush */
}
static void c_flush_to_live(void *arg) {
  (void)arg;
  pthread_t t;
  pthread_create(&t, NULL, fl_thread, NULL);
  pthread_join(t, NULL);
  for (int i = 16; i < FL_SIZE; i++)
    if ((unsigned char)fl_live[i] != 0x5a)
      exploited("a live block's memory was written as a free block's");
  for (int k = 0; k < 2 * FL_N; k++)
    if (tide_malloc(FL_SIZE) == fl_live)
      exploited("a live block was handed out again");
  _exit(3);
}

struct acase {
  const char *name, *func;
  void (*fn)(void *);
  int leak_only; /* exit 3 is the good outcome */
};
static const struct acase cases[] = {
    {"1 safe-linking: a cached link read after free", NULL, c_leak, 1},
    {"1 fast-bin poisoning to the stack", "malloc", c_fastbin_to_stack, 0},
    {"2 thread-cache poisoning with a leaked key", "malloc", c_tcache_forged_key, 0},
    {"3 unsafe unlink of a forged chunk (100 KiB)", "free", c_unsafe_unlink, 0},
    {"4 large-bin attack through bk_nextsize", "malloc", c_largebin_attack, 0},
    {"5 run block enlarged over its neighbour", "free", c_enlarged_run_block, 0},
    {"5 medium-class block enlarged over its neighbour", "free", c_enlarged_medium, 0},
    {"5 block enlarged past its region", "free", c_enlarged_past_top, 0},
    {"6 mmapped chunk's size over its neighbour", "free", c_mmapped_size, 0},
    {"7 house of force (top size -1)", "malloc", c_house_of_force, 0},
    {"8 a cached link pointed at a live block of its run", "free", c_flush_to_live, 0},
};

int main(void) {
  struct rlimit rl = {0, 0};
  setrlimit(RLIMIT_CORE, &rl);
  printf("# wrong/attack\n");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct acase *w = &cases[i];
    struct th_child c;
    if (th_run_child(&c, w->fn, NULL, 20) != 0) {
      CHECK(0, "%s: could not fork", w->name);
      continue;
    }
    int won = strstr(c.err, "EXPLOITED") != NULL;
    if (w->leak_only) {
      CHECK(!won && WIFEXITED(c.status) && WEXITSTATUS(c.status) == 3, "%s: %s, \"%s\"", w->name,
            th_status_str(c.status), th_first_line(&c));
      continue;
    }
    char want[64];
    snprintf(want, sizeof want, "tidemalloc: %s(): ", w->func);
    CHECK(!won && th_child_aborted(&c) && strncmp(th_first_line(&c), want, strlen(want)) == 0, "%s: %s, \"%s\"",
          w->name, th_status_str(c.status), th_first_line(&c));
  }
  TEST_MAIN_END("wrong/attack");
}
