/* SPDX-License-Identifier: MIT */
/*
 * The arena list and thread binding.
 *
 * A thread starts on no arena; its first allocation binds it: to an arena
 * no thread uses (the free list), else to the arena with the fewest
 * threads (with arena_share=0, glibc's way: to a new one while under the
 * limit).  Threads share arenas until they get in each other's way: what
 * one thread frees, another on its arena takes again, where arenas of
 * their own would each keep their own high-water mark (bulk, 4 threads:
 * 162 MB peak RSS with an arena each, 120 MB sharing one).  The thread
 * cache and the runs keep the arena lock rare, so sharing costs little;
 * a thread that takes it often while another does too (see crowded())
 * moves: to an arena no thread uses, else a new one while under the
 * limit (8 x usable CPUs + 1, or M_ARENA_MAX), else to any arena whose
 * lock it can take at once; only when all are busy does it wait (on its
 * own; a free-listed one it takes whoever holds it).  Exiting threads
 * detach; an arena with no thread left goes on the free list for reuse.
 */
#include "arenas.h"

#include "arena.h"
#include "heap.h"
#include "run.h"
#include "tcache.h"
#include "os.h"

struct arena main_arena = {.lock = TIDE_LOCK_INIT, .is_main = true};

static struct tide_lock list_lock = TIDE_LOCK_INIT;
static struct arena *list_tail = &main_arena;
static struct arena *free_list;
static size_t narenas = 1;
static size_t arena_limit;
static __thread struct arena *thread_arena;
__thread bool arenas_isolating; /* arenas_isolate */

struct arena *arenas_first(void) { return &main_arena; }
size_t arenas_count(void) { return __atomic_load_n(&narenas, __ATOMIC_RELAXED); }
struct arena *arenas_thread_arena(void) { return thread_arena; }

static size_t limit(void) {
  if (opt.arena_max)
    return opt.arena_max;
  if (!arena_limit)
    arena_limit = 8 * (size_t)os_cpu_count() + 1;
  return arena_limit;
}

void arenas_init(void) {
  arena_init(&main_arena);
  main_arena.attached_threads = 1;
  thread_arena = &main_arena;
}

/* A new arena in a heap of its own; list_lock held.  Returned locked. */
static struct arena *arena_create(void) {
  size_t hdr = HEAP_ARENA_OFFSET + sizeof(struct arena);
  struct heap_info *h = heap_new(hdr + 128 * KiB, NULL);
  if (!h)
    return NULL;
  struct arena *a = heap_arena_slot(h);
  memset(a, 0, sizeof *a);
  lock_init(&a->lock);
  arena_init(a);
  h->arena = a;
  a->heap = h;
  struct chunk *top = heap_first_chunk(h);
  chunk_set_head(top, (size_t)(heap_end(h) - (char *)top) | PREV_INUSE | IN_HEAP);
  a->top = top;
  a->top_dirty_end = (char *)top + CHUNK_HDR;
  a->system_mem = a->max_system_mem = h->size;
  a->index = (int)narenas;
  lock_acquire(&a->lock);
  __atomic_store_n(&list_tail->next, a, __ATOMIC_RELEASE);
  list_tail = a;
  __atomic_store_n(&narenas, narenas + 1, __ATOMIC_RELAXED);
  return a;
}

static void attach(struct arena *a) {
  struct arena *old = thread_arena;
  if (old == a)
    return;
  if (old && --old->attached_threads == 0) {
    old->next_free = free_list;
    free_list = old;
  }
  if (a->attached_threads++ == 0) {
    /* Take it off the free list. */
    for (struct arena **pp = &free_list; *pp; pp = &(*pp)->next_free)
      if (*pp == a) {
        *pp = a->next_free;
        break;
      }
  }
  thread_arena = a;
  tcache_arena_changed(a);
}

/* First allocation of a thread: pick its arena (returned locked). */
static TIDE_NOINLINE struct arena *bind_thread(void) {
  lock_acquire(&list_lock);
  struct arena *a = free_list;
  bool locked = false;
  if (!a && !opt.arena_share && narenas < limit()) { /* glibc's way: one each */
    a = arena_create();
    locked = a != NULL;
  }
  if (!a) {
    a = &main_arena;
    for (struct arena *b = &main_arena; b; b = b->next)
      if (b->attached_threads < a->attached_threads)
        a = b;
  }
  attach(a);
  lock_release(&list_lock);
  if (!locked)
    lock_acquire(&a->lock);
  return a;
}

/* The thread's arena was busy: find another (returned locked): one no
 * thread uses (its memory waits there), else a new one while under the
 * limit, else any whose lock it can take at once. */
static TIDE_NOINLINE struct arena *contended(struct arena *busy) {
  lock_acquire(&list_lock);
  struct arena *a = free_list;
  bool locked = false;
  if (!a && narenas < limit()) {
    a = arena_create();
    locked = a != NULL;
  }
  if (!a) {
    for (struct arena *b = busy->next ? busy->next : &main_arena; b != busy;
         b = b->next ? b->next : &main_arena) {
      if (lock_try(&b->lock)) {
        a = b;
        locked = true;
        break;
      }
    }
  }
  if (a)
    attach(a);
  lock_release(&list_lock);
  if (!a)
    a = busy;
  if (!locked)
    lock_acquire(&a->lock);
  return a;
}

