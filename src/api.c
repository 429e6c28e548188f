/* SPDX-License-Identifier: MIT */
/*
 * Entry points: the tide_* functions, the standard names (in the drop-in
 * build), and initialisation.
 *
 * malloc and free are small inline fast paths over the thread cache,
 * with one unlikely branch each to a non-inlined slow path that takes
 * an arena lock.  (malloc's second one: the heap profiler's countdown,
 * src/prof.c.)
 */
#include "arena.h"
#include "arenas.h"
#include "debug.h"
#include "heap.h"
#include "mmapped.h"
#include "os.h"
#include "prof.h"
#include "purge.h"
#include "run.h"
#include "stats.h"
#include "tcache.h"

#include <stdlib.h>
#include <sys/single_threaded.h>

bool tide_initialized;
/* Odd constants until tide_init_slow draws the secrets (before any block
 * is cached): a key of 0 would match every cleared word. */
uintptr_t tide_key_xor = 0x9e3779b97f4a7c15u, tide_key_mul = 0xbf58476d1ce4e5b9u;
uintptr_t tide_link_secret = 0x2545f4914f6cdd1du;
#if TIDE_DEBUG
TIDE_EXPORT void (*tide_test_hook)(const char *where);
#endif
__thread const char *tide_current_fn;

/* ---------------------------------------------------------------- init */

void arenas_prefork(void);
void arenas_postfork_parent(void);
void arenas_postfork_child(void);

/* glibc's stdio list lock: its fork takes it before its own malloc locks
 * (exported by libc, declared in no public header). */
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);

/*
 * fork.  glibc's own malloc is locked last in fork, after the stdio list
 * lock, and not at all in a single-threaded process, so that fork works
 * from a signal handler that interrupted malloc.  Our handlers run before
 * fork takes anything, so they do the same themselves:
 *  - a single-threaded process takes no lock and resets nothing (there is
 *    no other thread whose work could be half done; tidemalloc never made
 *    a thread in such a process, src/purge.c);
 *  - otherwise the stdio list lock first (recursive: fork takes it again,
 *    releases it in the parent and resets it in the child), then ours.  A
 *    thread that holds a FILE lock and waits in realloc for an arena lock
 *    then never waits on the forking thread: that one takes the arena
 *    locks only once the list lock is its own, and the list lock's holder
 *    (fflush(NULL)) waits for that FILE lock, not for ours.
 */
static bool fork_locked; /* what prefork did, for the handlers after fork */
__thread bool lock_held_for_fork; /* src/lock.h */

static void prefork(void) {
  fork_locked = !__libc_single_threaded;
  if (!fork_locked)
    return;
  _IO_list_lock();
  debug_prefork(); /* before the arenas: debug mode takes its lock first */
  prof_prefork();
  arenas_prefork();
  mmapped_prefork();
  tcache_prefork();
  /* Handlers that run after this one may call malloc: this thread holds
   * every lock already (src/lock.h). */
  lock_held_for_fork = true;
}
static void postfork_parent(void) {
  if (!fork_locked)
    return;
  lock_held_for_fork = false;
  tcache_postfork_parent();
  mmapped_postfork_parent();
  arenas_postfork_parent();
  prof_postfork_parent();
  debug_postfork_parent();
  _IO_list_unlock();
}
static void postfork_child(void) {
  if (!fork_locked)
    return;
  lock_held_for_fork = false;
  purge_postfork_child();
  stats_postfork_child();
  mmapped_postfork_child();
  arenas_postfork_child();
  prof_postfork_child();
  debug_postfork_child();
  tcache_postfork_child(tcache_mine() != NULL);
  /* No background thread here: what waited for it goes now. */
  purge_release_deferred();
}

/* Reached from the first call of any entry point, or from the library
 * constructor below, whichever comes first; never allocates.  Running it
 * at load time matters: a fork while another thread is half-way through
 * initialising would leave the child waiting on init_lock for ever. */
__attribute__((constructor)) static void tide_init_at_load(void) {
  tide_ensure_init();
  purge_thread_at_load(); /* a safe point: not inside malloc */
}

void tide_init_slow(void) {
  static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&init_lock);
  if (!tide_initialized) {
    os_init();
    tcache_set_count(opt.tcache_count);
    opt_init();
    prof_init();
    tide_key_xor = (uintptr_t)os_random64();
    tide_key_mul = (uintptr_t)os_random64() | 1;
    tide_link_secret = (uintptr_t)os_random64() | 1; /* before any link exists */
    arenas_init();
    tcache_init_key();
    pthread_atfork(prefork, postfork_parent, postfork_child);
    stats_signal_install();
    __atomic_store_n(&tide_initialized, true, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&init_lock);
}

/* ------------------------------------------------------ pointer checks */

/* Cheap always-on checks of a pointer handed to us: alignment and a sane
 * size.  Which region it lies in is checked by the caller. */
static struct chunk *checked_chunk(void *mem, const char *fn) {
  if (unlikely(!aligned_ok(mem)))
    tide_fatal(fn, "invalid pointer (misaligned)");
  struct chunk *p = mem2chunk(mem);
  size_t size = chunk_size(p);
  if (unlikely(size < MINSIZE || (uintptr_t)p > (uintptr_t)-size))
    tide_fatal(fn, "invalid size");
  return p;
}

static struct arena *owning_arena(struct chunk *p, const char *fn) {
  struct arena *a = arenas_of_chunk(p, p->size);
  if (unlikely(!a))
    tide_fatal(fn, "invalid pointer (not allocated by tidemalloc)");
  return a;
}

