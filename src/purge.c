/* SPDX-License-Identifier: MIT */
/*
 * Returning memory: the top of the break, the top of a heap, whole empty
 * heaps, and (malloc_trim) free pages inside free chunks.
 */
#include "purge.h"

#include "arena.h"
#include "arenas.h"
#include "heap.h"
#include "mmapped.h"
#include "run.h"
#include "stats.h"
#include "os.h"
#include "tcache.h"

#include <signal.h>
#include <sys/single_threaded.h>
#include <time.h>

static void note_released(struct arena *a, size_t bytes) {
  a->system_mem -= bytes;
  a->count.purged_bytes += bytes;
}

/* Main arena on brk: move the break down, if nobody else moved it above us. */
static bool trim_brk(struct arena *a, size_t pad) {
  struct chunk *top = a->top;
  size_t tsz = chunk_size(top);
  char *end = (char *)top + tsz;
  struct brk_segment *s = &a->seg[a->nsegs - 1];
  if (s->end != end || tsz <= pad + MINSIZE)
    return false;
  size_t extra = os_page_down(tsz - pad - MINSIZE);
  if (extra == 0 || os_sbrk(0) != end)
    return false;
  os_sbrk(-(intptr_t)extra);
  char *now = os_sbrk(0);
  if (!now || now >= end)
    return false;
  size_t released = (size_t)(end - now);
  chunk_set_head(top, (tsz - released) | PREV_INUSE);
  s->end = now;
  if (a->top_dirty_end > now)
    a->top_dirty_end = now;
  note_released(a, released);
  return true;
}

/* Heaps: delete heaps that are nothing but top, then shrink the last. */
static bool trim_heaps(struct arena *a, size_t pad) {
  bool released = false;
  for (;;) {
    struct chunk *top = a->top;
    struct heap_info *h = heap_of(top);
    if (!h->prev || top != heap_first_chunk(h))
      break;
    /* The previous heap becomes the current one again: its fence and
     * the free chunk before it (if any) form the new top. */
    struct heap_info *prev = h->prev;
    struct chunk *nt = prev->fence;
    if (!prev_inuse(nt)) {
      struct chunk *before = (struct chunk *)((char *)nt - nt->prev_size);
      if (unlikely(chunk_size(before) != nt->prev_size))
        tide_fatal(tide_current_fn, "corrupted size vs. prev_size in heap trim");
      bin_unlink(a, before);
      nt = before;
    }
    prev->fence = NULL;
    a->heap = prev;
    note_released(a, h->size);
    heap_delete(h);
    chunk_set_head(nt, (size_t)(heap_end(prev) - (char *)nt) | PREV_INUSE | IN_HEAP);
    a->top = nt;
    a->top_dirty_end = heap_end(prev);
    released = true;
  }
  struct chunk *top = a->top;
  struct heap_info *h = heap_of(top);
  size_t tsz = chunk_size(top);
  if (tsz > pad + MINSIZE) {
    size_t keep = os_page_up((size_t)((char *)top - (char *)h) + pad + MINSIZE);
    if (keep < h->size) {
      size_t cut = h->size - keep;
      heap_shrink(h, keep);
      chunk_set_head(top, (tsz - cut) | PREV_INUSE | IN_HEAP);
      if (a->top_dirty_end > heap_end(h))
        a->top_dirty_end = heap_end(h);
      note_released(a, cut);
      released = true;
    }
  }
  return released;
}

bool purge_trim_top(struct arena *a, size_t pad) {
  if (!a->top)
    return false;
  return chunk_in_heap(a->top) ? trim_heaps(a, pad) : trim_brk(a, pad);
}

/* ------------------------------------------------------- dirty chunks */

struct dirty_link {
  struct chunk *next, *prev;
  uint64_t freed_ms;
  uintptr_t mark;
  uintptr_t lo, hi;   /* the part that may hold resident pages */
  uint64_t capped_ms; /* purged by the dirty cap, then (else 0) */
};
#define DIRTY_LISTED ((uintptr_t)0x7469646544495254ull) /* on the list */
#define DIRTY_PURGED ((uintptr_t)0x7469646550555247ull) /* pages given back */

