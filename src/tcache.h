/* SPDX-License-Identifier: MIT */
/*
 * The per-thread cache (src/tcache.c): bins that only their thread
 * touches, so malloc and free of small blocks take no lock and no atomic
 * instruction -- one per small size class (32 to 1040 bytes: by 16 up to
 * 144, then four a doubling; a request is rounded up to its class), then
 * one per medium size class (1280 B to 16 KiB usable, four a doubling; a
 * request is rounded up to its class) -- each a LIFO list of free chunks, which
 * stay "in use" as far as their arena knows.  The small bins of multiples
 * of 64 that are no class's hold a few run blocks for aligned requests.
 *
 *   entry (the chunk's user memory):  [next, safe-linked][key]
 *
 * A miss refills a bin from the thread's runs (src/run.h), a batch under
 * the run's lock (medium classes past 4 KiB: the medium cache, then the
 * arena, a chunk at a time); a full bin hands its newest half back (run blocks to
 * their runs, other chunks to their arenas, a lock or a push per group),
 * which is also how frees of other threads' blocks go back in bulk.
 */
#ifndef TIDE_TCACHE_H
#define TIDE_TCACHE_H

#include "bins.h"
#include "heap.h"

/* Entries per bin unless tcache_count says otherwise (measured with
 * make bench: see README). */
#define TCACHE_DEFAULT_COUNT 64
/* Most chunks moved in one refill. */
#define TCACHE_MAX_BATCH 64
/* Most bytes one bin holds for each 16-byte size it serves: small classes
 * keep tcache_count entries, medium ones fewer (25 of 1.25 KiB), so a
 * thread's small bins hold at most 420 KiB, its medium ones 472 KiB.
 * 16 KiB cost larson 6 % more instructions (refills and flushes). */
#define TCACHE_BIN_BYTES ((size_t)32 * 1024)

/* The medium cache: medium chunks of no class size (made by the arena
 * path: realloc, memalign) and those past the classes up to 64 KiB.  The
 * cache keeps the few most recently freed of them, whatever their size,
 * and a request takes one that fits with at most 1/4 to spare.  Bounded
 * in count and bytes, so an idle thread holds little. */
#define TCACHE_BIG_SLOTS 8
#define TCACHE_BIG_MAX_CHUNK ((size_t)64 * 1024)
#define TCACHE_BIG_BYTES ((size_t)256 * 1024)
/* What all threads' caches together hold at most, about: with more than
 * 28 threads (1.1 MiB each) every thread's bins hold less, in
 * TCACHE_LEVELS halvings, down to 8 entries a small bin and 2 a medium
 * one (about 0.3 MiB a thread).  (Not counted: the bins for aligned
 * requests, at most 56 KiB a thread.)  See "the budget" in tcache.c. */
#define TCACHE_TOTAL_BYTES ((size_t)32 * 1024 * 1024)
#define TCACHE_LEVELS 5

struct tcache_entry {
  struct tcache_entry *next; /* safe-linked (link_protect) */
  uintptr_t key;             /* free_key(entry) while cached */
};