/* A chunk that carries the free key is free already: every block handed
 * out has that word cleared (hand_out, the cache's pops).  Say where. */
static void reject_if_freed(struct chunk *p, const char *fn) {
  if (likely((uintptr_t)p->bk != free_key(chunk2mem(p))))
    return;
  struct tcache *tc = tcache_mine();
  size_t idx = tcache_bin_of(chunk_size(p));
  if (tc && ((idx < TCACHE_BINS && tcache_contains(tc, chunk2mem(p), idx)) || tcache_big_contains(tc, p)))
    tide_fatal(fn, "pointer already freed (in thread cache)");
  tide_fatal(fn, "pointer already freed (in a fast bin or another thread's cache)");
}

/* The free fast path's checks: p lies in our brk memory or a registered
 * heap and is not mmapped, and the header after it says "previous in use",
 * not mmapped, same region kind, with a size that can exist -- a write
 * past the end of a block usually breaks one of these.  In the same pass:
 * whether p belongs to the arena of tc's thread. */
enum chunk_class { NOT_CACHEABLE, OWN_BLOCK, OTHER_ARENAS_BLOCK };
/* The next header.  A run's block: exactly its own (see run.h: a size
 * enlarged over the neighbour finds another).  Else flags "previous in
 * use" and p's kind, and a size below 2^46, in one test. */
static inline enum chunk_class check_next_header(struct chunk *p, size_t size_field, size_t kind,
                                                 enum chunk_class class) {
  size_t nsf = chunk_at(p, size_field & ~CHUNK_FLAGS)->size;
  if (TIDE_HARDEN && (size_field & IN_RUN)) {
    if (unlikely(nsf != size_field))
      return NOT_CACHEABLE;
    return class;
  }
  if (unlikely((nsf ^ (kind | PREV_INUSE)) & (PREV_INUSE | IS_MMAPPED | IN_HEAP | ~(((size_t)1 << 46) - 1))))
    return NOT_CACHEABLE;
  return class;
}

/* x rotated right by 4 bits: below 2^60 only if x is a multiple of 16. */
static inline uintptr_t rotate4(uintptr_t x) { return (x >> 4) | (x << 60); }

/* classify_chunk past tc's own range: another arena's block, its own
 * past a stale copy of the range, or not ours. */
static TIDE_NOINLINE enum chunk_class classify_elsewhere(struct tcache *tc, struct chunk *p, size_t size_field) {
  size_t kind = size_field & (IS_MMAPPED | IN_HEAP);
  bool own;
  if (unlikely(!aligned_ok(p))) {
    return NOT_CACHEABLE;
  } else if (kind == 0) {
    if (unlikely((char *)p < main_arena.brk_lo || (char *)p >= main_arena.brk_hi))
      return NOT_CACHEABLE;
    own = tc->brk_local; /* past tc's copy of the range: the break grew since */
    if (own)
      tcache_refresh_own(tc);
  } else if (kind == IN_HEAP && heap_registered(p)) {
    own = heap_of(p)->arena == tc->arena;
  } else {
    return NOT_CACHEABLE;
  }
  /* A run's block is its owner's, whatever arenas the two are on now (a
   * thread that moved keeps its runs on the old one).  Its run header is
   * mapped: in a heap, below p; in the break, at or above brk_lo, a run
   * boundary (grow_brk). */
  if (size_field & IN_RUN)
    own = run_owned_by(p, tc);
  return check_next_header(p, size_field, kind, own ? OWN_BLOCK : OTHER_ARENAS_BLOCK);
}

static inline enum chunk_class classify_chunk(struct tcache *tc, struct chunk *p, size_t size_field) {
  size_t kind = size_field & (IS_MMAPPED | IN_HEAP);
  if (likely(rotate4((uintptr_t)chunk2mem(p) - tc->own_mem_lo) < tc->own_units && kind == tc->own_kind)) {
    /* Aligned, in the range where all blocks are its arena's (tcache.h);
     * a run's block is its own only if the run is. */
    bool own = !(size_field & IN_RUN) || run_owned_by(p, tc);
    return check_next_header(p, size_field, kind, own ? OWN_BLOCK : OTHER_ARENAS_BLOCK);
  }
  return classify_elsewhere(tc, p, size_field);
}

/* An mmapped chunk's memory starts 16 bytes into a page.  Such a pointer
 * that is no longer registered and lies in no arena is not read at all:
 * it was freed already (its pages are gone), or was never ours. */
#define MMAPPED_MEM_OFFSET CHUNK_HDR
static inline bool maybe_mmapped_mem(const void *mem) { return ((uintptr_t)mem & 4095) == MMAPPED_MEM_OFFSET; }
/* The heap profiler's samples are placed where free's fast path (below)
 * never takes them (they are no run blocks), and where free_not_fast
 * sends them the slow way in full (prof_placed is the page-offset test
 * of fast_candidate turned round). */
_Static_assert(MMAPPED_MEM_OFFSET == 16 && PROF_PAGE == 4096, "prof_placed() must match fast_candidate()'s test");

static void precheck_unreadable(void *mem, const char *fn) {
  struct chunk *p = mem2chunk(mem);
  if (!maybe_mmapped_mem(mem) || mmapped_known(p) || heap_registered(p) ||
      ((char *)p >= main_arena.brk_lo && (char *)p < main_arena.brk_hi))
    return;
  tide_fatal(fn, "invalid pointer (not a block of ours: freed already, or never allocated)");
}

static void perturb_alloc(void *mem, size_t n) {
  if (unlikely(opt.perturb))
    memset(mem, opt.perturb ^ 0xff, n);
}

