/* SPDX-License-Identifier: MIT */
/*
 * The heap inspector (tide_heap_dump): arenas, bins and chunks drawn as
 * text, each chunk named by what it is (used, cached, free in which bin,
 * resident or purged).  Read-only; each arena is walked under its lock.
 */
#include "stats.h"

#include "arena.h"
#include "arenas.h"
#include "heap.h"
#include "mmapped.h"
#include "os.h"
#include "out.h"
#include "purge.h"
#include "run.h"
#include "tcache.h"

/*
 * tide_heap_dump: the heap as people draw it.  A legend, this thread's
 * cache, then per arena a header, its bins, and per region (brk segment or
 * heap) a one-line map and the chunks in address order, runs of equal
 * chunks folded into one line.
 *
 * The arena sees a chunk in a thread cache, a fast bin or a remote stack
 * as "in use" (its next chunk's P bit stays set), but the program does
 * not hold it.  To tell those apart, the lists are first collected into a
 * table of chunk addresses, sorted, and each chunk of the walk is looked
 * up by binary search.  A chunk address is 16-aligned, so its low four
 * bits carry which list it came from.  The table lives on the stack (no
 * malloc here); what does not fit is counted and said.
 *
 * A run (src/run.h) is one chunk in use as far as its arena knows; the
 * walk goes into it: its header, each carved block, then what is not
 * carved yet.  Its free list is read under its lock.
 *
 * Each arena is read under its lock.  The calling thread's cache is read
 * by that thread only.  Remote stacks are pushed and taken without the
 * lock, so they are read as a snapshot: each link is loaded atomically and
 * checked before it is followed.
 */

#define DUMP_TABLE_MAX 4096 /* 32 KiB of stack: a full default thread cache and more */
#define DUMP_MAP_WIDTH 64   /* characters in a region's map */
#define DUMP_LINES_MAX 256  /* chunk lines per region, after folding */

enum dump_tag { TAG_NONE, TAG_TCACHE, TAG_FAST, TAG_REMOTE, TAG_UNSORTED, TAG_RUN_FREE };
#define TAG_MASK ((uintptr_t)CHUNK_ALIGN_MASK)

struct dump_table {
  size_t n, missed; /* entries, and list members that did not fit */
  uintptr_t e[DUMP_TABLE_MAX];
};

static void table_add(struct dump_table *t, struct chunk *c, enum dump_tag tag) {
  if (t->n < DUMP_TABLE_MAX)
    t->e[t->n++] = (uintptr_t)c | (uintptr_t)tag;
  else
    t->missed++;
}

/* Heapsort: in place and without allocating (qsort may call malloc). */
static void table_sift_down(uintptr_t *v, size_t root, size_t n) {
  for (;;) {
    size_t child = 2 * root + 1;
    if (child >= n)
      return;
    if (child + 1 < n && v[child + 1] > v[child])
      child++;
    if (v[root] >= v[child])
      return;
    uintptr_t tmp = v[root];
    v[root] = v[child];
    v[child] = tmp;
    root = child;
  }
}

static void table_sort(struct dump_table *t) {
  for (size_t i = t->n / 2; i-- > 0;)
    table_sift_down(t->e, i, t->n);
  for (size_t end = t->n; end > 1; end--) {
    uintptr_t tmp = t->e[0];
    t->e[0] = t->e[end - 1];
    t->e[end - 1] = tmp;
    table_sift_down(t->e, 0, end - 1);
  }
}

static enum dump_tag table_find(const struct dump_table *t, const struct chunk *c) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    uintptr_t addr = t->e[mid] & ~TAG_MASK;
    if (addr < (uintptr_t)c)
      lo = mid + 1;
    else if (addr > (uintptr_t)c)
      hi = mid;
    else
      return (enum dump_tag)(t->e[mid] & TAG_MASK);
  }
  return TAG_NONE;
}

/* Per-size counts of one kind of list (thread cache, fast bins, remote
 * stacks), for the summary lines: all three have one list per chunk size
 * from 32 B by 16. */
_Static_assert(NFASTBINS == TCACHE_SMALL_BINS, "fast bins and small cache bins pair up by size");
struct size_counts {
  size_t chunks[TCACHE_BINS];
};

static struct tcache_entry *entry_reveal(struct tcache_entry *e) {
  return (struct tcache_entry *)link_reveal(&e->next, (struct chunk *)e->next);
}

/* The calling thread's cached chunks that belong to a.  Only this thread
 * writes its cache, so plain reads are safe. */
static void collect_tcache(struct dump_table *t, struct arena *a) {
  struct tcache *tc = tcache_mine();
  if (!tc)
    return;
  for (size_t i = 0; i < TCACHE_BINS; i++) {
    unsigned n = 0;
    for (struct tcache_entry *e = tc->head[i]; e && aligned_ok(e) && n < tc->count[i]; e = entry_reveal(e), n++)
      if (arena_holds(a, mem2chunk(e)))
        table_add(t, mem2chunk(e), TAG_TCACHE);
  }
  for (size_t i = 0; i < TCACHE_BINS; i++) { /* other arenas' blocks on their way back */
    unsigned n = 0;
    for (struct tcache_entry *e = tc->out[i]; e && aligned_ok(e) && n < tc->out_count[i]; e = entry_reveal(e), n++)
      if (arena_holds(a, mem2chunk(e)))
        table_add(t, mem2chunk(e), TAG_TCACHE);
  }
  for (unsigned i = 0; i < tc->nbig; i++) /* the medium blocks */
    if (arena_holds(a, tc->big[i]))
      table_add(t, tc->big[i], TAG_TCACHE);
}