struct tcache {
  struct tcache_entry *head[TCACHE_BINS];
  uint16_t count[TCACHE_BINS];
  /* tcache_limit's copy (apply_limits keeps every live cache's in step):
   * the free fast path reads it beside count, with no global to address. */
  uint16_t limit[TCACHE_BINS];
  /* Counted here, added to the arena's counters under its lock. */
  size_t mallocs, frees, reallocs;
  /* The malloc fast path's bytes, counted down: each request is taken
   * from bytes_left, and below zero the heap profiler looks (src/prof.c:
   * a sample; with it off, only arming the count again).  The bytes
   * requested not yet published are bytes_requested + bytes_armed -
   * bytes_left, bytes_armed being what bytes_left was last set to. */
  intptr_t bytes_left;
  size_t bytes_requested;
  intptr_t bytes_armed;
  /* The heap profiler's (src/prof.c): its generator, and the countdown
   * of the slow paths' bytes. */
  uint64_t prof_rng;
  intptr_t prof_left;
  void *block; /* the block this cache lives in (it is aligned inside) */
  /* The thread's arena (kept in step by arenas.c), and whether that is
   * the main arena (derivable, but one instruction less on the free fast
   * path): which blocks are this thread's own (src/api.c). */
  struct arena *arena;
  bool brk_local;
  /* Where the thread's own blocks are found without a lookup: blocks of
   * kind own_kind (0: brk, IN_HEAP) whose memory lies in [own_mem_lo,
   * own_mem_lo + 16 own_units) are its arena's.  A heap thread: the first
   * heap of its arena, which holds the arena and is never unmapped.  A
   * main-arena thread: its copy of the arena's brk range from the first
   * run boundary, which only grows, so a stale copy just sends some
   * blocks the slow way until tcache_refresh_own.  Of the run blocks
   * there, the thread's own are those of its runs (run_owned_by: other
   * threads may share the arena).  No cache: 0 units.  own_mem_lo is 16-aligned, so
   * that one rotation tests the range and the alignment (src/api.c).
   * own_run_bits: a run block's flags in this range (own_kind, P and R),
   * which free's fast path xors out of the size field. */
  uintptr_t own_mem_lo, own_units;
  uint32_t own_kind, own_run_bits;
  /* Blocks of other arenas this thread freed, per bin, on their way back
   * to their own arenas (never handed out here: reusing another thread's
   * block next to its live ones would share cache lines with it). */
  struct tcache_entry *out[TCACHE_BINS];
  uint16_t out_count[TCACHE_BINS];
  size_t out_bytes; /* in all of out[]: at most TCACHE_OUT_BYTES */
  /* Medium chunks, oldest first; in use as far as their arenas know,
   * marked with the key like the entries above. */
  struct chunk *big[TCACHE_BIG_SLOTS];
  size_t big_sf[TCACHE_BIG_SLOTS]; /* each one's size field when cached */
  unsigned nbig;
  size_t big_bytes;
  /* The runs this thread cuts blocks from, per bin, the current one
   * first (src/run.h), under runs_lock: this thread changes them, and
   * the background thread takes empty runs off them (src/run.c). */
  struct run *runs[TCACHE_RUN_BINS];
  int runs_lock;
  struct tcache *all_next, *all_prev; /* every live cache (tcache.c) */
  /* Per bin: a batch came back to one of this thread's runs since it last
   * looked (set by any thread under that run's lock, src/run.c). */
  uint8_t given_back[TCACHE_RUN_BINS];
  struct run *look_from[TCACHE_RUN_BINS]; /* where find_given_back looks next (runs_lock) */
  uint32_t nruns[TCACHE_RUN_BINS];      /* runs on runs[i] (runs_lock) */
  uint32_t round_left[TCACHE_RUN_BINS]; /* runs the current look round has still to visit */
  uint8_t refills[TCACHE_BINS];       /* refills so far, up to 255 (tcache_refill_ramp) */
  /* How this thread uses its arena's lock (src/arenas.c): takes, and how
   * many found it taken, in the current window; mallocs published so
   * far (tcache_publish), and their count, with mallocs, as it began. */
  uint32_t lock_takes, lock_waits;
  size_t mallocs_published, window_mallocs;
};

/* Never NULL: threads without a cache see an empty one that is always
 * full.  Slow paths use tcache_mine(), which gives NULL for it. */
extern __thread struct tcache *tcache_tls;
extern TIDE_HIDDEN struct tcache tcache_none;
static inline struct tcache *tcache_none_ptr(void) { return &tcache_none; }
struct tcache *tcache_mine(void);
/* The same, making the cache first if this thread has none yet. */
struct tcache *tcache_mine_or_create(void);
/* Bypass the calling thread's cache for a while (its allocations take
 * the arena path); tcache_resume gives it back. */
struct tcache *tcache_suspend(void);
void tcache_resume(struct tcache *tc);
/* From tcache_count and tcache_max (src/options.c); read on every call,
 * so mallopt changes every thread's cache at once. */
/* Entries per bin: tcache_count, but no bin holds more than
 * TCACHE_BIN_BYTES, so an idle thread keeps little (src/tcache.c). */
extern TIDE_HIDDEN uint16_t tcache_limit[TCACHE_BINS];
void tcache_set_count(size_t count);
/* The medium cache's byte bound (cut with the bins past 28 threads). */
extern TIDE_HIDDEN size_t tcache_big_bytes;
/* fork: the budget's lock is held across it; in the child only the
 * forking thread's cache is live. */
void tcache_prefork(void);
void tcache_postfork_parent(void);
void tcache_postfork_child(bool have_cache);
extern TIDE_HIDDEN uint16_t tcache_nbins; /* bins in use */
extern TIDE_HIDDEN size_t tcache_max_request; /* largest request they serve */

/* Chunk size -> small bin; sizes below 32 give a huge index (rejected),
 * sizes past 1040 an index of TCACHE_SMALL_BINS or more. */
static inline size_t tcache_index(size_t chunk_size) { return (chunk_size >> 4) - 2; }

