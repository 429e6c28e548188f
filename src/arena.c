/* SPDX-License-Identifier: MIT */
/*
 * One arena's malloc and free flows: fast bins, small bins, the unsorted
 * sweep, best fit in large bins, the binmap scan, the top chunk, growth;
 * free with coalescing; consolidation; in-place resize; memalign.
 * Every function is called with the arena's lock held.
 */
#include "arena.h"

#include "heap.h"
#include "mmapped.h"
#include "os.h"
#include "purge.h"
#include "run.h"
#include "stats.h"
#include "tcache.h"

void arena_init(struct arena *a) {
  bin_init(a);
  a->top = NULL;
  a->top_dirty_end = NULL;
  a->last_remainder = NULL;
  a->have_fastchunks = false;
}

/* ---------------------------------------------------------------- regions */

static struct brk_segment *brk_segment_of(struct arena *a, const void *p) {
  for (int i = a->nsegs - 1; i >= 0; i--)
    if ((const char *)p >= a->seg[i].start && (const char *)p < a->seg[i].end)
      return &a->seg[i];
  return NULL;
}

void arena_region_bounds(struct arena *a, struct chunk *p, char **first, char **end) {
  if (chunk_in_heap(p)) {
    struct heap_info *h = heap_of(p);
    *first = (char *)heap_first_chunk(h);
    *end = h->fence ? (char *)h->fence : heap_end(h);
    return;
  }
  struct brk_segment *s = brk_segment_of(a, p);
  if (!s) {
    *first = *end = NULL;
    return;
  }
  *first = s->start;
  *end = s->fence ? (char *)s->fence : s->end;
}

bool arena_holds(struct arena *a, const void *addr) {
  if (heap_registered(addr)) {
    struct heap_info *h = heap_of(addr);
    return h->arena == a && (const char *)addr < heap_end(h);
  }
  return a->is_main && brk_segment_of(a, addr) != NULL;
}

bool arena_owns(struct arena *a, struct chunk *p, size_t size) {
  char *first, *end;
  if (chunk_in_heap(p)) {
    struct heap_info *h = heap_of(p);
    if (h->arena != a)
      return false;
    first = (char *)heap_first_chunk(h);
    end = h->fence ? (char *)h->fence : heap_end(h);
  } else {
    /* Nearly always the newest brk segment. */
    struct brk_segment *s = a->nsegs ? &a->seg[a->nsegs - 1] : NULL;
    if (!s || (char *)p < s->start || (char *)p >= s->end)
      s = brk_segment_of(a, p);
    if (!s)
      return false;
    first = s->start;
    end = s->fence ? (char *)s->fence : s->end;
  }
  return (char *)p >= first && (char *)p < end && size <= (size_t)(end - (char *)p);
}

/* -------------------------------------------------------------- coalesce */

/*
 * Make p (size bytes, currently marked in use) free: merge it with free
 * neighbours and the top, then put it in the unsorted bin.  Returns the
 * size of the free chunk that results.
 */
static size_t free_coalesce(struct arena *a, struct chunk *p, size_t size) {
  size_t abit = p->size & IN_HEAP;
  struct chunk *next = chunk_at(p, size);
  size_t nsize = chunk_size(next);
  /* The freed bytes are dirty; merged neighbours bring what they had. */
  struct purge_range dirty = {(uintptr_t)p, (uintptr_t)next};

  if (!prev_inuse(p)) {
    size_t psize = p->prev_size;
    struct chunk *prev = (struct chunk *)((char *)p - psize);
    if (unlikely(chunk_size(prev) != psize))
      tide_fatal(tide_current_fn, "corrupted size vs. prev_size while consolidating");
    dirty = purge_range_hull(dirty, purge_range_of(prev, psize));
    bin_unlink(a, prev);
    p = prev;
    size += psize;
  }
  if (next == a->top) {
    size += nsize;
    chunk_set_head(p, size | PREV_INUSE | abit);
    a->top = p;
    if (a->top_dirty_end < (char *)next + CHUNK_HDR)
      a->top_dirty_end = (char *)next + CHUNK_HDR;
    return size;
  }
  if (!prev_inuse(chunk_at(next, nsize))) {
    dirty = purge_range_hull(dirty, purge_range_of(next, nsize));
    bin_unlink(a, next);
    size += nsize;
  } else {
    next->size &= ~PREV_INUSE;
  }
  chunk_set_head(p, size | PREV_INUSE | abit);
  chunk_set_foot(p, size);
  bin_insert_unsorted(a, p, size);
  purge_narrow(a, p, size, dirty);
  return size;
}

/* The first chunk of fast bin i, taken off it, or NULL.  A link that was
 * written over (no secret: misaligned; or pointing outside the arena)
 * and a size that is not the bin's are caught before the chunk is used. */
