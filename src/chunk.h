/* SPDX-License-Identifier: MIT */
/*
 * Chunks and their boundary tags.
 *
 * An allocated chunk:
 *
 *   chunk -> +-------------------------------------------------+
 *            | prev_size: the previous chunk's size if it is    |
 *            |   free (P clear), else its last 8 bytes of data  |
 *            +-------------------------------------------------+
 *            | size of this chunk                    |R|A|M|P|  |
 *     mem -> +-------------------------------------------------+
 *            | user data (size - 8 bytes usable: the next       |
 *            |   chunk's prev_size field is ours while we are   |
 *            |   in use)                                        |
 *   next  -> +-------------------------------------------------+
 *            | prev_size (= our last 8 user bytes)              |
 *            | size of next chunk                      |A|M|1|  |
 *            +-------------------------------------------------+
 *
 * A free chunk (in a bin other than a fast bin):
 *
 *   chunk -> | prev_size (previous chunk is never free: P set)  |
 *            | size                                    |A|0|1|  |
 *     mem -> | fd: next chunk in the bin                        |
 *            | bk: previous chunk in the bin                    |
 *            | fd_nextsize, bk_nextsize: large bins only, on    |
 *            |   the first chunk of each size (NULL elsewhere)  |
 *            | ... unused ...                                   |
 *   next  -> | prev_size = size (the foot)                      |
 *            | size of next chunk                      |A|0|0|  |
 *
 * Flags in the low bits of size (sizes are multiples of 16):
 *   P  PREV_INUSE     the previous chunk is in use (its foot is not valid)
 *   M  IS_MMAPPED     the chunk is its own mapping; prev_size holds the
 *                     distance from the mapping's start
 *   A  IN_HEAP        the chunk lives in a 64 MiB heap (heap_of() finds
 *                     its heap_info); clear for the main arena's brk memory
 *   R  IN_RUN         a block of a run (src/run.h): one of the equal
 *                     chunks a thread carves from one arena chunk; never
 *                     coalesced, given back to its run, not to the bins
 *
 * Fast-bin and thread-cache chunks keep looking allocated (the next
 * chunk's P stays set), so they are never coalesced while cached.
 */
#ifndef TIDE_CHUNK_H
#define TIDE_CHUNK_H

#include "internal.h"

struct chunk {
  size_t prev_size;
  size_t size;
  struct chunk *fd;
  struct chunk *bk;
  struct chunk *fd_nextsize;
  struct chunk *bk_nextsize;
};

#define SIZE_SZ sizeof(size_t)
#define CHUNK_ALIGN ((size_t)16)
#define CHUNK_ALIGN_MASK (CHUNK_ALIGN - 1)
#define CHUNK_HDR ((size_t)(2 * SIZE_SZ))  /* prev_size + size */
#define MINSIZE ((size_t)32)                /* header + fd + bk */
/* Two 16-byte fence chunks close a region that will not grow further. */
#define FENCE_SIZE CHUNK_HDR

#define PREV_INUSE ((size_t)1)
#define IS_MMAPPED ((size_t)2)
#define IN_HEAP ((size_t)4)
#define IN_RUN ((size_t)8)
#define CHUNK_FLAGS (PREV_INUSE | IS_MMAPPED | IN_HEAP | IN_RUN)

/* Largest request we accept: leaves room for rounding and a header
 * without overflowing, and stays within ptrdiff_t as C requires. */
#define MAX_REQUEST ((size_t)PTRDIFF_MAX - 2 * MINSIZE)

static inline void *chunk2mem(struct chunk *c) { return (char *)c + CHUNK_HDR; }
static inline struct chunk *mem2chunk(void *p) { return (struct chunk *)((char *)p - CHUNK_HDR); }

static inline size_t chunk_size(const struct chunk *c) { return c->size & ~CHUNK_FLAGS; }
static inline size_t chunk_flags(const struct chunk *c) { return c->size & CHUNK_FLAGS; }
static inline bool prev_inuse(const struct chunk *c) { return c->size & PREV_INUSE; }
static inline bool chunk_is_mmapped(const struct chunk *c) { return c->size & IS_MMAPPED; }
static inline bool chunk_in_heap(const struct chunk *c) { return c->size & IN_HEAP; }
static inline bool chunk_in_run(const struct chunk *c) { return c->size & IN_RUN; }

static inline struct chunk *chunk_at(void *base, size_t offset) {
  return (struct chunk *)((char *)base + offset);
}
static inline struct chunk *chunk_next(struct chunk *c) { return chunk_at(c, chunk_size(c)); }
static inline struct chunk *chunk_prev(struct chunk *c) {
  return (struct chunk *)((char *)c - c->prev_size);
}

/* In use = the next chunk's P bit. */
static inline bool chunk_inuse(struct chunk *c) { return prev_inuse(chunk_next(c)); }
static inline void chunk_set_inuse(struct chunk *c) { chunk_next(c)->size |= PREV_INUSE; }
static inline void chunk_clear_inuse(struct chunk *c) { chunk_next(c)->size &= ~PREV_INUSE; }

/* Header and foot. set_head keeps no old flag: callers pass them all. */
static inline void chunk_set_head(struct chunk *c, size_t size_and_flags) { c->size = size_and_flags; }
static inline void chunk_set_foot(struct chunk *c, size_t size) { chunk_at(c, size)->prev_size = size; }

static inline bool aligned_ok(const void *p) { return ((uintptr_t)p & CHUNK_ALIGN_MASK) == 0; }

/* Request bytes -> chunk size.  False when the request can never be met. */
static inline bool request2size(size_t req, size_t *out) {
  if (unlikely(req > MAX_REQUEST))
    return false;
  size_t s = (req + SIZE_SZ + CHUNK_ALIGN_MASK) & ~CHUNK_ALIGN_MASK;
  *out = s < MINSIZE ? MINSIZE : s;
  return true;
}

/* Usable bytes of an in-use chunk of this size (mmapped chunks have no
 * next chunk to lend them its prev_size field). */
static inline size_t chunk_usable(const struct chunk *c) {
  return chunk_size(c) - (chunk_is_mmapped(c) ? CHUNK_HDR : SIZE_SZ);
}

#endif /* TIDE_CHUNK_H */
