/* SPDX-License-Identifier: MIT */
/*
 * Non-main heaps: reserve, grow, shrink, release (see src/heap.h).
 */
#include "heap.h"

#include "os.h"

uint64_t heap_bits[HEAP_SLOTS / 64];

static void registry_set(struct heap_info *h, bool on) {
  uintptr_t slot = (uintptr_t)h / HEAP_MAX_SIZE;
  if (slot >= HEAP_SLOTS)
    return;
  uint64_t bit = (uint64_t)1 << (slot & 63);
  if (on)
    __atomic_fetch_or(&heap_bits[slot / 64], bit, __ATOMIC_RELEASE);
  else
    __atomic_fetch_and(&heap_bits[slot / 64], ~bit, __ATOMIC_RELEASE);
}

/* With huge pages on, commit whole huge pages: the kernel maps one only
 * where all of its 2 MiB is accessible. */
static size_t huge_up(size_t size) {
  if (!opt.huge_pages)
    return size;
  size_t up = (size + OS_HUGE_PAGE - 1) & ~(OS_HUGE_PAGE - 1);
  return up < HEAP_MAX_SIZE ? up : HEAP_MAX_SIZE;
}

struct heap_info *heap_new(size_t size, struct arena *owner) {
  size = os_page_up(size);
  if (size > HEAP_MAX_SIZE)
    return NULL;
  char *base = os_reserve(HEAP_MAX_SIZE, HEAP_MAX_SIZE);
  if (!base)
    return NULL;
  os_advise_huge(base, HEAP_MAX_SIZE);
  size = huge_up(size);
  if (!os_commit(base, size)) {
    os_unmap(base, HEAP_MAX_SIZE);
    return NULL;
  }
  struct heap_info *h = (struct heap_info *)base;
  h->arena = owner;
  h->prev = NULL;
  h->size = size;
  h->fence = NULL;
  registry_set(h, true);
  return h;
}

bool heap_grow(struct heap_info *h, size_t diff) {
  size_t new_size = os_page_up(h->size + diff);
  if (new_size > HEAP_MAX_SIZE || new_size < h->size)
    return false;
  new_size = huge_up(new_size);
  if (!os_commit((char *)h + h->size, new_size - h->size))
    return false;
  /* A shrink mapped the range afresh (os_decommit), without the advice. */
  os_advise_huge((char *)h + h->size, new_size - h->size);
  h->size = new_size;
  return true;
}

void heap_shrink(struct heap_info *h, size_t new_size) {
  if (new_size >= h->size)
    return;
  os_decommit((char *)h + new_size, h->size - new_size);
  h->size = new_size;
}

void heap_delete(struct heap_info *h) {
  registry_set(h, false);
  os_unmap(h, HEAP_MAX_SIZE);
}

struct chunk *heap_first_chunk(struct heap_info *h) {
  uintptr_t p = (uintptr_t)(h + 1);
  if (h->arena == heap_arena_slot(h))
    p = (uintptr_t)(h->arena + 1);
  return (struct chunk *)((p + CHUNK_ALIGN_MASK) & ~(uintptr_t)CHUNK_ALIGN_MASK);
}
