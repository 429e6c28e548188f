/* SPDX-License-Identifier: MIT */
/*
 * Runs: the tier between the thread cache and the arena (src/run.c).
 *
 * A run is one chunk of RUN_SIZE bytes that an arena handed out, aligned
 * to RUN_SIZE, which its thread cuts into blocks of one thread-cache size.
 * Each block keeps an ordinary chunk header (so free, malloc_usable_size,
 * realloc and the checks treat it as any chunk) with one more flag, R:
 *
 *   run chunk: in use as far as its arena knows, RUN_SIZE bytes
 *   +-----------+------------+---------+---------+- ... -+-----------+------+
 *   |prev |size | struct run | block 0 | block 1 |       | block n-1 | tail |
 *   +-----------+------------+---------+---------+- ... -+-----------+------+
 *   ^ RUN_SIZE-aligned: run_of(any block) masks its address
 *   block: [prev_size][size | R A P][user data ...]   never coalesced
 *   tail:  what is left (0 or >= 16 bytes), a header no one hands out
 *
 * Blocks are carved in address order as they are first needed (a run
 * that serves few blocks touches few pages).  A block given back goes on
 * the run's free list, in thread-cache format ([next, safe-linked][key]).
 *
 * Who may do what:
 *  - the owner (the thread whose cache the run refills) takes blocks from
 *    it: the free list, then uncarved blocks;
 *  - anyone gives blocks back, a batch at a time (a thread cache's
 *    overflow, other threads' frees, a thread's exit);
 *  - both under the run's own lock, held for one batch: no arena lock, no
 *    per-block arena work;
 *  - a run whose blocks are all back goes to its arena as one chunk
 *    (coalesced once), unless it is the one its owner is cutting now;
 *  - when its owner exits, a run that still has blocks out becomes an
 *    orphan of its arena; a thread of that arena that needs a run of that
 *    size adopts it, and one whose last block comes back is released;
 *  - the background thread gives back the pages of runs left empty and
 *    untouched for the decay (the run stays, its blocks uncarved again).
 *
 * Lock order: an arena's lock, then a run's lock (never the other way).
 */
#ifndef TIDE_RUN_H
#define TIDE_RUN_H

#include "chunk.h"

#define RUN_SIZE ((size_t)64 * 1024)

struct tcache;
struct tcache_entry;

enum run_state { RUN_OWNED, RUN_ORPHAN, RUN_DEAD };

/*
 * Invariants (check_runs verifies them):
 *   carved <= nblocks;  nfree = length of the free list <= carved;
 *   blocks out (in use, in caches, on the way back) = carved - nfree;
 *   every carved block's header reads block_sf; block carved+1's header
 *   too (the next header free() reads), or the tail's;
 *   the run is on its arena's list of runs; an owned run on its owner's
 *   list for idx, an orphan on its arena's orphan list for idx.
 */
struct run {
  uintptr_t check;           /* RUN_CHECK ^ address: a run, and this one */
  struct tide_lock lock;
  uint8_t state;             /* enum run_state */
  uint16_t idx;              /* thread-cache bin: blocks of (idx + 2) * 16 bytes */
  uint32_t nblocks, carved, nfree;
  size_t block_sf;           /* every block's size field */
  struct tcache_entry *free; /* blocks given back */
  struct tcache *owner;      /* RUN_OWNED: whose cache it fills */
  struct arena *arena;       /* where its memory came from */
  struct run *next, *prev;   /* the owner's runs of idx, or the arena's orphans of idx */
  struct run *anext, *aprev; /* all runs of the arena */
  unsigned long takes;       /* batches taken (the background thread tells idle runs by it) */
  unsigned long seen_takes;  /* background thread: takes at its last look */
  unsigned idle_rounds;      /* background thread: rounds seen empty and untouched */
};

static inline struct run *run_of(const void *block) {
  return (struct run *)(((uintptr_t)block & ~(uintptr_t)(RUN_SIZE - 1)) + CHUNK_HDR);
}
/* Where block 0 starts: after the run chunk's header and struct run. */
#define RUN_HDR ((CHUNK_HDR + sizeof(struct run) + CHUNK_ALIGN_MASK) & ~CHUNK_ALIGN_MASK)
static inline size_t run_block_size(const struct run *r) { return r->block_sf & ~CHUNK_FLAGS; }
static inline struct chunk *run_block(struct run *r, size_t i) {
  return (struct chunk *)((char *)r - CHUNK_HDR + RUN_HDR + i * run_block_size(r));
}
/* Does r's header say it is a run (its check word)? */
bool run_is_valid(const struct run *r);

/* A tcache miss in bin idx: fill the bin from the calling thread's runs
 * of that size (adopting or making one if it has none with blocks left)
 * and return one more block, or NULL (no memory for a run). */
void *run_refill(struct tcache *tc, size_t idx);
/* Give back the blocks first..last (n of them, all of run r, linked and
 * keyed as thread-cache entries).  me: the calling thread's cache (or
 * NULL); locked: the arena whose lock the caller holds (NULL, or r's). */
void run_give_back(struct run *r, struct tcache_entry *first, struct tcache_entry *last, unsigned n,
                   struct tcache *me, struct arena *locked);
/* Check that p (a chunk with R set) is a block of a run and return it,
 * or abort naming fn. */
struct run *run_checked(struct chunk *p, const char *fn);
/* The thread of tc exits: its runs go back or become orphans. */
void run_thread_exit(struct tcache *tc);
/* fork: every run lock of a (locked) is taken before and released after;
 * in the child, runs of threads that did not come along are left alone
 * for good (their state may be half way through a change). */
void run_prefork(struct arena *a);
void run_postfork_parent(struct arena *a);
void run_postfork_child(struct arena *a, struct tcache *survivor);
/* Background thread, a locked: purge the pages of runs left empty and
 * untouched for two rounds; returns how many runs are empty but waiting. */
size_t run_purge_idle(struct arena *a);
/* Bytes of a's runs (a locked) that no block handed out occupies: free
 * and uncarved blocks, headers, tails; *free_blocks (if not NULL) gets
 * how many blocks are free or uncarved.  The arena counts a run as one
 * chunk in use; statistics of the bytes in use take these off. */
size_t run_idle_bytes(struct arena *a, size_t *free_blocks);
/* Heap checker, a locked. */
void check_runs(struct arena *a);

#endif