static struct dirty_link *link_of(struct chunk *c) { return (struct dirty_link *)(c + 1); }

/* The coarse clock (a few ms of resolution) is plenty for decay times of
 * hundreds of ms, and cheaper: it is read on every free into a bin. */
static uint64_t now_ms(void) { return os_now_coarse_ms(); }

/* Background thread state (its life cycle: see "background thread"). */
enum { BG_NONE, BG_STARTING, BG_RUNNING, BG_FAILED };
static int bg_state;          /* one of the above */
static bool thread_wanted;    /* work was left for it since its last round */
static bool bg_sleeping;      /* it sleeps on bg_wake_seq until woken */
static unsigned bg_wake_seq;  /* the futex word: bumped by each wake-up */
#define THREAD_WAKE_BYTES (1 * MiB)

static bool bg_running(void) { return __atomic_load_n(&bg_state, __ATOMIC_ACQUIRE) == BG_RUNNING; }
/* The thread exists and its rounds do the work (mallopt may have turned
 * it off since it was made). */
static bool thread_purges(void) { return bg_running() && opt.purge_thread && opt.purge_decay_ms >= 0; }

bool purge_is_dirty(struct chunk *c) { return chunk_size(c) >= PURGE_MIN_CHUNK && link_of(c)->mark == DIRTY_LISTED; }

bool purge_state_ok(struct chunk *c) {
  return chunk_size(c) < PURGE_MIN_CHUNK || link_of(c)->mark == DIRTY_LISTED || link_of(c)->mark == DIRTY_PURGED;
}

void purge_track(struct arena *a, struct chunk *c, size_t size) {
  if (size < PURGE_MIN_CHUNK)
    return;
  struct dirty_link *l = link_of(c);
  l->mark = DIRTY_LISTED;
  l->lo = (uintptr_t)c;
  l->hi = (uintptr_t)c + size;
  l->freed_ms = now_ms();
  l->next = NULL;
  l->prev = a->dirty_tail;
  if (a->dirty_tail)
    link_of(a->dirty_tail)->next = c;
  else
    a->dirty_head = c;
  a->dirty_tail = c;
  a->dirty_bytes += size;
  purge_note_pending(a);
}

void purge_note_remote(void) { purge_wake(); }

void purge_note_pending(struct arena *a) {
  if (a->dirty_bytes + a->fast_bytes >= THREAD_WAKE_BYTES)
    purge_wake();
}

static void dirty_unlink(struct arena *a, struct chunk *c, size_t size) {
  struct dirty_link *l = link_of(c);
  if (l->prev)
    link_of(l->prev)->next = l->next;
  else
    a->dirty_head = l->next;
  if (l->next)
    link_of(l->next)->prev = l->prev;
  else
    a->dirty_tail = l->prev;
  a->dirty_bytes -= size;
}

void purge_untrack(struct arena *a, struct chunk *c, size_t size) {
  if (size < PURGE_MIN_CHUNK)
    return;
  struct dirty_link *l = link_of(c);
  if (l->mark == DIRTY_LISTED) {
    dirty_unlink(a, c, size);
    l->mark = 0;
  }
}

struct purge_range purge_range_of(struct chunk *c, size_t size) {
  struct purge_range r = {(uintptr_t)c, (uintptr_t)c + size};
  if (size >= PURGE_MIN_CHUNK) {
    struct dirty_link *l = link_of(c);
    if (l->mark == DIRTY_PURGED)
      r.lo = r.hi = 0;
    else if (l->mark == DIRTY_LISTED)
      r = (struct purge_range){l->lo, l->hi};
  }
  return r;
}

struct purge_range purge_range_hull(struct purge_range a, struct purge_range b) {
  if (a.lo >= a.hi)
    return b;
  if (b.lo >= b.hi)
    return a;
  return (struct purge_range){a.lo < b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi};
}

