/* SPDX-License-Identifier: MIT */
/*
 * The per-thread cache: creation, batch refill, batch flush, and the
 * flush when a thread exits (see src/tcache.h).
 */
#include "tcache.h"

#include <limits.h>

#include "arena.h"
#include "arenas.h"
#include "mmapped.h"
#include "prof.h"
#include "purge.h"
#include "run.h"

/* A thread without a cache points at this one: no entries, every bin
 * "full", so the fast paths need no NULL test and always miss. */
struct tcache tcache_none = {
    .count = {[0 ... TCACHE_BINS - 1] = UINT16_MAX},
};
__thread struct tcache *tcache_tls = &tcache_none;

static void tcache_set_arena(struct tcache *tc, struct arena *a) {
  tc->arena = a;
  tc->brk_local = a == &main_arena;
  tc->own_kind = tc->brk_local ? 0 : IN_HEAP;
  tc->own_run_bits = tc->own_kind | PREV_INUSE | IN_RUN;
  tcache_refresh_own(tc);
}

void tcache_refresh_own(struct tcache *tc) {
  if (!tc->brk_local) {
    tc->own_mem_lo = (uintptr_t)heap_of(tc->arena) + CHUNK_HDR;
    tc->own_units = HEAP_MAX_SIZE / CHUNK_ALIGN;
    return;
  }
  /* brk_lo is a run boundary (grow_brk), so the header of the run of any
   * block in the range, which free's fast path reads, lies in it. */
  uintptr_t lo = (uintptr_t)__atomic_load_n(&main_arena.brk_lo, __ATOMIC_RELAXED);
  uintptr_t hi = (uintptr_t)__atomic_load_n(&main_arena.brk_hi, __ATOMIC_RELAXED);
  bool ok = lo && hi > lo;
  tc->own_mem_lo = ok ? lo + CHUNK_HDR : 0;
  tc->own_units = ok ? (hi - lo) / CHUNK_ALIGN : 0;
}
uint16_t tcache_limit[TCACHE_BINS];
uint16_t tcache_nbins = TCACHE_SMALL_BINS;

/* Usable sizes 1280 B .. 16 KiB, four a doubling: a request of a power
 * of two gets a block of its size, not the next class (the header's 8
 * bytes and the rounding to 16 are in the chunk size). */
const uint16_t tcache_medium_size[TCACHE_MEDIUM_BINS] = {1296, 1552, 1808, 2064, 2576,  3088,  3600,  4112,
                                                         5136, 6160, 7184, 8208, 10256, 12304, 14352, 16400};
/* The small classes (chunk sizes): 32..144 by 16, then four a doubling
 * of the usable size -- 176, 208, 240, 272, 336, 400, 464, 528, 656, 784,
 * 912, 1040 -- so that the sizes past 128 B, which few programs use in
 * numbers, share 12 runs and bins, not 56 (each size a thread uses keeps a
 * partly cut run and a bin of free blocks).  A power of two up to 1 KiB
 * is a class's usable size less 8.  Chunk size / 16 (2..65; 0 and 1 read
 * as 32 bytes) -> the bin of the smallest class that holds it; bins of
 * other sizes cache nothing, but those of multiples of 64, a few blocks
 * for aligned requests (aligned_bin_limit). */
const uint8_t tcache_class_bin[66] = {
     0,  0,  0,  1,  2,  3,  4,  5,  6,  7,  9,  9, 11, 11, 13, 13, 15, 15, 19, 19, 19, 19, 23,
    23, 23, 23, 27, 27, 27, 27, 31, 31, 31, 31, 39, 39, 39, 39, 39, 39, 39, 39, 47, 47, 47, 47,
    47, 47, 47, 47, 55, 55, 55, 55, 55, 55, 55, 55, 63, 63, 63, 63, 63, 63, 63, 63};

/* ceil((size - 16) / 256) -> the first class at least that big. */
const uint8_t tcache_medium_by_256[65] = {
    0,  0,  0,  0,  0,  0,  1,  2,  3,  4,  4,  5,  5,  6,  6,  7,  7,  8,  8,  8,  8,  9,
    9,  9,  9,  10, 10, 10, 10, 11, 11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13,
    13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15};
size_t tcache_big_bytes = TCACHE_BIG_BYTES;