static struct chunk *fastbin_pop(struct arena *a, int i, const char *fn) {
  struct chunk *v = a->fastbins[i];
  if (!v)
    return NULL;
  if (unlikely(!aligned_ok(v)))
    tide_fatal(fn, "unaligned fastbin chunk detected");
  if (unlikely(!arena_holds(a, v)))
    tide_fatal(fn, "fastbin chunk outside its arena (a link was overwritten)");
  if (unlikely(fastbin_index(chunk_size(v)) != i))
    tide_fatal(fn, "memory corruption (fast)");
  a->fastbins[i] = link_reveal(&v->fd, v->fd);
  a->fast_bytes -= (size_t)(i + 2) * CHUNK_ALIGN;
  v->bk = NULL; /* no stale double-free key */
  return v;
}

bool arena_consolidate_some(struct arena *a, size_t budget) {
  for (int i = 0; i < NFASTBINS; i++) {
    while (a->fastbins[i] != NULL) {
      if (budget-- == 0)
        return false;
      struct chunk *p = fastbin_pop(a, i, "malloc_consolidate");
      free_coalesce(a, p, chunk_size(p));
    }
  }
  a->have_fastchunks = false;
  return true;
}

void arena_consolidate(struct arena *a) { arena_consolidate_some(a, SIZE_MAX); }

/* ------------------------------------------------------------ splitting */

/* v (unlinked, free) has at least nb bytes: hand out nb of them. */
static struct chunk *take_chunk(struct arena *a, struct chunk *v, size_t nb, bool remember_remainder) {
  size_t size = chunk_size(v), abit = v->size & IN_HEAP;
  if (size - nb >= MINSIZE) {
    struct purge_range dirty = purge_range_of(v, size);
    struct chunk *rem = chunk_at(v, nb);
    chunk_set_head(v, nb | PREV_INUSE | abit);
    chunk_set_head(rem, (size - nb) | PREV_INUSE | abit);
    chunk_set_foot(rem, size - nb);
    bin_insert_unsorted(a, rem, size - nb);
    purge_narrow(a, rem, size - nb, dirty);
    if (remember_remainder)
      a->last_remainder = rem;
  } else {
    chunk_set_inuse(v);
  }
  return v;
}

/* Top must end where its region ends, with only its own flags: a size
 * written over (set to -1, say, to make malloc reach any address: the
 * "house of force") is caught before top is carved. */
static void check_top(struct arena *a) {
  struct chunk *t = a->top;
  size_t sf = t->size, size = sf & ~CHUNK_FLAGS;
  char *end;
  if (heap_registered(t)) {
    end = heap_end(heap_of(t));
    sf ^= IN_HEAP;
  } else {
    struct brk_segment *s = a->nsegs ? &a->seg[a->nsegs - 1] : NULL;
    if (!s || (char *)t < s->start || (char *)t >= s->end)
      s = brk_segment_of(a, t);
    end = s ? s->end : NULL;
  }
  if (unlikely((sf & (IS_MMAPPED | IN_HEAP | IN_RUN | PREV_INUSE)) != PREV_INUSE || !end ||
               size > (size_t)(end - (char *)t) || (char *)t + size != end))
    tide_fatal(tide_current_fn, "corrupted top size");
}

static struct chunk *take_from_top(struct arena *a, size_t nb, char **clean_from) {
  check_top(a);
  struct chunk *v = a->top;
  size_t size = chunk_size(v), abit = v->size & IN_HEAP;
  struct chunk *rem = chunk_at(v, nb);
  chunk_set_head(v, nb | PREV_INUSE | abit);
  chunk_set_head(rem, (size - nb) | PREV_INUSE | abit);
  a->top = rem;
  char *clean = a->top_dirty_end > (char *)chunk2mem(v) ? a->top_dirty_end : (char *)chunk2mem(v);
  if (clean_from)
    *clean_from = clean;
  if (TIDE_DEBUG)
    for (char *z = clean; z < (char *)rem + SIZE_SZ; z++)
      TIDE_ASSERT(*z == 0);
  if (a->top_dirty_end < (char *)rem + CHUNK_HDR)
    a->top_dirty_end = (char *)rem + CHUNK_HDR;
  return v;
}

/* ---------------------------------------------------------------- growth */

/* Close the region that ends with top chunk t: two in-use fence chunks
 * at its end, the rest of t freed into the bins. */