void purge_narrow(struct arena *a, struct chunk *c, size_t size, struct purge_range r) {
  if (size < PURGE_MIN_CHUNK)
    return;
  struct dirty_link *l = link_of(c);
  uintptr_t lo = r.lo > (uintptr_t)c ? r.lo : (uintptr_t)c;
  uintptr_t hi = r.hi < (uintptr_t)c + size ? r.hi : (uintptr_t)c + size;
  /* No whole page of it to give back: count it as purged. */
  uintptr_t first = ((uintptr_t)(l + 1) + os_page - 1) & ~(uintptr_t)(os_page - 1);
  uintptr_t last = os_page_down((uintptr_t)c + size);
  if (lo >= hi || os_page_up(hi) <= first || os_page_down(lo) >= last) {
    purge_untrack(a, c, size);
    l->mark = DIRTY_PURGED;
    return;
  }
  l->lo = lo;
  l->hi = hi;
}

/* Give back the whole pages of free chunk c, keeping its header and links. */
static size_t purge_chunk(struct arena *a, struct chunk *c, size_t size) {
  struct dirty_link *l = link_of(c);
  /* Whole pages of the chunk past its link that touch the dirty part
   * (a page only partly dirty is handed back whole: the rest of it was
   * purged already, or is free memory of this chunk too). */
  uintptr_t first = ((uintptr_t)(l + 1) + os_page - 1) & ~(uintptr_t)(os_page - 1);
  uintptr_t last = os_page_down((uintptr_t)c + size);
  uintptr_t lo = os_page_down(l->lo), hi = os_page_up(l->hi);
  if (lo < first)
    lo = first;
  if (hi > last)
    hi = last;
  if (hi <= lo)
    return 0;
  os_purge((void *)lo, hi - lo);
  a->count.purged_bytes += hi - lo;
  return hi - lo;
}

size_t purge_decayed(struct arena *a, bool everything, size_t max_chunks) {
  if (!everything && opt.purge_decay_ms < 0)
    return 0;
  uint64_t now = now_ms();
  uint64_t decay = opt.purge_decay_ms < 0 ? 0 : (uint64_t)opt.purge_decay_ms;
  size_t released = 0;
  struct chunk *c;
  while ((c = a->dirty_head) != NULL && max_chunks-- > 0) {
    struct dirty_link *l = link_of(c);
    if (!everything && l->freed_ms + decay > now)
      break;
    size_t size = chunk_size(c);
    dirty_unlink(a, c, size);
    l->mark = DIRTY_PURGED;
    l->capped_ms = 0;
    released += purge_chunk(a, c, size);
  }
  return released;
}

bool purge_defers(void) { return opt.dynamic_threshold && opt.purge_decay_ms > 0 && thread_purges(); }

/* Called with or without locks, from any path: a store and a load while
 * the thread is awake, and one FUTEX_WAKE (a system call, no lock) the
 * first time after it went to sleep. */
void purge_wake(void) {
  if (__atomic_load_n(&thread_wanted, __ATOMIC_RELAXED))
    return;
  __atomic_store_n(&thread_wanted, true, __ATOMIC_SEQ_CST);
  /* We stored "wanted" and now read "sleeping"; the thread stores
   * "sleeping" and then reads "wanted": one of us sees the other. */
  if (__atomic_load_n(&bg_sleeping, __ATOMIC_SEQ_CST)) {
    __atomic_fetch_add(&bg_wake_seq, 1, __ATOMIC_SEQ_CST);
    os_futex_wake(&bg_wake_seq);
  }
}

/* No thread comes for deferred work: each arena keeps at most this many
 * dirty bytes, oldest purged first, so a process that frees much and then
 * goes idle holds little more than its live memory.  The cap is an eighth
 * of what the arena has handed out, at least PURGE_CAP_MIN (nothing is
 * purged with the decay -1, "never").  When memory it purged is allocated
 * again within the decay, it grows to twice what it purged from (a
 * program that frees and reuses more than the cap in every cycle would
 * otherwise pay for the purge and the page faults after it every cycle),
 * and it halves again every CAP_RELAX_MS. */
