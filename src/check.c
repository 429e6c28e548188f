/* SPDX-License-Identifier: MIT */
/*
 * The error report that never allocates (through src/out.h), and the heap checker: one
 * check_* function per structure, each verifying the invariants stated
 * where the structure is declared.  The debug flavour (TIDE_DEBUG=1) runs
 * check_arena from inside the allocator every so many operations.
 */
#include "arena.h"
#include "arenas.h"
#include "heap.h"
#include "mmapped.h"
#include "os.h"
#include "purge.h"
#include "run.h"
#include "out.h"

#include <stdlib.h>
#include <unistd.h>

__attribute__((noreturn)) void tide_fatal(const char *func, const char *what) {
  os_nocancel_begin(); /* the report is written in full, then we abort */
  struct out o = {.fd = 2};
  out_str(&o, "tidemalloc: ");
  out_str(&o, func ? func : "malloc");
  out_str(&o, "(): ");
  out_str(&o, what);
  out_str(&o, "\n");
  out_flush(&o);
  abort();
}

/* ------------------------------------------------------------- checker */

#define REQUIRE(cond, what)                 \
  do {                                      \
    if (unlikely(!(cond)))                  \
      tide_fatal("heap_check", what);       \
  } while (0)

struct totals {
  size_t free_chunks, free_bytes, inuse_bytes, fast_chunks, fast_bytes, system;
};

/* Walk the chunks of one region from first to end (its fence, or the end
 * of the top chunk when it holds top). */
static void check_region(struct arena *a, char *first, char *end, struct chunk *fence, size_t abit,
                         struct totals *t) {
  struct chunk *c = (struct chunk *)first;
  bool prev_free = false;
  while ((char *)c < end) {
    REQUIRE(aligned_ok(c), "chunk misaligned");
    REQUIRE((c->size & IN_HEAP) == abit, "A bit disagrees with the chunk's region");
    REQUIRE(!chunk_is_mmapped(c), "M bit set on an arena chunk");
    REQUIRE(prev_inuse(c) == !prev_free, "P bit disagrees with the previous chunk");
    size_t size = chunk_size(c);
    if (c == a->top) {
      REQUIRE(!fence, "top chunk in a closed region");
      REQUIRE((char *)c + size == end, "top is not the last chunk of its region");
      REQUIRE(size >= MINSIZE || size == 0, "top chunk too small");
      return;
    }
    REQUIRE(size >= MINSIZE, "chunk smaller than the minimum");
    REQUIRE(size <= (size_t)(end - (char *)c), "chunk runs past the end of its region");
    struct chunk *next = chunk_at(c, size);
    bool is_free = !prev_inuse(next);
    if (is_free) {
      REQUIRE(!prev_free, "two free chunks are adjacent");
      REQUIRE(next->prev_size == size, "free chunk's foot disagrees with its size");
      t->free_chunks++;
      t->free_bytes += size;
    } else {
      t->inuse_bytes += size;
    }
    prev_free = is_free;
    c = next;
  }
  REQUIRE((char *)c == end, "chunks do not end at their region's end");
  if (fence) {
    REQUIRE(prev_inuse(fence) == !prev_free, "P bit of the fence disagrees");
    struct chunk *f2 = chunk_at(fence, chunk_size(fence));
    REQUIRE(chunk_size(f2) == FENCE_SIZE && prev_inuse(f2), "broken fence");
  } else {
    REQUIRE(false, "open region without the top chunk");
  }
}

static void check_regions(struct arena *a, struct totals *t) {
  for (int i = 0; i < a->nsegs; i++) {
    struct brk_segment *s = &a->seg[i];
    bool holds_top = a->top && !chunk_in_heap(a->top) && (char *)a->top >= s->start && (char *)a->top < s->end;
    REQUIRE(holds_top == (s->fence == NULL), "brk segment open without top, or closed with it");
    check_region(a, s->start, s->fence ? (char *)s->fence : s->end, s->fence, 0, t);
    t->system += (size_t)(s->end - s->start);
  }
  for (struct heap_info *h = a->heap; h; h = h->prev) {
    REQUIRE(heap_registered(h), "heap missing from the registry");
    REQUIRE(h->arena == a, "heap names another arena");
    REQUIRE((h == a->heap && a->top && chunk_in_heap(a->top)) == (h->fence == NULL),
            "heap open without top, or closed with it");
    check_region(a, (char *)heap_first_chunk(h), h->fence ? (char *)h->fence : heap_end(h), h->fence, IN_HEAP, t);
    t->system += h->size;
  }
}