static void close_top(struct arena *a, struct chunk *t) {
  size_t tsz = chunk_size(t), abit = t->size & IN_HEAP;
  char *end = (char *)t + tsz;
  struct chunk *f2 = (struct chunk *)(end - FENCE_SIZE);
  struct chunk *f1 = tsz >= MINSIZE + 2 * FENCE_SIZE ? (struct chunk *)(end - 2 * FENCE_SIZE) : t;
  chunk_set_head(f2, FENCE_SIZE | PREV_INUSE | abit);
  chunk_set_head(f1, (size_t)((char *)f2 - (char *)f1) | PREV_INUSE | abit);
  if (abit) {
    heap_of(t)->fence = f1;
  } else {
    struct brk_segment *s = brk_segment_of(a, t);
    if (s)
      s->fence = f1;
  }
  if (f1 != t) {
    chunk_set_head(t, (size_t)((char *)f1 - (char *)t) | PREV_INUSE | abit);
    free_coalesce(a, t, chunk_size(t));
  }
}

static void note_system_mem(struct arena *a, size_t added) {
  a->system_mem += added;
  if (a->system_mem > a->max_system_mem)
    a->max_system_mem = a->system_mem;
  stats_note_growth();
}

/* Main arena: extend the break.  True when top now has nb + MINSIZE. */
static bool grow_brk(struct arena *a, size_t nb) {
  struct chunk *top = a->top;
  bool top_in_brk = top && !chunk_in_heap(top);
  size_t tsz = top_in_brk ? chunk_size(top) : 0;
  char *top_end = top_in_brk ? (char *)top + tsz : NULL;
  size_t want = nb + opt.top_pad + MINSIZE;
  if (want < nb)
    return false;
  char *cur = os_sbrk(0);
  if (!cur)
    return false;
  TIDE_TEST_POINT("grow_brk: break read");
  /* The first segment starts at a run boundary (RUN_SIZE), so that the
   * own range of main-arena threads, which starts there, holds whole
   * runs: free's fast path reads the header of the run a block claims to
   * be in (the padding before it is never touched).  Later segments need
   * not be: the range starts at brk_lo. */
  size_t align = a->brk_lo ? CHUNK_ALIGN : RUN_SIZE;
  /* The padding up to that boundary is address space, not part of top:
   * top gets what was asked for, as glibc's does (a fresh process's
   * first top is not 64 KiB bigger by the luck of where the break lies). */
  uintptr_t first = ((uintptr_t)cur + align - 1) & ~(uintptr_t)(align - 1);
  size_t size = (top_in_brk && cur == top_end)
                    ? os_page_up(want - tsz)
                    : os_page_up(first + want + 2 * FENCE_SIZE) - (uintptr_t)cur;
  if (opt.huge_pages) /* end the break on a huge-page boundary */
    size += ((OS_HUGE_PAGE - ((uintptr_t)cur + size) % OS_HUGE_PAGE) % OS_HUGE_PAGE);
  if (size > PTRDIFF_MAX || size < want - tsz)
    return false;
  char *old = os_sbrk((intptr_t)size);
  if (!old)
    return false;
  os_advise_huge(old, size);

  if (top_in_brk && old == top_end) {
    chunk_set_head(top, (tsz + size) | PREV_INUSE);
    a->seg[a->nsegs - 1].end = old + size;
    note_system_mem(a, size);
  } else {
    /* Not contiguous with our top (first call, or someone else moved the
     * break): a new segment.  If someone moved it between our two calls,
     * the padding to the boundary may be more than was reckoned (up to
     * 64 KiB) or the growth was reckoned for our top: the rest is asked
     * for right after it (a break moved again meanwhile ends that). */
    char *start = (char *)(((uintptr_t)old + align - 1) & ~(uintptr_t)(align - 1));
    size_t need = (size_t)(start - old) + want + 2 * FENCE_SIZE;
    if (size < need && need - size <= PTRDIFF_MAX / 2) {
      size_t more = os_page_up(need - size);
      char *got = os_sbrk((intptr_t)more);
      if (got == old + size)
        size += more;
      else if (got && os_sbrk(0) == got + more)
        os_sbrk(-(intptr_t)more);
    }
    size_t usable = start < old + size ? (size_t)(old + size - start) & ~CHUNK_ALIGN_MASK : 0;
    if (a->nsegs == MAX_BRK_SEGMENTS || usable < nb + MINSIZE) {
      if (os_sbrk(0) == old + size)
        os_sbrk(-(intptr_t)size);
      return false;
    }
    a->seg[a->nsegs++] = (struct brk_segment){start, start + usable, NULL};
    if (!a->brk_lo)
      a->brk_lo = start;
    struct chunk *nt = (struct chunk *)start;
    chunk_set_head(nt, usable | PREV_INUSE);
    a->top = nt;
    a->top_dirty_end = start + CHUNK_HDR;
    note_system_mem(a, usable);
    if (top)
      close_top(a, top);
  }
  char *hi = a->seg[a->nsegs - 1].end;
  if (hi > a->brk_hi)
    a->brk_hi = hi;
  return true;
}