#define PURGE_CAP_MIN ((size_t)4 * MiB)
#define CAP_MAX_SHIFT 10
#define CAP_RELAX_MS 10000
bool purge_keeps_unthreaded(void) { return opt.dynamic_threshold && opt.purge_decay_ms > 0 && !thread_purges(); }

/* The same bound for freed mappings kept with no thread (src/mmapped.c):
 * an eighth of all live bytes, mapped ones included, at least the
 * minimum. */
size_t purge_unthreaded_cap(void) {
  size_t live = mmapped_totals_unlocked_bytes();
  for (struct arena *a = arenas_first(); a; a = a->next)
    live += __atomic_load_n(&a->count.in_use_bytes, __ATOMIC_RELAXED);
  return live / 8 > PURGE_CAP_MIN ? live / 8 : PURGE_CAP_MIN;
}

void purge_after_free(struct arena *a) {
  if (likely(a->dirty_bytes <= PURGE_CAP_MIN) || opt.purge_decay_ms < 0 || thread_purges())
    return;
  size_t cap = a->count.in_use_bytes / 8;
  if (cap < PURGE_CAP_MIN)
    cap = PURGE_CAP_MIN;
  if (a->dirty_bytes <= cap << a->cap_shift)
    return;
  mmapped_cache_fit_unthreaded(); /* live memory fell: fewer kept mappings too */
  uint64_t now = now_ms();
  if (a->cap_shift > 0 && now > a->cap_raised_ms + CAP_RELAX_MS) {
    a->cap_shift--;
    a->cap_raised_ms = now;
  }
  cap <<= a->cap_shift;
  a->cap_purged_from = a->dirty_bytes;
  /* Down to half the cap, so the next free past it finds room. */
  struct chunk *c;
  while ((c = a->dirty_head) != NULL && a->dirty_bytes > cap / 2) {
    purge_decayed(a, true, 1);
    link_of(c)->capped_ms = now;
  }
}

void purge_note_reuse(struct arena *a, struct chunk *c) {
  struct dirty_link *l = link_of(c);
  if (l->mark != DIRTY_PURGED || !l->capped_ms)
    return;
  uint64_t now = now_ms();
  if (now < l->capped_ms + (uint64_t)opt.purge_decay_ms) {
    size_t base = a->count.in_use_bytes / 8;
    if (base < PURGE_CAP_MIN)
      base = PURGE_CAP_MIN;
    while (a->cap_shift < CAP_MAX_SHIFT && (base << a->cap_shift) < 2 * a->cap_purged_from)
      a->cap_shift++;
    a->cap_raised_ms = now;
  }
  l->capped_ms = 0;
}

void purge_release_deferred(void) {
  mmapped_cache_release_all();
  for (struct arena *a = arenas_first(); a; a = a->next) {
    lock_acquire(&a->lock);
    if (a->top && chunk_size(a->top) >= opt.trim_threshold)
      purge_trim_top(a, opt.top_pad);
    lock_release(&a->lock);
  }
}

/* Without the background thread a trim happens at once, as in glibc; but
 * when top grows again within the decay of a trim, memory that comes and
 * goes at the top is being handed back and faulted in again each time:
 * then the arena's trim threshold doubles (at most TRIM_MAX_SHIFT times),
 * and it halves again every CAP_RELAX_MS.  (glibc's dynamic threshold
 * does the like for mapped blocks only.)  Not once the program has set a
 * glibc threshold itself. */
#define TRIM_MAX_SHIFT 9
size_t purge_trim_threshold(struct arena *a) {
  if (!opt.dynamic_threshold || a->trim_shift == 0)
    return opt.trim_threshold;
  return opt.trim_threshold << a->trim_shift;
}

