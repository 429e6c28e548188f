/* SPDX-License-Identifier: MIT */
/*
 * One arena's malloc and free flows (src/arena.c).  Every function here
 * is called with the arena's lock held.
 */
#ifndef TIDE_ARENA_H
#define TIDE_ARENA_H

#include "bins.h"

void arena_init(struct arena *a);
/* A chunk of at least nb bytes (nb from request2size), marked in use, or
 * NULL.  May return an mmapped chunk when nb >= the mmap threshold.
 * *clean_from (if not NULL) gets the address from which the chunk's
 * memory is known to be zero (the end of its usable bytes when nothing
 * is known). */
struct chunk *arena_malloc(struct arena *a, size_t nb, char **clean_from);
/* A chunk of exactly size bytes whose address is a multiple of size (a
 * power of two; a run, src/run.h), marked in use; never mmapped.  NULL
 * when the arena cannot grow. */
struct chunk *arena_malloc_run(struct arena *a, size_t size);
/* After arena_malloc: up to n more chunks of exactly nb, from the fast
 * bin, the small bin or the top only; returns how many went to out. */
size_t arena_malloc_more(struct arena *a, size_t nb, struct chunk **out, size_t n);
/* Without the lock: hand a's chunks first..last (linked through fd) to
 * a for freeing.  With the lock: free whatever was handed so. */
/* Abort unless p looks like an in-use chunk of a that may be freed
 * (inside a's memory, not top, next header sane and saying "in use"). */
void arena_check_freeable(struct arena *a, struct chunk *p);
/* Is p on a's fast bin of its size?  (a locked; a fast-bin chunk carries
 * the free key in its second word, as a cached one does.) */
bool arena_fastbin_contains(struct arena *a, struct chunk *p);
/* Free a non-mmapped chunk that belongs to a (checked as above).
 * from_cache: a thread cache's overflow (checked when it was cached),
 * kept in a fast bin whatever M_MXFAST says, so the next refill takes it
 * back without coalescing.  A block of a run goes back to its run. */
void arena_free(struct arena *a, struct chunk *p, bool from_cache);
/* Resize p (in use, of a) to nb without moving it; false if impossible. */
bool arena_resize_in_place(struct arena *a, struct chunk *p, size_t nb);
/* A chunk whose memory is aligned to align (a power of two > 16). */
struct chunk *arena_memalign(struct arena *a, size_t align, size_t nb);
/* Move every fast-bin chunk into the regular bins, coalescing. */
void arena_consolidate(struct arena *a);
/* The same for at most budget chunks; true when the fast bins are empty. */
bool arena_consolidate_some(struct arena *a, size_t budget);
/* Give the top chunk back above pad bytes; true if memory was released. */
bool arena_trim_top(struct arena *a, size_t pad);
/* Does [p, p+size) lie inside memory a owns (for checking user pointers)? */
bool arena_owns(struct arena *a, struct chunk *p, size_t size);
/* Does addr lie in memory a owns?  Reads nothing at addr. */
bool arena_holds(struct arena *a, const void *addr);
/* The region (brk segment or heap) that holds p: its first chunk and the
 * end of its chunks (the fence, or the top's end). */
void arena_region_bounds(struct arena *a, struct chunk *p, char **first, char **end);

#endif