/* Fast bins (a locked).  A link that leaves the arena ends the walk. */
static void collect_fast(struct dump_table *t, struct arena *a, struct size_counts *k) {
  for (int i = 0; i < NFASTBINS; i++) {
    size_t steps = a->system_mem / MINSIZE; /* bounds a corrupted loop */
    for (struct chunk *c = a->fastbins[i]; c && aligned_ok(c) && arena_holds(a, c) && steps--;
         c = link_reveal(&c->fd, c->fd)) {
      table_add(t, c, TAG_FAST);
      k->chunks[i]++;
    }
  }
}

/* One remote stack: entries may be taken by a's thread while we look, and
 * then reused, so every link is loaded atomically and followed only while
 * it still looks like a remote entry of this size in this arena. */
static void collect_remote_stack(struct dump_table *t, struct arena *a, size_t idx, size_t *count) {
  size_t size = (idx + 2) * CHUNK_ALIGN, steps = a->system_mem / MINSIZE;
  struct tcache_entry *e = __atomic_load_n(&a->remote[idx], __ATOMIC_ACQUIRE);
  while (e && aligned_ok(e) && arena_holds(a, mem2chunk(e)) && arena_holds(a, (char *)(e + 1) - 1) && steps--) {
    struct chunk *c = mem2chunk(e);
    if (__atomic_load_n(&e->key, __ATOMIC_RELAXED) != free_key(e) ||
        (__atomic_load_n(&c->size, __ATOMIC_RELAXED) & ~CHUNK_FLAGS) != size)
      break;
    table_add(t, c, TAG_REMOTE);
    (*count)++;
    struct tcache_entry *raw = __atomic_load_n(&e->next, __ATOMIC_RELAXED);
    e = (struct tcache_entry *)link_reveal(&e->next, (struct chunk *)raw);
  }
}

static void collect_remote(struct dump_table *t, struct arena *a, struct size_counts *k) {
  for (size_t i = 0; i < TCACHE_SMALL_BINS; i++)
    collect_remote_stack(t, a, i, &k->chunks[i]);
}

/* Every run's free blocks (a locked; each run under its own lock). */
static void collect_run_free(struct dump_table *t, struct arena *a, size_t *blocks) {
  for (struct run *r = a->runs; r; r = r->anext) {
    run_lock(r);
    for (unsigned b = 0; b < r->nbatch && b < RUN_BATCHES; b++) {
      uint32_t n = 0;
      for (struct tcache_entry *e = r->batch[b].head; e && aligned_ok(e) && run_of(e) == r &&
                                                     n < r->batch[b].n;
           e = entry_reveal(e)) {
        table_add(t, mem2chunk(e), TAG_RUN_FREE);
        n++;
      }
      *blocks += n;
    }
    run_unlock(r);
  }
}

/* The unsorted bin, so that its chunks are not named after the bin their
 * size would sort them into. */
static void collect_unsorted(struct dump_table *t, struct arena *a) {
  struct chunk *b = bin_at(a, UNSORTED_BIN);
  size_t steps = a->system_mem / MINSIZE;
  for (struct chunk *c = b->fd; c != b && aligned_ok(c) && arena_holds(a, c) && steps--; c = c->fd)
    table_add(t, c, TAG_UNSORTED);
}

/* Every list of chunks free for the program but in use for the arena,
 * into t, sorted; their counts per size, and the runs' free blocks. */
static void collect_all(struct dump_table *t, struct arena *a, struct size_counts *fast, struct size_counts *remote,
                        size_t *run_free) {
  t->n = t->missed = 0;
  collect_tcache(t, a);
  collect_fast(t, a, fast);
  collect_remote(t, a, remote);
  collect_run_free(t, a, run_free);
  collect_unsorted(t, a);
  table_sort(t);
}

/* ---- what a chunk is */

enum dump_kind {
  K_USED, K_TCACHE, K_FAST, K_REMOTE, K_OTHER_TCACHE, K_RUN_FREE, K_FREE, K_TOP, K_FENCE, K_RUN, K_RUN_UNCARVED,
  K_BROKEN, K_COUNT
};
static const char *const kind_name[K_COUNT] = {"used", "tcache", "fast", "remote", "tcache-other", "run-free",
                                               "free", "TOP", "fence", "run", "run-uncarved", "broken"};

/* Free chunks under PURGE_MIN_CHUNK are never purged, so they have no
 * purge state (P_KEPT). */
enum dump_purge { P_KEPT, P_DIRTY, P_PURGED, P_UNTRACKED };
static const char *const purge_name[] = {"", " dirty", " purged", " untracked!"};