static void check_bins(struct arena *a, struct totals *t) {
  size_t chunks = 0, bytes = 0;
  for (int i = UNSORTED_BIN; i <= LAST_BIN; i++) {
    struct chunk *b = bin_at(a, i);
    size_t lo = MINSIZE, hi = SIZE_MAX;
    if (i != UNSORTED_BIN)
      bin_range(i, &lo, &hi);
    if (b->fd != b)
      REQUIRE(binmap_get(a, i) || i == UNSORTED_BIN, "binmap bit clear for a non-empty bin");
    struct chunk *prev = b;
    for (struct chunk *c = b->fd; c != b; prev = c, c = c->fd) {
      /* Never follow a link out of the arena. */
      REQUIRE(aligned_ok(c) && arena_holds(a, c), "bin link points outside the arena");
      REQUIRE(c->fd == b || (aligned_ok(c->fd) && arena_holds(a, c->fd)), "bin link points outside the arena");
      size_t size = chunk_size(c);
      REQUIRE(c->bk == prev && c->fd->bk == c, "bin links broken");
      REQUIRE(!chunk_inuse(c), "chunk in a bin is marked in use");
      REQUIRE(size >= lo && size <= hi, "chunk in the wrong bin for its size");
      REQUIRE(arena_owns(a, c, size), "chunk in a bin lies outside its arena");
      REQUIRE(purge_state_ok(c), "free chunk neither dirty nor purged");
      if (i >= FIRST_LARGE_BIN) {
        bool first_of_size = prev == b || chunk_size(prev) != size;
        REQUIRE(prev == b || chunk_size(prev) >= size, "large bin not sorted");
        REQUIRE(first_of_size == (c->fd_nextsize != NULL), "nextsize link on the wrong chunk");
        if (first_of_size) {
          REQUIRE(arena_holds(a, c->fd_nextsize) && arena_holds(a, c->bk_nextsize), "nextsize link outside the arena");
          REQUIRE(c->fd_nextsize->bk_nextsize == c && c->bk_nextsize->fd_nextsize == c, "nextsize ring broken");
        }
      } else if (i == UNSORTED_BIN && !in_smallbin_range(size)) {
        REQUIRE(c->fd_nextsize == NULL, "nextsize link on an unsorted chunk");
      }
      chunks++;
      bytes += size;
      REQUIRE(chunks <= t->free_chunks, "more chunks in bins than free chunks in the heap");
    }
  }
  REQUIRE(chunks == t->free_chunks && bytes == t->free_bytes, "free chunks in bins and in the heap differ");

  for (int i = 0; i < NFASTBINS; i++) {
    for (struct chunk *c = a->fastbins[i]; c; c = link_reveal(&c->fd, c->fd)) {
      REQUIRE(aligned_ok(c), "fast bin chunk misaligned");
      REQUIRE(arena_holds(a, c), "fast bin link points outside the arena");
      REQUIRE(fastbin_index(chunk_size(c)) == i, "fast bin chunk of the wrong size");
      REQUIRE(chunk_inuse(c), "fast bin chunk not marked in use");
      REQUIRE(arena_owns(a, c, chunk_size(c)), "fast bin chunk outside its arena");
      t->fast_chunks++;
      t->fast_bytes += chunk_size(c);
      REQUIRE(t->fast_bytes <= t->inuse_bytes, "fast bin loops");
    }
  }
}

/* The dirty list: free chunks of the arena, oldest first, adding up. */
static void check_dirty(struct arena *a) {
  size_t bytes = 0;
  struct chunk *prev = NULL;
  for (struct chunk *c = a->dirty_head; c; prev = c, c = *(struct chunk **)(c + 1)) {
    REQUIRE(aligned_ok(c) && arena_holds(a, c), "dirty list points outside the arena");
    REQUIRE(!chunk_inuse(c) && c != a->top, "dirty chunk is not free");
    REQUIRE(purge_is_dirty(c), "chunk on the dirty list is not marked dirty");
    REQUIRE(*((struct chunk **)(c + 1) + 1) == prev, "dirty list links broken");
    bytes += chunk_size(c);
    REQUIRE(bytes <= a->system_mem, "dirty list loops");
  }
  REQUIRE(prev == a->dirty_tail, "dirty list tail wrong");
  REQUIRE(bytes == a->dirty_bytes, "dirty byte count disagrees with the list");
}

void check_arena(struct arena *a) {
  struct totals t = {0};
  check_regions(a, &t);
  check_bins(a, &t);
  check_dirty(a);
  check_runs(a);
  REQUIRE(!a->top || !prev_inuse(a->top) == false, "top's P bit clear");
  REQUIRE(t.system == a->system_mem, "system_mem disagrees with the regions");
  REQUIRE(t.inuse_bytes - t.fast_bytes == a->count.in_use_bytes, "in-use counter disagrees with the heap");
  REQUIRE(t.fast_bytes == a->fast_bytes, "fast-bin byte count disagrees with the fast bins");
}

TIDE_EXPORT int tide_heap_check(void) {
  tide_ensure_init();
  for (struct arena *a = arenas_first(); a; a = a->next) {
    lock_acquire(&a->lock);
    check_arena(a);
    lock_release(&a->lock);
  }
  return 0;
}