void purge_note_top_growth(struct arena *a) {
  if (!a->trimmed_ms || !opt.dynamic_threshold)
    return;
  uint64_t now = now_ms();
  if (now < a->trimmed_ms + (uint64_t)(opt.purge_decay_ms > 0 ? opt.purge_decay_ms : 0) &&
      a->trim_shift < TRIM_MAX_SHIFT) {
    a->trim_shift++;
    a->trim_raised_ms = now;
  }
  a->trimmed_ms = 0;
}

void purge_top_grew(struct arena *a) {
  /* Woken before deferring: a thread on its way out sees this (see
   * "background thread"). */
  purge_wake();
  if (!purge_defers()) {
    if (chunk_size(a->top) < purge_trim_threshold(a))
      return;
    uint64_t now = now_ms();
    if (a->trim_shift > 0 && now > a->trim_raised_ms + CAP_RELAX_MS) {
      a->trim_shift--;
      a->trim_raised_ms = now;
    }
    if (purge_trim_top(a, opt.top_pad))
      a->trimmed_ms = now;
    return;
  }
  a->top_freed_ms = now_ms();
}

/* A top under the trim threshold keeps its address space (glibc's
 * meaning of the threshold, which the dynamic threshold raises to 64 MiB),
 * but once it has stayed as it is for the decay time, its resident pages
 * past top_pad go back like those of any free chunk.  True when the
 * thread should come back for it. */
static bool purge_idle_top(struct arena *a, uint64_t now) {
  struct chunk *t = a->top;
  if (!t || opt.purge_lazy || opt.purge_decay_ms < 0)
    return false;
  size_t size = chunk_size(t);
  char *lo = (char *)os_page_up((uintptr_t)t + CHUNK_HDR + opt.top_pad);
  char *end = (char *)t + size;
  char *dirty_end = a->top_dirty_end < end ? a->top_dirty_end : end;
  /* Whole pages up to the end of the dirty part (the rest of its last
   * page is top too), unless top itself ends inside that page. */
  char *hi = (char *)os_page_up((uintptr_t)dirty_end);
  if (hi > end)
    hi = (char *)os_page_down((uintptr_t)end);
  if (hi <= lo)
    return false;
  if (t != a->seen_top || size != a->seen_top_size) {
    a->seen_top = t;
    a->seen_top_size = size;
    a->seen_top_ms = now;
    return true;
  }
  if (a->seen_top_ms + (uint64_t)opt.purge_decay_ms > now)
    return true;
  if (os_purge(lo, (size_t)(hi - lo))) {
    if (hi >= dirty_end)
      a->top_dirty_end = lo; /* what lies above reads as zero again */
    a->count.purged_bytes += (size_t)(hi - lo);
  }
  return false;
}

/* Is a's top over the trim threshold and left alone for the decay? */
static bool top_trim_due(struct arena *a, uint64_t now) {
  if (!a->top || chunk_size(a->top) < opt.trim_threshold)
    return false;
  return !purge_defers() || a->top_freed_ms + (uint64_t)opt.purge_decay_ms <= now;
}

bool purge_trim_all(size_t pad) {
  bool released = mmapped_cache_release_all() > 0;
  for (struct arena *a = arenas_first(); a; a = a->next) {
    lock_acquire(&a->lock);
    tcache_drain_remote(a);
    arena_consolidate(a);
    if (purge_trim_top(a, pad))
      released = true;
    if (purge_decayed(a, true, SIZE_MAX))
      released = true;
    lock_release(&a->lock);
  }
  return released;
}

/* --------------------------------------------------- background thread */

/* Rounds a busy arena's parked blocks are left to its threads before
 * the background thread takes them anyway (about a second). */
#define BUSY_ROUNDS_MAX 10