/* Heap-backed arenas: grow the current heap, else start a new one. */
static bool grow_heaps(struct arena *a, size_t nb) {
  struct chunk *top = a->top;
  if (top && chunk_in_heap(top)) {
    struct heap_info *h = heap_of(top);
    size_t tsz = chunk_size(top), old = h->size;
    size_t want = nb + MINSIZE + opt.top_pad;
    if (heap_grow(h, want - tsz) || heap_grow(h, nb + MINSIZE - tsz)) {
      chunk_set_head(top, (tsz + h->size - old) | PREV_INUSE | IN_HEAP);
      note_system_mem(a, h->size - old);
      return true;
    }
  }
  size_t hdr = sizeof(struct heap_info);
  struct heap_info *h = heap_new(hdr + nb + MINSIZE + opt.top_pad, a);
  if (!h)
    h = heap_new(hdr + nb + MINSIZE, a);
  if (!h)
    return false;
  h->prev = a->heap;
  a->heap = h;
  struct chunk *nt = heap_first_chunk(h);
  chunk_set_head(nt, (size_t)(heap_end(h) - (char *)nt) | PREV_INUSE | IN_HEAP);
  a->top = nt;
  a->top_dirty_end = (char *)nt + CHUNK_HDR;
  note_system_mem(a, h->size);
  if (top)
    close_top(a, top);
  return true;
}

/* Make top hold nb + MINSIZE bytes: the break (main arena) while it
 * grows, else heaps. */
static bool grow_top(struct arena *a, size_t nb) {
  bool grew = false;
  if (a->is_main && !a->brk_failed) {
    grew = grow_brk(a, nb);
    if (!grew)
      a->brk_failed = true;
  }
  grew = grew || grow_heaps(a, nb);
  if (grew)
    purge_note_top_growth(a);
  return grew;
}

/* want_zero: calloc, which a fresh mapping serves without clearing. */
static struct chunk *grow_and_take(struct arena *a, size_t nb, char **clean_from, bool want_zero) {
  bool mmap_ok = mmapped_can_map();
  if (nb >= opt.mmap_threshold && mmap_ok) {
    struct chunk *c = mmapped_alloc(nb, !want_zero);
    if (c)
      return c;
  }
  if (grow_top(a, nb)) {
    TIDE_ASSERT(chunk_size(a->top) >= nb + MINSIZE);
    return take_from_top(a, nb, clean_from);
  }
  /* Last resort, as glibc: a mapping of its own even below the threshold. */
  if (nb < opt.mmap_threshold && mmap_ok)
    return mmapped_alloc(nb, !want_zero);
  return NULL;
}

/* ---------------------------------------------------------------- malloc */

/* The unsorted sweep: exact fits are returned, the rest sorted into bins. */
static struct chunk *sweep_unsorted(struct arena *a, size_t nb) {
  struct chunk *u = bin_at(a, UNSORTED_BIN);
  struct chunk *v;
  int swept = 0;
  while ((v = u->bk) != u) {
    struct chunk *bck = v->bk;
    size_t size = chunk_size(v);
    struct chunk *next = chunk_at(v, size);
    if (unlikely(size < MINSIZE || size > a->system_mem))
      tide_fatal(tide_current_fn, "invalid size (unsorted)");
    if (unlikely(chunk_size(next) < CHUNK_HDR || chunk_size(next) > a->system_mem))
      tide_fatal(tide_current_fn, "invalid next size (unsorted)");
    if (unlikely(next->prev_size != size))
      tide_fatal(tide_current_fn, "mismatching next->prev_size (unsorted)");
    if (unlikely(bck->fd != v || v->fd != u))
      tide_fatal(tide_current_fn, "unsorted double linked list corrupted");
    if (unlikely(prev_inuse(next)))
      tide_fatal(tide_current_fn, "invalid next->prev_inuse (unsorted)");

    /* A run of small requests keeps cutting the last remainder, so they
     * sit next to each other. */
    if (in_smallbin_range(nb) && bck == u && v == a->last_remainder && size > nb + MINSIZE) {
      size_t abit = v->size & IN_HEAP, rsize = size - nb;
      /* v's dirty-list link overlaps rem's header: read it first. */
      struct purge_range dirty = purge_range_of(v, size);
      purge_untrack(a, v, size);
      struct chunk *rem = chunk_at(v, nb);
      u->fd = u->bk = rem;
      rem->fd = rem->bk = u;
      if (!in_smallbin_range(rsize))
        rem->fd_nextsize = rem->bk_nextsize = NULL;
      chunk_set_head(v, nb | PREV_INUSE | abit);
      chunk_set_head(rem, rsize | PREV_INUSE | abit);
      chunk_set_foot(rem, rsize);
      purge_track(a, rem, rsize);
      purge_narrow(a, rem, rsize, dirty);
      a->last_remainder = rem;
      return v;
    }
    u->bk = bck;
    bck->fd = u;
    if (size == nb) {
      purge_untrack(a, v, size);
      chunk_set_inuse(v);
      return v;
    }
    bin_insert_sorted(a, v, size);
    if (++swept >= UNSORTED_SWEEP_LIMIT)
      break;
  }
  return NULL;
}

