/* SPDX-License-Identifier: MIT */
/*
 * Heaps: 64 MiB-aligned mmap reservations that back non-main arenas (and
 * the main arena once brk cannot grow).
 *
 *   heap (aligned to HEAP_MAX_SIZE)
 *   +-----------+----------------+-------- ... -----+----------------+
 *   | heap_info | [struct arena] | chunks ...  top  | reserved, no   |
 *   |           |  first heap of |                  | access yet     |
 *   |           |  a non-main    |                  |                |
 *   |           |  arena only    |                  |                |
 *   +-----------+----------------+-------- ... -----+----------------+
 *   ^ heap_of(any chunk inside)          ^ start + size (committed end)
 *
 * A heap that will not grow again (the arena moved on to a newer heap)
 * ends in two 16-byte fence chunks marked in use; `fence` points to the
 * first.  Every live heap is registered in a bitmap, so a pointer can be
 * checked for "is this one of our heaps" without touching its memory.
 */
#ifndef TIDE_HEAP_H
#define TIDE_HEAP_H

#include "chunk.h"

struct heap_info {
  struct arena *arena;    /* owner */
  struct heap_info *prev; /* older heap of the same arena, or NULL */
  size_t size;            /* committed bytes from the heap's start */
  struct chunk *fence;    /* first fence chunk once closed, else NULL */
};

static inline struct heap_info *heap_of(const void *p) {
  return (struct heap_info *)((uintptr_t)p & ~(uintptr_t)(HEAP_MAX_SIZE - 1));
}
static inline char *heap_end(const struct heap_info *h) { return (char *)h + h->size; }
/* Where a heap that starts an arena keeps the arena (cache-line aligned,
 * after the heap_info). */
#define HEAP_ARENA_OFFSET ((sizeof(struct heap_info) + 63) & ~(size_t)63)
static inline struct arena *heap_arena_slot(struct heap_info *h) { return (struct arena *)((char *)h + HEAP_ARENA_OFFSET); }

/* A fresh heap with at least `size` committed bytes (size includes the
 * heap_info), or NULL. */
struct heap_info *heap_new(size_t size, struct arena *owner);
/* Commit diff more bytes; false when the heap is full or the OS says no. */
bool heap_grow(struct heap_info *h, size_t diff);
/* Give back the committed pages above new_size (page multiple). */
void heap_shrink(struct heap_info *h, size_t new_size);
void heap_delete(struct heap_info *h);
/* Is p inside a live heap?  One bit per possible heap in a 47-bit
 * address space; no memory but this static bitmap is read. */
#define HEAP_SLOTS (((uintptr_t)1 << 47) / HEAP_MAX_SIZE)
extern TIDE_HIDDEN uint64_t heap_bits[HEAP_SLOTS / 64];
static inline bool heap_registered(const void *p) {
  uintptr_t slot = (uintptr_t)p / HEAP_MAX_SIZE;
  if (slot >= HEAP_SLOTS)
    return false;
  return (__atomic_load_n(&heap_bits[slot / 64], __ATOMIC_ACQUIRE) >> (slot & 63)) & 1;
}
/* Where the first chunk of h starts. */
struct chunk *heap_first_chunk(struct heap_info *h);

#endif