/* One round over every arena; returns the dirty bytes left. */
static size_t purge_round(void) {
  size_t left = 0;
  for (struct arena *a = arenas_first(); a; a = a->next) {
    /* Set before the lock is taken: a thread that finds it busy waits
     * for us instead of moving to another arena. */
    __atomic_store_n(&a->purging, true, __ATOMIC_RELAXED);
    lock_acquire(&a->lock);
    /* Blocks other threads handed back and fast-bin chunks are what a
     * busy arena's thread refills its cache from: taking them would make
     * it carve new ones.  They are left alone while the arena is busy,
     * up to about a second. */
    unsigned long act = __atomic_load_n(&a->activity, __ATOMIC_RELAXED);
    bool busy = act != a->activity_seen && a->busy_rounds < BUSY_ROUNDS_MAX;
    a->activity_seen = act;
    a->busy_rounds = busy ? a->busy_rounds + 1 : 0;
    if (!busy) {
      tcache_drain_remote(a);
      /* Fast-bin chunks merge into purgeable free chunks, a bounded
       * number per lock hold. */
      while (a->have_fastchunks && !arena_consolidate_some(a, 4096)) {
        lock_release(&a->lock);
        lock_acquire(&a->lock);
      }
    }
    uint64_t now = now_ms();
    if (top_trim_due(a, now))
      purge_trim_top(a, opt.top_pad);
    else if (a->top && chunk_size(a->top) >= opt.trim_threshold)
      left++; /* a trim to come back for */
    else if (purge_idle_top(a, now))
      left++;
    /* Bounded work per lock hold, so threads using the arena wait little. */
    while (purge_decayed(a, false, 16) > 0) {
      lock_release(&a->lock);
      lock_acquire(&a->lock);
    }
    left += run_purge_idle(a);
    left += a->dirty_bytes + a->fast_bytes + tcache_remote_pending(a);
    lock_release(&a->lock);
    __atomic_store_n(&a->purging, false, __ATOMIC_RELAXED);
  }
  left += mmapped_cache_expire(false);
  return left;
}

/* --------------------------------------------------- background thread
 *
 * Its life cycle, and why it cannot deadlock:
 *  - It is created at a safe point only, never from malloc or free: libc
 *    calls those with its own locks held (pthread_join frees a dead
 *    thread's TLS under the stack-cache lock that pthread_create takes;
 *    dlopen, stdio, atexit), so a thread created there can wait for
 *    a lock its own caller holds.  The safe points: the program's own
 *    pthread_create (the shared drop-in interposes it: src/threadhook.c),
 *    right after the program's thread exists; load time with
 *    TIDEMALLOC_PURGE_THREAD=2; mallopt(TIDE_M_PURGE_THREAD, 2), or 1 in a
 *    process that has threads.  So a single-threaded process never becomes
 *    multi-threaded because of tidemalloc (glibc's fork is only safe in
 *    signal handlers of single-threaded processes, src/api.c).
 *  - With nothing to do it sleeps on a futex word; purge_wake, called
 *    wherever work is left for it (dirty chunks, a deferred trim, a kept
 *    mapping, a remote free), wakes it.  Idle while it is the process's
 *    only thread but one (the program joined its threads), it exits, so
 *    the kernel sees a single-threaded process again (unshare); the next
 *    pthread_create makes it anew.  Whoever defers work wakes it first and
 *    then looks whether it runs; it stores "not running" and then looks
 *    for a wake-up: one of them sees the other, so no work is stranded.
 *  - It takes arena locks one at a time, like any thread, never holds one
 *    while it sleeps, and calls nothing that takes a libc lock (nanosleep
 *    and futex are system calls).
 *  - Without it (none made yet, TIDEMALLOC_PURGE_THREAD=0, pthread_create
 *    failed, the static library, a fork child) nothing waits for it:
 *    trims and unmaps happen at once, as in glibc, the program's own slow
 *    paths purge decayed chunks (purge_tick), and purge_after_free caps
 *    the dirty bytes of each arena.
 */

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void sleep_until_woken(void) {
  unsigned seq = __atomic_load_n(&bg_wake_seq, __ATOMIC_SEQ_CST);
  __atomic_store_n(&bg_sleeping, true, __ATOMIC_SEQ_CST);
  if (!__atomic_load_n(&thread_wanted, __ATOMIC_SEQ_CST))
    os_futex_wait(&bg_wake_seq, seq);
  __atomic_store_n(&bg_sleeping, false, __ATOMIC_SEQ_CST);
}