/* A block handed out by the arena path: its second word may still hold
 * the free key from a stay in a fast bin or a thread cache (the cache's
 * own pops clear it).  Cleared, no live block carries the key unless the
 * program wrote it there, so a free that finds it means a double free. */
static void *hand_out(struct chunk *c, size_t n) {
  void *mem = chunk2mem(c);
  ((uintptr_t *)mem)[1] = 0;
  perturb_alloc(mem, n);
  return mem;
}

/* ------------------------------------------------------------ allocate */

/* The arena path: a chunk of nb bytes for a request of n, or NULL with
 * errno set.  *clean_from as in arena_malloc. */
static struct chunk *alloc_chunk(size_t n, size_t nb, char **clean_from, bool use_tcache) {
  tide_current_fn = "malloc";
  if (unlikely(arenas_isolating) && mmapped_can_map()) {
    struct chunk *m = mmapped_alloc(nb, false); /* see arenas_isolate */
    if (m)
      return m;
  }
  struct arena *a = arenas_lock_mine();
  purge_note_activity(a);
  struct tcache *tc = tcache_get_or_create(a);
  struct chunk *c;
  size_t idx = tcache_index(nb);
  if (use_tcache && tc && idx < tcache_nbins) {
    /* Other sizes' remote stacks stay for their own misses to adopt. */
    c = tcache_refill(tc, a, idx);
    if (clean_from && c)
      *clean_from = (char *)chunk2mem(c) + chunk_usable(c);
  } else {
    /* Blocks other threads freed may merge into what is wanted. */
    tcache_drain_remote(a);
    c = arena_malloc(a, nb, clean_from);
  }
  a->count.malloc_calls++;
  a->count.bytes_requested += n;
  purge_tick(a);
  check_arena_sometimes(a);
  lock_release(&a->lock);
  if (unlikely(!c)) {
    struct arena *b = arenas_lock_other(a);
    if (b) {
      c = arena_malloc(b, nb, clean_from);
      lock_release(&b->lock);
    }
  }
  if (unlikely(!c))
    errno = ENOMEM;
  return c;
}

/* A miss in small bin idx of tc: blocks of this size that other threads
 * freed back to our arena, without a lock, else the thread's runs. */
static void *refill_small(struct tcache *tc, struct arena *mine, size_t idx) {
  purge_note_activity(mine);
  void *mem = tcache_adopt_remote(tc, mine, idx);
  if (!mem && tcache_limit[idx] > 0)
    mem = run_refill(tc, idx);
  return mem;
}

/* A block from this thread's cache or runs for a request of n (chunk nb),
 * or NULL (no cache, or the arena path serves this size).  The cache
 * missed in n's bin: blocks of this size that other threads freed back to
 * our arena refill it without a lock, else the thread's runs do (a lock
 * only to make a run).  A thread's first small request makes its cache,
 * so that even its first blocks come from runs. */
static void *alloc_cached(size_t n, size_t nb) {
  size_t idx = nb <= (TCACHE_SMALL_BINS + 1) * CHUNK_ALIGN ? tcache_class_index(nb) : TCACHE_BINS;
  bool small = idx < tcache_nbins;
  if (!small && nb <= TCACHE_MEDIUM_MAX_CHUNK && nb > (TCACHE_SMALL_BINS + 1) * CHUNK_ALIGN) {
    idx = tcache_medium_index(nb); /* rounded up to its class */
    if (tcache_limit[idx] == 0)
      idx = TCACHE_BINS;
  } else if (!small) {
    idx = TCACHE_BINS;
  }
  struct tcache *tc = tcache_tls;
  if (unlikely(tc == tcache_none_ptr()))
    tc = idx < TCACHE_BINS ? tcache_mine_or_create() : tcache_mine();
  struct arena *mine = arenas_thread_arena();
  void *mem = NULL;
  if (!tc) {
    return NULL;
  } else if (idx >= TCACHE_SMALL_BINS && idx < TCACHE_BINS) {
    mem = tcache_pop_checked(tc, idx);
    /* Past the runs' sizes (src/run.h): a medium chunk the cache keeps,
     * else the arena's. */
    if (!mem)
      mem = tcache_bin_size(idx) <= RUN_MAX_BLOCK ? run_refill(tc, idx) : tcache_big_take(tc, nb);
  } else if (tcache_big_size(nb)) {
    mem = tcache_big_take(tc, nb);
  } else if (mine && small) {
    mem = refill_small(tc, mine, idx);
  }
  if (mem) {
    tc->mallocs++;
    tc->bytes_requested += n;
  }
  return mem;
}

/* The chunk the arena path cuts for nb: for a size the cache keeps, its
 * class's size, so that freed it goes to the class's bin and serves the
 * class's next request from there (an 8 KiB malloc+free pair: 433
 * instructions when it went to the medium cache, 209 so). */
static size_t arena_chunk_size(size_t nb) {
  if (nb <= (TCACHE_SMALL_BINS + 1) * CHUNK_ALIGN) {
    size_t idx = tcache_class_index(nb);
    return tcache_limit[idx] > 0 ? tcache_bin_size(idx) : nb;
  }
  if (nb > RUN_MAX_BLOCK && nb <= TCACHE_MEDIUM_MAX_CHUNK) {
    size_t idx = tcache_medium_index(nb);
    if (tcache_limit[idx] > 0)
      return tcache_bin_size(idx);
  }
  return nb;
}

/* malloc without debug mode (src/debug.h). */
void *tide_raw_malloc(size_t n) {
  size_t nb;
  if (unlikely(!request2size(n, &nb))) {
    errno = ENOMEM;
    return NULL;
  }
  void *mem = alloc_cached(n, nb);
  if (mem) {
    perturb_alloc(mem, n);
    return mem;
  }
  struct chunk *c = alloc_chunk(n, arena_chunk_size(nb), NULL, true);
  if (!c)
    return NULL;
  return hand_out(c, n);
}

