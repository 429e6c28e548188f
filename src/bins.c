/* SPDX-License-Identifier: MIT */
/*
 * Size -> bin index, the binmap, and checked insertion and removal of
 * free chunks (see src/bins.h for the picture).
 */
#include "bins.h"

#include "arena.h"

#include "purge.h"

/* The large-bin ladder: count bins of width step, in order. */
static const struct {
  int count;
  size_t step;
} large_ladder[] = {
    {32, 64}, {16, 512}, {8, 4 * KiB}, {4, 32 * KiB}, {2, 256 * KiB},
};
#define LADDER_STEPS (int)(sizeof large_ladder / sizeof large_ladder[0])

int largebin_index(size_t sz) {
  if (sz < MIN_LARGE_SIZE + 32 * 64) /* the first 32 bins, the busiest */
    return FIRST_LARGE_BIN + (int)((sz - MIN_LARGE_SIZE) >> 6);
  size_t s = sz - MIN_LARGE_SIZE;
  int idx = FIRST_LARGE_BIN;
  for (int k = 0; k < LADDER_STEPS; k++) {
    size_t span = (size_t)large_ladder[k].count * large_ladder[k].step;
    if (s < span)
      return idx + (int)(s / large_ladder[k].step);
    s -= span;
    idx += large_ladder[k].count;
  }
  return LAST_BIN;
}

void bin_range(int i, size_t *lo, size_t *hi) {
  if (i < FIRST_LARGE_BIN) {
    *lo = *hi = (size_t)i * CHUNK_ALIGN;
    return;
  }
  size_t base = MIN_LARGE_SIZE;
  int idx = FIRST_LARGE_BIN;
  for (int k = 0; k < LADDER_STEPS; k++) {
    if (i < idx + large_ladder[k].count) {
      *lo = base + (size_t)(i - idx) * large_ladder[k].step;
      *hi = *lo + large_ladder[k].step - 1;
      return;
    }
    base += (size_t)large_ladder[k].count * large_ladder[k].step;
    idx += large_ladder[k].count;
  }
  *lo = base;
  *hi = SIZE_MAX;
}

void bin_init(struct arena *a) {
  for (int i = 1; i < NBINS; i++) {
    struct chunk *b = bin_at(a, i);
    b->fd = b->bk = b;
  }
  memset(a->binmap, 0, sizeof a->binmap);
  memset(a->fastbins, 0, sizeof a->fastbins);
}

static bool is_nextsize_head(struct chunk *p, size_t size) {
  return !in_smallbin_range(size) && p->fd_nextsize != NULL;
}

/* Is x where a bin link of a may point: one of a's bin heads, or a
 * chunk in a's memory?  (A forged chunk's links aim at the program's
 * own data, so that the unlink writes there.) */
static bool link_in_arena(struct arena *a, struct chunk *x) {
  uintptr_t heads = (uintptr_t)bin_at(a, 0), heads_end = (uintptr_t)bin_at(a, NBINS);
  if ((uintptr_t)x >= heads && (uintptr_t)x < heads_end)
    return ((uintptr_t)x - heads) % (2 * sizeof(void *)) == 0;
  return aligned_ok(x) && arena_holds(a, x);
}

void bin_unlink(struct arena *a, struct chunk *p) {
  size_t size = chunk_size(p);
  if (unlikely(chunk_at(p, size)->prev_size != size))
    tide_fatal(tide_current_fn, "corrupted size vs. prev_size");
  struct chunk *fd = p->fd, *bk = p->bk;
  if (unlikely(!link_in_arena(a, fd) || !link_in_arena(a, bk)))
    tide_fatal(tide_current_fn, "corrupted double-linked list (a link points outside the arena)");
  if (unlikely(fd->bk != p || bk->fd != p))
    tide_fatal(tide_current_fn, "corrupted double-linked list");
  purge_untrack(a, p, size);

  if (is_nextsize_head(p, size)) {
    if (unlikely(!link_in_arena(a, p->fd_nextsize) || !link_in_arena(a, p->bk_nextsize)))
      tide_fatal(tide_current_fn, "corrupted double-linked list (not small; a link points outside the arena)");
    if (unlikely(p->fd_nextsize->bk_nextsize != p || p->bk_nextsize->fd_nextsize != p))
      tide_fatal(tide_current_fn, "corrupted double-linked list (not small)");
    /* If the next chunk has our size it takes over as the head of it. */
    struct chunk *sentinel = bin_at(a, largebin_index(size));
    if (fd != sentinel && chunk_size(fd) == size) {
      if (p->fd_nextsize == p) {
        fd->fd_nextsize = fd->bk_nextsize = fd;
      } else {
        fd->fd_nextsize = p->fd_nextsize;
        fd->bk_nextsize = p->bk_nextsize;
        p->fd_nextsize->bk_nextsize = fd;
        p->bk_nextsize->fd_nextsize = fd;
      }
    } else if (p->fd_nextsize != p) {
      p->fd_nextsize->bk_nextsize = p->bk_nextsize;
      p->bk_nextsize->fd_nextsize = p->fd_nextsize;
    }
  }
  fd->bk = bk;
  bk->fd = fd;
}