struct dump_state {
  enum dump_kind kind;
  int bin;               /* K_FREE: its bin (UNSORTED_BIN, or by size) */
  enum dump_purge purge; /* K_FREE */
  bool in_run;           /* a block of a run (its header and uncarved part are not) */
};

static bool same_state(const struct dump_state *x, const struct dump_state *y) {
  return x->kind == y->kind && x->bin == y->bin && x->purge == y->purge && x->in_run == y->in_run;
}

static enum dump_purge purge_of(struct chunk *c) {
  if (chunk_size(c) < PURGE_MIN_CHUNK)
    return P_KEPT;
  if (purge_is_dirty(c))
    return P_DIRTY;
  return purge_state_ok(c) ? P_PURGED : P_UNTRACKED;
}

/* A chunk marked in use, on none of the lists collected, that carries the
 * free key in its second word: it sits in another thread's cache (the
 * key is random, so a live block holds it only by a 2^-64 chance). */
static bool carries_free_key(struct chunk *c) {
  struct tcache_entry *e = chunk2mem(c);
  return __atomic_load_n(&e->key, __ATOMIC_RELAXED) == free_key(e);
}

static struct dump_state classify(struct arena *a, const struct dump_table *t, struct chunk *c) {
  struct dump_state s = {K_USED, 0, P_KEPT, false};
  if (c == a->top) {
    s.kind = K_TOP;
    return s;
  }
  enum dump_tag tag = table_find(t, c);
  if (!chunk_inuse(c)) {
    s.kind = K_FREE;
    s.bin = tag == TAG_UNSORTED ? UNSORTED_BIN : bin_index(chunk_size(c));
    s.purge = purge_of(c);
    return s;
  }
  if (tag == TAG_TCACHE)
    s.kind = K_TCACHE;
  else if (tag == TAG_FAST)
    s.kind = K_FAST;
  else if (tag == TAG_REMOTE)
    s.kind = K_REMOTE;
  else if (tag == TAG_RUN_FREE)
    s.kind = K_RUN_FREE;
  else if (carries_free_key(c))
    s.kind = K_OTHER_TCACHE;
  return s;
}

/* Is c (in use, in a) a run?  Aligned, of the run size, and the header
 * inside says so. */
static struct run *run_at(struct chunk *c) {
  size_t size = chunk_size(c);
  if (size != RUN_SIZE || ((uintptr_t)c & (size - 1)) || !chunk_inuse(c))
    return NULL;
  struct run *r = (struct run *)chunk2mem(c);
  return run_is_valid(r) && r->size == size ? r : NULL;
}

typedef void (*dump_chunk_fn)(void *ctx, struct chunk *c, size_t size, const struct dump_state *s);

/* The inside of run r: its header, each carved block, what is uncarved. */
static void walk_run(struct arena *a, struct run *r, const struct dump_table *t, dump_chunk_fn fn, void *ctx) {
  struct dump_state s = {K_RUN, 0, P_KEPT, false};
  struct chunk *first = run_block(r, 0);
  fn(ctx, (struct chunk *)((char *)r - CHUNK_HDR), (size_t)((char *)first - ((char *)r - CHUNK_HDR)), &s);
  size_t size = run_block_size(r);
  /* Which blocks are free in the run, from its batches (the table of
   * tagged chunks is bounded; a run is not). */
  uint64_t free_bits[RUN_PURGED_WORDS];
  uint32_t nbits = (uint32_t)(sizeof free_bits * 8);
  run_lock(r);
  memcpy(free_bits, r->purged, sizeof free_bits); /* purged blocks are free too */
  for (unsigned b = 0; b < r->nbatch && b < RUN_BATCHES; b++) {
    uint32_t n = 0;
    for (struct tcache_entry *e = r->batch[b].head; e && aligned_ok(e) && run_of(e) == r && n < r->batch[b].n;
         e = entry_reveal(e), n++) {
      uint32_t i = (uint32_t)(((char *)mem2chunk(e) - (char *)first) / size);
      if (i < nbits)
        free_bits[i / 64] |= (uint64_t)1 << (i % 64);
    }
  }
  run_unlock(r);
  /* Without the run's lock: the owner may be carving more meanwhile,
   * but it writes their headers before it publishes carved. */
  uint32_t carved = __atomic_load_n(&r->carved, __ATOMIC_ACQUIRE);
  for (uint32_t i = 0; i < carved; i++) {
    struct chunk *b = run_block(r, i);
    struct dump_state bs = classify(a, t, b);
    if (i < nbits && (free_bits[i / 64] >> (i % 64) & 1))
      bs.kind = K_RUN_FREE;
    bs.in_run = true;
    fn(ctx, b, size, &bs);
  }
  struct chunk *rest = run_block(r, carved);
  size_t left = r->size - (size_t)((char *)rest - ((char *)r - CHUNK_HDR));
  if (left) {
    struct dump_state us = {K_RUN_UNCARVED, 0, P_KEPT, false};
    fn(ctx, rest, left, &us);
  }
}

/* ---- walking a region */

struct dump_region {
  char *first, *end;   /* the chunks: first one, and the fence or the top's end */
  struct chunk *fence; /* two fence chunks at end, or NULL */
};