/* Reached by a jump from the fast path, so its return address is the
 * program's call of malloc. */
static TIDE_NOINLINE void *malloc_slow(size_t n) {
  tide_ensure_init();
  stats_serve_pending();
  if (unlikely(tide_debug_on))
    return debug_malloc(n, (uintptr_t)__builtin_return_address(0), *(void **)__builtin_frame_address(0));
  if (unlikely(prof_on))
    return prof_malloc(n);
  return tide_raw_malloc(n);
}

TIDE_EXPORT void *tide_malloc(size_t n) {
  struct tcache *tc = tcache_tls;
  if (likely(n <= tcache_max_request)) {
    size_t idx = tcache_request_index(n);
    void *mem = tcache_pop(tc, idx);
    if (likely(mem != NULL)) {
      tc->mallocs++;
      if (unlikely((tc->bytes_left -= (intptr_t)n) < 0)) /* counted (tcache.h) */
        return prof_malloc_hit(n, mem);
      return mem;
    }
  }
  return malloc_slow(n);
}

TIDE_EXPORT void *tide_calloc(size_t nmemb, size_t size) {
  size_t n;
  if (unlikely(__builtin_mul_overflow(nmemb, size, &n))) {
    errno = ENOMEM;
    return NULL;
  }
  struct tcache *tc = tcache_tls;
  if (n <= tcache_max_request) {
    size_t idx = tcache_request_index(n);
    void *mem = tcache_pop(tc, idx);
    if (mem) {
      tc->mallocs++;
      if (unlikely((tc->bytes_left -= (intptr_t)n) < 0))
        return prof_calloc_hit(n, mem);
      return memset(mem, 0, chunk_usable(mem2chunk(mem)));
    }
  }
  tide_ensure_init();
  if (unlikely(tide_debug_on))
    return debug_calloc(n, (uintptr_t)__builtin_return_address(0));
  if (unlikely(prof_on))
    return prof_calloc(n);
  return tide_raw_calloc(n);
}

/* calloc's slow path, without debug mode or the profiler. */
void *tide_raw_calloc(size_t n) {
  size_t nb;
  if (unlikely(!request2size(n, &nb))) {
    errno = ENOMEM;
    return NULL;
  }
  void *cached = alloc_cached(n, nb);
  if (cached)
    return memset(cached, 0, chunk_usable(mem2chunk(cached)));
  char *clean_from = NULL;
  struct chunk *c = alloc_chunk(n, arena_chunk_size(nb), &clean_from, false);
  if (!c)
    return NULL;
  char *mem = chunk2mem(c);
  if (chunk_is_mmapped(c)) /* a fresh mapping is zero */
    return mem;
  char *end = mem + chunk_usable(c);
  if (clean_from < end)
    end = clean_from < mem ? mem : clean_from;
  memset(mem, 0, (size_t)(end - mem));
  return mem;
}

/* --------------------------------------------------------------- free */

/*
 * free's slow path, in one flow: what the block is -- checked and
 * classified once (the fast path passes on what it found) -- then where
 * it goes: this thread's cache (a bin, or the medium cache), the cache's
 * out lists (a block of another thread's arena, on its way back there, a
 * batch at a time), or its arena, which sends a run's block to its run.
 *
 * free keeps errno (as glibc's does) even when a system call it makes --
 * munmap, madvise, a trim -- fails.
 */
enum { UNCLASSIFIED = -1 };
static void free_nodebug(void *mem, int class, size_t bin) {
  int saved = errno;
  tide_current_fn = "free";
  struct chunk *p = mem2chunk(mem);
  struct tcache *tc = tcache_mine();
  /* A sample of the heap profiler leaves its profile, and the profiler
   * keeps it for a later sample, or it goes to its arena (placed as it
   * is, in a cache it would send every later free of that memory this
   * way; src/prof.c). */
  int prof = unlikely(prof_on) && prof_placed(mem) ? prof_forget(mem) : PROF_NOT_SAMPLED;
  if (prof == PROF_KEPT) {
    if (tc)
      tc->frees++;
    errno = saved;
    return;
  }
  bool sampled = prof == PROF_TO_ARENA;
  /* Looked at in full unless the fast path found it cacheable (a block
   * it could not place, or a thread without a cache yet, whose own
   * ranges were not known). */
  if (class == UNCLASSIFIED || class == NOT_CACHEABLE || !tc || sampled) {
    precheck_unreadable(mem, "free");
    p = checked_chunk(mem, "free");
    if (chunk_is_mmapped(p)) {
      mmapped_free(p);
      errno = saved;
      return;
    }
    owning_arena(p, "free");
    size_t size = chunk_size(p);
    bin = tcache_bin_of(size);
    /* A thread that only frees (a consumer) gets a cache too, so it hands
     * blocks back in batches instead of taking the owner's lock for each.
     * Only a size a cache can hold is looked at further here (classifying
     * reads the next header). */
    tc = !sampled && ((bin < TCACHE_BINS && tcache_limit[bin] > 0) || tcache_big_size(size)) ? tcache_mine_or_create()
                                                                                               : NULL;
    class = tc ? (int)classify_chunk(tc, p, p->size) : NOT_CACHEABLE;
  }
  size_t size = chunk_size(p);
  /* (The bins only aligned requests use keep runs' blocks alone: another
   * chunk of their size would wait there for a memalign, kept from
   * coalescing, and be misaligned as likely as not.) */
  bool binned = bin < TCACHE_BINS && tcache_limit[bin] > 0 && (chunk_in_run(p) || !tcache_aligned_only(bin));
  if (tc && class == OWN_BLOCK) {
    /* The fast path's checks hold: no arena lock to cache it. */
    if (binned) {
      tcache_free_slow(tc, mem, bin);
      goto cached;
    }
    if (tcache_big_size(size) && tcache_big_put(tc, p))
      goto cached;
  } else if (tc && class == OTHER_ARENAS_BLOCK && binned && tcache_free_foreign(tc, mem, bin)) {
    goto cached;
  }
  /* Its arena, under the lock, where its region and top are stable. */
  struct arena *a = owning_arena(p, "free");
  lock_acquire(&a->lock);
  if (tc && binned) { /* one the range test did not vouch for: checked here */
    arena_check_freeable(a, p);
    lock_release(&a->lock);
    tcache_free_slow(tc, mem, bin);
    goto cached;
  }
  if (opt.perturb)
    memset(mem, opt.perturb, size - CHUNK_HDR);
  arena_free(a, p, false);
  a->count.free_calls++;
  purge_tick(a);
  check_arena_sometimes(a);
  lock_release(&a->lock);
  errno = saved;
  return;
cached:
  tc->frees++;
  errno = saved;
}

