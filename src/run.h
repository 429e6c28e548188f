/* SPDX-License-Identifier: MIT */
/*
 * Runs: the tier between the thread cache and the arena (src/run.c).
 *
 * A run is one arena chunk of 64 KiB, aligned to its size, which its
 * thread cuts into blocks of one thread-cache class up to 4 KiB usable
 * (4112-byte chunks; bigger ones, the medium classes past 4 KiB, come from the arena under the
 * thread cache: blocks of one size that few fill a run would keep whole
 * runs resident per thread and per size -- over six of make bench's
 * workloads the geomean peak-RSS ratio was 1.34 with runs of 256 KiB for
 * them, 1.24 without, at the same speed).  Each block keeps an ordinary chunk header (so
 * free, malloc_usable_size, realloc and the checks treat it as any chunk)
 * with one more flag, R:
 *
 *   run chunk: in use as far as its arena knows, RUN_SIZE bytes
 *   +-----------+------------+---------+---------+- ... -+-----------+------+
 *   |prev |size | struct run | block 0 | block 1 |       | block n-1 | tail |
 *   +-----------+------------+---------+---------+- ... -+-----------+------+
 *   ^ aligned to RUN_SIZE: run_of(block) masks the block's address
 *   block: [prev_size][size | R A P][user data ...]   never coalesced
 *   tail:  what is left (>= 16 bytes), a header no one hands out that
 *          reads like a block's, so every block's next header is its own
 *
 * Blocks are carved in address order as they are first needed (a run that
 * serves few blocks touches few pages).  Blocks given back wait in the run
 * as the batches they came in (each a list in thread-cache format:
 * [next, safe-linked][key]), so giving back and taking are a few pointer
 * moves whatever the batch's length: a batch's blocks are not touched on
 * the way, only when the program gets them.
 *
 * Who may do what:
 *  - the owner (the thread whose cache the run refills) takes blocks from
 *    it: whole batches, then uncarved blocks;
 *  - anyone gives blocks back, a batch at a time (a thread cache's
 *    overflow, other threads' frees, a thread's exit);
 *  - both under the run's own lock, a spin lock held for a few stores: no
 *    arena lock, no per-block arena work;
 *  - a run whose blocks are all back goes to its arena as one chunk
 *    (coalesced once), unless it is the one its owner is cutting now;
 *  - when its owner exits, a run that still has blocks out becomes an
 *    orphan of its arena; a thread of that arena that needs a run of that
 *    size adopts it, and one whose last block comes back is released;
 *  - the background thread gives back the pages of runs left empty and
 *    untouched for the decay (the run stays, its blocks uncarved again;
 *    a round later, unless it is its owner's current run, it goes back
 *    to its arena, taken off the owner's list under the owner's
 *    runs_lock),
 *    and in a run left untouched with blocks still out, every page that
 *    only free blocks reach into (their free blocks leave the batches as
 *    "purged"; taken again, their headers are written afresh).
 *
 * Lock order: an arena's lock, then a run's lock (never the other way).
 */
#ifndef TIDE_RUN_H
#define TIDE_RUN_H

#include "chunk.h"

#define RUN_SIZE ((size_t)64 * 1024)
#define RUN_MAX_BLOCK ((size_t)4112) /* the largest blocks runs are cut into (4 KiB usable) */

struct tcache;
struct tcache_entry;

/* RUN_RELEASING: an orphan whose last block came back, or an owner's run
 * its owner emptied and lets go; the thread that gave the block back (and
 * set this, under the run's lock) releases it, and no one else touches
 * it meanwhile. */
enum run_state { RUN_OWNED, RUN_ORPHAN, RUN_RELEASING, RUN_DEAD };

/* A bit per block of a run (the most blocks: 64 KiB of 32-byte chunks). */
#define RUN_PURGED_WORDS (RUN_SIZE / MINSIZE / 64)

/* Blocks given back together, waiting together. */
struct run_batch {
  struct tcache_entry *head, *tail;
  uint32_t n;
};
#define RUN_BATCHES 32

/*
 * Invariants (check_runs verifies them):
 *   carved <= nblocks;  nfree = the blocks of all batches + npurged <= carved;
 *   blocks out (in use, in caches, on the way back) = carved - nfree;
 *   a purged block's header may read 0, and so may the header of a block
 *   after a purged one only if that one is purged too (a live block's
 *   next header is never in a page handed back);
 *   every carved block's header reads block_sf; the header after the last
 *   carved block too (the next header free() reads, the tail's after the
 *   last block);
 *   the run is on its arena's list of runs; an owned run on its owner's
 *   list for idx, an orphan on its arena's orphan list for idx.
 */
