/* SPDX-License-Identifier: MIT */
/*
 * Bins: the free-chunk containers of one arena.
 *
 *   fast bins    singly linked LIFO lists, one per chunk size 32..1040;
 *                chunks stay marked in use (not coalesced) until the arena
 *                consolidates them.  A plain free puts chunks up to
 *                M_MXFAST (128 B of request) here, as ptmalloc; a thread
 *                cache hands back its overflow here for every size it
 *                holds, so a batch moves between threads without being
 *                coalesced and split again.  Links are "safe-linked":
 *                stored xor'ed with their own address >> 12 and a secret.
 *   bin 1        the unsorted bin: freed and split-off chunks wait here,
 *                FIFO, for one chance to be reused before being sorted.
 *   bins 2..63   small bins: one chunk size each (32..1008 by 16).
 *   bins 64..126 large bins (ranges below), each sorted largest first, with
 *                a ring of "nextsize" links through the first chunk of
 *                each distinct size so best fit skips runs of equal sizes:
 *                  32 bins x 64 B from 1 KiB, 16 x 512 B, 8 x 4 KiB,
 *                  4 x 32 KiB, 2 x 256 KiB, 1 for everything bigger.
 *   binmap       one bit per bin: clear means surely empty.
 *
 * A bin's list head is a "sentinel" that looks like a chunk: bin_at(i)
 * points 16 bytes before the bin's fd/bk pair, so head->fd and head->bk
 * are the pair.  Its prev_size/size overlay the previous bin and are
 * never read.
 */
#ifndef TIDE_BINS_H
#define TIDE_BINS_H

#include "chunk.h"

#define MIN_LARGE_SIZE ((size_t)NSMALLBINS * CHUNK_ALIGN) /* 1024 */
#define MAX_FASTBIN_CHUNK ((size_t)(NFASTBINS + 1) * CHUNK_ALIGN) /* 1040 */
#define MXFAST_MAX ((size_t)160) /* largest M_MXFAST, as glibc */

static inline struct chunk *bin_at(struct arena *a, int i) {
  return (struct chunk *)((char *)&a->bins[2 * i] - offsetof(struct chunk, fd));
}
static inline bool bin_empty(struct arena *a, int i) {
  struct chunk *b = bin_at(a, i);
  return b->fd == b;
}

static inline bool in_smallbin_range(size_t sz) { return sz < MIN_LARGE_SIZE; }
static inline int smallbin_index(size_t sz) { return (int)(sz >> 4); }
static inline int fastbin_index(size_t sz) { return (int)(sz >> 4) - 2; }
int largebin_index(size_t sz);
static inline int bin_index(size_t sz) {
  return in_smallbin_range(sz) ? smallbin_index(sz) : largebin_index(sz);
}
/* Smallest and largest chunk size that belongs in bin i (2..126). */
void bin_range(int i, size_t *lo, size_t *hi);

static inline void binmap_mark(struct arena *a, int i) { a->binmap[i >> 6] |= (uint64_t)1 << (i & 63); }
static inline void binmap_clear(struct arena *a, int i) { a->binmap[i >> 6] &= ~((uint64_t)1 << (i & 63)); }
static inline bool binmap_get(struct arena *a, int i) { return (a->binmap[i >> 6] >> (i & 63)) & 1; }

/* Safe-linking of singly linked lists (fast bins, thread cache, runs,
 * remote stacks): a link is stored xor'ed with its own address >> 12 and
 * with a per-process secret, so reading one freed block tells nothing
 * about where the heap is, and a link forged without the secret (an odd
 * number) reveals as a misaligned pointer, which every pop rejects. */
static inline struct chunk *link_protect(void *slot, struct chunk *p) {
  return (struct chunk *)(((uintptr_t)slot >> 12) ^ (uintptr_t)p ^ (TIDE_HARDEN ? tide_link_secret : 0));
}
#define link_reveal(slot, p) link_protect((slot), (p))

void bin_init(struct arena *a);
/* Take p out of whatever doubly linked bin holds it, checking the links. */
void bin_unlink(struct arena *a, struct chunk *p);
/* Put p at the front of the unsorted bin. */
void bin_insert_unsorted(struct arena *a, struct chunk *p, size_t size);
/* Put p in its small or large bin (sorted), and mark the binmap. */
void bin_insert_sorted(struct arena *a, struct chunk *p, size_t size);
/* Best fit in large bin i for chunk size nb: unlinked, or NULL. */
struct chunk *bin_take_best_fit(struct arena *a, int i, size_t nb);

#endif
