/* SPDX-License-Identifier: MIT */
/*
 * The randomized differential test: millions of random malloc, calloc,
 * realloc, memalign, posix_memalign, aligned_alloc, free, free_sized and
 * realloc(p, 0) calls over every size kind, against a model of what each
 * live block must hold.
 *
 * Every block gets an id; its bytes are a pattern computed from the id and
 * the offset.  Before a block is reallocated or freed its contents are
 * verified (all of it up to 16 KiB, both ends and a sample beyond), after
 * a realloc the kept prefix is verified and the new tail written, calloc'd
 * blocks must arrive zeroed.  The number of live slots changes in phases,
 * so the heap grows, shrinks and trims; glibc's malloc (this binary links
 * the prefixed library) is called now and then as a second user of brk.
 * tide_heap_check() runs every CHECK_EVERY operations.
 *
 * usage: random_ops [SEED [MAX_OPS [SECONDS]]]
 *   SEED     default: from the clock; printed first, so a failure repeats
 *   MAX_OPS  default 2000000
 *   SECONDS  stop early after this long (a budget, not an assertion)
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "tidemalloc.h"

#ifdef TIDE_TEST_FAST
#define FLAVOUR "fast"
#define CHECK_EVERY 20000
#else
#define FLAVOUR "debug"
#define CHECK_EVERY 5000
#endif

#define NSLOT 8192
#define NFOREIGN 32
#define FULL_VERIFY_LIMIT (16 * 1024)

enum how { BY_MALLOC, BY_CALLOC, BY_REALLOC_NULL, BY_MEMALIGN, BY_POSIX_MEMALIGN,
           BY_ALIGNED_ALLOC };

struct slot {
  unsigned char *p;
  size_t n;
  size_t align; /* 0 unless from an aligned allocation */
  uint64_t id;
};

static struct slot slots[NSLOT];
static void *foreign[NFOREIGN];
static struct th_rng rng;
static uint64_t next_id = 1, op;
static int broken; /* set at the first mismatch: stop, the heap is not trustworthy */

/* ---- the pattern ---- */

static inline uint64_t word_of(uint64_t id, size_t k) {
  uint64_t x = id * 0xD6E8FEB86659FD93ull + (uint64_t)k * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  return x;
}

static inline unsigned char byte_of(uint64_t id, size_t i) {
  return (unsigned char)(word_of(id, i >> 3) >> ((i & 7) * 8));
}

/* write bytes [from, to) of block id */
static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t id) {
  size_t i = from;
  while (i < to && (i & 7))
    p[i] = byte_of(id, i), i++;
  for (; i + 8 <= to; i += 8) {
    uint64_t w = word_of(id, i >> 3);
    memcpy(p + i, &w, 8);
  }
  for (; i < to; i++)
    p[i] = byte_of(id, i);
}

/* first bad offset in [from, to), or SIZE_MAX */
static size_t check_range(const unsigned char *p, size_t from, size_t to, uint64_t id) {
  size_t i = from;
  while (i < to && (i & 7)) {
    if (p[i] != byte_of(id, i))
      return i;
    i++;
  }
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != word_of(id, i >> 3)) {
      for (size_t j = i; j < i + 8; j++)
        if (p[j] != byte_of(id, j))
          return j;
    }
  }
  for (; i < to; i++)
    if (p[i] != byte_of(id, i))
      return i;
  return SIZE_MAX;
}

/* the first n bytes of the block hold id's pattern (sampled when big) */
static size_t verify(const unsigned char *p, size_t n, uint64_t id) {
  if (n <= FULL_VERIFY_LIMIT)
    return check_range(p, 0, n, id);
  size_t bad = check_range(p, 0, 4096, id);
  if (bad == SIZE_MAX)
    bad = check_range(p, n - 4096, n, id);
  for (int s = 1; s < 64 && bad == SIZE_MAX; s++) {
    size_t at = n / 64 * (size_t)s;
    bad = check_range(p, at, at + 64 < n ? at + 64 : n, id);
  }
  return bad;
}

static void report_bad(const char *what, const struct slot *s, size_t at) {
  broken = 1;
  CHECK(0, "op %" PRIu64 ": %s: block id %" PRIu64 " (%zu bytes at %p) differs at offset %zu",
        op, what, s->id, s->n, (void *)s->p, at);
}

/* ---- sizes ---- */