/* The smallest non-empty bin at or above i, via the binmap. */
static struct chunk *take_from_larger_bin(struct arena *a, int i, size_t nb) {
  while (i <= LAST_BIN) {
    uint64_t word = a->binmap[i >> 6] & (~(uint64_t)0 << (i & 63));
    if (!word) {
      i = ((i >> 6) + 1) << 6;
      continue;
    }
    i = (i & ~63) + __builtin_ctzll(word);
    struct chunk *b = bin_at(a, i), *v = b->bk;
    if (v == b) { /* stale bit */
      binmap_clear(a, i);
      i++;
      continue;
    }
    bin_unlink(a, v);
    TIDE_ASSERT(chunk_size(v) >= nb);
    return take_chunk(a, v, nb, in_smallbin_range(nb));
  }
  return NULL;
}

static struct chunk *malloc_locked(struct arena *a, size_t nb, char **clean_from, bool want_zero) {
  /* 1. Fast bins: exact size, LIFO. */
  if (nb <= MAX_FASTBIN_CHUNK) {
    struct chunk *v = fastbin_pop(a, fastbin_index(nb), tide_current_fn);
    if (v)
      return v;
  }
  /* 2. Small bins: exact size, oldest first. */
  int idx;
  if (in_smallbin_range(nb)) {
    idx = smallbin_index(nb);
    struct chunk *b = bin_at(a, idx), *v = b->bk;
    if (v != b) {
      struct chunk *bck = v->bk;
      if (unlikely(bck->fd != v))
        tide_fatal(tide_current_fn, "smallbin double linked list corrupted");
      chunk_set_inuse(v);
      b->bk = bck;
      bck->fd = b;
      return v;
    }
  } else {
    /* A large request first merges the fast-bin fragments. */
    idx = largebin_index(nb);
    if (a->have_fastchunks)
      arena_consolidate(a);
  }
  bool drained = false;
  for (;;) {
    /* 3. The unsorted bin: exact fit or last remainder, else sort. */
    struct chunk *v = sweep_unsorted(a, nb);
    if (v)
      return v;
    /* 4. Large request: best fit in its own bin. */
    if (!in_smallbin_range(nb)) {
      v = bin_take_best_fit(a, idx, nb);
      if (v)
        return take_chunk(a, v, nb, false);
    }
    /* 5. The smallest chunk of any larger bin. */
    v = take_from_larger_bin(a, in_smallbin_range(nb) ? idx : idx + 1, nb);
    if (v)
      return v;
    /* 6. The top chunk. */
    if (a->top && chunk_size(a->top) >= nb + MINSIZE)
      return take_from_top(a, nb, clean_from);
    /* 7. Blocks other threads handed back, and fast-bin fragments, may
     * merge into something big enough. */
    if (!drained && tcache_remote_pending(a)) {
      tcache_drain_remote(a);
      drained = true;
    }
    if (a->have_fastchunks) {
      arena_consolidate(a);
      continue;
    }
    /* 8. Ask the OS. */
    return grow_and_take(a, nb, clean_from, want_zero);
  }
}

struct chunk *arena_malloc(struct arena *a, size_t nb, char **clean_from) {
  char *ignored;
  bool want_zero = clean_from != NULL;
  if (!clean_from)
    clean_from = &ignored;
  *clean_from = NULL;
  struct chunk *c = malloc_locked(a, nb, clean_from, want_zero);
  if (c && !chunk_is_mmapped(c)) {
    if (chunk_size(c) >= PURGE_MIN_CHUNK)
      purge_note_reuse(a, c);
    a->count.in_use_bytes += chunk_size(c);
    if (a->count.in_use_bytes > a->count.peak_in_use_bytes)
      a->count.peak_in_use_bytes = a->count.in_use_bytes;
  }
  if (c && !*clean_from)
    *clean_from = (char *)chunk2mem(c) + chunk_usable(c);
  if (TIDE_DEBUG && c && !chunk_is_mmapped(c))
    TIDE_ASSERT(arena_owns(a, c, chunk_size(c)));
  return c;
}

/* Up to n more chunks of exactly nb bytes (a thread-cache refill), taken
 * the cheap ways only: the fast bin, the small bin, the top.  Counted as
 * in use.  Returns how many were stored in out. */
