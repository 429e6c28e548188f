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

struct arena_snapshot {
  size_t system, max_system, in_use, free_bytes, free_chunks, fast_bytes, fast_chunks, top;
  size_t bin_chunks[NBINS], bin_bytes[NBINS];
  struct arena_counters count;
};

static void snapshot(struct arena *a, struct arena_snapshot *s) {
  memset(s, 0, sizeof *s);
  lock_acquire(&a->lock);
  tcache_drain_remote(a); /* blocks freed by other threads count as free */
  s->system = a->system_mem;
  s->max_system = a->max_system_mem;
  s->count = a->count;
  s->top = a->top ? chunk_size(a->top) : 0;
  for (int i = 0; i < NFASTBINS; i++)
    for (struct chunk *c = a->fastbins[i]; c; c = link_reveal(&c->fd, c->fd)) {
      s->fast_chunks++;
      s->fast_bytes += chunk_size(c);
    }
  /* Runs' free blocks are free the way fast-bin chunks are: for blocks of
   * their size only, not coalesced (src/run.h). */
  size_t run_blocks = 0, run_bytes = run_idle_bytes(a, &run_blocks);
  s->fast_chunks += run_blocks;
  s->fast_bytes += run_bytes;
  for (int i = UNSORTED_BIN; i <= LAST_BIN; i++) {
    struct chunk *b = bin_at(a, i);
    for (struct chunk *c = b->fd; c != b; c = c->fd) {
      s->bin_chunks[i]++;
      s->bin_bytes[i] += chunk_size(c);
    }
    s->free_chunks += s->bin_chunks[i];
    s->free_bytes += s->bin_bytes[i];
  }
  lock_release(&a->lock);
  /* As glibc: "in use" is everything not free, the top and fast bins too. */
  s->in_use = s->system - s->free_bytes - s->top - s->fast_bytes;
}

struct tide_mallinfo2 stats_mallinfo2(void) {
  tide_ensure_init();
  struct tide_mallinfo2 m = {0};
  struct arena_snapshot s;
  for (struct arena *a = arenas_first(); a; a = a->next) {
    snapshot(a, &s);
    m.arena += s.system;
    m.ordblks += s.free_chunks + (s.top ? 1 : 0);
    m.smblks += s.fast_chunks;
    m.fsmblks += s.fast_bytes;
    m.fordblks += s.free_bytes + s.top + s.fast_bytes;
    m.uordblks += s.in_use;
    if (a == arenas_first())
      m.keepcost = s.top;
  }
  struct mmapped_totals mm = mmapped_totals();
  m.hblks = mm.count;
  m.hblkhd = mm.bytes;
  return m;
}

void stats_print(void) {
  tide_ensure_init();
  struct out o = {.fd = 2};
  struct arena_snapshot s;
  size_t system = 0, in_use = 0;
  int i = 0;
  for (struct arena *a = arenas_first(); a; a = a->next, i++) {
    snapshot(a, &s);
    out_str(&o, "Arena ");
    out_u(&o, (size_t)i, 0);
    out_str(&o, ":\nsystem bytes     = ");
    out_u(&o, s.system, 10);
    out_str(&o, "\nin use bytes     = ");
    out_u(&o, s.in_use, 10);
    out_str(&o, "\n");
    system += s.system;
    in_use += s.in_use;
  }
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

int stats_info_xml(int options, FILE *fp) {
  tide_ensure_init();
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  /* One arena snapshot at a time: fprintf may allocate, so no lock is
   * held while printing.  The snapshot (2 KiB) is mapped for the call:
   * as a static it would need a lock, as thread-local data it made the
   * library's static TLS too big to be dlopen()ed. */
  size_t snap_bytes = os_page_up(sizeof(struct arena_snapshot));
  struct arena_snapshot *sp = os_map(snap_bytes);
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
    for (int i = UNSORTED_BIN; i <= LAST_BIN; i++) {
      if (!sp->bin_chunks[i])
        continue;
      fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
              i == UNSORTED_BIN ? (size_t)0 : (size_t)i * 16, sp->bin_bytes[i] / sp->bin_chunks[i], sp->bin_bytes[i],
              sp->bin_chunks[i]);
    }
    fprintf(fp, "</sizes>\n<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n", sp->fast_chunks, sp->fast_bytes);
    fprintf(fp, "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n", sp->free_chunks, sp->free_bytes + sp->top);
    fprintf(fp, "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n", sp->system,
            sp->max_system);
    fprintf(fp, "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n</heap>\n",
            sp->system, sp->system);
    tot_fast += sp->fast_chunks;
    tot_fast_bytes += sp->fast_bytes;
    tot_rest += sp->free_chunks;
    tot_rest_bytes += sp->free_bytes + sp->top;
    tot_system += sp->system;
    tot_max += sp->max_system;
  }
  struct mmapped_totals mm = mmapped_totals();
  fprintf(fp, "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n", tot_fast, tot_fast_bytes);
  fprintf(fp, "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n", tot_rest, tot_rest_bytes);
  fprintf(fp, "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n", mm.count, mm.bytes);
  fprintf(fp, "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n", tot_system,
          tot_max);
  fprintf(fp, "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n", tot_system,
          tot_system);
  fprintf(fp, "</malloc>\n");
  os_unmap(sp, snap_bytes);
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
}

/* TIDEMALLOC_STATS=1: one line at exit. */
__attribute__((destructor)) static void stats_at_exit(void) {
  if (!tide_initialized || !opt.stats_at_exit)
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
