/* SPDX-License-Identifier: MIT */
/*
 * tidemalloc internals: the map, the shared types, the constants.
 *
 *   process
 *    |- arena list (lock order: arenas_lock, then arena locks in list order)
 *    |   |- main arena   static; grows with brk/sbrk in "segments"; when brk
 *    |   |               cannot grow it continues on mmap'd heaps (below)
 *    |   '- other arenas each owns a list of heaps: 64 MiB-aligned mmap
 *    |                   reservations, committed as they grow; heap_info at
 *    |                   the start of each heap names its arena; the arena
 *    |                   struct itself sits in its first heap
 *    |       every arena: lock, fast bins, unsorted bin, 62 small bins,
 *    |       63 large bins (sorted, with nextsize skip lists), binmap,
 *    |       top chunk, last remainder, counters, its runs and orphans
 *    |- thread cache     per thread: 20 bins of small classes (32..1040 B) and
 *    |   |               16 of medium classes (1280 B..16 KiB usable), a few
 *    |   |               medium blocks past them; no lock, no atomics
 *    |   '- runs         under the cache: arena chunks of 64 KiB the
 *    |                   thread cuts into blocks of one bin's class (up
 *    |                   to 4 KiB usable; bigger ones are the arena's);
 *    |                   misses and overflows go there, a batch under the
 *    |                   run's own lock, no arena lock (src/run.h)
 *    |- background thread  returns memory of idle processes (src/purge.c)
 *    '- mmapped chunks   requests >= the mmap threshold, one mapping each
 *
 *   chunk = [prev_size][size | R A M P][user data ...]    (src/chunk.h)
 *
 * malloc(n): the cache's bin for n -> its runs (a run's free blocks, then
 * uncarved ones; a new run from the arena if none has any) -> past the
 * bins, the arena path (bins, top, mmap).  free(p): checked and classified
 * once (api.c) -> this thread's cache, or its out lists (a block of
 * another thread's arena) -> a full bin hands its newest half back: run
 * blocks to their runs, other chunks to their arena -> past the bins, the
 * arena (a run's block reaching it goes to its run).
 *
 * Which arena owns a chunk: A clear -> the main arena's brk segments;
 * A set -> the heap found by masking the address (heap_of), whose
 * heap_info names the arena (the main arena too, when brk failed).
 *
 * Module prefixes follow file names: arena_ (arena.c), arenas_ (arenas.c),
 * bin_ (bins.c), heap_ (heap.c), mmapped_ (mmapped.c), tcache_ (tcache.c),
 * run_ (run.c), purge_ (purge.c), os_ (os.c), opt_ (options.c), stats_
 * (stats.c), check_ (check.c).
 */
#ifndef TIDE_INTERNAL_H
#define TIDE_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lock.h"
#include "tidemalloc.h"

#ifndef TIDE_DEBUG
#define TIDE_DEBUG 0
#endif
/* The fast-path hardening (README, "Hardening"): the safe-linking
 * secret, the alignment check of popped links, the exact next-header
 * check of run blocks.  -DTIDE_HARDEN=0 compiles them out, only to
 * measure what they cost (bench/README.md). */
#ifndef TIDE_HARDEN
#define TIDE_HARDEN 1
#endif
#ifndef TIDE_STD_NAMES
#define TIDE_STD_NAMES 1
#endif

/* Debug builds only: a test may set tide_test_hook to be called at a
 * named point where another thread's interleaving matters, to hold this
 * thread there (tests/stress/runs.c).  Nothing in the other builds. */
#if TIDE_DEBUG
extern void (*tide_test_hook)(const char *where);
#define TIDE_TEST_POINT(where)      \
  do {                              \
    if (tide_test_hook)             \
      tide_test_hook(where);        \
  } while (0)
#else
#define TIDE_TEST_POINT(where) ((void)0)
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define TIDE_EXPORT __attribute__((visibility("default")))
/* Internal data shared between files: hidden, so the compiler addresses
 * it directly instead of through the GOT (fast paths read it). */
#define TIDE_HIDDEN __attribute__((visibility("hidden")))
#define TIDE_NOINLINE __attribute__((noinline))
#define TIDE_COLD __attribute__((cold, noinline))

/* ---- sizes (64-bit Linux) ---- */
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Heaps: 64 MiB reservations aligned to their size, so a chunk finds its
 * heap_info by masking its address. */
#define HEAP_MAX_SIZE (64 * MiB)

/* Bins: 0 unused, 1 unsorted, 2..63 small (one size each), 64..126 large. */
#define NBINS 128
#define UNSORTED_BIN 1
#define NSMALLBINS 64
#define FIRST_LARGE_BIN 64
#define LAST_BIN 126
/* Fast bins: one per chunk size from 32 to 1040, the thread-cache sizes.
 * Plain frees use those up to M_MXFAST (128 B of request, as glibc);
 * thread caches hand their overflow to all of them (src/tcache.c). */
#define NFASTBINS 64
#define BINMAP_WORDS 2

/* A free that leaves a chunk at least this big consolidates the fast bins
 * and considers trimming, as in ptmalloc. */