/* The medium bins' chunk sizes (256 k + 16), and by a size less 16 in
 * 256 B units rounded up (1..64), the medium bin that holds it. */
extern TIDE_HIDDEN const uint16_t tcache_medium_size[TCACHE_MEDIUM_BINS];
extern TIDE_HIDDEN const uint8_t tcache_medium_by_256[65];
static inline size_t tcache_bin_size(size_t idx) {
  return idx < TCACHE_SMALL_BINS ? (idx + 2) * CHUNK_ALIGN : tcache_medium_size[idx - TCACHE_SMALL_BINS];
}
/* The medium bin whose class holds chunk size nb (1040 < nb <= 16400). */
static inline size_t tcache_medium_index(size_t nb) {
  return TCACHE_SMALL_BINS + tcache_medium_by_256[(nb - CHUNK_ALIGN + 255) >> 8];
}
/* The bin that holds chunks of exactly this size, or TCACHE_BINS. */
static inline size_t tcache_bin_of(size_t size) {
  if (size <= (TCACHE_SMALL_BINS + 1) * CHUNK_ALIGN)
    return tcache_index(size);
  if (size > TCACHE_MEDIUM_MAX_CHUNK || ((size - CHUNK_ALIGN) & 255))
    return TCACHE_BINS;
  size_t idx = tcache_medium_index(size);
  return tcache_bin_size(idx) == size ? idx : TCACHE_BINS;
}
/* Chunk size (32..1040, a multiple of 16) -> the small bin of its class
 * (src/tcache.c: bins of sizes between classes hold nothing). */
extern TIDE_HIDDEN const uint8_t tcache_class_bin[66];
static inline size_t tcache_class_index(size_t chunk_size) { return tcache_class_bin[chunk_size >> 4]; }
/* A small bin that is no class's: only aligned requests use it (the
 * multiples of 64, src/tcache.c, aligned_bin_limit). */
static inline bool tcache_aligned_only(size_t idx) { return idx < TCACHE_SMALL_BINS && tcache_class_bin[idx + 2] != idx; }
/* Request bytes (at most 1032) -> the small bin of its class: one load
 * from the same table instead of rounding and clamping.  Requests
 * 16k - 7 .. 16k + 8 need a chunk of 16k + 16 (k + 1 in the table's
 * units; requests up to 8, k = 0, the 32-byte chunk, whose class entry 1
 * shares with 2). */
static inline size_t tcache_request_index(size_t n) { return tcache_class_bin[((n + 7) >> 4) + 1]; }

/* Pop a chunk's memory, or NULL.  The entry's key must be its own: a
 * forged or overwritten entry (its next link included, which becomes the
 * head and is checked the same way when it is popped) does not carry the
 * key of its address, which depends on secrets. */
static inline void *tcache_pop(struct tcache *tc, size_t idx) {
  struct tcache_entry *e = tc->head[idx];
  if (unlikely(!e))
    return NULL;
  struct tcache_entry *next = (struct tcache_entry *)link_reveal(&e->next, (struct chunk *)e->next);
  /* A link written over without the secret reveals misaligned: caught
   * before anything reads through it. */
  if (unlikely(((uintptr_t)next & (TIDE_HARDEN ? CHUNK_ALIGN_MASK : 0)) | (e->key ^ free_key(e))))
    tide_fatal("malloc", "corrupted thread-cache entry (written after free?)");
  tc->head[idx] = next;
  /* The next pop's block, on its way meanwhile: a live set larger than
   * the caches pops blocks freed long ago (bulk, 4 threads: 0.83 -> 0.73
   * s, make bench's others 0-8 % faster). */
  __builtin_prefetch(next);
  tc->count[idx]--;
  e->key = 0;
  return e;
}

/* The same, also checking the block's size field against its bin (the
 * arena path checks as much of what it takes from a bin): for the medium
 * bins, whose pops are on a slow path anyway. */
static inline void *tcache_pop_checked(struct tcache *tc, size_t idx) {
  void *mem = tcache_pop(tc, idx);
  if (mem && unlikely((mem2chunk(mem)->size & ~(PREV_INUSE | IN_HEAP | IN_RUN)) != tcache_bin_size(idx)))
    tide_fatal("malloc", "invalid size of a cached block (its header was overwritten)");
  return mem;
}

/* Push; false when the bin is full or the entry looks cached already
 * (the caller's slow path decides). */
static inline bool tcache_push(struct tcache *tc, void *mem, size_t idx) {
  struct tcache_entry *e = mem;
  uintptr_t key = free_key(e);
  if (unlikely(tc->count[idx] >= tc->limit[idx] || e->key == key))
    return false;
  e->next = (struct tcache_entry *)link_protect(&e->next, (struct chunk *)tc->head[idx]);
  e->key = key;
  tc->head[idx] = e;
  tc->count[idx]++;
  return true;
}

