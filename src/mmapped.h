/* SPDX-License-Identifier: MIT */
/*
 * Direct-mmap chunks: one mapping per request at or above the mmap
 * threshold.
 *
 *   mapping start                                     mapping end
 *   |<- prev_size ->|chunk: [prev_size][size|M] mem ...          |
 *
 * prev_size holds the distance from the mapping's start to the chunk (0
 * unless memalign moved the chunk), size runs to the mapping's end, and
 * every live chunk is in a registry, so free() can tell our mmapped
 * chunks from anything else carrying an M bit.  Under the defaults a few
 * freed mappings are kept for the decay time, so a large block that comes
 * and goes does not fault its pages in afresh each time; with no
 * background thread, only as many as the dirty cap allows (purge.c).
 */
#ifndef TIDE_MMAPPED_H
#define TIDE_MMAPPED_H

#include "chunk.h"

/* A chunk of at least nb bytes in a mapping of its own.  may_reuse: a kept
 * mapping (resident, not zero) will do; otherwise the memory is fresh. */
struct chunk *mmapped_alloc(size_t nb, bool may_reuse);
void mmapped_free(struct chunk *p);
/* Resize in place or by moving (mremap); NULL when the OS refuses. */
struct chunk *mmapped_resize(struct chunk *p, size_t nb);
/* memalign moved a fresh mmapped chunk forward: keep the registry right. */
void mmapped_rekey(struct chunk *old, struct chunk *moved);
bool mmapped_known(struct chunk *p);
/* Freed mappings kept for reuse (see src/mmapped.c): unmap those older
 * than the decay (all with everything); returns the bytes still kept. */
size_t mmapped_cache_expire(bool everything);
/* No background thread: unmap the oldest kept mappings until what is
 * kept fits the cap (purge_unthreaded_cap, as raised by reuse). */
void mmapped_cache_fit_unthreaded(void);
/* malloc_trim: unmap every kept mapping; returns the bytes released. */
size_t mmapped_cache_release_all(void);
bool mmapped_can_map(void);

struct mmapped_totals {
  size_t count, max_count, bytes, max_bytes;
  size_t cached_bytes; /* freed mappings kept for reuse */
};
struct mmapped_totals mmapped_totals(void);
size_t mmapped_totals_unlocked_bytes(void); /* racy, for sampling */
/* The heap dump: "key": [{"addr", "size", "mapping_bytes"}...], at most max. */
struct out;
void mmapped_json_list(struct out *o, const char *key, size_t max);
void mmapped_prefork(void);
void mmapped_postfork_parent(void);
void mmapped_postfork_child(void);

#endif