#define FASTBIN_CONSOLIDATION_THRESHOLD (64 * KiB)
/* The unsorted sweep sorts at most this many chunks per malloc. */
#define UNSORTED_SWEEP_LIMIT 10000
/* Main arena: how many separate brk segments it follows before it moves
 * to heaps (a new segment starts when someone else moved the break). */
#define MAX_BRK_SEGMENTS 32

/* Thread cache: 64 bins of one chunk size each, 32..1040 by 16 (requests
 * up to 1032; only the bins of the 20 small classes hold blocks, and a
 * few of multiples of 64 for aligned requests, see src/tcache.c), then
 * medium bins: size classes, four a doubling, 1280 B to
 * 16 KiB usable (a request is rounded up to its class).  See src/tcache.h. */
#define TCACHE_SMALL_BINS 64
#define TCACHE_MEDIUM_BINS 16
#define TCACHE_BINS (TCACHE_SMALL_BINS + TCACHE_MEDIUM_BINS)
/* The bins whose blocks runs are cut into: the small ones and the medium
 * ones to 4 KiB usable (RUN_MAX_BLOCK, src/run.h). */
#define TCACHE_RUN_BINS (TCACHE_SMALL_BINS + 8)
#define TCACHE_MAX_REQUEST 1032
#define TCACHE_MEDIUM_MAX_CHUNK ((size_t)16400) /* 16 KiB usable */

struct chunk;
struct heap_info;
struct run;
struct tcache;

/* ---- options (src/options.c): one table, read once at start-up; mallopt writes ---- */
struct tide_options {
  size_t max_fast;          /* largest chunk size kept in fast bins (0: none) */
  size_t trim_threshold;    /* top above this is given back */
  size_t top_pad;           /* extra bytes asked of the OS when growing, kept when trimming */
  size_t mmap_threshold;    /* requests (chunk size) at least this big get their own mapping */
  int mmap_max;             /* most mmapped chunks at once */
  bool dynamic_threshold;   /* glibc's sliding mmap threshold; off once the user sets any */
  int perturb;              /* M_PERTURB byte, 0 = off */
  int check_action;         /* MALLOC_CHECK_, accepted and kept for mallopt */
  size_t arena_max;         /* 0: 8 x CPUs + 1 */
  size_t arena_test;
  bool arena_share;         /* threads share arenas until they contend (0: one each, as glibc) */
  size_t tcache_count;      /* entries per thread-cache bin */
  size_t tcache_max_bytes;  /* largest request the thread cache serves */
  long purge_decay_ms;      /* free pages older than this go back; <0: never */
  int purge_thread;         /* background purge thread: 0 never; 1 (default) once the
                               program makes a thread; 2 from load time */
  bool purge_lazy;          /* MADV_FREE: pages go when the kernel needs them (RSS lags) */
  bool huge_pages;          /* glibc.malloc.hugetlb=1: MADV_HUGEPAGE on what we map */
  bool stats_at_exit;       /* TIDEMALLOC_STATS=1 */
  bool verbose;             /* print the settings at start-up */
  int debug;                /* debug mode (src/debug.c): 0 off, 1 on, 2 also the JSON leak report */
  size_t debug_check;       /* debug mode: the heap checker every this many operations (0: never) */
  char stats_file[256];     /* where the JSON heap dump goes at exit and on stats_signal ("": none) */
  int stats_signal;         /* on this signal, write it (0: off) */
};
extern TIDE_HIDDEN struct tide_options opt;
void opt_init(void);
int opt_mallopt(int param, int value);

/* ---- counters kept per arena, under its lock (src/stats.c) ---- */
#define TIDE_ARENA_COUNTERS(X) \
  X(malloc_calls)              \
  X(free_calls)                \
  X(realloc_calls)             \
  X(bytes_requested)           \
  X(in_use_bytes)              \
  X(peak_in_use_bytes)         \
  X(purged_bytes)
struct arena_counters {
#define TIDE_DECLARE_COUNTER(name) size_t name;
  TIDE_ARENA_COUNTERS(TIDE_DECLARE_COUNTER)
#undef TIDE_DECLARE_COUNTER
};

/* A contiguous piece of brk memory owned by the main arena. */
struct brk_segment {
  char *start;         /* first chunk */
  char *end;           /* end of the memory (the top chunk's end in the newest) */
  struct chunk *fence; /* first fence chunk once closed, else NULL */
};

/*
 * An arena: the unit of locking.
 * Invariants (check_arena verifies them):
 *   - every chunk in bins[i] is free, its size maps to bin i, and large
 *     bins are sorted by size, largest first, with one nextsize head per size;
 *   - bit i of binmap may be set for an empty bin, never clear for a full one;
 *   - top is the highest chunk of its region, never in a bin, P bit set;
 *   - no two free chunks are adjacent, except that fast-bin chunks stay
 *     marked in use and so may neighbour free ones;
 *   - system_mem = bytes of brk segments + committed heap bytes.
 */