/* A bin's refills start small: the first takes about TCACHE_FIRST_REFILL
 * bytes' worth of blocks (at least one), each next one twice as many, up
 * to the full batch.  So a thread that uses a few blocks of a size cuts
 * (and touches) few pages for them, and one that keeps missing moves full
 * batches after a few refills.  (Taking the first refills from the arena
 * instead, as glibc's are, was tried: over 12 workloads of make bench the
 * geomean peak-RSS ratio went from 1.32 to 1.46, the arena's chunks
 * lying between the runs.) */
#define TCACHE_FIRST_REFILL 512u
static inline unsigned tcache_refill_ramp(const struct tcache *tc, size_t idx, size_t chunk) {
  unsigned shift = tc->refills[idx] < 16 ? tc->refills[idx] : 16;
  size_t n = ((size_t)TCACHE_FIRST_REFILL << shift) / chunk;
  return n == 0 ? 1u : n < UINT16_MAX ? (unsigned)n : UINT16_MAX;
}
static inline void tcache_refilled(struct tcache *tc, size_t idx) {
  if (tc->refills[idx] < UINT8_MAX)
    tc->refills[idx]++;
}

void tcache_init_key(void);
/* Register the calling thread for the exit flush (and arena detach). */
void tcache_thread_start(void);
/* The thread's cache, created on first use (arena a locked); NULL when
 * disabled or the thread is exiting. */
struct tcache *tcache_get_or_create(struct arena *a);
/* Refill bin idx from a (locked) with a batch; returns one chunk or NULL. */
struct chunk *tcache_refill(struct tcache *tc, struct arena *a, size_t idx);
/* free() found the bin full or the key set: check for a double free,
 * flush half the bin to the arenas, then cache mem. */
void tcache_free_slow(struct tcache *tc, void *mem, size_t idx);
/* free() of a small block of another arena (see struct tcache's out);
 * false if the thread has no cache yet. */
bool tcache_free_foreign(struct tcache *tc, void *mem, size_t idx);
/* Foreign blocks gathered before they go back to their arenas: a batch
 * per size, and at most so many bytes in all, so a thread that stops
 * freeing holds little of other threads' memory. */
#define TCACHE_OUT_BATCH 32
#define TCACHE_OUT_BYTES ((size_t)64 * 1024)
/* The calling thread now allocates from a (src/arenas.c). */
void tcache_arena_changed(struct arena *a);
/* Is mem in this thread's cache? */
bool tcache_contains(struct tcache *tc, void *mem, size_t idx);
/* Medium chunks: is nb (a chunk size over the bins' range) one? */
extern TIDE_HIDDEN size_t tcache_big_max_chunk; /* from tcache_max; 0: off */
static inline bool tcache_big_size(size_t nb) {
  return nb > (TCACHE_SMALL_BINS + 1) * CHUNK_ALIGN && nb <= tcache_big_max_chunk;
}
/* A cached medium chunk that fits nb, or NULL. */
void *tcache_big_take(struct tcache *tc, size_t nb);
/* Cache p (checked by the caller, its arena unlocked), making room by
 * handing the oldest back; false if the cache is off. */
bool tcache_big_put(struct tcache *tc, struct chunk *p);
bool tcache_big_contains(struct tcache *tc, struct chunk *p);
/* Hand back what the calling thread's medium cache holds (after mallopt
 * narrowed the cache; other threads' caches follow as they turn over). */
void tcache_big_flush_mine(void);

/* Bring tc's copy of the main arena's brk range up to date. */
void tcache_refresh_own(struct tcache *tc);
/* Bytes in all threads' caches (and, with blocks, how many blocks). */
size_t tcache_cached_bytes(size_t *blocks);

/* Move the thread's counters into a (locked). */
void tcache_publish(struct tcache *tc, struct arena *a);

/* Blocks freed by other threads (the remote stacks of struct arena). */
/* A miss in bin idx (empty) of the cache of a's thread: take a's remote
 * stack for idx whole, without the lock.  Returns one block, or NULL. */
void *tcache_adopt_remote(struct tcache *tc, struct arena *a, size_t idx);
/* Move every remote stack of a (locked) into its fast bins. */
void tcache_drain_remote(struct arena *a);
static inline bool tcache_remote_pending(struct arena *a) {
  return __atomic_load_n(&a->remote_pending, __ATOMIC_RELAXED) != 0;
}

#endif