/* Reached by a jump from the fast path (its return address is the
 * program's call of free), or from the other slow paths. */
static TIDE_NOINLINE void free_block(void *mem, int class, size_t bin) {
  if (mem == NULL)
    return;
  tide_ensure_init();
  if (unlikely(tide_debug_on)) {
    int saved = errno;
    debug_free(mem, (uintptr_t)__builtin_return_address(0), *(void **)__builtin_frame_address(0));
    errno = saved;
    return;
  }
  free_nodebug(mem, class, bin);
}

void tide_raw_free(void *mem) {
  if (mem)
    free_nodebug(mem, UNCLASSIFIED, TCACHE_BINS);
}

void tide_raw_check(void *mem, const char *fn) {
  tide_current_fn = fn;
  precheck_unreadable(mem, fn);
  struct chunk *p = checked_chunk(mem, fn);
  if (chunk_is_mmapped(p)) {
    if (unlikely(!mmapped_known(p)))
      tide_fatal(fn, "invalid pointer (not an mmapped chunk of ours)");
    return;
  }
  struct arena *a = owning_arena(p, fn);
  lock_acquire(&a->lock);
  arena_check_freeable(a, p);
  lock_release(&a->lock);
}

size_t tide_raw_usable(void *mem) { return chunk_usable(mem2chunk(mem)); }

/* A small block of another thread's arena, found so by the fast path
 * (the commonest slow case: a consumer freeing a producer's blocks):
 * straight onto the cache's out list for its bin. */
static TIDE_NOINLINE void free_foreign(void *mem, size_t idx) {
  struct tcache *tc = tcache_tls;
  if (unlikely(tide_debug_on)) {
    free_block(mem, UNCLASSIFIED, TCACHE_BINS);
    return;
  }
  if (likely(tcache_free_foreign(tc, mem, idx))) /* (keeps errno) */
    tc->frees++;
  else
    free_block(mem, OTHER_ARENAS_BLOCK, idx);
}

/* Anything the fast path below did not cache: classified in full
 * (classify_chunk), then a bin of this thread's cache, another arena's
 * block on its way back (free_foreign), or the slow way.  Reached by a
 * jump, so free_block sees the program's return address. */
static TIDE_NOINLINE void free_classify(void *mem, size_t sf) {
  struct tcache *tc = tcache_tls;
  size_t bin = tcache_bin_of(sf & ~CHUNK_FLAGS);
  /* (The bins only aligned requests use take runs' blocks alone: see
   * free_nodebug.) */
  if (bin >= TCACHE_BINS || (!(sf & IN_RUN) && tcache_aligned_only(bin))) {
    free_block(mem, UNCLASSIFIED, TCACHE_BINS);
    return;
  }
  enum chunk_class class = classify_chunk(tc, mem2chunk(mem), sf);
  if (likely(class == OWN_BLOCK && tcache_push(tc, mem, bin))) {
    tc->frees++;
    return;
  }
  if (class == OTHER_ARENAS_BLOCK)
    free_foreign(mem, bin);
  else
    free_block(mem, (int)class, bin);
}

/* Is mem in tc's own range (tcache.h), and 16-aligned?  One rotation
 * tests both.  There the header before mem lies in its arena's region
 * too (the range starts 16 bytes into it), as does the run header of a
 * run's block: both mapped for any block the arena handed out.  NULL,
 * and every pointer of a thread without a cache, fails it. */
static inline bool in_own_range(const struct tcache *tc, const void *mem) {
  return rotate4((uintptr_t)mem - tc->own_mem_lo) < tc->own_units;
}

/* The fast path, for mem in_own_range: a block of one of this thread's
 * runs, cached.  The size field with the flags such a block has (P, R
 * and the thread's kind) xored out is the block's size exactly when
 * those are its flags; one rotation of it less MINSIZE then is the bin,
 * and for any other flags, or a size out of the bins' range or not a
 * multiple of 16, a number past every bin.  The run header names its
 * owner (other threads' runs share the arena).  The next header as
 * check_next_header reads it for a run's block: its own size field.
 * Everything else -- arena chunks of small sizes among them, which only
 * a thread without runs gets, and the heap profiler's samples -- goes
 * the slow way.  claimed: what a sized free says the block holds (0:
 * plain free), at most its usable size. */