struct tcache_entry;
struct arena {
  struct tide_lock lock;
  bool have_fastchunks;
  size_t fast_bytes;            /* bytes in fast bins */
  bool is_main;
  struct chunk *fastbins[NFASTBINS];
  struct chunk *top;            /* NULL until the first growth */
  char *top_dirty_end;          /* top memory at and above this is known zero */
  struct chunk *last_remainder;
  struct chunk *bins[2 * NBINS]; /* fd/bk pairs; see bin_at() in bins.h */
  uint64_t binmap[BINMAP_WORDS];

  struct heap_info *heap;       /* newest heap (NULL for main on brk) */
  struct brk_segment seg[MAX_BRK_SEGMENTS]; /* main arena only */
  int nsegs;
  bool brk_failed;              /* main arena: continue on heaps */
  char *brk_lo, *brk_hi;        /* main arena: lowest and highest brk address used */

  size_t system_mem;
  size_t max_system_mem;
  struct arena_counters count;

  struct arena *next;           /* all arenas, main first */
  struct arena *next_free;      /* arenas with no thread attached */
  size_t attached_threads;
  int index;                    /* 0 for main */
  unsigned debug_ops;           /* TIDE_DEBUG: operations since the last full check */

  /* src/purge.c: free chunks big enough to hold a whole page, not yet
   * given back to the OS, oldest first. */
  struct chunk *dirty_head, *dirty_tail;
  size_t dirty_bytes;
  unsigned purge_tick;
  /* Slow-path allocations so far (bumped by the owner, read by the
   * background thread to tell a busy arena from an idle one). */
  unsigned long activity;
  unsigned long activity_seen; /* background thread: at its last round */
  unsigned busy_rounds;        /* background thread: rounds it stayed busy */
  bool purging;                /* the background thread holds the lock */
  unsigned cap_shift;          /* no background thread: the dirty cap is doubled this often */
  uint64_t cap_raised_ms;      /* when it last changed (coarse ms) */
  size_t cap_purged_from;      /* dirty bytes when it last purged */
  unsigned trim_shift;         /* no background thread: the trim threshold is doubled this often */
  uint64_t trimmed_ms, trim_raised_ms; /* its last trim; when the shift last changed */
  uint64_t top_freed_ms;       /* a free last grew top past the trim threshold
                                  (coarse ms), when trims wait for the decay */
  struct chunk *seen_top;      /* background thread: top as it last saw it, */
  size_t seen_top_size;        /* its size, */
  uint64_t seen_top_ms;        /* and since when (coarse ms) */

  /* Blocks of this arena that other threads' caches handed back: one
   * lock-free stack per cache bin, in thread-cache format (src/tcache.h),
   * pushed a batch at a time without the lock.  The owner's cache adopts
   * a whole stack on a miss, also without the lock; whoever holds the
   * lock may drain them all into the fast bins.  On cache lines of their
   * own, since other threads write them. */
  _Alignas(64) struct tcache_entry *remote[TCACHE_SMALL_BINS];
  unsigned remote_pending; /* set after a push, cleared by a drain */

  /* src/run.h: every run cut from this arena's memory, and those whose
   * thread exited with blocks still out, per size (under the lock). */
  struct run *runs;
  struct run *orphans[TCACHE_BINS];
};

extern TIDE_HIDDEN struct arena main_arena;

/* ---- api-level helpers used across modules ---- */
void tide_init_slow(void);
extern bool tide_initialized;
static inline void tide_ensure_init(void) {
  if (unlikely(!tide_initialized))
    tide_init_slow();
}

/* src/check.c: report and abort, never allocating. */
__attribute__((noreturn)) TIDE_COLD void tide_fatal(const char *func, const char *what);
void check_arena(struct arena *a); /* full walk; aborts on the first broken invariant */
/* Debug flavour: a full check of a (locked) every so many operations. */
static inline void check_arena_sometimes(struct arena *a) {
  if (TIDE_DEBUG && (a->debug_ops++ & 63) == 0)
    check_arena(a);
}

/* The function name errors are reported under ("free", "realloc", ...):
 * set by the entry points, read by the deep paths. */
extern __thread const char *tide_current_fn;

#define TIDE_ASSERT(cond)                                           \
  do {                                                              \
    if (TIDE_DEBUG && unlikely(!(cond)))                            \
      tide_fatal("assert", __FILE__ ":" TIDE_STR(__LINE__) ": " #cond); \
  } while (0)
#define TIDE_STR2(x) #x
#define TIDE_STR(x) TIDE_STR2(x)


/* The free key: the word stored in the second word of user data of every
 * block sitting in a fast bin or a thread cache, so a free that finds it
 * there looks for a double free.  It depends on the block's address and
 * on two random secrets set once at start-up, so the key a block carries
 * says nothing about another block's: bytes of a freed block copied into
 * a live one never look "freed" (issue 11), and one leaked key does not
 * give away the others. */
extern TIDE_HIDDEN uintptr_t tide_key_xor, tide_key_mul;
/* The secret mixed into every safe-linked pointer (bins.h), odd, so a
 * link forged without it reveals as a misaligned pointer. */
extern TIDE_HIDDEN uintptr_t tide_link_secret;
static inline uintptr_t free_key(const void *mem) { return ((uintptr_t)mem ^ tide_key_xor) * tide_key_mul; }

#endif /* TIDE_INTERNAL_H */