/* ------------------------------------------------------------ the budget
 * All the threads' caches together hold about TCACHE_TOTAL_BYTES at most:
 * past a few threads, every thread's bins are cut (at level k a bin holds
 * TCACHE_BIN_BYTES >> k, the medium cache TCACHE_BIG_BYTES >> k but room
 * for one block of any size), down to 8 entries a bin.  The limits are
 * read on every free, so a change reaches every cache at once; a cache
 * over its new limit gives back half of a bin the next time the bin is
 * full (a medium block the next time one is freed). */
static struct tide_lock budget_lock;
static size_t budget_count = TCACHE_DEFAULT_COUNT; /* tcache_count */
static unsigned budget_level;
static long live_caches;
/* Every live cache, for the statistics (tcache_cached_bytes), under
 * budget_lock: joined when made, left before its thread's exit flushes. */
static struct tcache *all_caches;

/* A small bin that is no class's holds blocks only for aligned requests
 * (src/api.c, memalign_cached), and only if its size is a multiple of
 * 64: about ALIGNED_BIN_BYTES, at least 4.  (The 14 such bins are left
 * out of a thread's sum, thread_bytes: it bounds what every program's
 * caches hold, and these hold at most 56 KiB more in one that asks for
 * alignment.) */
#define ALIGNED_BIN_BYTES ((size_t)4096)
static size_t aligned_bin_limit(size_t chunk, size_t count, unsigned level) {
  if (chunk % 64)
    return 0;
  size_t cap = (ALIGNED_BIN_BYTES >> level) / chunk;
  if (cap < 4)
    cap = 4;
  return count < cap ? count : cap;
}

static size_t bin_limit(size_t i, size_t count, unsigned level) {
  size_t chunk = tcache_bin_size(i);
  /* Off (tcache_max): every push fails. */
  if (i < TCACHE_SMALL_BINS ? i >= tcache_nbins : chunk > tcache_big_max_chunk)
    return 0;
  if (i < TCACHE_SMALL_BINS && tcache_class_index(chunk) != i)
    return aligned_bin_limit(chunk, count, level);
  /* A small class holds TCACHE_BIN_BYTES for each 16-byte size it
   * serves (with its own for each, larson ran 8 % slower). */
  size_t width = 0;
  for (size_t k = 2; i < TCACHE_SMALL_BINS && k < sizeof tcache_class_bin; k++)
    width += tcache_class_bin[k] == i;
  if (width == 0)
    width = 1;
  size_t cap = (TCACHE_BIN_BYTES >> level) * width / chunk, least = i < TCACHE_SMALL_BINS ? 8 : 2;
  if (cap < least)
    cap = least;
  return count < cap ? count : cap;
}

/* The medium cache's bound at a level: room for one block of any size. */
static size_t big_bytes(unsigned level) {
  size_t b = TCACHE_BIG_BYTES >> level;
  return b > TCACHE_BIG_MAX_CHUNK ? b : TCACHE_BIG_MAX_CHUNK;
}

/* The most one thread's cache holds at a level. */
static size_t thread_bytes(size_t count, unsigned level) {
  size_t sum = big_bytes(level);
  for (size_t i = 0; i < TCACHE_BINS; i++)
    if (i >= TCACHE_SMALL_BINS || tcache_class_index(tcache_bin_size(i)) == i) /* (not the aligned bins) */
      sum += bin_limit(i, count, level) * tcache_bin_size(i);
  return sum;
}