/* Calls fn for every chunk of r in address order, the fence chunks last.
 * A header whose size cannot be right ends the walk with a K_BROKEN call
 * (so a damaged heap is shown up to the damage, not crashed on). */
static void walk_region(struct arena *a, const struct dump_region *r, const struct dump_table *t, dump_chunk_fn fn,
                        void *ctx) {
  struct chunk *c = (struct chunk *)r->first;
  while ((char *)c < r->end) {
    size_t size = chunk_size(c);
    if (c != a->top && (size < MINSIZE || size > (size_t)(r->end - (char *)c))) {
      struct dump_state broken = {K_BROKEN, 0, P_KEPT, false};
      fn(ctx, c, size, &broken);
      return;
    }
    struct run *run = c != a->top ? run_at(c) : NULL;
    if (run) {
      walk_run(a, run, t, fn, ctx);
      c = chunk_at(c, size);
      continue;
    }
    struct dump_state s = classify(a, t, c);
    fn(ctx, c, size, &s);
    if (c == a->top)
      break;
    c = chunk_at(c, size);
  }
  if (r->fence) {
    struct dump_state fence = {K_FENCE, 0, P_KEPT, false};
    fn(ctx, r->fence, FENCE_SIZE, &fence);
    fn(ctx, chunk_at(r->fence, FENCE_SIZE), FENCE_SIZE, &fence);
  }
}

static size_t region_bytes(const struct dump_region *r) {
  return (size_t)(r->end - r->first) + (r->fence ? 2 * FENCE_SIZE : 0);
}

/* ---- pass 1: totals per state, for the arena header */

struct dump_totals {
  size_t chunks[K_COUNT], bytes[K_COUNT];
  size_t dirty, purged; /* free bytes by purge state */
};

static void totals_add(void *ctx, struct chunk *c, size_t size, const struct dump_state *s) {
  struct dump_totals *tot = ctx;
  (void)c;
  tot->chunks[s->kind]++;
  tot->bytes[s->kind] += size;
  if (s->purge == P_DIRTY)
    tot->dirty += size;
  else if (s->purge == P_PURGED)
    tot->purged += size;
}

/* ---- pass 2: the map, one character per fixed slice of the region */

/* What fills a slice, in the order that breaks ties. */
enum map_class { M_USED, M_CACHED, M_RESIDENT, M_PURGED, M_TOP, M_FENCE, M_COUNT };
static const char map_char[M_COUNT] = {'#', 'c', '.', '_', 'T', '|'};

struct dump_map {
  uintptr_t base;
  size_t slice;                  /* bytes per character */
  size_t cur;                    /* the slice being filled */
  size_t filled[M_COUNT];        /* its bytes per class */
  char line[DUMP_MAP_WIDTH + 1]; /* '?' where the walk did not reach */
};

static void map_init(struct dump_map *m, const struct dump_region *r) {
  size_t bytes = region_bytes(r);
  memset(m, 0, sizeof *m);
  m->base = (uintptr_t)r->first;
  m->slice = (bytes + DUMP_MAP_WIDTH - 1) / DUMP_MAP_WIDTH;
  m->slice = (m->slice + CHUNK_ALIGN_MASK) & ~CHUNK_ALIGN_MASK;
  if (m->slice == 0)
    m->slice = CHUNK_ALIGN;
  size_t width = (bytes + m->slice - 1) / m->slice;
  memset(m->line, '?', width);
  m->line[width] = '\0';
}

/* The slice being filled is done: it shows the class holding most of it. */
static void map_finish_slice(struct dump_map *m) {
  int best = -1;
  for (int k = 0; k < M_COUNT; k++)
    if (m->filled[k] && (best < 0 || m->filled[k] > m->filled[best]))
      best = k;
  if (best >= 0 && m->cur < DUMP_MAP_WIDTH)
    m->line[m->cur] = map_char[best];
  memset(m->filled, 0, sizeof m->filled);
}

static void map_span(struct dump_map *m, uintptr_t lo, uintptr_t hi, enum map_class k) {
  while (lo < hi) {
    size_t slice = (lo - m->base) / m->slice;
    if (slice != m->cur) {
      map_finish_slice(m);
      m->cur = slice;
    }
    uintptr_t slice_end = m->base + (slice + 1) * m->slice;
    uintptr_t upto = hi < slice_end ? hi : slice_end;
    m->filled[k] += upto - lo;
    lo = upto;
  }
}