/* The thread ends (idle, and alone with one other thread): true unless
 * work arrived meanwhile, which it stays for. */
static bool try_exit(void) {
  __atomic_store_n(&bg_state, BG_NONE, __ATOMIC_SEQ_CST);
  if (!__atomic_load_n(&thread_wanted, __ATOMIC_SEQ_CST))
    return true;
  /* Carry on, unless a new thread is being made already. */
  int expect = BG_NONE;
  return !__atomic_compare_exchange_n(&bg_state, &expect, BG_RUNNING, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}

static void *purge_thread_main(void *unused) {
  (void)unused;
  int idle_rounds = 0;
  for (;;) {
    long period_ms = opt.purge_decay_ms / 2;
    if (period_ms < 10)
      period_ms = 10;
    if (period_ms > 1000)
      period_ms = 1000;
    /* Nothing to do for a few rounds: end if the program has no thread
     * of its own left but one, else sleep until work arrives. */
    if (idle_rounds >= 4) {
      /* 2, or a signal to answer: for good */
      int n = opt.purge_thread == 1 && !opt.stats_signal ? os_thread_count() : 0;
      if (n > 0 && n <= 2 && try_exit())
        return NULL;
      sleep_until_woken();
      idle_rounds = 0;
    }
    stats_serve_pending(); /* woken for a signal's dump (src/stats.c) */
    nap_ms(period_ms);
    stats_serve_pending();
    __atomic_store_n(&thread_wanted, false, __ATOMIC_SEQ_CST);
    size_t left = opt.purge_decay_ms < 0 || !opt.purge_thread ? 0 : purge_round();
    idle_rounds = left > 0 ? 0 : idle_rounds + 1;
  }
  return NULL;
}

/* Make the thread, unless one exists or is being made.  Only from a safe
 * point (see above); no lock of ours held. */
static void start_thread(void) {
  int expect = BG_NONE;
  if (!opt.purge_thread || opt.purge_decay_ms < 0 ||
      !__atomic_compare_exchange_n(&bg_state, &expect, BG_STARTING, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
    return;
  /* It takes no signals meant for the program, and what pthread_create
   * allocates for it gets mappings of its own (arenas_isolate), so it pins
   * no arena's memory: a small block left at the top of a heap keeps every
   * byte below it from being trimmed. */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * KiB);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  struct tcache *tc = tcache_suspend();
  arenas_isolate(true);
  int err = pthread_create(&t, &attr, purge_thread_main, NULL);
  arenas_isolate(false);
  tcache_resume(tc);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  __atomic_store_n(&bg_state, err == 0 ? BG_RUNNING : BG_FAILED, __ATOMIC_RELEASE);
}

void purge_thread_created(void) {
  if (likely(__atomic_load_n(&bg_state, __ATOMIC_RELAXED) != BG_NONE) || !opt.purge_thread)
    return;
  start_thread(); /* (with 2 it was made at start-up: again in a fork child) */
}

void purge_thread_at_load(void) {
  if (opt.purge_thread == 2 || (opt.purge_thread && opt.stats_signal))
    start_thread();
}

void purge_thread_setting(void) {
  if (opt.purge_thread == 2 || (opt.purge_thread == 1 && !__libc_single_threaded))
    start_thread();
}

bool purge_thread_running(void) { return bg_running(); }

void purge_postfork_child(void) {
  /* The thread did not come along: nothing waits for it any more.  (The
   * child's own first pthread_create makes a new one.) */
  __atomic_store_n(&bg_state, BG_NONE, __ATOMIC_RELAXED);
  thread_wanted = false;
  bg_sleeping = false;
}
