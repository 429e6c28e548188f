/* SPDX-License-Identifier: MIT */
/*
 * Counters, mallinfo/mallinfo2, malloc_stats, malloc_info and tidemalloc's
 * own statistics.  The heap inspector (tide_heap_dump) is src/inspect.c.
 *
 * Figures are gathered under each arena's lock into a snapshot first,
 * and printed after every lock is released (printing through stdio may
 * allocate).
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

#include <stdio.h>

/* One arena's figures, gathered under its lock. */
struct size_line {
  size_t min, max, count, bytes; /* the chunks' smallest and largest size */
};
struct arena_snapshot {
  bool is_main;
  size_t system, max_system, in_use, top, dirty, threads, heaps;
  size_t fast_chunks, fast_bytes;       /* fast bins and runs' free blocks */
  size_t free_chunks, free_bytes;       /* the bins, unsorted included */
  size_t fastbin_chunks[NFASTBINS];     /* chunk size (i + 2) * 16 */
  size_t runs, run_free[TCACHE_BINS];   /* runs, and their free blocks per size */
  size_t run_free_blocks, run_free_bytes;
  struct size_line bin[NBINS];          /* UNSORTED_BIN ..= LAST_BIN */
  struct arena_counters count;
  struct size_line line[NFASTBINS + TCACHE_BINS + NBINS]; /* malloc_info's, sorted */
};

static void line_add(struct size_line *l, size_t size) {
  if (!l->count || size < l->min)
    l->min = size;
  if (size > l->max)
    l->max = size;
  l->count++;
  l->bytes += size;
}

/* Under a's lock.  Blocks other threads freed to a are taken back into it
 * first, so they count as free. */
static void snapshot_locked(struct arena *a, struct arena_snapshot *s) {
  memset(s, 0, sizeof *s);
  tcache_drain_remote(a);
  s->is_main = a->is_main;
  s->system = a->system_mem;
  s->max_system = a->max_system_mem;
  s->count = a->count;
  s->top = a->top ? chunk_size(a->top) : 0;
  s->dirty = a->dirty_bytes;
  s->threads = a->attached_threads;
  for (struct heap_info *h = a->heap; h; h = h->prev)
    s->heaps++;
  for (int i = 0; i < NFASTBINS; i++)
    for (struct chunk *c = a->fastbins[i]; c; c = link_reveal(&c->fd, c->fd)) {
      s->fastbin_chunks[i]++;
      s->fast_chunks++;
      s->fast_bytes += chunk_size(c);
    }
  /* Runs' free blocks are free the way fast-bin chunks are: for blocks of
   * their size only, not coalesced (src/run.h). */
  s->runs = run_free_by_bin(a, s->run_free);
  for (size_t i = 0; i < TCACHE_BINS; i++) {
    s->run_free_blocks += s->run_free[i];
    s->run_free_bytes += s->run_free[i] * tcache_bin_size(i);
  }
  s->fast_chunks += s->run_free_blocks;
  s->fast_bytes += s->run_free_bytes;
  for (int i = UNSORTED_BIN; i <= LAST_BIN; i++) {
    struct chunk *b = bin_at(a, i);
    for (struct chunk *c = b->fd; c != b; c = c->fd)
      line_add(&s->bin[i], chunk_size(c));
    s->free_chunks += s->bin[i].count;
    s->free_bytes += s->bin[i].bytes;
  }
  /* As glibc: "in use" is everything not free, the top and fast bins too. */
  s->in_use = s->system - s->free_bytes - s->top - s->fast_bytes;
}

static void snapshot(struct arena *a, struct arena_snapshot *s) {
  lock_acquire(&a->lock);
  snapshot_locked(a, s);
  lock_release(&a->lock);
}

/* A snapshot is 12 KiB: mapped for the call (as a static it would need a
 * lock, as thread-local data it would make the library's static TLS too
 * big to be dlopen()ed, and the stack of a small thread may be short). */
static struct arena_snapshot *snapshot_map(void) {
  return os_map(os_page_up(sizeof(struct arena_snapshot)));
}
static void snapshot_unmap(struct arena_snapshot *s) { os_unmap(s, os_page_up(sizeof *s)); }