static void map_add(void *ctx, struct chunk *c, size_t size, const struct dump_state *s) {
  struct dump_map *m = ctx;
  uintptr_t lo = (uintptr_t)c, hi = lo + size;
  switch (s->kind) {
  case K_USED:
    map_span(m, lo, hi, M_USED);
    break;
  case K_TCACHE:
  case K_FAST:
  case K_REMOTE:
  case K_OTHER_TCACHE:
  case K_RUN_FREE:
    map_span(m, lo, hi, M_CACHED);
    break;
  case K_RUN:
    map_span(m, lo, hi, M_USED);
    break;
  case K_RUN_UNCARVED:
    map_span(m, lo, hi, M_RESIDENT);
    break;
  case K_TOP:
    map_span(m, lo, hi, M_TOP);
    break;
  case K_FENCE:
    map_span(m, lo, hi, M_FENCE);
    break;
  case K_FREE: {
    /* Only part of a free chunk may still be resident (see purge.h). */
    struct purge_range r = purge_range_of(c, size);
    uintptr_t rlo = r.lo < lo ? lo : r.lo > hi ? hi : r.lo;
    uintptr_t rhi = r.hi > hi ? hi : r.hi < rlo ? rlo : r.hi;
    map_span(m, lo, rlo, M_PURGED);
    map_span(m, rlo, rhi, M_RESIDENT);
    map_span(m, rhi, hi, M_PURGED);
    break;
  }
  default:
    break;
  }
}

static void map_print(struct out *o, struct arena *a, const struct dump_region *r, const struct dump_table *t) {
  struct dump_map m;
  map_init(&m, r);
  walk_region(a, r, t, map_add, &m);
  map_finish_slice(&m);
  out_str(o, "    map |");
  out_str(o, m.line);
  out_str(o, "|  1 char = ");
  out_u(o, m.slice, 0);
  out_str(o, " B\n");
}

/* ---- pass 3: the chunk lines, equal neighbours folded */

/* The walk's chunks, equal neighbours folded into one entry with a count,
 * at most max entries; past that, entries are only counted ("hidden"),
 * except the region's end (top, fence, a broken header), which is always
 * given, so the picture keeps its last line.  The text dump and the JSON
 * dump each give an entry and the hidden ones their own way. */
struct dump_lines {
  struct out *o;
  size_t max;
  bool keep_runs;      /* a run's header is never folded (it carries the run's figures) */
  void (*entry)(struct out *o, struct chunk *c, size_t size, const struct dump_state *s, size_t count);
  void (*hidden)(struct out *o, struct chunk *first, size_t chunks, size_t bytes);
  struct chunk *first; /* the run being gathered: its first chunk, */
  size_t size, count;  /* the size of each, how many */
  struct dump_state state;
  size_t lines;
  struct chunk *hidden_first;
  size_t hidden_chunks, hidden_bytes;
};

static void out_bin_name(struct out *o, int bin) {
  if (bin == UNSORTED_BIN) {
    out_str(o, "unsorted");
    return;
  }
  out_str(o, bin < FIRST_LARGE_BIN ? "small#" : "large#");
  out_u(o, (size_t)bin, 0);
}

/* "    0x55d0c8a2b2a0        48 B  tcache x 7": the address the program
 * sees (the chunk's header is 16 bytes below it). */
static void dump_chunk_line(struct out *o, struct chunk *c, size_t size, const struct dump_state *s, size_t count) {
  out_str(o, "    ");
  out_hex(o, (uintptr_t)chunk2mem(c));
  out_u(o, size, 11);
  out_str(o, " B  ");
  out_str(o, kind_name[s->kind]);
  if (s->kind == K_FREE) {
    out_str(o, " ");
    out_bin_name(o, s->bin);
    out_str(o, purge_name[s->purge]);
  } else if (s->kind == K_BROKEN) {
    out_str(o, " header: the walk stops here");
  }
  if (count > 1) {
    out_str(o, " x ");
    out_u(o, count, 0);
  }
  out_str(o, "\n");
}

static void lines_say_hidden(struct dump_lines *l) {
  if (!l->hidden_chunks)
    return;
  l->hidden(l->o, l->hidden_first, l->hidden_chunks, l->hidden_bytes);
  l->hidden_chunks = l->hidden_bytes = 0;
}

static void lines_flush_run(struct dump_lines *l) {
  if (!l->count)
    return;
  bool tail = l->state.kind == K_TOP || l->state.kind == K_FENCE || l->state.kind == K_BROKEN;
  if (l->lines < l->max || tail) {
    lines_say_hidden(l);
    l->entry(l->o, l->first, l->size, &l->state, l->count);
    l->lines++;
  } else {
    if (!l->hidden_chunks)
      l->hidden_first = l->first;
    l->hidden_chunks += l->count;
    l->hidden_bytes += l->count * l->size;
  }
  l->count = 0;
}

static void lines_add(void *ctx, struct chunk *c, size_t size, const struct dump_state *s) {
  struct dump_lines *l = ctx;
  if (l->count && size == l->size && same_state(s, &l->state) && s->kind != K_BROKEN &&
      !(l->keep_runs && s->kind == K_RUN)) {
    l->count++;
    return;
  }
  lines_flush_run(l);
  l->first = c;
  l->size = size;
  l->state = *s;
  l->count = 1;
}

static void lines_walk(struct dump_lines *l, struct arena *a, const struct dump_region *r, const struct dump_table *t) {
  walk_region(a, r, t, lines_add, l);
  lines_flush_run(l);
  lines_say_hidden(l);
}

/* "    ... 12 more chunks (4096 B)" */
static void dump_hidden_line(struct out *o, struct chunk *first, size_t chunks, size_t bytes) {
  (void)first;
  out_str(o, "    ... ");
  out_u(o, chunks, 0);
  out_str(o, " more chunks (");
  out_u(o, bytes, 0);
  out_str(o, " B)\n");
}

