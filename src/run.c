/* SPDX-License-Identifier: MIT */
/*
 * Runs: thread-owned chunks cut into blocks of one size (see src/run.h
 * for the picture and the rules).
 */
#include "run.h"

#include "arena.h"
#include "arenas.h"
#include "os.h"
#include "purge.h"
#include "tcache.h"

static inline char *run_base(struct run *r) { return (char *)r - CHUNK_HDR; }
static inline size_t block_size(const struct run *r) { return run_block_size(r); }

bool run_is_valid(const struct run *r) { return r->check == run_check_word(r); }

static inline bool is_purged(const struct run *r, uint32_t i) { return r->purged[i / 64] >> (i % 64) & 1; }

static inline bool run_has_room(const struct run *r) {
  return __atomic_load_n(&r->nfree, __ATOMIC_RELAXED) > 0 || r->carved < r->nblocks;
}
static inline struct tcache_entry *entry_next(struct tcache_entry *e) {
  return (struct tcache_entry *)link_reveal(&e->next, (struct chunk *)e->next);
}

/* ----------------------------------------------------------- the lock
 * Held for a few pointer moves: a spin lock, which yields the CPU after a
 * while (its holder may have been preempted).  While it forks, the forking
 * thread holds every one already (src/lock.h). */

static void spin_lock(int *word) {
  for (unsigned spins = 0;; spins++) {
    int free_state = 0;
    if (__atomic_load_n(word, __ATOMIC_RELAXED) == 0 &&
        __atomic_compare_exchange_n(word, &free_state, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
      return;
    if (spins < 64)
      __builtin_ia32_pause();
    else
      os_yield();
  }
}
static bool spin_trylock(int *word) {
  int free_state = 0;
  return __atomic_compare_exchange_n(word, &free_state, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
static void spin_unlock(int *word) { __atomic_store_n(word, 0, __ATOMIC_RELEASE); }

void run_lock(struct run *r) {
  if (likely(!lock_held_for_fork))
    spin_lock(&r->lock);
}

void run_unlock(struct run *r) {
  if (likely(!lock_held_for_fork))
    spin_unlock(&r->lock);
}

/* A thread's lists of runs (tc->runs): changed by their thread, and by
 * the background thread, which takes empty runs off an idle thread's
 * lists (run_purge_idle; it only tries, under an arena lock, so the
 * order arena lock -> lists lock never waits). */
static void lists_lock(struct tcache *tc) { spin_lock(&tc->runs_lock); }
static void lists_unlock(struct tcache *tc) { spin_unlock(&tc->runs_lock); }

/* ------------------------------------------------------------ checks */

void run_bad_block(struct chunk *p, const char *fn) {
  struct run *r = run_of(p);
  if (!(p->size & IN_HEAP) && run_base(r) < main_arena.brk_lo)
    tide_fatal(fn, "invalid pointer (not a block of a run)");
  if (r->check != run_check_word(r))
    tide_fatal(fn, "invalid pointer (not a block of a run, or its run's header was overwritten)");
  if (p->size != r->block_sf)
    tide_fatal(fn, "invalid size (a run block's header was overwritten)");
  tide_fatal(fn, "invalid pointer (not at a block of its run)");
}

/* ------------------------------------------------------- lists, states */

/* The owner's runs of one size: a doubly linked list it alone touches,
 * the run it cuts from now at the head. */
static void owner_push(struct tcache *tc, struct run *r) {
  struct run *head = tc->runs[r->idx];
  r->prev = NULL;
  r->next = head;
  if (head)
    head->prev = r;
  tc->runs[r->idx] = r;
  tc->nruns[r->idx]++;
  r->listed = true;
}

static void owner_unlink(struct tcache *tc, struct run *r) {
  if (tc->look_from[r->idx] == r)
    tc->look_from[r->idx] = r->next;
  tc->nruns[r->idx]--;
  if (r->prev)
    r->prev->next = r->next;
  else
    tc->runs[r->idx] = r->next;
  if (r->next)
    r->next->prev = r->prev;
  r->next = r->prev = NULL;
  r->listed = false;
}

/* The arena's lists (its lock held): all runs, and orphans per size. */
static void arena_list_add(struct arena *a, struct run *r) {
  r->aprev = NULL;
  r->anext = a->runs;
  if (a->runs)
    a->runs->aprev = r;
  a->runs = r;
}

static void arena_list_remove(struct arena *a, struct run *r) {
  if (r->aprev)
    r->aprev->anext = r->anext;
  else
    a->runs = r->anext;
  if (r->anext)
    r->anext->aprev = r->aprev;
}

static void orphan_push(struct arena *a, struct run *r) {
  struct run *head = a->orphans[r->idx];
  r->prev = NULL;
  r->next = head;
  if (head)
    head->prev = r;
  a->orphans[r->idx] = r;
}

static void orphan_unlink(struct arena *a, struct run *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    a->orphans[r->idx] = r->next;
  if (r->next)
    r->next->prev = r->prev;
  r->next = r->prev = NULL;
}

/* r goes back to its arena as one chunk (a locked, r off every list but
 * the arena's list of runs, no block out). */
static void release(struct arena *a, struct run *r) {
  arena_list_remove(a, r);
  r->check = 0;
  arena_free(a, (struct chunk *)run_base(r), false);
}

/* ------------------------------------------------------------- making */

static struct run *make_run(struct arena *a, size_t idx, struct tcache *owner) {
  size_t size = tcache_bin_size(idx), rsize = RUN_SIZE;
  struct chunk *c = arena_malloc_run(a, rsize);
  if (!c)
    return NULL;
  struct run *r = (struct run *)chunk2mem(c);
  memset(r, 0, sizeof *r);
  r->check = run_check_word(r);
  r->state = RUN_OWNED;
  r->idx = (uint16_t)idx;
  r->block_sf = size | PREV_INUSE | (c->size & IN_HEAP) | IN_RUN;
  r->size = rsize;
  r->nblocks = (uint32_t)((rsize - RUN_HDR - CHUNK_HDR) / size); /* room for the tail's header */
  r->recip = (uint32_t)((((uint64_t)1 << 32) + size - 1) / size);
  r->owner = owner;
  r->arena = a;
  arena_list_add(a, r);
  return r;
}

/* An orphan of a with blocks to hand out, now owner's (a locked). */
static struct run *adopt_orphan(struct arena *a, size_t idx, struct tcache *owner) {
  for (struct run *r = a->orphans[idx]; r; r = r->next) {
    run_lock(r);
    if (r->state == RUN_ORPHAN && run_has_room(r)) {
      orphan_unlink(a, r);
      r->state = RUN_OWNED;
      __atomic_store_n(&r->owner, owner, __ATOMIC_RELAXED); /* free's fast path reads it */
      run_unlock(r);
      return r;
    }
    run_unlock(r);
  }
  return NULL;
}

/* A run of idx for tc: an orphan of its arena, else a new one. */
static struct run *get_run(struct tcache *tc, size_t idx) {
  if (unlikely(idx >= TCACHE_RUN_BINS)) /* (the arrays of struct tcache for runs end there) */
    tide_fatal("malloc", "internal error: a run for a bin past TCACHE_RUN_BINS");
  struct arena *a = arenas_lock_mine();
  struct run *r = adopt_orphan(a, idx, tc);
  if (!r) {
    r = make_run(a, idx, tc);
    tcache_refresh_own(tc); /* the run may lie past the range tc knows as its own */
  }
  lock_release(&a->lock);
  if (r) {
    lists_lock(tc);
    owner_push(tc, r);
    lists_unlock(tc);
  }
  return r;
}

/* ------------------------------------------------------------- taking */

/* The header free() reads after the last carved block: the next block's,
 * or the tail's.  Both read block_sf, so every block's next header is
 * its own (free's fast path relies on it: a block whose size was
 * enlarged over its neighbour finds a header that does not match). */
static void write_next_header(struct run *r, uint32_t carved) { run_block(r, carved)->size = r->block_sf; }

/* Put the list head..tail (n entries) in front of tc's bin idx. */
static void bin_splice(struct tcache *tc, size_t idx, struct tcache_entry *head, struct tcache_entry *tail, uint32_t n) {
  tail->next = (struct tcache_entry *)link_protect(&tail->next, (struct chunk *)tc->head[idx]);
  tc->head[idx] = head;
  tc->count[idx] = (uint16_t)(tc->count[idx] + n);
}

/* Owner, r locked: up to room blocks into tc's bin idx, in whole batches
 * where they fit -- a first batch up to twice room too, if the bin has
 * space for it (cutting one walks its entries, which waited in the run
 * and are cold: one cache miss after another; past that, the refill
 * ramp's small first refills win) -- then, with fresh, blocks
 * whose pages went back and uncarved blocks, which both cost page
 * faults; returns how many. */
static uint32_t take_blocks(struct tcache *tc, struct run *r, size_t idx, uint32_t room, bool fresh) {
  uint32_t got = 0, space = tc->limit[idx] > tc->count[idx] ? (uint32_t)(tc->limit[idx] - tc->count[idx]) : 0;
  while (r->nbatch > 0 && got < room) {
    struct run_batch *b = &r->batch[r->nbatch - 1];
    if (b->n <= room - got || (got == 0 && b->n <= space && b->n <= 2 * room)) {
      bin_splice(tc, idx, b->head, b->tail, b->n);
      got += b->n;
      r->nfree -= b->n;
      r->nbatch--;
      continue;
    }
    if (got > 0)
      break;
    /* Cut: the first room entries go, the rest stays a batch. */
    struct tcache_entry *last = b->head;
    for (uint32_t k = 1; k < room; k++) {
      last = entry_next(last);
      if (unlikely(!aligned_ok(last)))
        tide_fatal("malloc", "corrupted free block in a run (written after free?)");
    }
    struct tcache_entry *rest = entry_next(last);
    bin_splice(tc, idx, b->head, last, room);
    b->head = rest;
    b->n -= room;
    r->nfree -= room;
    got = room;
  }
  if (!fresh)
    room = got;
  /* Blocks whose pages went back: their headers (and the next one, which
   * a free of this block reads) are written again. */
  for (uint32_t w = 0; got < room && r->npurged > 0 && w < RUN_PURGED_WORDS; w++) {
    while (got < room && r->purged[w]) {
      uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(r->purged[w]);
      r->purged[w] &= r->purged[w] - 1;
      struct chunk *c = run_block(r, i);
      c->size = r->block_sf;
      run_block(r, i + 1)->size = r->block_sf;
      struct tcache_entry *e = chunk2mem(c);
      e->key = free_key(e);
      e->next = (struct tcache_entry *)link_protect(&e->next, (struct chunk *)tc->head[idx]);
      tc->head[idx] = e;
      tc->count[idx]++;
      r->npurged--;
      r->nfree--;
      got++;
    }
  }
  if (got < room && r->carved < r->nblocks) {
    uint32_t want = room - got, left = r->nblocks - r->carved;
    if (want > left)
      want = left;
    uint32_t first = r->carved;
    /* Pushed from the top down, so they come out in address order; on
     * memory that may have held an old free key for this address.  Their
     * headers, and the one after them, are written before carved says
     * they exist (the heap inspector reads them without the run lock). */
    for (uint32_t i = first + want; i-- > first;) {
      struct chunk *c = run_block(r, i);
      c->size = r->block_sf;
      struct tcache_entry *e = chunk2mem(c);
      e->key = free_key(e);
      e->next = (struct tcache_entry *)link_protect(&e->next, (struct chunk *)tc->head[idx]);
      tc->head[idx] = e;
    }
    tc->count[idx] = (uint16_t)(tc->count[idx] + want);
    got += want;
    write_next_header(r, first + want);
    __atomic_store_n(&r->carved, first + want, __ATOMIC_RELEASE);
  }
  if (got)
    r->takes++;
  return got;
}

/* Take blocks for bin idx from r (fresh: see take_blocks), and pop one
 * for the caller. */
static void *take(struct tcache *tc, struct run *r, size_t idx, bool fresh) {
  unsigned limit = tcache_limit[idx];
  unsigned want = limit / 2u + 1u;
  if (want > TCACHE_MAX_BATCH + 1u)
    want = TCACHE_MAX_BATCH + 1u;
  unsigned ramp = tcache_refill_ramp(tc, idx, run_block_size(r));
  if (want > ramp)
    want = ramp;
  unsigned room = limit > tc->count[idx] ? limit - tc->count[idx] : 1u;
  if (want > room)
    want = room;
  run_lock(r);
  uint32_t got = take_blocks(tc, r, idx, want, fresh);
  run_unlock(r);
  if (!got)
    return NULL;
  tcache_refilled(tc, idx);
  return tcache_pop(tc, idx);
}

/* Another of tc's runs of idx with room left, moved to the head. */
static struct run *find_room(struct tcache *tc, size_t idx) {
  lists_lock(tc);
  for (struct run *r = tc->runs[idx] ? tc->runs[idx]->next : NULL; r; r = r->next) {
    if (run_has_room(r)) {
      owner_unlink(tc, r);
      owner_push(tc, r);
      lists_unlock(tc);
      return r;
    }
  }
  lists_unlock(tc);
  return NULL;
}

/* Another of tc's runs of idx with blocks given back, moved to the
 * head.  The thread looks in rounds: a round starts when some came back
 * (tc->given_back, cleared as the round starts, so a give-back during the
 * round starts the next one) and visits each of its other runs once, at
 * most GIVEN_BACK_LOOK per refill, from where the last look stopped
 * (tc->look_from, which unlinking a run moves on).  So a refill costs a
 * few steps however many runs the thread has, and once a round found
 * nothing, refills look no more until a batch comes back. */
#define GIVEN_BACK_LOOK 8
static struct run *find_given_back(struct tcache *tc, size_t idx) {
  lists_lock(tc);
  if (tc->round_left[idx] == 0) {
    /* (a full barrier: a give-back that saw the flag still set had
     * published its batch first, see run_give_back) */
    __atomic_exchange_n(&tc->given_back[idx], 0, __ATOMIC_SEQ_CST);
    tc->round_left[idx] = tc->nruns[idx] > 0 ? tc->nruns[idx] - 1 : 0;
  }
  struct run *head = tc->runs[idx], *r = tc->look_from[idx];
  if (!r || r == head)
    r = head ? head->next : NULL;
  for (unsigned looked = 0; r && tc->round_left[idx] > 0 && looked < GIVEN_BACK_LOOK; looked++) {
    tc->round_left[idx]--;
    if (__atomic_load_n(&r->nbatch, __ATOMIC_RELAXED) > 0) {
      tc->look_from[idx] = r->next;
      owner_unlink(tc, r);
      owner_push(tc, r);
      lists_unlock(tc);
      return r;
    }
    r = r->next ? r->next : head->next; /* round the list */
  }
  if (!r)
    tc->round_left[idx] = 0;
  tc->look_from[idx] = r;
  lists_unlock(tc);
  return NULL;
}

/* Blocks given back to a run come first, from any of the thread's runs
 * of the size, before the current run is cut further: cutting touches new
 * pages while blocks that came back (freed by other threads, or flushed
 * from the cache, in whatever run) sit resident.  The runs are looked
 * through in rounds, only after batches came back to some of them
 * (tc->given_back, set by run_give_back), a few at a time
 * (find_given_back).  Then the current run's purged and uncarved blocks, another run
 * with room, a new run. */
void *run_refill(struct tcache *tc, size_t idx) {
  struct run *r = tc->runs[idx];
  void *m = r ? take(tc, r, idx, false) : NULL;
  if (m)
    return m;
  if (tc->round_left[idx] || __atomic_load_n(&tc->given_back[idx], __ATOMIC_RELAXED)) {
    struct run *other = find_given_back(tc, idx);
    if (other && (m = take(tc, other, idx, false)))
      return m;
  }
  r = tc->runs[idx];
  m = r ? take(tc, r, idx, true) : NULL;
  if (m)
    return m;
  r = find_room(tc, idx);
  if (!r)
    r = get_run(tc, idx);
  return r ? take(tc, r, idx, true) : NULL;
}

/* --------------------------------------------------------- giving back */

/* The last block of run r came back, and the caller may release it:
 * its own run (only its owner takes from it, so it stays empty), or an
 * orphan it marked RUN_RELEASING (no one adopts that one, and no block of
 * it is out, so no one else touches it).  The owner keeps the run it is
 * cutting now, so that a size that comes and goes does not remake it
 * each time -- while the background thread can hand its pages back if it
 * stays idle; without that thread it goes too. */
static void release_empty(struct run *r, struct tcache *me, struct arena *locked, bool orphan) {
  struct arena *a = r->arena;
  if (!orphan) {
    lists_lock(me);
    owner_unlink(me, r);
    lists_unlock(me);
  }
  if (locked != a)
    lock_acquire(&a->lock);
  if (orphan)
    orphan_unlink(a, r);
  release(a, r);
  if (locked != a)
    lock_release(&a->lock);
}

void run_give_back(struct run *r, struct tcache_entry *first, struct tcache_entry *last, unsigned n,
                   struct tcache *me, struct arena *locked) {
  last->next = (struct tcache_entry *)link_protect(&last->next, NULL);
  run_lock(r);
  if (unlikely(r->state == RUN_DEAD)) { /* a fork child's run of a thread that did not come along */
    run_unlock(r);
    return;
  }
  /* A batch joins the newest if both fit a refill together (so each is
   * taken whole), or when every slot is in use, the shortest (batches of
   * a few blocks, other threads' frees of blocks of many runs, fill the
   * slots; one batch taking every later one would be cut at each take). */
  struct run_batch *b = r->nbatch ? &r->batch[r->nbatch - 1] : NULL;
  unsigned fit = tcache_limit[r->idx] / 2u + 1u;
  if (b && b->n + n > fit && r->nbatch == RUN_BATCHES)
    for (unsigned j = 0; j + 1 < RUN_BATCHES; j++)
      if (r->batch[j].n < b->n)
        b = &r->batch[j];
  if (b && (b->n + n <= fit || r->nbatch == RUN_BATCHES)) {
    b->tail->next = (struct tcache_entry *)link_protect(&b->tail->next, (struct chunk *)first);
    b->tail = last;
    b->n += n;
  } else {
    r->batch[r->nbatch++] = (struct run_batch){first, last, n};
  }
  r->nfree += n;
  if (unlikely(r->nfree > r->carved))
    tide_fatal(tide_current_fn, "double free or corruption (more blocks back in a run than it handed out)");
  /* Tell the owner its runs have blocks again (run_refill).  Under the
   * run's lock an owned run's owner is alive: it turns its runs into
   * orphans under this lock before its cache goes. */
  if (r->state == RUN_OWNED && r->owner) {
    /* The batch is published before the flag is read (a fence: read
     * first, the owner could clear the flag and then miss the batch). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&r->owner->given_back[r->idx], __ATOMIC_RELAXED))
      __atomic_store_n(&r->owner->given_back[r->idx], 1, __ATOMIC_RELAXED);
  }
  /* Who releases an empty run is decided here, under its lock: once it
   * is unlocked, another thread may adopt, empty and release it. */
  bool mine = false, orphan = false, empty = r->nfree == r->carved;
  if (empty) {
    /* Our own run goes unless it is the one we cut now (only we change
     * which that is) and the background thread can purge it if it stays
     * idle. */
    mine = r->state == RUN_OWNED && me && r->owner == me && !(me->runs[r->idx] == r && purge_thread_running());
    orphan = r->state == RUN_ORPHAN;
    if (mine || orphan)
      r->state = RUN_RELEASING;
  }
  run_unlock(r);
  if (empty)
    TIDE_TEST_POINT("run_give_back: empty, unlocked");
  if (mine || orphan)
    release_empty(r, me, locked, orphan);
  else if (empty)
    purge_wake(); /* another thread's run, empty now: its pages go back once it stays idle */
}

/* ------------------------------------------------------ thread exit */

void run_thread_exit(struct tcache *tc) {
  /* Held throughout: the background thread takes runs off these lists
   * while they are OWNED (it only tries the lock, so the arena locks
   * taken below cannot deadlock with it). */
  lists_lock(tc);
  for (size_t idx = 0; idx < TCACHE_RUN_BINS; idx++) {
    struct run *r = tc->runs[idx];
    tc->runs[idx] = NULL;
    tc->look_from[idx] = NULL;
    tc->nruns[idx] = tc->round_left[idx] = 0;
    while (r) {
      struct run *next = r->next;
      struct arena *a = r->arena;
      lock_acquire(&a->lock);
      run_lock(r);
      r->next = r->prev = NULL;
      r->listed = false;
      bool empty = r->nfree == r->carved;
      if (!empty) {
        r->state = RUN_ORPHAN;
        __atomic_store_n(&r->owner, NULL, __ATOMIC_RELAXED);
        orphan_push(a, r);
      }
      run_unlock(r);
      if (empty)
        release(a, r);
      lock_release(&a->lock);
      r = next;
    }
  }
  lists_unlock(tc);
}

/* ------------------------------------------------------------- fork */

void run_prefork(struct arena *a) {
  for (struct run *r = a->runs; r; r = r->anext)
    run_lock(r);
}

void run_postfork_parent(struct arena *a) {
  for (struct run *r = a->runs; r; r = r->anext)
    run_unlock(r);
}

void run_postfork_child(struct arena *a, struct tcache *survivor) {
  if (survivor)
    survivor->runs_lock = 0;
  for (struct run *r = a->runs; r; r = r->anext) {
    __atomic_store_n(&r->lock, 0, __ATOMIC_RELAXED);
    if (r->state == RUN_OWNED && r->owner != survivor)
      r->state = RUN_DEAD;
  }
}

/* ------------------------------------------------------------- purge */

static bool try_run_lock(struct run *r) {
  int free_state = 0;
  return __atomic_compare_exchange_n(&r->lock, &free_state, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/* Hand back the pages lo..hi (rounded inwards to whole pages). */
static size_t purge_span(uintptr_t lo, uintptr_t hi) {
  lo = os_page_up(lo);
  hi = os_page_down(hi);
  if (hi <= lo)
    return 0;
  os_purge((void *)lo, hi - lo);
  return hi - lo;
}

/* Run blocks (at most 4112 bytes: up to three pages), r locked: each page of the carved part
 * whose every byte that matters is free goes back -- no block in use
 * reaches into it, nor the header after such a block (its free reads
 * that).  The free blocks that reach into such a page the same way
 * leave their batches and are marked purged; taken again, they and the
 * header after them are written afresh (take_blocks). */
static size_t purge_small_free_pages(struct run *r) {
  size_t size = block_size(r);
  uint32_t carved = r->carved;
  if (carved == 0 || r->nfree == r->npurged)
    return 0;
  uint64_t free_bits[RUN_PURGED_WORDS];
  memcpy(free_bits, r->purged, sizeof free_bits);
  uintptr_t first = (uintptr_t)run_block(r, 0);
  for (unsigned b = 0; b < r->nbatch; b++) {
    uint32_t n = 0;
    for (struct tcache_entry *e = r->batch[b].head; e && n < r->batch[b].n; e = entry_next(e), n++) {
      if (unlikely(!aligned_ok(e) || run_of(e) != r))
        tide_fatal("free", "corrupted free block in a run (written after free?)");
      uint32_t i = (uint32_t)(((uintptr_t)mem2chunk(e) - first) / size);
      free_bits[i / 64] |= (uint64_t)1 << (i % 64);
    }
  }
#define BIT(i) (free_bits[(i) / 64] >> ((i) % 64) & 1)
  /* The pages: from the first whole page after the run's header to the
   * last one before the size word of the header after the last carved
   * block.  Page p is free if blocks j with chunk_j + 8 < p + page and
   * chunk_(j+1) + 16 > p are all free. */
  uintptr_t lo = os_page_up(first), hi = os_page_down((uintptr_t)run_block(r, carved) + SIZE_SZ);
  uint64_t newly[RUN_PURGED_WORDS] = {0};
  uintptr_t spans_lo[64], spans_hi[64];
  unsigned nspans = 0;
  for (uintptr_t p = lo; p + os_page <= hi && nspans < 64; p += os_page) {
    uintptr_t a = p > first + size + 16 ? p - 16 - size : first; /* chunk_(j+1) + 16 > p */
    uint32_t j_lo = (uint32_t)((a - first) / size);
    uint32_t j_hi = (uint32_t)((p + os_page - 8 - 1 - first) / size); /* chunk_j + 8 < p + page */
    if (j_hi >= carved)
      j_hi = carved - 1;
    bool all_free = true;
    for (uint32_t j = j_lo; j <= j_hi && all_free; j++)
      if ((uintptr_t)run_block(r, j) + 8 < p + os_page && (uintptr_t)run_block(r, j + 1) + 16 > p)
        all_free = BIT(j);
    if (!all_free)
      continue;
    bool done_before = true; /* every block of the window purged already: p went back then */
    for (uint32_t j = j_lo; j <= j_hi && done_before; j++)
      if ((uintptr_t)run_block(r, j) + 8 < p + os_page && (uintptr_t)run_block(r, j + 1) + 16 > p)
        done_before = is_purged(r, j);
    if (done_before)
      continue;
    /* The free blocks any byte of which that matters lies in p: their
     * size word, link and key, and the next header, which a free of
     * theirs reads once they are handed out again.  Left in a batch, such
     * a block would come out with a header of zeros after it. */
    for (uint32_t j = j_lo; j <= j_hi; j++)
      if ((uintptr_t)run_block(r, j) + 8 < p + os_page && (uintptr_t)run_block(r, j + 1) + 16 > p)
        newly[j / 64] |= (uint64_t)1 << (j % 64);
    if (nspans > 0 && spans_hi[nspans - 1] == p)
      spans_hi[nspans - 1] = p + os_page;
    else {
      spans_lo[nspans] = p;
      spans_hi[nspans++] = p + os_page;
    }
  }
#undef BIT
  if (nspans == 0)
    return 0;
  /* The batches without the blocks that go (while their links are
   * intact), then the pages. */
  uint32_t went = 0;
  unsigned nb = 0;
  for (unsigned b = 0; b < r->nbatch; b++) {
    struct tcache_entry *head = NULL, *tail = NULL;
    uint32_t n = 0, seen = 0;
    for (struct tcache_entry *e = r->batch[b].head, *next; e && seen < r->batch[b].n; e = next, seen++) {
      next = entry_next(e);
      uint32_t i = (uint32_t)(((uintptr_t)mem2chunk(e) - first) / size);
      if (newly[i / 64] >> (i % 64) & 1) {
        went++;
        continue;
      }
      if (tail)
        tail->next = (struct tcache_entry *)link_protect(&tail->next, (struct chunk *)e);
      else
        head = e;
      tail = e;
      n++;
    }
    if (!n)
      continue;
    tail->next = (struct tcache_entry *)link_protect(&tail->next, NULL);
    r->batch[nb++] = (struct run_batch){head, tail, n};
  }
  r->nbatch = (uint8_t)nb;
  for (unsigned w = 0; w < RUN_PURGED_WORDS; w++)
    r->purged[w] |= newly[w];
  r->npurged += went;
  size_t released = 0;
  for (unsigned s = 0; s < nspans; s++)
    released += purge_span(spans_lo[s], spans_hi[s]);
  return released;
}

/* An idle run that still has blocks out (the program's, or in its owner's
 * cache), r locked: the pages only its free blocks reach into
 * (purge_small_free_pages: run blocks are at most 4112 bytes) and what
 * is not carved yet go back. */
static size_t purge_free_pages(struct run *r) {
  size_t released = purge_small_free_pages(r);
  /* Past the header after the last carved block. */
  released += purge_span((uintptr_t)run_block(r, r->carved) + CHUNK_HDR, (uintptr_t)run_base(r) + r->size);
  return released;
}

/* An empty run of an idle thread, r and a locked: off its owner's list,
 * unless it is the one the owner cuts now (or the owner's lists are busy:
 * another round).  True if the caller may release it. */
static bool take_off_owner(struct run *r) {
  struct tcache *owner = r->owner;
  if (r->state != RUN_OWNED || !owner || r->nfree != r->carved || !spin_trylock(&owner->runs_lock))
    return false;
  bool off = r->listed && owner->runs[r->idx] != r;
  if (off)
    owner_unlink(owner, r);
  spin_unlock(&owner->runs_lock);
  return off;
}

size_t run_purge_idle(struct arena *a) {
  size_t waiting = 0;
  for (struct run *r = a->runs, *next; r; r = next) {
    next = r->anext;
    /* Orphans too: the program may hold a few of their blocks for long. */
    uint8_t state = __atomic_load_n(&r->state, __ATOMIC_RELAXED);
    if (state != RUN_OWNED && state != RUN_ORPHAN)
      continue;
    /* Emptied and purged before, and still not its owner's current run:
     * the whole chunk goes back to the arena (its first page too). */
    if (state == RUN_OWNED && __atomic_load_n(&r->carved, __ATOMIC_RELAXED) == 0 && try_run_lock(r)) {
      bool off = take_off_owner(r);
      run_unlock(r);
      if (off)
        release(a, r);
      continue;
    }
    unsigned long takes = __atomic_load_n(&r->takes, __ATOMIC_RELAXED);
    uint32_t nfree = __atomic_load_n(&r->nfree, __ATOMIC_RELAXED), carved = __atomic_load_n(&r->carved, __ATOMIC_RELAXED);
    /* Looked at once per idle spell: untouched since its last purge, or
     * with nothing free in it, it is left alone. */
    if (takes != r->seen_takes || nfree != r->seen_nfree || carved == 0 || (nfree == 0 && carved == r->nblocks)) {
      r->seen_takes = takes;
      r->seen_nfree = nfree;
      r->idle_rounds = 0;
      continue;
    }
    if (r->idle_rounds == UINT32_MAX) /* purged in this spell already */
      continue;
    if (++r->idle_rounds < 2 || !try_run_lock(r)) {
      waiting++;
      continue;
    }
    if (r->takes == takes && (r->state == RUN_OWNED || r->state == RUN_ORPHAN)) {
      if (r->nfree == r->carved) {
        /* Empty: every page past the first (which holds the header) goes
         * back; the blocks are carved afresh when needed. */
        a->count.purged_bytes += purge_span((uintptr_t)run_base(r) + RUN_HDR, (uintptr_t)run_base(r) + r->size);
        r->nbatch = 0;
        r->nfree = r->seen_nfree = 0;
        r->npurged = 0;
        memset(r->purged, 0, sizeof r->purged);
        r->carved = 0;
      } else {
        a->count.purged_bytes += purge_free_pages(r);
      }
    }
    r->idle_rounds = UINT32_MAX;
    run_unlock(r);
  }
  return waiting;
}

size_t run_idle_bytes(struct arena *a, size_t *free_blocks) {
  size_t idle = 0, blocks = 0;
  for (struct run *r = a->runs; r; r = r->anext) {
    if (r->state == RUN_DEAD)
      continue;
    /* Read without the run's lock: a give-back or a purge between the
     * two loads may make them disagree for a moment. */
    uint32_t nfree = __atomic_load_n(&r->nfree, __ATOMIC_RELAXED), carved = __atomic_load_n(&r->carved, __ATOMIC_RELAXED);
    size_t out = carved > nfree ? carved - nfree : 0;
    idle += r->size - out * block_size(r);
    blocks += r->nblocks - out;
  }
  if (free_blocks)
    *free_blocks = blocks;
  return idle;
}

/* The free blocks of a's runs (uncarved room included) per thread-cache
 * bin, added to blocks[]; returns how many runs a has.  Under a's lock;
 * each run read without its own, as run_idle_bytes. */
size_t run_free_by_bin(struct arena *a, size_t blocks[TCACHE_BINS]) {
  size_t runs = 0;
  for (struct run *r = a->runs; r; r = r->anext) {
    if (r->state == RUN_DEAD)
      continue;
    runs++;
    uint32_t nfree = __atomic_load_n(&r->nfree, __ATOMIC_RELAXED), carved = __atomic_load_n(&r->carved, __ATOMIC_RELAXED);
    size_t out = carved > nfree ? carved - nfree : 0;
    if (r->idx < TCACHE_BINS && r->nblocks > out)
      blocks[r->idx] += r->nblocks - out;
  }
  return runs;
}

/* ------------------------------------------------------------ checker */

#define REQUIRE(cond, what)                 \
  do {                                      \
    if (unlikely(!(cond)))                  \
      tide_fatal("heap_check", what);       \
  } while (0)

static void check_run(struct arena *a, struct run *r) {
  REQUIRE(r->check == run_check_word(r), "run header overwritten");
  REQUIRE(r->arena == a, "run on another arena's list");
  REQUIRE(r->idx < TCACHE_RUN_BINS && block_size(r) == tcache_bin_size(r->idx), "run of a size it cannot have");
  REQUIRE(r->size == RUN_SIZE && block_size(r) <= RUN_MAX_BLOCK && ((uintptr_t)run_base(r) & (r->size - 1)) == 0,
          "run of the wrong size, or misaligned");
  REQUIRE((r->block_sf & (IN_RUN | PREV_INUSE | IS_MMAPPED)) == (IN_RUN | PREV_INUSE), "run blocks' flags wrong");
  REQUIRE(r->nblocks == (r->size - RUN_HDR - CHUNK_HDR) / block_size(r), "run block count wrong");
  REQUIRE(r->carved <= r->nblocks && r->nfree <= r->carved && r->nbatch <= RUN_BATCHES, "run counts out of range");
  struct chunk *c = (struct chunk *)run_base(r);
  REQUIRE(chunk_size(c) == r->size && chunk_inuse(c), "run chunk not an in-use chunk of its size");
  if (r->state == RUN_DEAD)
    return;
  uint32_t purged = 0;
  for (uint32_t i = 0; i < r->carved; i++) {
    if (is_purged(r, i)) {
      purged++;
      continue;
    }
    REQUIRE(run_block(r, i)->size == r->block_sf, "run block header wrong");
  }
  REQUIRE(purged == r->npurged, "run's purged blocks do not add up to its count");
  if (r->carved > 0)
    REQUIRE(run_block(r, r->carved)->size == r->block_sf, "header after the last carved block wrong");
  uint32_t n = 0;
  for (unsigned b = 0; b < r->nbatch; b++) {
    uint32_t in_batch = 0;
    struct tcache_entry *e = r->batch[b].head, *last = NULL;
    for (; e; last = e, e = entry_next(e)) {
      REQUIRE(aligned_ok(e) && run_of(e) == r, "run free list leaves its run");
      REQUIRE(e->key == free_key(e), "run free block without its key");
      size_t off = (size_t)((char *)mem2chunk(e) - (run_base(r) + RUN_HDR));
      REQUIRE(off % block_size(r) == 0 && off / block_size(r) < r->carved, "run free list entry not a carved block");
      REQUIRE(!is_purged(r, (uint32_t)(off / block_size(r))), "run free list entry is a purged block");
      REQUIRE(++in_batch <= r->batch[b].n, "run batch longer than its count");
    }
    REQUIRE(in_batch == r->batch[b].n && last == r->batch[b].tail, "run batch shorter than its count, or its tail wrong");
    n += in_batch;
  }
  REQUIRE(n + r->npurged == r->nfree, "run's batches and purged blocks do not add up to its free count");
}

void check_runs(struct arena *a) {
  size_t n = 0;
  for (struct run *r = a->runs; r; r = r->anext) {
    REQUIRE(r->anext == NULL || r->anext->aprev == r, "arena's run list broken");
    run_lock(r);
    check_run(a, r);
    run_unlock(r);
    REQUIRE(++n <= a->system_mem / RUN_SIZE, "arena's run list loops");
  }
  for (size_t idx = 0; idx < TCACHE_BINS; idx++)
    for (struct run *r = a->orphans[idx]; r; r = r->next)
      REQUIRE((r->state == RUN_ORPHAN || r->state == RUN_RELEASING) && r->idx == idx && r->arena == a,
              "orphan list holds a run that is no orphan");
}