struct tide_mallinfo2 stats_mallinfo2(void) {
  tide_ensure_init();
  struct tide_mallinfo2 m = {0};
  struct arena_snapshot *s = snapshot_map();
  if (!s)
    return m;
  for (struct arena *a = arenas_first(); a; a = a->next) {
    snapshot(a, s);
    m.arena += s->system;
    m.ordblks += s->free_chunks + (s->top ? 1 : 0);
    m.smblks += s->fast_chunks;
    m.fsmblks += s->fast_bytes;
    m.fordblks += s->free_bytes + s->top + s->fast_bytes;
    m.uordblks += s->in_use;
    if (a == arenas_first())
      m.keepcost = s->top;
  }
  snapshot_unmap(s);
  struct mmapped_totals mm = mmapped_totals();
  m.hblks = mm.count;
  m.hblkhd = mm.bytes;
  return m;
}

void stats_print(void) {
  tide_ensure_init();
  struct out o = {.fd = 2};
  struct arena_snapshot *s = snapshot_map();
  if (!s)
    return;
  size_t system = 0, in_use = 0;
  int i = 0;
  for (struct arena *a = arenas_first(); a; a = a->next, i++) {
    snapshot(a, s);
    out_str(&o, "Arena ");
    out_u(&o, (size_t)i, 0);
    out_str(&o, ":\nsystem bytes     = ");
    out_u(&o, s->system, 10);
    out_str(&o, "\nin use bytes     = ");
    out_u(&o, s->in_use, 10);
    out_str(&o, "\n");
    system += s->system;
    in_use += s->in_use;
  }
  snapshot_unmap(s);
  struct mmapped_totals mm = mmapped_totals();
  out_str(&o, "Total (incl. mmap):\nsystem bytes     = ");
  out_u(&o, system + mm.bytes, 10);
  out_str(&o, "\nin use bytes     = ");
  out_u(&o, in_use + mm.bytes, 10);
  out_str(&o, "\nmax mmap regions = ");
  out_u(&o, mm.max_count, 10);
  out_str(&o, "\nmax mmap bytes   = ");
  out_u(&o, mm.max_bytes, 10);
  out_str(&o, "\n");
  out_flush(&o);
}

/*
 * malloc_info: glibc's XML, element for element, with exact figures.
 * Per arena, in <sizes>, as glibc orders them: each non-empty fast bin
 * (from the size after the previous bin's to its own, as glibc) and,
 * among them by size, each size of runs' free blocks (from = to = the
 * block size); then each non-empty small or large bin, from its smallest
 * chunk to its largest; the unsorted bin last.  Then the
 * totals: "fast" = the fast bins and runs' free blocks, "rest" = the bins
 * plus the top chunk (counted as one), as glibc.  (glibc writes the chunk
 * sizes of the bins with the P bit added, so its figures there are one
 * byte high per chunk; these are the sizes.)
 */
static void xml_size(FILE *fp, const char *tag, size_t from, size_t to, size_t total, size_t count) {
  fprintf(fp, "  <%s from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n", tag, from, to, total, count);
}

static void xml_tail(FILE *fp, size_t fast, size_t fast_bytes, size_t rest, size_t rest_bytes) {
  fprintf(fp, "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n", fast, fast_bytes);
  fprintf(fp, "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n", rest, rest_bytes);
}