static void dump_region(struct out *o, struct arena *a, const struct dump_region *r, const struct dump_table *t,
                        const char *title) {
  out_str(o, "  ");
  out_str(o, title);
  out_str(o, " ");
  out_hex(o, (uintptr_t)r->first);
  out_str(o, " .. ");
  out_hex(o, (uintptr_t)r->first + region_bytes(r));
  out_str(o, " (");
  out_u(o, region_bytes(r), 0);
  out_str(o, " B)\n");
  map_print(o, a, r, t);
  struct dump_lines l = {.o = o, .max = DUMP_LINES_MAX, .entry = dump_chunk_line, .hidden = dump_hidden_line};
  lines_walk(&l, a, r, t);
}

/* Every region of a, oldest brk segment first, then heaps newest first. */
static void for_each_region(struct arena *a, void (*fn)(void *ctx, const struct dump_region *r, const char *title),
                            void *ctx) {
  for (int i = 0; i < a->nsegs; i++) {
    struct brk_segment *s = &a->seg[i];
    struct dump_region r = {s->start, s->fence ? (char *)s->fence : s->end, s->fence};
    fn(ctx, &r, "brk segment");
  }
  for (struct heap_info *h = a->heap; h; h = h->prev) {
    struct dump_region r = {(char *)heap_first_chunk(h), h->fence ? (char *)h->fence : heap_end(h), h->fence};
    fn(ctx, &r, "heap");
  }
}

struct dump_arena {
  struct out *o;
  struct arena *a;
  struct dump_table *t;
  struct dump_totals tot;
};

static void region_totals(void *ctx, const struct dump_region *r, const char *title) {
  struct dump_arena *d = ctx;
  (void)title;
  walk_region(d->a, r, d->t, totals_add, &d->tot);
}

static void region_dump(void *ctx, const struct dump_region *r, const char *title) {
  struct dump_arena *d = ctx;
  dump_region(d->o, d->a, r, d->t, title);
}

/* ---- summaries */

/* A summary is a title and items that wrap at DUMP_WRAP columns.  Each
 * item is formatted into a scratch struct out first (never flushed: an
 * item is far shorter than its buffer), so its width is known before it
 * is placed. */
#define DUMP_WRAP 100

struct dump_list {
  struct out *o;
  size_t col;
  bool any;
};

static void list_begin(struct dump_list *l, struct out *o, const char *title) {
  *l = (struct dump_list){.o = o, .col = strlen(title)};
  out_str(o, title);
}

static void list_item(struct dump_list *l, struct out *item) {
  item->buf[item->n < sizeof item->buf ? item->n : sizeof item->buf - 1] = '\0';
  if (l->any && l->col + item->n > DUMP_WRAP) {
    out_str(l->o, "\n       ");
    l->col = 7;
  }
  out_str(l->o, item->buf);
  l->col += item->n;
  l->any = true;
}

static void list_end(struct dump_list *l, const char *if_empty) {
  if (!l->any)
    out_str(l->o, if_empty);
  out_str(l->o, "\n");
}

static void out_count_bytes(struct out *o, size_t chunks, size_t bytes) {
  out_str(o, " x");
  out_u(o, chunks, 0);
  out_str(o, " (");
  out_u(o, bytes, 0);
  out_str(o, " B)");
}

/* "  fast bins: [48 B] x3 (144 B) ..." for one kind of per-size list. */
static void dump_size_counts(struct out *o, const char *title, const struct size_counts *k) {
  struct dump_list l;
  list_begin(&l, o, title);
  for (size_t i = 0; i < TCACHE_BINS; i++) {
    if (!k->chunks[i])
      continue;
    size_t size = tcache_bin_size(i);
    struct out item = {.fd = -1};
    out_str(&item, " [");
    out_u(&item, size, 0);
    out_str(&item, " B]");
    out_count_bytes(&item, k->chunks[i], k->chunks[i] * size);
    list_item(&l, &item);
  }
  list_end(&l, " none");
}

/* " unsorted", " small[528 B]", " large[1024-1087 B]", " large[1048576+ B]" */
static void out_bin_range(struct out *o, int i) {
  if (i == UNSORTED_BIN) {
    out_str(o, " unsorted");
    return;
  }
  size_t lo, hi;
  bin_range(i, &lo, &hi);
  out_str(o, i < FIRST_LARGE_BIN ? " small[" : " large[");
  out_u(o, lo, 0);
  if (hi == SIZE_MAX) {
    out_str(o, "+");
  } else if (hi != lo) {
    out_str(o, "-");
    out_u(o, hi, 0);
  }
  out_str(o, " B]");
}