size_t arena_malloc_more(struct arena *a, size_t nb, struct chunk **out, size_t n) {
  size_t got = 0;
  if (nb <= MAX_FASTBIN_CHUNK) {
    int i = fastbin_index(nb);
    struct chunk *v;
    while (got < n && (v = fastbin_pop(a, i, tide_current_fn)) != NULL)
      out[got++] = v;
  }
  if (in_smallbin_range(nb)) {
    struct chunk *b = bin_at(a, smallbin_index(nb));
    while (got < n && b->bk != b) {
      struct chunk *v = b->bk, *bck = v->bk;
      if (unlikely(bck->fd != v))
        tide_fatal(tide_current_fn, "smallbin double linked list corrupted");
      chunk_set_inuse(v);
      b->bk = bck;
      bck->fd = b;
      out[got++] = v;
    }
  }
  while (got < n && a->top && chunk_size(a->top) >= nb + MINSIZE)
    out[got++] = take_from_top(a, nb, NULL);
  a->count.in_use_bytes += got * nb;
  if (a->count.in_use_bytes > a->count.peak_in_use_bytes)
    a->count.peak_in_use_bytes = a->count.in_use_bytes;
  return got;
}

/* ------------------------------------------------------------ runs' chunks */

/* Where in [c, c + csize) a chunk of size bytes aligned to size could
 * start, leaving before and after it either nothing or a chunk of its
 * own (MINSIZE at least); 0 when it does not fit. */
static uintptr_t aligned_spot(uintptr_t c, size_t csize, size_t size) {
  uintptr_t at = (c + size - 1) & ~(uintptr_t)(size - 1);
  if (at != c && at - c < MINSIZE)
    at += size;
  uintptr_t end = c + csize;
  if (at + size > end || (end - (at + size) != 0 && end - (at + size) < MINSIZE))
    return 0;
  return at;
}

/* Free chunk v (unlinked, size vsize, P set) becomes: a free chunk before
 * at (if any), the in-use chunk [at, at + size), a free chunk after it
 * (if any).  Returns the chunk at at. */
static struct chunk *carve_aligned(struct arena *a, struct chunk *v, uintptr_t at, size_t size) {
  size_t vsize = chunk_size(v), abit = v->size & IN_HEAP;
  struct purge_range dirty = purge_range_of(v, vsize);
  size_t lead = at - (uintptr_t)v, tail = vsize - lead - size;
  struct chunk *c = (struct chunk *)at;
  if (lead) {
    chunk_set_head(v, lead | PREV_INUSE | abit);
    chunk_set_foot(v, lead);
    bin_insert_unsorted(a, v, lead);
    purge_narrow(a, v, lead, dirty);
  }
  chunk_set_head(c, size | (lead ? 0 : PREV_INUSE) | abit);
  if (tail) {
    struct chunk *t = chunk_at(c, size);
    chunk_set_head(t, tail | PREV_INUSE | abit);
    chunk_set_foot(t, tail);
    bin_insert_unsorted(a, t, tail);
    purge_narrow(a, t, tail, dirty);
  } else {
    chunk_set_inuse(c);
  }
  return c;
}

struct chunk *arena_malloc_run(struct arena *a, size_t size) {
  struct chunk *c = NULL;
  /* A free chunk that holds an aligned one: runs given back are reused
   * (a few looks per bin, smallest first; the unsorted bin too). */
  for (int i = UNSORTED_BIN; i <= LAST_BIN && !c; i = i == UNSORTED_BIN ? largebin_index(size) : i + 1) {
    struct chunk *b = bin_at(a, i);
    int looks = 0;
    for (struct chunk *v = b->bk; v != b && looks < 8; v = v->bk, looks++) {
      uintptr_t at = aligned_spot((uintptr_t)v, chunk_size(v), size);
      if (at) {
        bin_unlink(a, v);
        c = carve_aligned(a, v, at, size);
        break;
      }
    }
  }
  /* Else from top, growing it when needed. */
  for (int tries = 0; !c && tries < 2; tries++) {
    struct chunk *t = a->top;
    uintptr_t at = 0;
    if (t) {
      check_top(a);
      at = ((uintptr_t)t + size - 1) & ~(uintptr_t)(size - 1);
      if (at != (uintptr_t)t && at - (uintptr_t)t < MINSIZE)
        at += size;
    }
    if (!t || (uintptr_t)t + chunk_size(t) < at + size + MINSIZE) {
      size_t need = t ? (size_t)(at - (uintptr_t)t) + size : 2 * size;
      if (!grow_top(a, need))
        return NULL;
      continue; /* top may have moved (a new segment or heap) */
    }
    size_t tsize = chunk_size(t), abit = t->size & IN_HEAP, lead = at - (uintptr_t)t;
    if (lead) {
      /* The part of top below the run: a free chunk (what it holds is
       * dirty up to top_dirty_end). */
      chunk_set_head(t, lead | PREV_INUSE | abit);
      chunk_set_foot(t, lead);
      bin_insert_unsorted(a, t, lead);
      uintptr_t dirty_end = (uintptr_t)a->top_dirty_end < at ? (uintptr_t)a->top_dirty_end : at;
      purge_narrow(a, t, lead, (struct purge_range){(uintptr_t)t, dirty_end});
    }
    c = (struct chunk *)at;
    chunk_set_head(c, size | (lead ? 0 : PREV_INUSE) | abit);
    struct chunk *rem = chunk_at(c, size);
    chunk_set_head(rem, (tsize - lead - size) | PREV_INUSE | abit);
    a->top = rem;
    if (a->top_dirty_end < (char *)rem + CHUNK_HDR)
      a->top_dirty_end = (char *)rem + CHUNK_HDR;
  }
  if (!c)
    return NULL;
  a->count.in_use_bytes += size;
  if (a->count.in_use_bytes > a->count.peak_in_use_bytes)
    a->count.peak_in_use_bytes = a->count.in_use_bytes;
  TIDE_ASSERT(arena_owns(a, c, size) && ((uintptr_t)c & (size - 1)) == 0);
  return c;
}