int stats_info_xml(int options, FILE *fp) {
  tide_ensure_init();
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  /* One arena snapshot at a time: fprintf may allocate, so no lock is
   * held while printing. */
  struct arena_snapshot *sp = snapshot_map();
  if (!sp) {
    errno = ENOMEM;
    return -1;
  }
  size_t tot_fast = 0, tot_fast_bytes = 0, tot_rest = 0, tot_rest_bytes = 0, tot_system = 0, tot_max = 0;
  fprintf(fp, "<malloc version=\"1\">\n");
  int n = 0;
  for (struct arena *a = arenas_first(); a; a = a->next, n++) {
    snapshot(a, sp);
    fprintf(fp, "<heap nr=\"%d\">\n<sizes>\n", n);
    /* Fast bins, runs' free blocks and the bins, by size; unsorted last. */
    size_t nl = 0;
    for (int i = 0; i < NFASTBINS; i++)
      if (sp->fastbin_chunks[i]) {
        size_t size = (size_t)(i + 2) * CHUNK_ALIGN;
        sp->line[nl++] = (struct size_line){size - CHUNK_ALIGN + 1, size, sp->fastbin_chunks[i],
                                           sp->fastbin_chunks[i] * size};
      }
    for (size_t i = 0; i < TCACHE_BINS; i++)
      if (sp->run_free[i]) {
        size_t size = tcache_bin_size(i);
        sp->line[nl++] = (struct size_line){size, size, sp->run_free[i], sp->run_free[i] * size};
      }
    for (int i = UNSORTED_BIN + 1; i <= LAST_BIN; i++)
      if (sp->bin[i].count)
        sp->line[nl++] = sp->bin[i];
    for (size_t i = 1; i < nl; i++) /* insertion sort by "from": a few dozen lines */
      for (size_t j = i; j > 0 && sp->line[j].min < sp->line[j - 1].min; j--) {
        struct size_line tmp = sp->line[j];
        sp->line[j] = sp->line[j - 1];
        sp->line[j - 1] = tmp;
      }
    for (size_t i = 0; i < nl; i++)
      xml_size(fp, "size", sp->line[i].min, sp->line[i].max, sp->line[i].bytes, sp->line[i].count);
    const struct size_line *u = &sp->bin[UNSORTED_BIN];
    if (u->count)
      xml_size(fp, "unsorted", u->min, u->max, u->bytes, u->count);
    size_t rest = sp->free_chunks + (sp->top ? 1 : 0), rest_bytes = sp->free_bytes + sp->top;
    fprintf(fp, "</sizes>\n");
    xml_tail(fp, sp->fast_chunks, sp->fast_bytes, rest, rest_bytes);
    fprintf(fp, "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n", sp->system,
            sp->max_system);
    fprintf(fp, "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n", sp->system,
            sp->system);
    if (!sp->is_main)
      fprintf(fp, "<aspace type=\"subheaps\" size=\"%zu\"/>\n", sp->heaps);
    fprintf(fp, "</heap>\n");
    tot_fast += sp->fast_chunks;
    tot_fast_bytes += sp->fast_bytes;
    tot_rest += rest;
    tot_rest_bytes += rest_bytes;
    tot_system += sp->system;
    tot_max += sp->max_system;
  }
  struct mmapped_totals mm = mmapped_totals();
  xml_tail(fp, tot_fast, tot_fast_bytes, tot_rest, tot_rest_bytes);
  fprintf(fp, "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n", mm.count, mm.bytes);
  fprintf(fp, "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n", tot_system,
          tot_max);
  fprintf(fp, "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n", tot_system,
          tot_system);
  fprintf(fp, "</malloc>\n");
  snapshot_unmap(sp);
  return 0;
}

static size_t peak_total_in_use, peak_total_os;

