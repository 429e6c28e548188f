/*
 * Returning memory: the top of the break, the top of a heap, whole empty
 * heaps, and (malloc_trim) free pages inside free chunks.
 */
#include "purge.h"

#include "arena.h"
#include "arenas.h"
#include "heap.h"
#include "os.h"

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

/* Free pages strictly inside the free chunks of one arena's bins. */
static size_t purge_free_chunks(struct arena *a) {
  size_t released = 0;
  for (int i = UNSORTED_BIN; i <= LAST_BIN; i++) {
    struct chunk *b = bin_at(a, i);
    for (struct chunk *c = b->fd; c != b; c = c->fd) {
      uintptr_t lo = ((uintptr_t)c + sizeof(struct chunk) + os_page - 1) & ~(uintptr_t)(os_page - 1);
      uintptr_t hi = os_page_down((uintptr_t)c + chunk_size(c));
      if (hi > lo) {
        os_purge((void *)lo, hi - lo);
        released += hi - lo;
      }
    }
  }
  a->count.purged_bytes += released;
  return released;
}

bool purge_trim_all(size_t pad) {
  bool released = false;
  for (struct arena *a = arenas_first(); a; a = a->next) {
    pthread_mutex_lock(&a->lock);
    arena_consolidate(a);
    if (purge_trim_top(a, pad))
      released = true;
    if (purge_free_chunks(a))
      released = true;
    pthread_mutex_unlock(&a->lock);
  }
  return released;
}