/* "  bins: unsorted x1 (2064 B) small[528 B] x3 (1584 B) large[1024-1087 B] x1 (1040 B)" */
static void dump_bins(struct out *o, struct arena *a) {
  struct dump_list l;
  list_begin(&l, o, "  bins:");
  for (int i = UNSORTED_BIN; i <= LAST_BIN; i++) {
    struct chunk *b = bin_at(a, i);
    size_t k = 0, bytes = 0, steps = a->system_mem / MINSIZE;
    for (struct chunk *c = b->fd; c != b && aligned_ok(c) && arena_holds(a, c) && steps--; c = c->fd) {
      k++;
      bytes += chunk_size(c);
    }
    if (!k)
      continue;
    struct out item = {.fd = -1};
    out_bin_range(&item, i);
    out_count_bytes(&item, k, bytes);
    list_item(&l, &item);
  }
  list_end(&l, " empty");
}

static void out_state_total(struct out *o, const struct dump_totals *tot, enum dump_kind k, const char *sep) {
  out_str(o, kind_name[k]);
  out_str(o, " ");
  out_u(o, tot->bytes[k], 0);
  out_str(o, " B (");
  out_u(o, tot->chunks[k], 0);
  out_str(o, sep);
}

/* "arena 0 (main): system ..., in use ..." and what the walk found, by
 * state: "used" is what the program holds, the next four are free for
 * the program though the arena counts them in use. */
static void dump_arena_header(struct out *o, struct arena *a, int n, const struct dump_totals *tot) {
  out_str(o, "arena ");
  out_u(o, (size_t)n, 0);
  out_str(o, a->is_main ? " (main)" : "");
  out_str(o, ": system ");
  out_u(o, a->system_mem, 0);
  out_str(o, " B, in use ");
  out_u(o, a->count.in_use_bytes, 0);
  out_str(o, " B, threads ");
  out_u(o, a->attached_threads, 0);
  out_str(o, ", dirty ");
  out_u(o, a->dirty_bytes, 0);
  out_str(o, " B, fast ");
  out_u(o, a->fast_bytes, 0);
  out_str(o, " B\n  ");
  for (enum dump_kind k = K_USED; k < K_RUN_FREE; k++)
    out_state_total(o, tot, k, "), ");
  out_state_total(o, tot, K_RUN_FREE, ")\n  ");
  out_state_total(o, tot, K_FREE, "): ");
  out_u(o, tot->dirty, 0);
  out_str(o, " B dirty, ");
  out_u(o, tot->purged, 0);
  out_str(o, " B purged; TOP ");
  out_u(o, tot->bytes[K_TOP], 0);
  out_str(o, " B\n");
}

static void dump_legend(struct out *o) {
  out_str(o, "tidemalloc heap dump\n"
             "  arena: in use = as the arena counts (cached chunks included); then bytes (chunks) by state\n"
             "  chunk lines: user address, chunk size, state; \"x N\": N such chunks in a row\n"
             "  states: used (held by the program), tcache (this thread's cache), fast (fast bin),\n"
             "          remote (freed by another thread, waiting on the arena's remote stack),\n"
             "          tcache-other (in another thread's cache), free <bin> [dirty: pages resident |\n"
             "          purged: pages handed back; free chunks under 8192 B are never purged], TOP, fence;\n"
             "          a run (one chunk cut into blocks of one size for a thread): run (its header), then its\n"
             "          blocks (used, tcache, tcache-other, run-free: given back to the run), run-uncarved\n"
             "  map: '#' used  'c' cached (tcache, fast, remote, tcache-other, run-free)  '.' free, resident\n"
             "       (and runs' uncarved blocks)  '_' free, purged\n"
             "       'T' top  '|' fence  '?' not walked; each character shows what fills most of its slice\n");
}

static void dump_this_tcache(struct out *o) {
  struct tcache *tc = tcache_mine();
  struct size_counts k = {{0}};
  if (tc)
    for (size_t i = 0; i < TCACHE_BINS; i++)
      k.chunks[i] = tc->count[i];
  dump_size_counts(o, "this thread's cache:", &k);
}

/* One arena (locked): collect the free-for-the-program lists, then print. */
static void dump_arena(struct out *o, struct arena *a, int n, struct dump_table *t) {
  struct size_counts fast = {{0}}, remote = {{0}};
  size_t run_free = 0, runs = 0;
  collect_all(t, a, &fast, &remote, &run_free);
  for (struct run *r = a->runs; r; r = r->anext)
    runs++;

  struct dump_arena d = {.o = o, .a = a, .t = t};
  for_each_region(a, region_totals, &d);
  dump_arena_header(o, a, n, &d.tot);
  dump_size_counts(o, "  fast bins:", &fast);
  dump_size_counts(o, "  remote stacks:", &remote);
  out_str(o, "  runs: ");
  out_u(o, runs, 0);
  out_str(o, " (");
  out_u(o, run_free, 0);
  out_str(o, " blocks given back to them)\n");
  dump_bins(o, a);
  if (t->missed) {
    out_str(o, "  note: ");
    out_u(o, t->missed, 0);
    out_str(o, " listed chunks did not fit the lookup table: they show as tcache-other, or under their size's bin\n");
  }
  for_each_region(a, region_dump, &d);
}