static size_t pick_size(void) {
  uint64_t k = th_rng_range(&rng, 0, 9999);
  if (k < 6000)
    return th_rng_range(&rng, 1, 128);
  if (k < 8500)
    return th_rng_range(&rng, 129, 1024);
  if (k < 9975)
    return th_rng_range(&rng, 1025, 65536);
  return th_rng_range(&rng, 65537, 4u << 20);
}

/* ---- the operations ---- */

static void do_alloc(struct slot *s) {
  size_t n = pick_size();
  uint64_t k = th_rng_range(&rng, 0, 99);
  enum how how = k < 55   ? BY_MALLOC
                 : k < 72 ? BY_CALLOC
                 : k < 78 ? BY_REALLOC_NULL
                 : k < 88 ? BY_MEMALIGN
                 : k < 95 ? BY_POSIX_MEMALIGN
                          : BY_ALIGNED_ALLOC;
  size_t align = 0;
  unsigned char *p = NULL;
  if (how >= BY_MEMALIGN) {
    unsigned lg = (unsigned)th_rng_range(&rng, 3, th_rng_range(&rng, 0, 20) == 0 ? 20 : 12);
    align = (size_t)1 << lg;
  }
  switch (how) {
  case BY_MALLOC:
    p = tide_malloc(n);
    break;
  case BY_CALLOC: {
    size_t a = th_rng_range(&rng, 1, 16), b = n / a + 1;
    n = a * b;
    p = tide_calloc(a, b);
    if (p) {
      size_t i = 0;
      for (; i < n; i++)
        if (p[i])
          break;
      if (i < n) {
        broken = 1;
        CHECK(0, "op %" PRIu64 ": calloc(%zu, %zu) byte %zu is %#x, not 0", op, a, b, i,
              p[i]);
      }
    }
    break;
  }
  case BY_REALLOC_NULL:
    p = tide_realloc(NULL, n);
    break;
  case BY_MEMALIGN:
    p = tide_memalign(align, n);
    break;
  case BY_POSIX_MEMALIGN: {
    void *q = NULL;
    int r = tide_posix_memalign(&q, align, n);
    if (r != 0) {
      broken = 1;
      CHECK(0, "op %" PRIu64 ": posix_memalign(%zu, %zu) returned %d", op, align, n, r);
    }
    p = q;
    break;
  }
  case BY_ALIGNED_ALLOC:
    n = (n + align - 1) / align * align;
    p = tide_aligned_alloc(align, n);
    break;
  }
  if (!p) {
    broken = 1;
    CHECK(0, "op %" PRIu64 ": allocation of %zu bytes (kind %d, align %zu) returned NULL", op,
          n, (int)how, align);
    return;
  }
  size_t want = align > 16 ? align : 16;
  if (((uintptr_t)p & (want - 1)) || tide_malloc_usable_size(p) < n) {
    broken = 1;
    CHECK(0, "op %" PRIu64 ": %p for %zu bytes: alignment %zu or usable size %zu wrong", op,
          (void *)p, n, want, tide_malloc_usable_size(p));
  }
  s->p = p;
  s->n = n;
  s->align = align;
  s->id = next_id++;
  fill_range(p, 0, n, s->id);
}

static void do_free(struct slot *s) {
  size_t bad = verify(s->p, s->n, s->id);
  if (bad != SIZE_MAX) {
    report_bad("before free", s, bad);
    return;
  }
  uint64_t k = th_rng_range(&rng, 0, 99);
  if (k < 10) {
    if (s->align)
      tide_free_aligned_sized(s->p, s->align, s->n);
    else
      tide_free_sized(s->p, s->n);
  } else if (k < 15) {
    void *r = tide_realloc(s->p, 0);
    if (r != NULL) {
      broken = 1;
      CHECK(0, "op %" PRIu64 ": realloc(p, 0) returned %p, not NULL", op, r);
    }
  } else {
    tide_free(s->p);
  }
  s->p = NULL;
}