void arenas_isolate(bool on) { arenas_isolating = on; }

/* Sharing an arena costs its threads little while they seldom take its
 * lock (in bulk, 1 take per 76 mallocs: the same time on one arena as on
 * four), and much when they take it all the time (two threads that
 * allocate 70-120 KB blocks in a loop: 4 x slower on one): their caches
 * pass the arena's lines to and fro.  So a thread moves when, over a
 * window of its takes, it took the lock once per CONTENTION_MALLOCS
 * mallocs or more often, and found it taken now and then -- another
 * thread is doing the same. */
#define CONTENTION_WINDOW 256
#define CONTENTION_MALLOCS 16
#define CONTENTION_WAITS 8

static bool crowded(struct tcache *tc, bool waited) {
  tc->lock_waits += waited;
  if (++tc->lock_takes < CONTENTION_WINDOW)
    return false;
  size_t mallocs = tc->mallocs_published + tc->mallocs;
  bool often = mallocs - tc->window_mallocs < (size_t)CONTENTION_WINDOW * CONTENTION_MALLOCS;
  bool met = tc->lock_waits >= CONTENTION_WAITS;
  tc->window_mallocs = mallocs;
  tc->lock_takes = tc->lock_waits = 0;
  return often && met;
}

struct arena *arenas_lock_mine(void) {
  struct arena *a = thread_arena;
  if (unlikely(arenas_isolating)) {
    lock_acquire(&main_arena.lock);
    return &main_arena;
  }
  if (unlikely(!a))
    return bind_thread();
  struct tcache *tc = tcache_tls;
  bool got = lock_try(&a->lock);
  if (opt.arena_share && tc != &tcache_none) {
    /* (The background thread holds it only briefly: no sign.) */
    if (likely(!crowded(tc, !got && !__atomic_load_n(&a->purging, __ATOMIC_RELAXED)))) {
      if (!got)
        lock_acquire(&a->lock);
      return a;
    }
    if (got)
      lock_release(&a->lock);
    return contended(a);
  }
  if (likely(got))
    return a;
  /* An arena each (or no cache to count in).  Most holds are short
   * (often another thread handing back a batch of this arena's chunks):
   * wait a moment before moving elsewhere, or a producer would flee its
   * consumer's frees from arena to arena. */
  for (int i = 0; i < 256; i++) {
    __builtin_ia32_pause();
    if (__atomic_load_n(&a->lock.state, __ATOMIC_RELAXED) == 0 && lock_try(&a->lock))
      return a;
  }
  /* The background thread holds it only briefly: no reason to move. */
  if (__atomic_load_n(&a->purging, __ATOMIC_RELAXED)) {
    lock_acquire(&a->lock);
    return a;
  }
  return contended(a);
}

struct arena *arenas_lock_other(struct arena *failed) {
  /* The main arena may still grow on brk or heaps when another's heap
   * reservation failed, and the other way round. */
  struct arena *a = failed == &main_arena ? main_arena.next : &main_arena;
  if (!a)
    return NULL;
  lock_acquire(&a->lock);
  return a;
}

struct arena *arenas_of_chunk(void *chunk, size_t size_field) {
  if (size_field & IN_HEAP) {
    if (unlikely(!heap_registered(chunk)))
      return NULL;
    return heap_of(chunk)->arena;
  }
  char *p = chunk;
  if (unlikely(p < main_arena.brk_lo || p >= main_arena.brk_hi))
    return NULL;
  return &main_arena;
}

void arenas_thread_exit(void) {
  lock_acquire(&list_lock);
  struct arena *a = thread_arena;
  if (a && --a->attached_threads == 0) {
    a->next_free = free_list;
    free_list = a;
  }
  thread_arena = NULL;
  lock_release(&list_lock);
}

/* ------------------------------------------------------------------ fork */

void arenas_prefork(void);
void arenas_postfork_parent(void);
void arenas_postfork_child(void);

void arenas_prefork(void) {
  lock_acquire(&list_lock);
  for (struct arena *a = &main_arena; a; a = a->next)
    lock_acquire(&a->lock);
  for (struct arena *a = &main_arena; a; a = a->next)
    run_prefork(a);
}

void arenas_postfork_parent(void) {
  for (struct arena *a = &main_arena; a; a = a->next)
    run_postfork_parent(a);
  for (struct arena *a = &main_arena; a; a = a->next)
    lock_release(&a->lock);
  lock_release(&list_lock);
}

void arenas_postfork_child(void) {
  /* Only this thread survives: every other thread's arena is free now. */
  free_list = NULL;
  for (struct arena *a = &main_arena; a; a = a->next) {
    lock_init(&a->lock);
    run_postfork_child(a, tcache_mine());
    a->purging = false; /* the background thread did not come along */
    a->attached_threads = a == thread_arena ? 1 : 0;
    if (a != thread_arena) {
      a->next_free = free_list;
      free_list = a;
    }
  }
  lock_init(&list_lock);
}