struct run {
  /* Set when it is made; read by every free of its blocks (run_checked),
   * so on a cache line the lock's writers do not touch. */
  uintptr_t check;           /* run_check_word(): a run, and this one */
  size_t block_sf;           /* every block's size field */
  size_t size;               /* the run chunk's size (RUN_SIZE) */
  uint32_t nblocks;          /* blocks it has room for */
  uint32_t recip;            /* ceil(2^32 / block size): block index by multiplication */
  uint16_t idx;              /* thread-cache bin of its blocks */
  uint8_t state;             /* enum run_state (changes under its arena's lock and its own) */
  bool listed;               /* on its owner's list (under the owner's runs_lock) */
  struct arena *arena;       /* where its memory came from */
  struct tcache *owner;      /* RUN_OWNED: whose cache it fills (free's fast path reads it) */
  struct run *next, *prev;   /* the owner's runs of idx, or the arena's orphans of idx */
  struct run *anext, *aprev; /* all runs of the arena (its lock) */
  /* Under its lock. */
  _Alignas(64) int lock;     /* 0 free, 1 held (run.c) */
  uint8_t nbatch;            /* batches in use */
  uint32_t carved, nfree;    /* nfree: blocks in batches, and purged ones */
  uint32_t npurged;          /* free blocks whose pages went back (purged[], below) */
  unsigned long takes;       /* batches taken (the background thread tells idle runs by it) */
  struct run_batch batch[RUN_BATCHES];
  /* Free blocks of an idle run whose memory (header, link) lay in pages
   * handed back: in no batch; taken again, their headers are rewritten. */
  uint64_t purged[RUN_PURGED_WORDS];
  /* The background thread's, under the arena lock. */
  unsigned long seen_takes;  /* takes at its last look */
  uint32_t seen_nfree;       /* nfree at its last look */
  uint32_t idle_rounds;      /* rounds seen untouched (UINT32_MAX: purged since) */
};

/* Where block 0 starts: after the run chunk's header and struct run, so
 * that block 0's memory lies on a RUN_BLOCK_ALIGN boundary.  Then every
 * block of a run whose size is a multiple of an alignment up to that is
 * aligned to it: small aligned requests are served from runs (src/api.c,
 * memalign_cached).  (32 bytes of a run's 64 KiB go for it.) */
#define RUN_BLOCK_ALIGN ((size_t)256)
#define RUN_HDR                                                                                                \
  (((CHUNK_HDR + sizeof(struct run) + CHUNK_HDR + RUN_BLOCK_ALIGN - 1) & ~(RUN_BLOCK_ALIGN - 1)) - CHUNK_HDR)

/* The run a block would belong to (checked by run_checked before use). */
static inline struct run *run_of(const void *block) {
  return (struct run *)(((uintptr_t)block & ~(RUN_SIZE - 1)) + CHUNK_HDR);
}
static inline size_t run_block_size(const struct run *r) { return r->block_sf & ~CHUNK_FLAGS; }
/* Is the run of block (a chunk with R set, whose run header is mapped)
 * tc's?  Only its owner caches a run's blocks: another thread's, reused
 * here, would put two threads' live blocks on one cache line (larson with
 * its 2 threads on one arena: 8-14 % slower). */
static inline bool run_owned_by(const void *block, const struct tcache *tc) {
  /* A plain load (an atomic one costs free's fast path an instruction;
   * ThreadSanitizer would call it a race): only the owner's own thread
   * sets it to its cache (make_run, adopt_orphan) or away from it (its
   * exit), so tc's thread never sees its own cache there wrongly. */
  return run_of(block)->owner == tc;
}
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
 * or abort naming fn: its run's header says so, its size field is that
 * run's, and it starts at one of the run's blocks. */
#define RUN_CHECK ((uintptr_t)0x72756e2d63686b32ull)
/* What a run's check word holds: it depends on the run's address and a
 * secret, so data the program controls cannot pass for a run header. */
static inline uintptr_t run_check_word(const struct run *r) { return RUN_CHECK ^ (uintptr_t)r ^ tide_key_xor; }
__attribute__((noreturn)) TIDE_COLD void run_bad_block(struct chunk *p, const char *fn);
static inline struct run *run_checked(struct chunk *p, const char *fn) {
  size_t sf = p->size;
  struct run *r = run_of(p);
  /* The run's header must be memory we may read: in a heap it is (heaps
   * are committed from their start); in the break it must not lie below
   * the first segment. */
  if (unlikely(!(sf & IN_HEAP) && (char *)r - CHUNK_HDR < main_arena.brk_lo))
    run_bad_block(p, fn);
  size_t off = (size_t)((char *)p - ((char *)r - CHUNK_HDR + RUN_HDR));
  size_t i = (size_t)(((uint64_t)off * r->recip) >> 32); /* exact for offsets and sizes < 2^16 */
  if (unlikely((r->check ^ run_check_word(r)) | (sf ^ r->block_sf) | (off >= r->size) |
               (i * run_block_size(r) != off) | (i >= r->nblocks)))
    run_bad_block(p, fn);
  return r;
}
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
/* Free blocks of a's runs per bin (added to blocks[]); returns the runs. */
size_t run_free_by_bin(struct arena *a, size_t blocks[TCACHE_BINS]);
/* The blocks given back to r, for the heap inspector (r's lock held). */
void run_lock(struct run *r);
void run_unlock(struct run *r);
/* Heap checker, a locked. */
void check_runs(struct arena *a);

#endif
