/* SPDX-License-Identifier: MIT */
/*
 * Returning memory to the OS (src/purge.c).
 *
 *  - the top chunk: the break moves down (main arena), heaps shrink and
 *    empty heaps are unmapped, whenever top exceeds the trim threshold;
 *  - free chunks inside the heap: every free chunk of at least
 *    PURGE_MIN_CHUNK bytes is "dirty" when it enters a bin and goes on
 *    its arena's dirty list, oldest first.  Once it has stayed free for
 *    the decay time its whole pages are handed back with madvise and it
 *    leaves the list ("purged").  A chunk reused sooner is never purged,
 *    so hot malloc/free cycles never pay for a system call;
 *  - a background thread does this for processes that stop calling
 *    malloc; it is made at a safe point only, never from malloc or free
 *    (see "background thread" in purge.c for its life cycle).
 *
 * A dirty-list entry lives in the free chunk, after the bin links:
 *
 *   chunk -> [prev_size][size][fd][bk][fd_nextsize][bk_nextsize]
 *            [dirty next][dirty prev][freed at, ms][mark][lo][hi] [pages]
 *
 * lo..hi is the part of the chunk that may still hold resident pages;
 * purging hands back the whole pages of it past the link.
 */
#ifndef TIDE_PURGE_H
#define TIDE_PURGE_H

#include "chunk.h"

#define PURGE_MIN_CHUNK ((size_t)8192)

/* Arena lock held for all but the last two. */
void purge_track(struct arena *a, struct chunk *c, size_t size);   /* c became free in a bin */
void purge_untrack(struct arena *a, struct chunk *c, size_t size); /* c leaves the bins */
/* Which part of a free chunk in a bin may hold resident pages (all of a
 * small chunk, none of a purged one).  When chunks merge or split, the
 * result is narrowed to what its pieces had, so purged pages are not
 * handed back twice. */
struct purge_range {
  uintptr_t lo, hi;
};
struct purge_range purge_range_of(struct chunk *c, size_t size);
struct purge_range purge_range_hull(struct purge_range a, struct purge_range b);
/* c was just put in a bin (dirty as a whole): only r of it is dirty. */
void purge_narrow(struct arena *a, struct chunk *c, size_t size, struct purge_range r);
/* Top reached the trim threshold through a free.  Under the defaults
 * the trim waits until top has taken no free for the decay time (and
 * the background thread does it), so memory that comes and goes at the
 * top is not handed back and faulted in again each time; once the user
 * sets a glibc threshold, or turns the decay or the thread off, the trim
 * happens here and now, as in glibc. */
void purge_top_grew(struct arena *a);
/* a's trim threshold: glibc's, raised while trims are undone at once
 * (no background thread; see purge.c). */
size_t purge_trim_threshold(struct arena *a);
/* a's top just grew (the break or a heap). */
void purge_note_top_growth(struct arena *a);
/* Under the defaults (no glibc threshold set by the user, a decay, the
 * background thread able to run), freed memory at the top and freed
 * mappings wait for the decay before they go back to the OS. */
bool purge_defers(void);
/* Something now waits for the background thread. */
void purge_wake(void);
/* The thread will not come (it could not start, or a setting changed so
 * that nothing waits for it any more): trim and unmap now.  No arena lock
 * held. */
void purge_release_deferred(void);
/* Purge dirty chunks freed more than the decay ago (all of them when
 * everything is set), at most max_chunks; returns bytes released. */
size_t purge_decayed(struct arena *a, bool everything, size_t max_chunks);
/* A slow-path allocation in a (by its thread; lock not needed). */
static inline void purge_note_activity(struct arena *a) {
  __atomic_store_n(&a->activity, a->activity + 1, __ATOMIC_RELAXED);
}
/* Now and then, from the arena slow paths. */
static inline void purge_tick(struct arena *a) {
  if (a->dirty_head && (++a->purge_tick & 31) == 0)
    purge_decayed(a, false, 8);
}
bool purge_trim_top(struct arena *a, size_t pad);
/* malloc_trim: every arena, all dirty memory; true if memory was released. */
bool purge_trim_all(size_t pad);
/* Dirty or fast-bin memory of a (locked) grew: the background thread may
 * be wanted (purge_wake). */
void purge_note_pending(struct arena *a);
/* Chunks were pushed on some arena's remote-free list: the background
 * thread should come round to drain it if nobody else does. */
void purge_note_remote(void);
/* The end of a free into a (locked): with no background thread, purge the
 * oldest dirty chunks past the cap (see purge.c). */
void purge_after_free(struct arena *a);
/* No thread comes, yet freed mappings may be kept (the defaults), within
 * purge_unthreaded_cap() bytes. */
bool purge_keeps_unthreaded(void);
size_t purge_unthreaded_cap(void);
/* c (a chunk of at least PURGE_MIN_CHUNK) was just allocated from a's
 * bins: if the dirty cap purged it a moment ago, the cap was too small. */
void purge_note_reuse(struct arena *a, struct chunk *c);
/* Safe points where the background thread may be made (never malloc or
 * free): the program made a thread (src/threadhook.c); the library was
 * loaded; mallopt(TIDE_M_PURGE_THREAD) changed the setting. */
void purge_thread_created(void);
void purge_thread_at_load(void);
void purge_thread_setting(void);
bool purge_thread_running(void);
void purge_postfork_child(void);
/* Is c on its arena's dirty list? (checker) */
bool purge_is_dirty(struct chunk *c);
/* Is a free chunk in a bin either dirty or purged, as it must be? */
bool purge_state_ok(struct chunk *c);

#endif