static void raise_to(size_t *peak_var, size_t now) {
  size_t peak = __atomic_load_n(peak_var, __ATOMIC_RELAXED);
  while (now > peak && !__atomic_compare_exchange_n(peak_var, &peak, now, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

void stats_note_growth(void) {
  size_t mm = mmapped_totals_unlocked_bytes(), in_use = mm, os = mm;
  for (struct arena *a = arenas_first(); a; a = a->next) {
    in_use += __atomic_load_n(&a->count.in_use_bytes, __ATOMIC_RELAXED);
    os += __atomic_load_n(&a->system_mem, __ATOMIC_RELAXED);
  }
  raise_to(&peak_total_in_use, in_use);
  raise_to(&peak_total_os, os);
}

void stats_get(struct tide_stats *out) {
  tide_ensure_init();
  memset(out, 0, sizeof *out);
  struct tcache *tc = tcache_mine();
  for (struct arena *a = arenas_first(); a; a = a->next) {
    lock_acquire(&a->lock);
    tcache_drain_remote(a); /* blocks freed by other threads count as free */
    if (tc && a == arenas_thread_arena())
      tcache_publish(tc, a);
    out->malloc_calls += a->count.malloc_calls;
    out->free_calls += a->count.free_calls;
    out->realloc_calls += a->count.realloc_calls;
    out->bytes_requested += a->count.bytes_requested;
    out->in_use_bytes += a->count.in_use_bytes - run_idle_bytes(a, NULL);
    out->peak_in_use_bytes += a->count.peak_in_use_bytes;
    out->os_bytes += a->system_mem;
    out->peak_os_bytes += a->max_system_mem;
    out->purged_bytes += a->count.purged_bytes;
    out->arenas++;
    lock_release(&a->lock);
  }
  struct mmapped_totals mm = mmapped_totals();
  out->in_use_bytes += mm.bytes;
  /* The per-arena peaks were summed above; the sampled total is truer
   * when arenas peaked at different times. */
  size_t sampled = __atomic_load_n(&peak_total_in_use, __ATOMIC_RELAXED);
  if (sampled < out->in_use_bytes)
    sampled = out->in_use_bytes;
  out->peak_in_use_bytes = sampled;
  sampled = __atomic_load_n(&peak_total_os, __ATOMIC_RELAXED);
  out->peak_os_bytes = sampled > out->os_bytes ? sampled : out->os_bytes;
  out->os_bytes += mm.bytes + mm.cached_bytes;
  out->peak_os_bytes += mm.max_bytes;
  out->mmapped_chunks = mm.count;
  out->cached_bytes = tcache_cached_bytes(NULL);
  out->live_bytes = out->in_use_bytes > out->cached_bytes ? out->in_use_bytes - out->cached_bytes : 0;
}

/* ---- JSON (docs/json.md) */

static void json_totals(struct out *o) {
  struct tide_stats s;
  stats_get(&s);
  json_open(o, "totals", '{');
  json_u(o, "malloc_calls", s.malloc_calls);
  json_u(o, "free_calls", s.free_calls);
  json_u(o, "realloc_calls", s.realloc_calls);
  json_u(o, "bytes_requested", s.bytes_requested);
  json_u(o, "in_use_bytes", s.in_use_bytes);
  json_u(o, "cached_bytes", s.cached_bytes);
  json_u(o, "live_bytes", s.live_bytes);
  json_u(o, "peak_in_use_bytes", s.peak_in_use_bytes);
  json_u(o, "os_bytes", s.os_bytes);
  json_u(o, "peak_os_bytes", s.peak_os_bytes);
  json_u(o, "resident_bytes", os_resident_bytes());
  json_u(o, "purged_bytes", s.purged_bytes);
  json_u(o, "mmapped_chunks", s.mmapped_chunks);
  json_u(o, "arenas", s.arenas);
  json_close(o, '}');
}

static void json_count_bytes(struct out *o, const char *key, size_t chunks, size_t bytes, const char *chunks_name) {
  json_open(o, key, '{');
  json_u(o, chunks_name, chunks);
  json_u(o, "bytes", bytes);
  json_close(o, '}');
}

static void json_arena_figures(struct out *o, const struct arena_snapshot *s, int n) {
  json_u(o, "index", (size_t)n);
  json_bool(o, "main", s->is_main);
  json_u(o, "threads", s->threads);
  json_u(o, "system_bytes", s->system);
  json_u(o, "max_system_bytes", s->max_system);
  json_u(o, "in_use_bytes", s->in_use);
  json_u(o, "top_bytes", s->top);
  json_u(o, "dirty_bytes", s->dirty);
  json_u(o, "heaps", s->heaps);
  json_count_bytes(o, "fast", s->fast_chunks - s->run_free_blocks, s->fast_bytes - s->run_free_bytes, "chunks");
  json_open(o, "runs", '{');
  json_u(o, "count", s->runs);
  json_u(o, "free_blocks", s->run_free_blocks);
  json_u(o, "free_bytes", s->run_free_bytes);
  json_close(o, '}');
  json_count_bytes(o, "free", s->free_chunks, s->free_bytes, "chunks");
  json_open(o, "bins", '[');
  for (int i = UNSORTED_BIN; i <= LAST_BIN; i++) {
    const struct size_line *l = &s->bin[i];
    if (!l->count)
      continue;
    json_open(o, NULL, '{');
    json_u(o, "index", (size_t)i);
    json_str(o, "kind", i == UNSORTED_BIN ? "unsorted" : i < FIRST_LARGE_BIN ? "small" : "large");
    size_t lo = 0, hi = SIZE_MAX;
    if (i != UNSORTED_BIN)
      bin_range(i, &lo, &hi);
    json_u(o, "lo", lo);
    if (hi == SIZE_MAX)
      json_null(o, "hi");
    else
      json_u(o, "hi", hi);
    json_u(o, "min", l->min);
    json_u(o, "max", l->max);
    json_u(o, "chunks", l->count);
    json_u(o, "bytes", l->bytes);
    json_close(o, '}');
  }
  json_close(o, ']');
}

static void json_caches(struct out *o) {
  struct tcache *mine = tcache_mine();
  json_open(o, "this_thread_cache", '[');
  for (size_t i = 0; mine && i < TCACHE_BINS; i++)
    if (mine->count[i]) {
      json_open(o, NULL, '{');
      json_u(o, "size", tcache_bin_size(i));
      json_u(o, "chunks", mine->count[i]);
      json_close(o, '}');
    }
  json_close(o, ']');
  size_t blocks, bytes = tcache_cached_bytes(&blocks);
  json_open(o, "thread_caches", '{');
  json_u(o, "blocks", blocks);
  json_u(o, "bytes", bytes);
  json_close(o, '}');
}

/* The whole document; heap: the heap dump's parts too.  False if it
 * could not be written whole. */
bool stats_write_json(int fd, bool heap) {
  tide_ensure_init();
  struct arena_snapshot *s = snapshot_map();
  if (!s)
    return false;
  struct out o = {.fd = fd};
  json_open(&o, NULL, '{');
  json_open(&o, "tidemalloc", '{');
  json_str(&o, "version", TIDEMALLOC_VERSION);
  json_u(&o, "schema", 1);
  json_str(&o, "kind", heap ? "heap" : "stats");
  json_u(&o, "pid", (size_t)os_pid());
  json_close(&o, '}');
  out_str(&o, "\n");
  json_totals(&o);
  out_str(&o, "\n");
  json_open(&o, "arenas", '[');
  int n = 0;
  for (struct arena *a = arenas_first(); a; a = a->next, n++) {
    out_str(&o, "\n");
    json_open(&o, NULL, '{');
    lock_acquire(&a->lock);
    snapshot_locked(a, s);
    json_arena_figures(&o, s, n);
    if (heap)
      inspect_arena_json(&o, a);
    lock_release(&a->lock);
    json_close(&o, '}');
    out_flush(&o);
  }
  json_close(&o, ']');
  out_str(&o, "\n");
  struct mmapped_totals mm = mmapped_totals();
  json_open(&o, "mmapped", '{');
  json_u(&o, "chunks", mm.count);
  json_u(&o, "bytes", mm.bytes);
  json_u(&o, "max_chunks", mm.max_count);
  json_u(&o, "max_bytes", mm.max_bytes);
  json_u(&o, "kept_bytes", mm.cached_bytes);
  if (heap)
    mmapped_json_list(&o, "list", INSPECT_JSON_MAX);
  json_close(&o, '}');
  if (heap) {
    out_str(&o, "\n");
    json_caches(&o);
  }
  json_close(&o, '}');
  out_str(&o, "\n");
  out_flush(&o);
  snapshot_unmap(s);
  return !o.error;
}

/* ---- the heap dump to a file: at exit, and on demand (stats_signal) */

/* opt.stats_file with %p the pid (default with only a signal set:
 * /tmp/tidemalloc.%p.json), into buf; false if it does not fit. */
static bool stats_path(char *buf, size_t cap) {
  return out_path(buf, cap, opt.stats_file[0] ? opt.stats_file : "/tmp/tidemalloc.%p.json", "");
}

/*
 * Written to "<path>.<tid>.tmp" -- created new (O_EXCL, never through a
 * symlink), readable by the owner only: a dump shows where the heap is --
 * then renamed over <path>: a reader never sees half a file.  A write
 * that fails (a full disk) leaves no file.  One writer at a time
 * (stats_writing): a request that comes meanwhile waits for the next
 * serving point.  Cancellation is held off and errno kept: this may run
 * inside a malloc.
 */
static int stats_writing;

static bool stats_write_file_once(void) {
  char path[300], tmp[340];
  if (!stats_path(path, sizeof path))
    return false;
  size_t n = strlen(path);
  memcpy(tmp, path, n);
  tmp[n++] = '.';
  char digits[24];
  size_t nd = 0;
  for (unsigned long v = (unsigned long)os_tid(); v || nd == 0; v /= 10)
    digits[nd++] = (char)('0' + v % 10);
  while (nd)
    tmp[n++] = digits[--nd];
  memcpy(tmp + n, ".tmp", 5);
  os_file_remove(tmp); /* left by a process that died writing, with our pid and tid */
  int fd = os_file_create(tmp);
  if (fd < 0) {
    struct out o = {.fd = 2};
    out_str(&o, "tidemalloc: warning: stats_file: cannot create ");
    out_str(&o, tmp);
    out_str(&o, "\n");
    out_flush(&o);
    return false;
  }
  bool ok = stats_write_json(fd, true);
  ok = os_file_close(fd) == 0 && ok; /* (a failed close may have lost what was written) */
  if (ok && os_file_rename(tmp, path))
    return true;
  os_file_remove(tmp);
  return false;
}

bool stats_write_file(void) {
  if (__atomic_exchange_n(&stats_writing, 1, __ATOMIC_ACQUIRE))
    return false; /* another thread is writing one */
  int cancel = os_nocancel_begin();
  int saved = errno;
  bool ok = stats_write_file_once();
  errno = saved;
  os_nocancel_end(cancel);
  __atomic_store_n(&stats_writing, 0, __ATOMIC_RELEASE);
  return ok;
}

/*
 * On demand: the signal handler only sets stats_dump_pending and wakes
 * the background thread (an atomic store and at most one FUTEX_WAKE: it
 * takes no lock and allocates nothing).  The dump itself is written by
 * whichever comes first -- the background thread, when it wakes, or the
 * next malloc that leaves the thread cache's fast path -- at a point
 * where that thread holds none of tidemalloc's locks; it takes each
 * arena's lock in turn, like malloc_info.  A process with the background
 * thread (the signal setting starts it at load time unless
 * background_thread=0) answers within its period, at most a second, even
 * when idle; without it, at its next slow-path malloc.
 */
int stats_dump_pending;

void stats_postfork_child(void) {
  /* A request to the parent is not the child's; the child's own writer
   * is none. */
  __atomic_store_n(&stats_dump_pending, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&stats_writing, 0, __ATOMIC_RELAXED);
}

static void on_stats_signal(int sig) {
  (void)sig;
  int saved = errno;
  __atomic_store_n(&stats_dump_pending, 1, __ATOMIC_SEQ_CST);
  purge_wake();
  errno = saved;
}

void stats_signal_install(void) {
  if (!opt.stats_signal)
    return;
  if (!os_signal_catch(opt.stats_signal, on_stats_signal)) {
    os_write_err("tidemalloc: warning: signal: cannot be caught; using 0\n");
    opt.stats_signal = 0;
  }
}

/* A request is taken only by the thread that will write it: while
 * another writes, it stays pending for the next serving point. */
void stats_serve_request(void) {
  if (__atomic_load_n(&stats_writing, __ATOMIC_ACQUIRE))
    return;
  if (__atomic_exchange_n(&stats_dump_pending, 0, __ATOMIC_ACQ_REL))
    stats_write_file();
}

/* At exit: the heap dump to stats_file; with stats=1, one line to stderr. */
__attribute__((destructor)) static void stats_at_exit(void) {
  if (!tide_initialized)
    return;
  if (opt.stats_file[0]) {
    /* A dump being written (a signal's) is waited for: the one at exit
     * is the last word. */
    for (int tries = 0; !stats_write_file() && __atomic_load_n(&stats_writing, __ATOMIC_RELAXED) && tries < 2000;
         tries++)
      os_yield();
  }
  if (!opt.stats_at_exit)
    return;
  struct tide_stats s;
  stats_get(&s);
  const struct {
    const char *name;
    size_t value;
  } fields[] = {
      {"malloc_calls", s.malloc_calls},  {"free_calls", s.free_calls},          {"realloc_calls", s.realloc_calls},
      {"bytes_requested", s.bytes_requested}, {"peak_in_use", s.peak_in_use_bytes}, {"peak_os", s.peak_os_bytes},
      {"arenas", s.arenas},              {"purged", s.purged_bytes},
  };
  struct out o = {.fd = 2};
  out_str(&o, "tidemalloc stats:");
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    out_str(&o, " ");
    out_str(&o, fields[i].name);
    out_str(&o, "=");
    out_u(&o, fields[i].value, 0);
  }
  out_str(&o, "\n");
  out_flush(&o);
}