static void do_realloc(struct slot *s) {
  size_t bad = verify(s->p, s->n, s->id);
  if (bad != SIZE_MAX) {
    report_bad("before realloc", s, bad);
    return;
  }
  size_t n;
  uint64_t k = th_rng_range(&rng, 0, 99);
  if (k < 40)
    n = s->n + th_rng_range(&rng, 0, s->n / 2 + 16); /* grow a little: in place */
  else if (k < 60)
    n = s->n - th_rng_range(&rng, 0, s->n - 1) / 2 + 0; /* shrink */
  else
    n = pick_size();
  if (n == 0)
    n = 1;
  unsigned char *q = tide_realloc(s->p, n);
  if (!q) {
    broken = 1;
    CHECK(0, "op %" PRIu64 ": realloc(%p, %zu) from %zu returned NULL", op, (void *)s->p, n,
          s->n);
    return;
  }
  if (((uintptr_t)q & 15) || tide_malloc_usable_size(q) < n) {
    broken = 1;
    CHECK(0, "op %" PRIu64 ": realloc to %zu gave %p with usable %zu", op, n, (void *)q,
          tide_malloc_usable_size(q));
  }
  size_t keep = n < s->n ? n : s->n;
  bad = verify(q, keep, s->id);
  size_t old = s->n;
  s->p = q;
  s->n = n;
  s->align = 0;
  if (bad != SIZE_MAX) {
    report_bad("kept prefix after realloc", s, bad);
    return;
  }
  if (n > old)
    fill_range(q, old, n, s->id);
}

static void do_foreign(void) {
  size_t i = th_rng_range(&rng, 0, NFOREIGN - 1);
  if (foreign[i]) {
    free(foreign[i]);
    foreign[i] = NULL;
  } else {
    size_t n = th_rng_range(&rng, 1, 100000);
    foreign[i] = malloc(n);
    if (foreign[i])
      memset(foreign[i], 0x77, n);
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : (uint64_t)time(NULL);
  uint64_t max_ops = argc > 2 ? strtoull(argv[2], NULL, 0) : 2000000;
  double budget = argc > 3 ? strtod(argv[3], NULL) : 1e9;
  printf("# stress/random_ops (%s): seed %" PRIu64 ", up to %" PRIu64
         " ops (repeat: %s %" PRIu64 " %" PRIu64 ")\n",
         FLAVOUR, seed, max_ops, argv[0], seed, max_ops);
  fflush(stdout);
  th_rng_seed(&rng, seed);

  struct tide_stats st0, st1;
  tide_stats_get(&st0);
  double t0 = now();
  size_t active = 1024, checks_run = 0;
  uint64_t counts[4] = {0, 0, 0, 0};
  for (op = 0; op < max_ops && !broken; op++) {
    if (op % 200000 == 0) {
      /* a new phase: a different number of live slots */
      size_t next = (size_t)th_rng_range(&rng, 16, NSLOT);
      for (size_t i = next; i < active; i++)
        if (slots[i].p)
          do_free(&slots[i]);
      active = next;
    }
    struct slot *s = &slots[th_rng_range(&rng, 0, active - 1)];
    if (!s->p) {
      do_alloc(s);
      counts[0]++;
    } else if (th_rng_range(&rng, 0, 99) < 65) {
      do_free(s);
      counts[1]++;
    } else {
      do_realloc(s);
      counts[2]++;
    }
    if (op % 997 == 0) {
      do_foreign();
      counts[3]++;
    }
    if (op % CHECK_EVERY == CHECK_EVERY - 1) {
      tide_heap_check();
      checks_run++;
    }
    if ((op & 4095) == 0 && now() - t0 > budget) {
      op++;
      break;
    }
  }
  uint64_t done = op;
  CHECK(!broken, "%" PRIu64 " random ops (%" PRIu64 " allocs, %" PRIu64 " frees, %" PRIu64
                 " reallocs, %" PRIu64 " glibc calls): every block kept its contents",
        done, counts[0], counts[1], counts[2], counts[3]);
  CHECK(tide_heap_check() == 0, "heap sound after the run (%zu checks during it)", checks_run);

  size_t bad = 0;
  for (size_t i = 0; i < NSLOT && !broken; i++) {
    if (slots[i].p && verify(slots[i].p, slots[i].n, slots[i].id) != SIZE_MAX)
      bad++;
    if (slots[i].p)
      tide_free(slots[i].p);
    slots[i].p = NULL;
  }
  for (size_t i = 0; i < NFOREIGN; i++)
    free(foreign[i]);
  CHECK(bad == 0, "every live block intact at the end (%zu not)", bad);
  CHECK(tide_heap_check() == 0, "heap sound after freeing everything");
  tide_stats_get(&st1);
  CHECK(st1.in_use_bytes <= st0.in_use_bytes + (2u << 20),
        "in_use_bytes back to the start once all is freed (%zu -> %zu)", st0.in_use_bytes,
        st1.in_use_bytes);
  CHECK(st1.mmapped_chunks == st0.mmapped_chunks, "no mmapped chunk left (%zu)",
        st1.mmapped_chunks);
  printf("# ran %.1f s\n", now() - t0);
  TEST_MAIN_END("stress/random_ops-" FLAVOUR);
}