static inline bool free_fast(struct tcache *tc, void *mem, size_t sf, size_t claimed) {
  struct chunk *p = mem2chunk(mem);
  size_t size = sf ^ tc->own_run_bits;
  size_t idx = rotate4(size - MINSIZE);
  if (likely(idx < TCACHE_SMALL_BINS && run_owned_by(mem, tc))) {
    if (likely(claimed <= size - SIZE_SZ && (!TIDE_HARDEN || chunk_at(p, size)->size == sf) &&
               tcache_push(tc, mem, idx))) {
      tc->frees++;
      return true;
    }
  }
  return false;
}

/* One test keeps NULL, an mmapped chunk's memory (16 bytes into a page),
 * the heap profiler's samples (prof_placed) and any block at offset 0
 * of a page (whose header may lie in a page not mapped) away from the
 * classify step: they go the slow way in full. */
static inline bool fast_candidate(const void *mem) { return ((uintptr_t)mem & 4095) > MMAPPED_MEM_OFFSET; }

/* free past its fast path (which the caller tried): classified once, in
 * full.  Reached by a jump, and jumps on, so free_block sees the
 * program's return address. */
static TIDE_NOINLINE void free_not_fast(void *mem) {
  if (fast_candidate(mem))
    free_classify(mem, mem2chunk(mem)->size);
  else
    free_block(mem, UNCLASSIFIED, TCACHE_BINS);
}

TIDE_EXPORT void tide_free(void *mem) {
  struct tcache *tc = tcache_tls;
  if (likely(in_own_range(tc, mem) && free_fast(tc, mem, mem2chunk(mem)->size, 0)))
    return;
  free_not_fast(mem);
}

/* What a sized free may say the block holds: its usable size (in debug
 * mode, exactly what was asked for). */
static size_t sized_free_limit(void *mem, const char *fn) {
  return unlikely(tide_debug_on) ? debug_usable_size(mem) : chunk_usable(checked_chunk(mem, fn));
}

TIDE_EXPORT void tide_free_sized(void *mem, size_t size) {
  /* A block of our runs that holds size bytes: as free's fast path. */
  struct tcache *tc = tcache_tls;
  if (likely(in_own_range(tc, mem) && free_fast(tc, mem, mem2chunk(mem)->size, size)))
    return;
  if (mem && unlikely(size > sized_free_limit(mem, "free_sized")))
    tide_fatal("free_sized", "size larger than the block");
  free_not_fast(mem);
}

TIDE_EXPORT void tide_free_aligned_sized(void *mem, size_t alignment, size_t size) {
  if (mem && unlikely(((uintptr_t)mem & (alignment - 1)) != 0))
    tide_fatal("free_aligned_sized", "pointer does not have the stated alignment");
  if (mem && unlikely(size > sized_free_limit(mem, "free_aligned_sized")))
    tide_fatal("free_aligned_sized", "size larger than the block");
  tide_free(mem);
}

/* ------------------------------------------------------------ realloc */

TIDE_EXPORT void *tide_realloc(void *mem, size_t n) {
  if (mem == NULL)
    return tide_malloc(n);
  if (n == 0) { /* glibc: frees and returns NULL */
    tide_free(mem);
    return NULL;
  }
  tide_ensure_init();
  if (unlikely(tide_debug_on))
    return debug_realloc(mem, n, (uintptr_t)__builtin_return_address(0));
  if (unlikely(prof_on))
    return prof_realloc(mem, n);
  return tide_raw_realloc(mem, n);
}

/* tide_malloc without the profiler's count: for realloc, which counted
 * n already (prof_realloc). */
static void *malloc_uncounted(size_t n) {
  struct tcache *tc = tcache_tls;
  if (n <= tcache_max_request) {
    void *mem = tcache_pop(tc, tcache_request_index(n));
    if (mem) {
      tc->mallocs++;
      tc->bytes_requested += n;
      return mem;
    }
  }
  return tide_raw_malloc(n);
}

/* realloc of a block (mem != NULL, n > 0) without debug mode or the
 * profiler. */
void *tide_raw_realloc(void *mem, size_t n) {
  tide_current_fn = "realloc";
  precheck_unreadable(mem, "realloc");
  struct chunk *p = checked_chunk(mem, "realloc");
  size_t nb;
  if (unlikely(!request2size(n, &nb))) {
    errno = ENOMEM;
    return NULL;
  }
  size_t old_usable = chunk_usable(p);
  if (chunk_is_mmapped(p)) {
    struct chunk *q = mmapped_resize(p, nb);
    if (q)
      return chunk2mem(q);
    if (old_usable >= n)
      return mem;
  } else {
    struct arena *a = owning_arena(p, "realloc");
    reject_if_freed(p, "realloc");
    if (chunk_in_run(p)) {
      /* A run's blocks have one size: it fits, or the block moves. */
      run_checked(p, "realloc");
      struct tcache *tc = tcache_mine();
      if (tc)
        tc->reallocs++;
      if (nb <= chunk_size(p))
        return mem;
    } else {
      lock_acquire(&a->lock);
      bool done = arena_resize_in_place(a, p, nb);
      a->count.realloc_calls++;
      lock_release(&a->lock);
      if (done)
        return mem;
    }
  }
  void *nmem = unlikely(prof_on) ? malloc_uncounted(n) : tide_malloc(n);
  if (!nmem)
    return NULL;
  memcpy(nmem, mem, old_usable < n ? old_usable : n);
  tide_free(mem);
  return nmem;
}