/* ------------------------------------------------------------------ free */

bool arena_fastbin_contains(struct arena *a, struct chunk *p) {
  size_t size = chunk_size(p);
  if (size < MINSIZE || size > MAX_FASTBIN_CHUNK)
    return false;
  for (struct chunk *q = a->fastbins[fastbin_index(size)]; q; q = link_reveal(&q->fd, q->fd)) {
    if (q == p)
      return true;
    if (!aligned_ok(q))
      break;
  }
  return false;
}

static void fastbin_push(struct arena *a, struct chunk *p, size_t size) {
  struct chunk *next = chunk_at(p, size);
  if (unlikely(chunk_size(next) < CHUNK_HDR || chunk_size(next) >= a->system_mem))
    tide_fatal(tide_current_fn, "invalid next size (fast)");
  int i = fastbin_index(size);
  struct chunk *old = a->fastbins[i];
  if (unlikely(old == p))
    tide_fatal(tide_current_fn, "double free or corruption (fasttop)");
  /* Probably already here: look before deciding. */
  uintptr_t key = free_key(chunk2mem(p));
  if (unlikely((uintptr_t)p->bk == key) && arena_fastbin_contains(a, p))
    tide_fatal(tide_current_fn, "double free detected (fastbin)");
  p->fd = link_protect(&p->fd, old);
  p->bk = (struct chunk *)key;
  a->fastbins[i] = p;
  a->have_fastchunks = true;
  a->fast_bytes += size;
  purge_note_pending(a);
}

void arena_check_freeable(struct arena *a, struct chunk *p) {
  if (p->size & IN_RUN) {
    /* Its size is its run's, its place one of its blocks, and the header
     * after it reads like its own (src/run.h). */
    run_checked(p, tide_current_fn);
    if (unlikely(chunk_next(p)->size != p->size))
      tide_fatal(tide_current_fn, "invalid next size (the block's end was overwritten?)");
    return;
  }
  size_t size = chunk_size(p);
  if (unlikely(!arena_owns(a, p, size)))
    tide_fatal(tide_current_fn, "invalid pointer (outside its arena)");
  if (unlikely(p == a->top))
    tide_fatal(tide_current_fn, "double free or corruption (top)");
  struct chunk *next = chunk_at(p, size);
  if (unlikely(!prev_inuse(next)))
    tide_fatal(tide_current_fn, "double free or corruption (!prev)");
  size_t nsize = chunk_size(next);
  if (unlikely(nsize < CHUNK_HDR || nsize > a->system_mem || (next->size & (IS_MMAPPED | IN_HEAP)) != (p->size & IN_HEAP)))
    tide_fatal(tide_current_fn, "invalid next size (the block's end was overwritten?)");
}

/* A run's block reached the arena (a thread without a cache freed it, or
 * it came through a remote stack): to its run, not to the bins. */
static void free_run_block(struct arena *a, struct chunk *p, bool from_cache) {
  struct run *r = run_checked(p, tide_current_fn);
  struct tcache_entry *e = chunk2mem(p);
  if (from_cache) {
    if (unlikely(e->key != free_key(e)))
      tide_fatal(tide_current_fn, "corrupted thread-cache entry (written after free?)");
  } else {
    if (unlikely(e->key == free_key(e)))
      tide_fatal(tide_current_fn, "double free detected (the block is free in its run)");
    e->key = free_key(e);
  }
  run_give_back(r, e, e, 1, tcache_mine(), a);
}

