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
 * chunks from anything else carrying an M bit.
 */
#ifndef TIDE_MMAPPED_H
#define TIDE_MMAPPED_H

#include "chunk.h"

struct chunk *mmapped_alloc(size_t nb);
void mmapped_free(struct chunk *p);
/* Resize in place or by moving (mremap); NULL when the OS refuses. */
struct chunk *mmapped_resize(struct chunk *p, size_t nb);
/* memalign moved a fresh mmapped chunk forward: keep the registry right. */
void mmapped_rekey(struct chunk *old, struct chunk *moved);
bool mmapped_known(struct chunk *p);
bool mmapped_can_map(void);

struct mmapped_totals {
  size_t count, max_count, bytes, max_bytes;
};
struct mmapped_totals mmapped_totals(void);
size_t mmapped_totals_unlocked_bytes(void); /* racy, for sampling */
void mmapped_prefork(void);
void mmapped_postfork_parent(void);
void mmapped_postfork_child(void);

#endif