void stats_dump(int fd) {
  tide_ensure_init();
  struct out o = {.fd = fd};
  struct dump_table t;
  dump_legend(&o);
  dump_this_tcache(&o);
  int n = 0;
  for (struct arena *a = arenas_first(); a; a = a->next, n++) {
    lock_acquire(&a->lock);
    dump_arena(&o, a, n, &t);
    lock_release(&a->lock);
    out_flush(&o);
  }
  struct mmapped_totals mm = mmapped_totals();
  out_str(&o, "mmapped chunks: ");
  out_u(&o, mm.count, 0);
  out_str(&o, " (");
  out_u(&o, mm.bytes, 0);
  out_str(&o, " B); freed mappings kept for reuse: ");
  out_u(&o, mm.cached_bytes, 0);
  out_str(&o, " B\n");
  out_flush(&o);
}

/* ---- the heap dump as JSON (docs/json.md) */

static const char *const json_state[K_COUNT] = {"used", "tcache", "fast", "remote", "tcache-other", "run-free",
                                                 "free", "top", "fence", "run", "run-uncarved", "broken"};
static const char *const json_purge[] = {"kept", "dirty", "purged", "untracked"};

/* An "elided" entry: chunks past the region's INSPECT_JSON_MAX entries. */
static void json_hidden(struct out *o, struct chunk *first, size_t chunks, size_t bytes) {
  out_str(o, "\n");
  json_open(o, NULL, '{');
  json_addr(o, "addr", (uintptr_t)first);
  json_u(o, "size", bytes);
  json_u(o, "count", chunks);
  json_str(o, "state", "elided");
  json_close(o, '}');
}

static void json_entry(struct out *o, struct chunk *c, size_t size, const struct dump_state *s, size_t count) {
  out_str(o, "\n");
  json_open(o, NULL, '{');
  json_addr(o, "addr", (uintptr_t)c);
  json_u(o, "size", size);
  json_u(o, "count", count);
  json_str(o, "state", json_state[s->kind]);
  if (s->kind == K_FREE) {
    json_u(o, "bin", (size_t)s->bin);
    json_str(o, "bin_kind", s->bin == UNSORTED_BIN ? "unsorted" : s->bin < FIRST_LARGE_BIN ? "small" : "large");
    json_str(o, "purge", json_purge[s->purge]);
  }
  if (s->in_run)
    json_bool(o, "in_run", true);
  if (s->kind == K_RUN) {
    struct run *r = (struct run *)chunk2mem(c);
    json_u(o, "run_bytes", r->size);
    json_u(o, "block_size", run_block_size(r));
    json_u(o, "blocks", r->nblocks);
    /* (read without the run's lock: a snapshot) */
    static const char *const run_states[] = {"owned", "orphan", "releasing", "dead"};
    uint8_t st = __atomic_load_n(&r->state, __ATOMIC_RELAXED);
    json_str(o, "run_state", st < 4 ? run_states[st] : "?");
    json_u(o, "carved", __atomic_load_n(&r->carved, __ATOMIC_RELAXED));
    json_u(o, "carved_free", __atomic_load_n(&r->nfree, __ATOMIC_RELAXED));
  }
  json_close(o, '}');
}

static void json_size_counts(struct out *o, const char *key, const struct size_counts *k) {
  json_open(o, key, '[');
  for (size_t i = 0; i < TCACHE_BINS; i++)
    if (k->chunks[i]) {
      json_open(o, NULL, '{');
      json_u(o, "size", tcache_bin_size(i));
      json_u(o, "chunks", k->chunks[i]);
      json_close(o, '}');
    }
  json_close(o, ']');
}

struct json_arena {
  struct out *o;
  struct arena *a;
  struct dump_table *t;
};

static void region_json(void *ctx, const struct dump_region *r, const char *title) {
  struct json_arena *d = ctx;
  out_str(d->o, "\n");
  json_open(d->o, NULL, '{');
  json_str(d->o, "kind", title[0] == 'b' ? "brk" : "heap");
  json_addr(d->o, "start", (uintptr_t)r->first);
  json_addr(d->o, "end", (uintptr_t)r->first + region_bytes(r));
  json_u(d->o, "bytes", region_bytes(r));
  json_open(d->o, "chunks", '[');
  struct dump_lines l = {.o = d->o, .max = INSPECT_JSON_MAX, .keep_runs = true, .entry = json_entry, .hidden = json_hidden};
  lines_walk(&l, d->a, r, d->t);
  json_close(d->o, ']');
  json_close(d->o, '}');
}

void inspect_arena_json(struct out *o, struct arena *a) {
  /* The lookup table (32 KiB) is mapped for the call: the background
   * thread, which writes the dumps asked for by a signal, has a 64 KiB
   * stack. */
  size_t table_bytes = os_page_up(sizeof(struct dump_table));
  struct dump_table *t = os_map(table_bytes);
  if (!t)
    return;
  struct size_counts fast = {{0}}, remote = {{0}};
  size_t run_free = 0;
  collect_all(t, a, &fast, &remote, &run_free);
  json_size_counts(o, "fast_bins", &fast);
  json_size_counts(o, "remote", &remote);
  json_u(o, "unlisted", t->missed);
  json_open(o, "regions", '[');
  struct json_arena d = {.o = o, .a = a, .t = t};
  for_each_region(a, region_json, &d);
  json_close(o, ']');
  os_unmap(t, table_bytes);
}