void arena_free(struct arena *a, struct chunk *p, bool from_cache) {
  if (unlikely(chunk_in_run(p))) {
    free_run_block(a, p, from_cache);
    return;
  }
  if (from_cache) {
    /* Checked when it entered the thread cache (its region and the next
     * header); what can have changed since is cheap to look at. */
    if (unlikely(p == a->top || !prev_inuse(chunk_next(p))))
      tide_fatal(tide_current_fn, "double free or corruption (cached chunk)");
  } else {
    arena_check_freeable(a, p);
  }
  size_t size = chunk_size(p);
  a->count.in_use_bytes -= size;
  if (size <= opt.max_fast || (from_cache && size <= MAX_FASTBIN_CHUNK)) {
    fastbin_push(a, p, size);
    return;
  }
  size = free_coalesce(a, p, size);
  if (size >= FASTBIN_CONSOLIDATION_THRESHOLD) {
    if (a->have_fastchunks)
      arena_consolidate(a);
    /* Worth a look only when a whole page would go. */
    size_t tsz = chunk_size(a->top);
    if (tsz >= opt.trim_threshold && tsz >= opt.top_pad + MINSIZE + os_page)
      purge_top_grew(a); /* (which may raise the threshold: purge.c) */
  }
  purge_after_free(a);
}

/* --------------------------------------------------------------- realloc */

/* Cut p (in use) down to nb, freeing the tail. */
static void shrink_in_place(struct arena *a, struct chunk *p, size_t nb) {
  size_t size = chunk_size(p);
  if (size - nb < MINSIZE)
    return;
  size_t abit = p->size & IN_HEAP;
  struct chunk *rem = chunk_at(p, nb);
  chunk_set_head(p, nb | (p->size & PREV_INUSE) | abit);
  chunk_set_head(rem, (size - nb) | PREV_INUSE | abit); /* next's P still says "in use" */
  a->count.in_use_bytes -= size - nb;
  free_coalesce(a, rem, size - nb);
}

bool arena_resize_in_place(struct arena *a, struct chunk *p, size_t nb) {
  size_t size = chunk_size(p);
  if (unlikely(!arena_owns(a, p, size)))
    tide_fatal(tide_current_fn, "invalid pointer (outside its arena)");
  struct chunk *next = chunk_at(p, size);
  size_t nsize = chunk_size(next);
  if (unlikely(nsize < CHUNK_HDR || nsize > a->system_mem))
    tide_fatal(tide_current_fn, "invalid next size");
  if (unlikely(!prev_inuse(next)))
    tide_fatal(tide_current_fn, "invalid old size (chunk is free)");
  if (size >= nb) {
    shrink_in_place(a, p, nb);
    return true;
  }
  size_t abit = p->size & IN_HEAP, pbit = p->size & PREV_INUSE;
  if (next == a->top) {
    if (size + nsize < nb + MINSIZE)
      return false;
    struct chunk *rem = chunk_at(p, nb);
    chunk_set_head(p, nb | pbit | abit);
    chunk_set_head(rem, (size + nsize - nb) | PREV_INUSE | abit);
    a->top = rem;
    if (a->top_dirty_end < (char *)rem + CHUNK_HDR)
      a->top_dirty_end = (char *)rem + CHUNK_HDR;
    a->count.in_use_bytes += nb - size;
  } else {
    if (chunk_inuse(next) || size + nsize < nb)
      return false;
    bin_unlink(a, next);
    chunk_set_head(p, (size + nsize) | pbit | abit);
    chunk_set_inuse(p);
    a->count.in_use_bytes += nsize;
    shrink_in_place(a, p, nb);
  }
  if (a->count.in_use_bytes > a->count.peak_in_use_bytes)
    a->count.peak_in_use_bytes = a->count.in_use_bytes;
  return true;
}

/* -------------------------------------------------------------- memalign */

struct chunk *arena_memalign(struct arena *a, size_t align, size_t nb) {
  size_t want = nb + align + MINSIZE;
  if (want < nb)
    return NULL;
  struct chunk *p = arena_malloc(a, want, NULL);
  if (!p)
    return NULL;
  uintptr_t mem = (uintptr_t)chunk2mem(p);
  uintptr_t amem = (mem + align - 1) & ~(uintptr_t)(align - 1);
  if (amem != mem) {
    if (!chunk_is_mmapped(p) && amem - mem < MINSIZE)
      amem += align;
    struct chunk *q = mem2chunk((void *)amem);
    size_t lead = amem - mem, qsize = chunk_size(p) - lead;
    if (chunk_is_mmapped(p)) {
      q->prev_size = p->prev_size + lead;
      chunk_set_head(q, qsize | IS_MMAPPED);
      mmapped_rekey(p, q);
      return q;
    }
    size_t abit = p->size & IN_HEAP;
    chunk_set_head(q, qsize | PREV_INUSE | abit);
    chunk_set_head(p, lead | (p->size & PREV_INUSE) | abit);
    a->count.in_use_bytes -= lead;
    free_coalesce(a, p, lead);
    p = q;
  }
  if (!chunk_is_mmapped(p))
    shrink_in_place(a, p, nb);
  return p;
}