TIDE_EXPORT void *tide_reallocarray(void *mem, size_t nmemb, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(nmemb, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return tide_realloc(mem, n);
}

/* ----------------------------------------------------------- memalign */

/* A small request aligned to 32..RUN_BLOCK_ALIGN bytes (C++'s alignas(64)
 * objects, posix_memalign(64, ...)): a block of a size that is a multiple
 * of the alignment -- a class's, else one of the bins of multiples of 64
 * that only such requests use (src/tcache.c) -- from the cache or the
 * runs, where every block of such a size is aligned to it (src/run.h).
 * NULL when the cache cannot serve it: the arena path cuts an aligned
 * chunk, with the arena lock and two splits (posix_memalign(64, 100),
 * 1000 at a time, took 3-4 times glibc's time that way). */
static void *memalign_cached(size_t align, size_t n, size_t nb) {
  size_t size = (nb + align - 1) & ~(align - 1);
  if (size <= (TCACHE_SMALL_BINS + 1) * CHUNK_ALIGN && tcache_class_index(size) != tcache_index(size))
    size = (size + 63) & ~(size_t)63; /* not a class: the bin of a multiple of 64 */
  if (size > (TCACHE_SMALL_BINS + 1) * CHUNK_ALIGN)
    return NULL;
  size_t idx = tcache_index(size);
  if (tcache_limit[idx] == 0)
    return NULL;
  struct tcache *tc = tcache_tls;
  if (unlikely(tc == tcache_none_ptr()))
    tc = tcache_mine_or_create();
  struct arena *mine = arenas_thread_arena();
  if (!tc || !mine || tc->limit[idx] == 0)
    return NULL;
  void *mem = tcache_pop(tc, idx);
  if (!mem && !(mem = refill_small(tc, mine, idx)))
    return NULL;
  if (unlikely((uintptr_t)mem & (align - 1))) {
    /* A chunk of a class's size that is no run block (cut by the arena
     * path, cached when freed): to the arena, past the cache (counted as
     * a malloc too, as the free it gets is counted again). */
    tc->mallocs++;
    struct tcache *held = tcache_suspend();
    tide_raw_free(mem);
    tcache_resume(held);
    return NULL;
  }
  tc->mallocs++;
  tc->bytes_requested += n;
  perturb_alloc(mem, n);
  return mem;
}

void *tide_raw_memalign(size_t align, size_t n) {
  if (align <= CHUNK_ALIGN)
    return tide_raw_malloc(n);
  size_t nb;
  if (unlikely(!request2size(n, &nb) || nb > MAX_REQUEST - align - MINSIZE)) {
    errno = ENOMEM;
    return NULL;
  }
  if (align <= RUN_BLOCK_ALIGN && nb <= (TCACHE_SMALL_BINS + 1) * CHUNK_ALIGN) {
    void *mem = memalign_cached(align, n, nb);
    if (mem)
      return mem;
  }
  if (align < MINSIZE)
    align = MINSIZE;
  tide_current_fn = "memalign";
  struct arena *a = arenas_lock_mine();
  struct chunk *c = arena_memalign(a, align, nb);
  a->count.malloc_calls++;
  a->count.bytes_requested += n;
  lock_release(&a->lock);
  if (!c) {
    errno = ENOMEM;
    return NULL;
  }
  return hand_out(c, n);
}

static TIDE_NOINLINE void *memalign_common(size_t align, size_t n) {
  tide_ensure_init();
  if (unlikely(tide_debug_on))
    return debug_memalign(align, n, (uintptr_t)__builtin_return_address(0));
  if (align <= CHUNK_ALIGN)
    return tide_malloc(n);
  if (unlikely(prof_on))
    return prof_memalign(align, n);
  return tide_raw_memalign(align, n);
}

/* A block for a sampled allocation (src/prof.c): its memory at page
 * offset 0 or 16, which free's fast path never takes.  From the mmap
 * threshold up the block gets a mapping of its own anyway (memory at
 * offset 16); else a page-aligned chunk. */
void *tide_raw_sampled(size_t n, size_t align, bool zero) {
  size_t nb;
  if (unlikely(!request2size(n, &nb))) {
    errno = ENOMEM;
    return NULL;
  }
  if (align <= CHUNK_ALIGN && nb >= opt.mmap_threshold) {
    void *mem = zero ? tide_raw_calloc(n) : tide_raw_malloc(n);
    /* (A run's block at offset 0 of a page is no sample: its free may
     * take the fast path, past the profiler.) */
    if (!mem || (prof_placed(mem) && !(mem2chunk(mem)->size & IN_RUN)))
      return mem;
    tide_raw_free(mem); /* the arena served it after all */
  }
  void *mem = tide_raw_memalign(align > PROF_PAGE ? align : PROF_PAGE, n);
  if (mem && zero)
    memset(mem, 0, chunk_usable(mem2chunk(mem)));
  return mem;
}

static bool power_of_two(size_t x) { return x && !(x & (x - 1)); }

/* glibc's memalign rounds an alignment that is not a power of two up. */
TIDE_EXPORT void *tide_memalign(size_t align, size_t n) {
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  if (!power_of_two(align)) {
    size_t a = 1;
    while (a < align)
      a <<= 1;
    align = a;
  }
  return memalign_common(align, n);
}

/* C17 and glibc 2.38: an alignment that is not a power of two fails. */
TIDE_EXPORT void *tide_aligned_alloc(size_t align, size_t n) {
  if (!power_of_two(align)) {
    errno = EINVAL;
    return NULL;
  }
  return memalign_common(align, n);
}

TIDE_EXPORT int tide_posix_memalign(void **out, size_t align, size_t n) {
  if (align % sizeof(void *) != 0 || !power_of_two(align / sizeof(void *)))
    return EINVAL;
  /* On failure errno is left at ENOMEM, as glibc leaves it.  (The
   * profiler is given the program's call here: memalign_common's return
   * address would be this function.) */
  void *mem = unlikely(prof_on) && align > CHUNK_ALIGN
                  ? prof_memalign_from(align, n, (uintptr_t)__builtin_return_address(0),
                                       *(void **)__builtin_frame_address(0))
                  : memalign_common(align, n);
  if (!mem)
    return ENOMEM;
  *out = mem;
  return 0;
}

TIDE_EXPORT void *tide_valloc(size_t n) {
  tide_ensure_init();
  return memalign_common(os_page, n);
}

TIDE_EXPORT void *tide_pvalloc(size_t n) {
  tide_ensure_init();
  if (n > SIZE_MAX - os_page) {
    errno = ENOMEM;
    return NULL;
  }
  return memalign_common(os_page, os_page_up(n ? n : 1));
}

TIDE_EXPORT size_t tide_malloc_usable_size(void *mem) {
  if (!mem)
    return 0;
  if (unlikely(tide_debug_on))
    return debug_usable_size(mem);
  precheck_unreadable(mem, "malloc_usable_size");
  struct chunk *p = checked_chunk(mem, "malloc_usable_size");
  if (chunk_is_mmapped(p))
    return chunk_usable(p);
  return chunk_inuse(p) ? chunk_usable(p) : 0;
}

/* ------------------------------------------------------ glibc extensions */

TIDE_EXPORT int tide_mallopt(int param, int value) { return opt_mallopt(param, value); }

TIDE_EXPORT struct tide_mallinfo2 tide_mallinfo2(void) { return stats_mallinfo2(); }

static int clamp_int(size_t v) { return v > INT32_MAX ? INT32_MAX : (int)v; }

TIDE_EXPORT struct tide_mallinfo tide_mallinfo(void) {
  struct tide_mallinfo2 m = stats_mallinfo2();
  struct tide_mallinfo r = {clamp_int(m.arena),   clamp_int(m.ordblks),  clamp_int(m.smblks),  clamp_int(m.hblks),
                            clamp_int(m.hblkhd),  clamp_int(m.usmblks),  clamp_int(m.fsmblks), clamp_int(m.uordblks),
                            clamp_int(m.fordblks), clamp_int(m.keepcost)};
  return r;
}

TIDE_EXPORT int tide_malloc_trim(size_t pad) {
  tide_ensure_init();
  tide_current_fn = "malloc_trim";
  return purge_trim_all(pad) ? 1 : 0;
}

TIDE_EXPORT void tide_malloc_stats(void) { stats_print(); }
TIDE_EXPORT int tide_malloc_info(int options, FILE *fp) {
  int cancel = os_nocancel_begin(); /* fprintf is a cancellation point */
  int r = stats_info_xml(options, fp);
  os_nocancel_end(cancel);
  return r;
}
TIDE_EXPORT void tide_stats_get(struct tide_stats *out) { stats_get(out); }
TIDE_EXPORT void tide_heap_dump(int fd) { stats_dump(fd); }
TIDE_EXPORT void tide_stats_json(int fd) { (void)stats_write_json(fd, false); }
TIDE_EXPORT void tide_heap_dump_json(int fd) { (void)stats_write_json(fd, true); }

/* ------------------------------------------------------ standard names */

#if TIDE_STD_NAMES
#define TIDE_ALIAS(std, ours) extern __typeof(ours) std __attribute__((alias(#ours), visibility("default")))
TIDE_ALIAS(malloc, tide_malloc);
TIDE_ALIAS(free, tide_free);
TIDE_ALIAS(calloc, tide_calloc);
TIDE_ALIAS(realloc, tide_realloc);
TIDE_ALIAS(reallocarray, tide_reallocarray);
TIDE_ALIAS(memalign, tide_memalign);
TIDE_ALIAS(aligned_alloc, tide_aligned_alloc);
TIDE_ALIAS(posix_memalign, tide_posix_memalign);
TIDE_ALIAS(valloc, tide_valloc);
TIDE_ALIAS(pvalloc, tide_pvalloc);
TIDE_ALIAS(malloc_usable_size, tide_malloc_usable_size);
TIDE_ALIAS(free_sized, tide_free_sized);
TIDE_ALIAS(free_aligned_sized, tide_free_aligned_sized);
TIDE_ALIAS(mallopt, tide_mallopt);
TIDE_ALIAS(mallinfo, tide_mallinfo);
TIDE_ALIAS(mallinfo2, tide_mallinfo2);
TIDE_ALIAS(malloc_trim, tide_malloc_trim);
TIDE_ALIAS(malloc_stats, tide_malloc_stats);
TIDE_ALIAS(malloc_info, tide_malloc_info);
/* Names glibc 2.36 also exports (nm -D libc.so.6), which some programs,
 * debuggers and interposers call directly.  (__posix_memalign is not
 * among them.) */
TIDE_ALIAS(__libc_malloc, tide_malloc);
TIDE_ALIAS(__libc_free, tide_free);
TIDE_ALIAS(__libc_calloc, tide_calloc);
TIDE_ALIAS(__libc_realloc, tide_realloc);
TIDE_ALIAS(__libc_memalign, tide_memalign);
TIDE_ALIAS(__libc_valloc, tide_valloc);
TIDE_ALIAS(__libc_pvalloc, tide_pvalloc);
TIDE_ALIAS(__libc_mallinfo, tide_mallinfo);
TIDE_ALIAS(__libc_mallopt, tide_mallopt);
TIDE_ALIAS(cfree, tide_free); /* glibc keeps it for old binaries only */
#endif