static void copy_limits(struct tcache *tc) {
  for (size_t i = 0; i < TCACHE_BINS; i++)
    __atomic_store_n(&tc->limit[i], __atomic_load_n(&tcache_limit[i], __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}

static void apply_limits(void) { /* budget_lock held */
  for (size_t i = 0; i < TCACHE_BINS; i++)
    __atomic_store_n(&tcache_limit[i], (uint16_t)bin_limit(i, budget_count, budget_level), __ATOMIC_RELAXED);
  for (struct tcache *tc = all_caches; tc; tc = tc->all_next)
    copy_limits(tc);
  __atomic_store_n(&tcache_big_bytes, big_bytes(budget_level), __ATOMIC_RELAXED);
}

/* The level for the caches alive now (budget_lock held). */
static unsigned budget_level_now(void) {
  size_t n = live_caches > 1 ? (size_t)live_caches : 1;
  unsigned level = 0;
  while (level + 1 < TCACHE_LEVELS && n * thread_bytes(budget_count, level) > TCACHE_TOTAL_BYTES)
    level++;
  return level;
}

/* A cache was made (+1) or is gone (-1). */
static void budget_update(long delta) {
  lock_acquire(&budget_lock);
  live_caches += delta;
  unsigned level = budget_level_now();
  if (level != budget_level) {
    budget_level = level;
    apply_limits();
  }
  lock_release(&budget_lock);
}

void tcache_set_count(size_t count) {
  lock_acquire(&budget_lock);
  budget_count = count;
  budget_level = budget_level_now();
  apply_limits();
  lock_release(&budget_lock);
}

void tcache_prefork(void) { lock_acquire(&budget_lock); }
void tcache_postfork_parent(void) { lock_release(&budget_lock); }

void tcache_postfork_child(bool have_cache) {
  lock_init(&budget_lock);
  live_caches = 0;
  all_caches = NULL;
  if (have_cache) { /* the forking thread's, the only one left */
    all_caches = tcache_tls;
    tcache_tls->all_next = tcache_tls->all_prev = NULL;
  }
  budget_update(have_cache ? 1 : 0);
}

/* Bytes (and blocks) sitting in every thread's cache: its bins, its
 * medium cache and its out lists.  Read without the owners' help, so a
 * snapshot that may be off by the blocks moving meanwhile. */
size_t tcache_cached_bytes(size_t *blocks) {
  size_t bytes = 0, n = 0;
  lock_acquire(&budget_lock);
  for (struct tcache *tc = all_caches; tc; tc = tc->all_next) {
    for (size_t i = 0; i < TCACHE_BINS; i++) {
      size_t k = __atomic_load_n(&tc->count[i], __ATOMIC_RELAXED) + __atomic_load_n(&tc->out_count[i], __ATOMIC_RELAXED);
      n += k;
      bytes += k * tcache_bin_size(i);
    }
    n += __atomic_load_n(&tc->nbig, __ATOMIC_RELAXED);
    bytes += __atomic_load_n(&tc->big_bytes, __ATOMIC_RELAXED);
  }
  lock_release(&budget_lock);
  if (blocks)
    *blocks = n;
  return bytes;
}

static void caches_join(struct tcache *tc) {
  lock_acquire(&budget_lock);
  copy_limits(tc);
  tc->all_prev = NULL;
  tc->all_next = all_caches;
  if (all_caches)
    all_caches->all_prev = tc;
  all_caches = tc;
  lock_release(&budget_lock);
}

static void caches_leave(struct tcache *tc) {
  lock_acquire(&budget_lock);
  if (tc->all_prev)
    tc->all_prev->all_next = tc->all_next;
  else if (all_caches == tc)
    all_caches = tc->all_next;
  if (tc->all_next)
    tc->all_next->all_prev = tc->all_prev;
  tc->all_next = tc->all_prev = NULL;
  lock_release(&budget_lock);
}

size_t tcache_max_request = TCACHE_MAX_REQUEST;
size_t tcache_big_max_chunk = TCACHE_BIG_MAX_CHUNK;
/* 0: not created yet; 1: live; 2: off (disabled, or the thread is exiting);
 * 3: suspended (tcache_suspend; none is made meanwhile). */
static __thread unsigned char tcache_state;
static pthread_key_t exit_key;

static void thread_exit_hook(void *unused);

void tcache_init_key(void) { pthread_key_create(&exit_key, thread_exit_hook); }

void tcache_thread_start(void) { pthread_setspecific(exit_key, (void *)1); }

struct tcache *tcache_get_or_create(struct arena *a) {
  if (likely(tcache_state != 0))
    return tcache_state == 1 ? tcache_tls : NULL;
  tcache_state = 2;
  /* On cache lines of its own: the neighbouring blocks may be another
   * thread's, and this is written on every malloc and free. */
  size_t nb;
  /* Under a page with its alignment slack, so that even a program that
   * sets mmap_threshold to 4096 gets its caches from the arena. */
  _Static_assert((sizeof(struct tcache) + 63) / 64 * 64 + 64 + SIZE_SZ + CHUNK_ALIGN_MASK < 4096,
                 "struct tcache outgrew a page");
  request2size((sizeof(struct tcache) + 63) / 64 * 64 + 64, &nb);
  struct chunk *c = arena_malloc(a, nb, NULL);
  if (!c)
    return NULL;
  uintptr_t at = ((uintptr_t)chunk2mem(c) + 63) & ~(uintptr_t)63;
  struct tcache *tc = (struct tcache *)at;
  memset(tc, 0, sizeof *tc);
  tc->block = chunk2mem(c);
  tc->bytes_left = tc->bytes_armed = prof_first_left(tc);
  tcache_set_arena(tc, a);
  tcache_tls = tc;
  tcache_state = 1;
  tcache_thread_start();
  caches_join(tc);
  budget_update(1);
  return tc;
}

void tcache_publish(struct tcache *tc, struct arena *a) {
  tc->mallocs_published += tc->mallocs;
  a->count.malloc_calls += tc->mallocs;
  a->count.free_calls += tc->frees;
  a->count.realloc_calls += tc->reallocs;
  a->count.bytes_requested += tc->bytes_requested + (size_t)(tc->bytes_armed - tc->bytes_left);
  tc->mallocs = tc->frees = tc->reallocs = tc->bytes_requested = 0;
  tc->bytes_armed = tc->bytes_left;
}

struct chunk *tcache_refill(struct tcache *tc, struct arena *a, size_t idx) {
  size_t nb = tcache_bin_size(idx);
  struct chunk *first = arena_malloc(a, nb, NULL);
  if (!first || chunk_is_mmapped(first))
    return first;
  /* The rest of the batch in one go, from where chunks of this size are
   * cheapest to take. */
  struct chunk *more[TCACHE_MAX_BATCH];
  size_t want = tcache_limit[idx] / 2u;
  if (want > TCACHE_MAX_BATCH)
    want = TCACHE_MAX_BATCH;
  if (want > tcache_refill_ramp(tc, idx, nb))
    want = tcache_refill_ramp(tc, idx, nb);
  tcache_refilled(tc, idx);
  if (want > 1u && tc->count[idx] + want - 1 <= tcache_limit[idx]) {
    size_t got = arena_malloc_more(a, nb, more, want - 1);
    /* Pushed in reverse, so they come out in address order. */
    while (got > 0) {
      struct chunk *c = more[--got];
      /* Carved where a free key may linger (see hand_out in api.c). */
      ((struct tcache_entry *)chunk2mem(c))->key = 0;
      if (!tcache_push(tc, chunk2mem(c), idx))
        arena_free(a, c, true); /* the limit fell meanwhile (the budget, mallopt) */
    }
  }
  tcache_publish(tc, a);
  tcache_refresh_own(tc);
  return first;
}

/* ------------------------------------------------------- remote stacks */

static inline struct tcache_entry *entry_next(struct tcache_entry *e) {
  return (struct tcache_entry *)link_reveal(&e->next, (struct chunk *)e->next);
}

/* Push a run first..last of one bin's entries, all of arena a, onto a's
 * remote stack: one compare-and-swap for the whole run. */
static void remote_push(struct arena *a, size_t idx, struct tcache_entry *first, struct tcache_entry *last) {
  struct tcache_entry *head = __atomic_load_n(&a->remote[idx], __ATOMIC_RELAXED);
  do
    last->next = (struct tcache_entry *)link_protect(&last->next, (struct chunk *)head);
  while (!__atomic_compare_exchange_n(&a->remote[idx], &head, first, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
  /* After the push, so a drain that clears the flag first sees the push. */
  if (!__atomic_load_n(&a->remote_pending, __ATOMIC_SEQ_CST))
    __atomic_store_n(&a->remote_pending, 1, __ATOMIC_SEQ_CST);
  purge_note_remote();
}

/* Entries back to a (locked): parked in its fast bins (from_cache), or
 * fully checked and freed. */
static void free_entries(struct arena *a, struct tcache_entry *e, bool from_cache) {
  while (e) {
    struct tcache_entry *next = entry_next(e);
    if (unlikely(((uintptr_t)next & CHUNK_ALIGN_MASK) | (e->key ^ free_key(e))))
      tide_fatal(tide_current_fn, "corrupted thread-cache entry (written after free?)");
    e->key = 0;
    arena_free(a, mem2chunk(e), from_cache);
    e = next;
  }
}

void tcache_drain_remote(struct arena *a) {
  if (likely(!tcache_remote_pending(a)))
    return;
  /* Cleared before looking, so a push we miss sets it again. */
  __atomic_store_n(&a->remote_pending, 0, __ATOMIC_SEQ_CST);
  for (size_t i = 0; i < TCACHE_SMALL_BINS; i++)
    if (__atomic_load_n(&a->remote[i], __ATOMIC_RELAXED))
      free_entries(a, __atomic_exchange_n(&a->remote[i], NULL, __ATOMIC_ACQUIRE), true);
}

void *tcache_adopt_remote(struct tcache *tc, struct arena *a, size_t idx) {
  if (idx >= TCACHE_SMALL_BINS || __atomic_load_n(&a->remote[idx], __ATOMIC_RELAXED) == NULL)
    return NULL;
  struct tcache_entry *first = __atomic_exchange_n(&a->remote[idx], NULL, __ATOMIC_ACQUIRE);
  if (!first)
    return NULL;
  /* Walk what fits in the bin (counting, and checking each entry: it sat
   * in memory anyone could write); the rest goes to the fast bins. */
  size_t nb = tcache_bin_size(idx);
  unsigned n = 1, room = tcache_limit[idx] > 1 ? tcache_limit[idx] : 1;
  struct tcache_entry *e = first, *rest = NULL;
  for (;;) {
    if (unlikely(e->key != free_key(e) || chunk_size(mem2chunk(e)) != nb))
      tide_fatal("malloc", "corrupted remote-free entry (written after free?)");
    struct tcache_entry *next = entry_next(e);
    if (unlikely((uintptr_t)next & CHUNK_ALIGN_MASK))
      tide_fatal("malloc", "corrupted remote-free entry (written after free?)");
    if (!next)
      break;
    if (n == room) {
      rest = next;
      e->next = (struct tcache_entry *)link_protect(&e->next, NULL);
      break;
    }
    e = next;
    n++;
  }
  tc->head[idx] = entry_next(first);
  tc->count[idx] = (uint16_t)(n - 1);
  first->key = 0;
  if (rest) {
    const char *saved = tide_current_fn;
    tide_current_fn = "malloc";
    lock_acquire(&a->lock);
    free_entries(a, rest, true);
    lock_release(&a->lock);
    tide_current_fn = saved;
  }
  return first;
}

/* A cached entry about to leave the cache: its key says it was cached
 * and nothing wrote over it since. */
static void check_cached(struct tcache_entry *e) {
  if (unlikely(e->key != free_key(e)))
    tide_fatal("free", "corrupted thread-cache entry (written after free?)");
}

/* Give one bin's list of cached chunks back: blocks of runs to their runs
 * (one lock per run of consecutive blocks of one run), other chunks to
 * their arenas (one lock, or one push, per run of chunks of one arena).
 * me: the cache they leave; live: the overflow of a live cache (arena
 * chunks are parked uncoalesced for the next refill).  At most max
 * entries go; returns the first that stays (or NULL). */
static struct tcache_entry *flush_list(struct tcache *me, struct tcache_entry *e, size_t idx, bool live,
                                       unsigned max) {
  const char *saved = tide_current_fn;
  tide_current_fn = "free";
  while (e && max > 0) {
    struct tcache_entry *first = e, *last = e;
    struct chunk *c = mem2chunk(e);
    if (chunk_in_run(c)) {
      /* The first block in full (run_checked); the blocks after it that
       * lie in that run need only carry its size field -- and every one
       * the key of a cached entry: a link written over after free could
       * point at a live block of the run, which would be given back as
       * free (its memory written, the run counted emptier than it is). */
      struct run *r = run_checked(c, "free");
      uintptr_t lo = (uintptr_t)run_block(r, 0), span = (uintptr_t)r->nblocks * run_block_size(r);
      size_t block_sf = r->block_sf;
      unsigned n = 1;
      check_cached(e);
      for (e = entry_next(e); e && n < max; e = entry_next(e)) {
        struct chunk *b = mem2chunk(e);
        if ((uintptr_t)b - lo >= span)
          break;
        if (unlikely(b->size != block_sf))
          run_bad_block(b, "free");
        check_cached(e);
        last = e;
        n++;
      }
      max -= n;
      run_give_back(r, first, last, n, me, NULL);
      continue;
    }
    /* A run of chunks of one arena, each of the bin's size: a size
     * written over while cached would coalesce over its live neighbour
     * in the arena. */
    struct arena *a = arenas_of_chunk(c, c->size);
    if (unlikely(!a))
      tide_fatal("free", "invalid pointer in thread cache (corrupted entry)");
    size_t bin_size = tcache_bin_size(idx);
    if (unlikely(chunk_size(c) != bin_size))
      tide_fatal("free", "invalid size of a cached block (its header was overwritten)");
    unsigned n = 1;
    for (e = entry_next(e); e && n < max; e = entry_next(e), n++) {
      c = mem2chunk(e);
      if (chunk_in_run(c) || arenas_of_chunk(c, c->size) != a)
        break;
      if (unlikely(chunk_size(c) != bin_size))
        tide_fatal("free", "invalid size of a cached block (its header was overwritten)");
      last = e;
    }
    max -= n;
    /* Another thread's arena is not locked at all: the run goes on its
     * remote stack, which its thread adopts on its next miss in this bin
     * (or a drain under the lock empties).  So a consumer never contends
     * with the producer whose blocks it frees. */
    if (live && a != arenas_thread_arena() && idx < TCACHE_SMALL_BINS) {
      remote_push(a, idx, first, last);
      continue;
    }
    last->next = (struct tcache_entry *)link_protect(&last->next, NULL);
    lock_acquire(&a->lock);
    free_entries(a, first, live);
    tcache_drain_remote(a);
    lock_release(&a->lock);
  }
  tide_current_fn = saved;
  return e;
}

static __attribute__((noreturn)) void double_free_elsewhere(void *mem);

/* ------------------------------------------------------ medium chunks */

static uintptr_t *big_key(struct chunk *c) { return &((uintptr_t *)chunk2mem(c))[1]; }

static void big_remove(struct tcache *tc, unsigned i) {
  tc->big_bytes -= tc->big_sf[i] & ~CHUNK_FLAGS;
  for (; i + 1 < tc->nbig; i++) {
    tc->big[i] = tc->big[i + 1];
    tc->big_sf[i] = tc->big_sf[i + 1];
  }
  tc->nbig--;
}

/* A medium chunk leaving the cache is checked as the arena would check
 * it: the size it was cached with, the key, and the next header ("in
 * use", the same kind of region). */
static void big_check(struct chunk *c, size_t sf, const char *fn) {
  /* (Its P bit follows the block before it, which may come and go.) */
  if (unlikely((c->size ^ sf) & ~PREV_INUSE))
    tide_fatal(fn, "invalid size of a cached block (its header was overwritten)");
  if (unlikely(*big_key(c) != free_key(chunk2mem(c))))
    tide_fatal(fn, "corrupted thread-cache entry (written after free?)");
  size_t nsf = chunk_at(c, sf & ~CHUNK_FLAGS)->size;
  if (unlikely((nsf & (PREV_INUSE | IS_MMAPPED | IN_HEAP)) != (PREV_INUSE | (sf & IN_HEAP))))
    tide_fatal(fn, "invalid next size after a cached block (its end was overwritten?)");
}

void *tcache_big_take(struct tcache *tc, size_t nb) {
  size_t most = nb + nb / 4;
  for (unsigned i = tc->nbig; i-- > 0;) { /* newest first: warm in cache */
    struct chunk *c = tc->big[i];
    size_t size = tc->big_sf[i] & ~CHUNK_FLAGS;
    if (size < nb || size > most)
      continue;
    big_check(c, tc->big_sf[i], "malloc");
    *big_key(c) = 0;
    big_remove(tc, i);
    return chunk2mem(c);
  }
  return NULL;
}

bool tcache_big_contains(struct tcache *tc, struct chunk *p) {
  for (unsigned i = 0; i < tc->nbig; i++)
    if (tc->big[i] == p)
      return true;
  return false;
}

/* Back to its arena, fully checked and coalesced. */
static void big_release(struct chunk *c) {
  *big_key(c) = 0;
  struct arena *a = arenas_of_chunk(c, c->size);
  if (unlikely(!a))
    tide_fatal(tide_current_fn, "invalid pointer in thread cache (corrupted entry)");
  lock_acquire(&a->lock);
  arena_free(a, c, false);
  lock_release(&a->lock);
}

static void big_flush(struct tcache *tc) {
  while (tc->nbig > 0) {
    struct chunk *c = tc->big[tc->nbig - 1];
    big_check(c, tc->big_sf[tc->nbig - 1], tide_current_fn);
    big_remove(tc, tc->nbig - 1);
    big_release(c);
  }
}

void tcache_big_flush_mine(void) {
  struct tcache *tc = tcache_mine();
  if (tc)
    big_flush(tc);
}

bool tcache_big_put(struct tcache *tc, struct chunk *p) {
  if (unlikely(*big_key(p) == free_key(chunk2mem(p)))) {
    if (tcache_big_contains(tc, p))
      tide_fatal("free", "double free detected in tcache");
    double_free_elsewhere(chunk2mem(p));
  }
  if (opt.tcache_count == 0)
    return false;
  size_t size = chunk_size(p);
  size_t bound = __atomic_load_n(&tcache_big_bytes, __ATOMIC_RELAXED);
  if (size > bound)
    return false;
  while (tc->nbig == TCACHE_BIG_SLOTS || tc->big_bytes + size > bound) {
    struct chunk *old = tc->big[0];
    big_check(old, tc->big_sf[0], "free");
    big_remove(tc, 0);
    big_release(old);
  }
  *big_key(p) = free_key(chunk2mem(p));
  tc->big_sf[tc->nbig] = p->size;
  tc->big[tc->nbig++] = p;
  tc->big_bytes += size;
  return true;
}

void tcache_arena_changed(struct arena *a) {
  if (tcache_state != 1)
    return;
  tcache_set_arena(tcache_tls, a);
}

struct tcache *tcache_mine(void) { return tcache_state == 1 ? tcache_tls : NULL; }

struct tcache *tcache_mine_or_create(void) {
  if (likely(tcache_state != 0))
    return tcache_mine();
  struct arena *a = arenas_lock_mine();
  struct tcache *tc = tcache_get_or_create(a);
  lock_release(&a->lock);
  return tc;
}

static __thread unsigned char state_before_suspend;

struct tcache *tcache_suspend(void) {
  struct tcache *tc = tcache_tls;
  state_before_suspend = tcache_state;
  tcache_state = 3; /* no cache is made meanwhile either */
  tcache_tls = &tcache_none;
  return tc;
}

void tcache_resume(struct tcache *tc) {
  tcache_tls = tc;
  tcache_state = state_before_suspend;
}

static bool list_contains(struct tcache_entry *e, unsigned count, void *mem) {
  for (unsigned n = 0; e && n <= count; n++) {
    if (e == mem)
      return true;
    e = entry_next(e);
    if ((uintptr_t)e & CHUNK_ALIGN_MASK)
      tide_fatal("free", "unaligned tcache chunk detected");
  }
  return false;
}

/* mem is being freed and carries the free key, but is not in this
 * thread's cache.  Every block the allocator hands out has that word
 * cleared (tcache pops, api.c's hand_out), and the key is random and
 * never shown, so the block is free already: on a fast bin (which is
 * named), or in another thread's cache or on its way back to its arena.
 * No lock may be held. */
static void double_free_elsewhere(void *mem) {
  struct chunk *p = mem2chunk(mem);
  struct arena *a = arenas_of_chunk(p, p->size);
  bool in_fastbin = false;
  if (a) {
    lock_acquire(&a->lock);
    in_fastbin = arena_fastbin_contains(a, p);
    lock_release(&a->lock);
  }
  tide_fatal("free", in_fastbin ? "double free detected (the block is in a fast bin)"
                                : "double free detected (the block is in a thread cache or on its way back "
                                  "to its arena)");
}

bool tcache_contains(struct tcache *tc, void *mem, size_t idx) {
  return list_contains(tc->head[idx], tc->count[idx], mem) ||
         list_contains(tc->out[idx], tc->out_count[idx], mem);
}

/* (Keeps errno: a contended arena lock may wait in the kernel.) */
static void out_flush(struct tcache *tc, size_t idx) {
  int saved = errno;
  struct tcache_entry *list = tc->out[idx];
  tc->out_bytes -= tc->out_count[idx] * tcache_bin_size(idx);
  tc->out[idx] = NULL;
  tc->out_count[idx] = 0;
  flush_list(tc, list, idx, true, UINT_MAX);
  errno = saved;
}

bool tcache_free_foreign(struct tcache *tc, void *mem, size_t idx) {
  struct tcache_entry *e = mem;
  if (tc == &tcache_none || tcache_state != 1 || tcache_limit[idx] == 0)
    return false; /* no cache (yet), or this size is not cached: the slow path */
  if (unlikely(e->key == free_key(e))) {
    if (tcache_contains(tc, mem, idx))
      tide_fatal("free", "double free detected in tcache");
    double_free_elsewhere(mem);
  }
  e->next = (struct tcache_entry *)link_protect(&e->next, (struct chunk *)tc->out[idx]);
  e->key = free_key(e);
  tc->out[idx] = e;
  tc->out_bytes += tcache_bin_size(idx);
  /* Handed back a batch at a time: one push per owning arena. */
  if (++tc->out_count[idx] >= TCACHE_OUT_BATCH)
    out_flush(tc, idx);
  if (tc->out_bytes > TCACHE_OUT_BYTES)
    for (size_t i = 0; i < TCACHE_BINS; i++)
      if (tc->out[i])
        out_flush(tc, i);
  return true;
}

void tcache_free_slow(struct tcache *tc, void *mem, size_t idx) {
  struct tcache_entry *e = mem;
  if (e->key == free_key(e)) {
    if (tcache_contains(tc, mem, idx))
      tide_fatal("free", "double free detected in tcache");
    double_free_elsewhere(mem);
  }
  if (tc->count[idx] >= tcache_limit[idx]) {
    /* The newest entries go, down to half the limit: the walk to find
     * where to cut is the one that checks and groups them on their way
     * out (the older half stays for the next mallocs). */
    unsigned keep = tcache_limit[idx] / 2u;
    unsigned go = tc->count[idx] > keep ? tc->count[idx] - keep : 0;
    tc->head[idx] = flush_list(tc, tc->head[idx], idx, true, go);
    tc->count[idx] = (uint16_t)(tc->count[idx] - go);
  }
  if (!tcache_push(tc, mem, idx)) {
    /* limit 0: nothing is cached */
    struct chunk *p = mem2chunk(mem);
    struct arena *a = arenas_of_chunk(p, p->size);
    lock_acquire(&a->lock);
    arena_free(a, p, false);
    lock_release(&a->lock);
  }
}

static void thread_exit_hook(void *unused) {
  (void)unused;
  struct tcache *tc = tcache_state == 1 ? tcache_tls : NULL;
  tcache_tls = &tcache_none;
  tcache_state = 2;
  if (tc) {
    caches_leave(tc);
    for (size_t i = 0; i < TCACHE_BINS; i++) {
      struct tcache_entry *list = tc->head[i];
      tc->head[i] = NULL;
      tc->count[i] = 0;
      flush_list(tc, list, i, false, UINT_MAX);
      list = tc->out[i];
      tc->out[i] = NULL;
      tc->out_count[i] = 0;
      flush_list(tc, list, i, false, UINT_MAX);
      tc->out_bytes = 0;
    }
    tide_current_fn = "free";
    big_flush(tc);
    run_thread_exit(tc); /* after the flushes: they give blocks back to its runs */
    /* The cache's own block: an mmapped chunk when its arena was full. */
    struct chunk *p = mem2chunk(tc->block);
    struct arena *a = tc->arena;
    lock_acquire(&a->lock);
    tcache_publish(tc, a);
    lock_release(&a->lock);
    if (chunk_is_mmapped(p)) {
      mmapped_free(p);
    } else {
      a = arenas_of_chunk(p, p->size);
      if (unlikely(!a))
        tide_fatal("free", "invalid pointer (the thread cache's own block is corrupted)");
      lock_acquire(&a->lock);
      arena_free(a, p, false);
      lock_release(&a->lock);
    }
    budget_update(-1);
  }
  arenas_thread_exit();
}