void bin_insert_unsorted(struct arena *a, struct chunk *p, size_t size) {
  struct chunk *head = bin_at(a, UNSORTED_BIN);
  struct chunk *first = head->fd;
  if (unlikely(first->bk != head))
    tide_fatal(tide_current_fn, "corrupted unsorted chunks");
  p->fd = first;
  p->bk = head;
  if (!in_smallbin_range(size))
    p->fd_nextsize = p->bk_nextsize = NULL;
  head->fd = p;
  first->bk = p;
  purge_track(a, p, size);
}

static void link_between(struct chunk *p, struct chunk *bk, struct chunk *fd) {
  p->bk = bk;
  p->fd = fd;
  bk->fd = p;
  fd->bk = p;
}

void bin_insert_sorted(struct arena *a, struct chunk *p, size_t size) {
  int i = bin_index(size);
  struct chunk *b = bin_at(a, i);
  binmap_mark(a, i);
  if (in_smallbin_range(size)) {
    link_between(p, b, b->fd);
    return;
  }
  if (b->fd == b) { /* empty: p is the only head */
    p->fd_nextsize = p->bk_nextsize = p;
    link_between(p, b, b);
    return;
  }
  struct chunk *largest = b->fd;
  if (size < chunk_size(b->bk)) {
    /* Smaller than everything: new last chunk, new smallest head.  The
     * ring is checked before it is written through (glibc 2.36 does not,
     * which the "large bin attack" uses). */
    struct chunk *smallest = largest->bk_nextsize;
    if (unlikely(!link_in_arena(a, smallest) || smallest->fd_nextsize != largest || b->bk->fd != b))
      tide_fatal(tide_current_fn, "largebin double linked list corrupted (nextsize)");
    p->fd_nextsize = largest;
    p->bk_nextsize = largest->bk_nextsize;
    largest->bk_nextsize->fd_nextsize = p;
    largest->bk_nextsize = p;
    link_between(p, b->bk, b);
    return;
  }
  struct chunk *h = largest;
  while (size < chunk_size(h))
    h = h->fd_nextsize;
  if (size == chunk_size(h)) {
    /* Join the run behind its head; the head and the ring stay. */
    p->fd_nextsize = p->bk_nextsize = NULL;
    link_between(p, h, h->fd);
    return;
  }
  /* A new size, just larger than h's: becomes a head before h. */
  if (unlikely(!link_in_arena(a, h->bk_nextsize) || h->bk_nextsize->fd_nextsize != h))
    tide_fatal(tide_current_fn, "largebin double linked list corrupted (nextsize)");
  p->fd_nextsize = h;
  p->bk_nextsize = h->bk_nextsize;
  h->bk_nextsize->fd_nextsize = p;
  h->bk_nextsize = p;
  if (unlikely(h->bk->fd != h))
    tide_fatal(tide_current_fn, "largebin double linked list corrupted (bk)");
  link_between(p, h->bk, h);
}

struct chunk *bin_take_best_fit(struct arena *a, int i, size_t nb) {
  struct chunk *b = bin_at(a, i);
  if (b->fd == b || chunk_size(b->fd) < nb)
    return NULL;
  /* Walk the heads from the smallest size up. */
  struct chunk *h = b->fd->bk_nextsize;
  while (chunk_size(h) < nb)
    h = h->bk_nextsize;
  /* Prefer a non-head of the same size: no ring to repair. */
  struct chunk *victim = h;
  if (h->fd != b && chunk_size(h->fd) == chunk_size(h))
    victim = h->fd;
  bin_unlink(a, victim);
  return victim;
}
