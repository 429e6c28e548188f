/* SPDX-License-Identifier: MIT */
/*
 * Debug mode (TIDEMALLOC_CONF=debug=1; off by default): every block gets
 * a redzone and a record of where it was allocated, freed blocks wait in
 * a quarantine, and what is still live at exit is reported by call site.
 *
 * A debug block is an ordinary chunk, asked for DEBUG_EXTRA bytes bigger
 * than the program's request; the end of its usable area holds a trailer:
 *
 *   mem                   mem + n                        mem + usable
 *   [ the program's n bytes ][ redzone: REDZONE_BYTE ... ][site][n ^ magic]
 *
 * - malloc fills the n bytes with JUNK_ALLOC (calloc: zero), free with
 *   JUNK_FREE; free and realloc check the redzone (an overflow) and the
 *   magic (LIVE: a block of ours in use; FREED: in the quarantine, so a
 *   second free is a double free);
 * - a freed block waits in the quarantine (QUARANTINE_BLOCKS blocks,
 *   QUARANTINE_BYTES in all); when it leaves, its junk must be intact, or
 *   something wrote to it after free;
 * - every DEBUG_CHECK operations (the debug_check setting) the heap
 *   checker walks every arena;
 * - the site is the call stack at malloc (the return address, then the
 *   caller's frame pointers as far as they are sound), kept once in a
 *   table of sites with its live blocks and bytes; at exit the sites
 *   with blocks still live are printed largest first, each frame as
 *   file+offset (`tidemalloc symbolize` turns those into function, file
 *   and line with addr2line), and with debug=2 also written as JSON to
 *   tidemalloc-leaks.<pid>.json.
 *
 * The thread caches are off in debug mode (every call takes the arena
 * path, where these checks sit), so the fast paths are unchanged and cost
 * nothing when the mode is off.  Nothing here allocates: the tables live
 * in memory of their own (os_map), under one lock.
 */
#include "debug.h"

#include "arena.h"
#include "arenas.h"
#include "os.h"
#include "out.h"
#include "stack.h"

#include <stdlib.h>

#define DEBUG_EXTRA ((size_t)24) /* at least 8 bytes of redzone, the site, the size */
#define REDZONE_BYTE 0xcb
#define JUNK_ALLOC 0xa5
#define JUNK_FREE 0x5a
#define MAGIC_LIVE ((uintptr_t)0x7e1de5a1u << 16)
#define MAGIC_FREED ((uintptr_t)0xf4eed0c5u << 16)
#define QUARANTINE_BLOCKS 4096
#define QUARANTINE_BYTES ((size_t)16 << 20)
#define SITE_FRAMES 8
#define SITE_SLOTS 65536 /* power of two; slot 0 is "unknown" */

struct site {
  uintptr_t frame[SITE_FRAMES];
  uint32_t nframes;
  uint32_t hash;
  size_t live_blocks, live_bytes;
};

struct quarantined {
  char *mem;
  size_t n;
  uint32_t free_site;
};

static struct {
  struct tide_lock lock;
  struct site *sites; /* SITE_SLOTS, open addressing on the stack's hash */
  size_t nsites;
  struct quarantined *q; /* a ring of QUARANTINE_BLOCKS */
  size_t q_head, q_len, q_bytes;
  size_t ops;
} dbg = {.lock = TIDE_LOCK_INIT};

bool tide_debug_on;

/* ------------------------------------------------------------- sites */

static uint32_t hash_frames(const uintptr_t *f, uint32_t n) {
  uint64_t h = 0x9e3779b97f4a7c15u ^ n;
  for (uint32_t i = 0; i < n; i++)
    h = (h ^ f[i]) * 0xbf58476d1ce4e5b9u;
  return (uint32_t)(h >> 32) | 1; /* never 0: 0 marks an empty slot */
}

/* The site of this stack (dbg.lock held): found, or added; 0 when the
 * table is full or could not be made. */
static uint32_t site_of(const uintptr_t *f, uint32_t n) {
  if (!dbg.sites) {
    dbg.sites = os_map(SITE_SLOTS * sizeof *dbg.sites);
    if (!dbg.sites)
      return 0;
  }
  uint32_t h = hash_frames(f, n);
  for (uint32_t i = h & (SITE_SLOTS - 1), tries = 0; tries < SITE_SLOTS; i = (i + 1) & (SITE_SLOTS - 1), tries++) {
    if (i == 0)
      continue;
    struct site *s = &dbg.sites[i];
    if (s->hash == 0) {
      if (dbg.nsites + 1 >= SITE_SLOTS * 3 / 4)
        return 0;
      s->hash = h;
      s->nframes = n;
      memcpy(s->frame, f, n * sizeof *f);
      dbg.nsites++;
      return i;
    }
    if (s->hash == h && s->nframes == n && memcmp(s->frame, f, n * sizeof *f) == 0)
      return i;
  }
  return 0;
}

/* ------------------------------------------------------------ reports */

static void out_site(struct out *o, uint32_t id) {
  struct site *s = dbg.sites && id ? &dbg.sites[id] : NULL;
  if (!s || s->hash == 0) {
    out_str(o, "(unknown)");
    return;
  }
  for (uint32_t i = 0; i < s->nframes; i++) {
    const char *path;
    uintptr_t off;
    if (i > 0 && !stack_frame_file(s->frame[i], &path, &off))
      break; /* past the frames that were sound (code without frame pointers) */
    out_str(o, i ? " <- " : "");
    stack_out_frame(o, s->frame[i]);
  }
}

/* "tidemalloc: <fn>(): <what> ... allocated at <site>", then abort. */
__attribute__((noreturn)) static void debug_fatal(const char *fn, const char *what, size_t n, size_t at, uint32_t alloc_site,
                                      uint32_t free_site) {
  struct out o = {.fd = 2};
  int cancel = os_nocancel_begin();
  out_str(&o, "tidemalloc: ");
  out_str(&o, fn);
  out_str(&o, "(): ");
  out_str(&o, what);
  out_str(&o, " (byte ");
  out_u(&o, at, 0);
  out_str(&o, " of a ");
  out_u(&o, n, 0);
  out_str(&o, "-byte block)\n  allocated at: ");
  out_site(&o, alloc_site);
  if (free_site) {
    out_str(&o, "\n  freed at: ");
    out_site(&o, free_site);
  }
  out_str(&o, "\n");
  out_flush(&o);
  os_nocancel_end(cancel);
  abort();
}

/* ------------------------------------------------------------ blocks */

struct trailer {
  uintptr_t site;
  uintptr_t size; /* n ^ MAGIC_LIVE or n ^ MAGIC_FREED */
};

static struct trailer *trailer_of(void *mem) {
  return (struct trailer *)((char *)mem + tide_raw_usable(mem) - sizeof(struct trailer));
}

static size_t debug_size(struct trailer *t, uintptr_t magic) { return (size_t)(t->size ^ magic); }

/* mem is a debug block in use: its size (n), after checking the magic and
 * the redzone. */
static size_t checked_live(void *mem, const char *fn, struct trailer **tp) {
  struct trailer *t = trailer_of(mem);
  size_t room = (size_t)((char *)t - (char *)mem);
  size_t n = debug_size(t, MAGIC_LIVE);
  if (n > room) {
    size_t fn_n = debug_size(t, MAGIC_FREED);
    if (fn_n <= room)
      debug_fatal(fn, "double free (the block is in the debug quarantine)", fn_n, 0, (uint32_t)t->site, 0);
    tide_fatal(fn, "invalid pointer, or the end of the block was overwritten (no debug trailer)");
  }
  const unsigned char *z = (const unsigned char *)mem;
  for (size_t i = n; i < room; i++)
    if (z[i] != REDZONE_BYTE)
      debug_fatal(fn, "heap buffer overflow: a write past the end of the block", n, i, (uint32_t)t->site, 0);
  *tp = t;
  return n;
}

static void maybe_check_heap(void) {
  if (opt.debug_check && ++dbg.ops % (size_t)opt.debug_check == 0)
    tide_heap_check();
}

/* Set up a block of the raw allocator for a request of n. */
static void *dress(void *mem, size_t n, bool zero, uintptr_t ra, const uintptr_t *fp) {
  if (!mem)
    return NULL;
  uintptr_t f[SITE_FRAMES];
  uint32_t nf = stack_capture(ra, fp, f, SITE_FRAMES);
  struct trailer *t = trailer_of(mem);
  memset(mem, zero ? 0 : JUNK_ALLOC, n);
  memset((char *)mem + n, REDZONE_BYTE, (size_t)((char *)t - (char *)mem) - n);
  lock_acquire(&dbg.lock);
  uint32_t id = site_of(f, nf);
  if (id) {
    dbg.sites[id].live_blocks++;
    dbg.sites[id].live_bytes += n;
  }
  maybe_check_heap();
  lock_release(&dbg.lock);
  t->site = id;
  t->size = n ^ MAGIC_LIVE;
  return mem;
}

static bool add_overflows(size_t n, size_t *total) { return __builtin_add_overflow(n, DEBUG_EXTRA, total); }

void *debug_malloc(size_t n, uintptr_t ra, const void *fp) {
  size_t total;
  if (add_overflows(n, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return dress(tide_raw_malloc(total), n, false, ra, fp);
}

void *debug_calloc(size_t n, uintptr_t ra) {
  size_t total;
  if (add_overflows(n, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return dress(tide_raw_malloc(total), n, true, ra, NULL);
}

void *debug_memalign(size_t align, size_t n, uintptr_t ra) {
  size_t total;
  if (add_overflows(n, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return dress(tide_raw_memalign(align, total), n, false, ra, NULL);
}

/* The oldest block leaves the quarantine (dbg.lock held): its junk must
 * be intact; returned for the caller to free without the lock. */
static void *quarantine_pop(void) {
  struct quarantined e = dbg.q[dbg.q_head];
  dbg.q_head = (dbg.q_head + 1) % QUARANTINE_BLOCKS;
  dbg.q_len--;
  dbg.q_bytes -= e.n;
  const unsigned char *z = (const unsigned char *)e.mem;
  for (size_t i = 0; i < e.n; i++)
    if (z[i] != JUNK_FREE) {
      struct trailer *t = trailer_of(e.mem);
      debug_fatal("free", "write after free (found when the block left the quarantine)", e.n, i,
                  (uint32_t)t->site, e.free_site);
    }
  return e.mem;
}

void debug_free(void *mem, uintptr_t ra, const void *fp) {
  tide_raw_check(mem, "free");
  struct trailer *t;
  size_t n = checked_live(mem, "free", &t);
  uintptr_t f[SITE_FRAMES];
  uint32_t nf = stack_capture(ra, fp, f, SITE_FRAMES);
  memset(mem, JUNK_FREE, n);
  void *out[2];
  unsigned nout = 0;
  lock_acquire(&dbg.lock);
  uint32_t id = (uint32_t)t->site;
  if (id && dbg.sites) {
    dbg.sites[id].live_blocks--;
    dbg.sites[id].live_bytes -= n;
  }
  t->size = n ^ MAGIC_FREED;
  if (!dbg.q)
    dbg.q = os_map(QUARANTINE_BLOCKS * sizeof *dbg.q);
  if (!dbg.q) {
    out[nout++] = mem;
  } else {
    while (dbg.q_len > 0 && (dbg.q_len == QUARANTINE_BLOCKS || dbg.q_bytes + n > QUARANTINE_BYTES) && nout < 2)
      out[nout++] = quarantine_pop();
    dbg.q[(dbg.q_head + dbg.q_len) % QUARANTINE_BLOCKS] = (struct quarantined){mem, n, site_of(f, nf)};
    dbg.q_len++;
    dbg.q_bytes += n;
  }
  maybe_check_heap();
  lock_release(&dbg.lock);
  for (unsigned i = 0; i < nout; i++)
    tide_raw_free(out[i]);
}

void *debug_realloc(void *mem, size_t n, uintptr_t ra) {
  tide_raw_check(mem, "realloc");
  struct trailer *t;
  size_t old = checked_live(mem, "realloc", &t);
  /* Always moves, so a stale pointer to the old block is caught. */
  void *nmem = debug_malloc(n, ra, NULL);
  if (!nmem)
    return NULL;
  memcpy(nmem, mem, old < n ? old : n);
  debug_free(mem, ra, NULL);
  return nmem;
}

size_t debug_usable_size(void *mem) {
  tide_raw_check(mem, "malloc_usable_size");
  struct trailer *t;
  return checked_live(mem, "malloc_usable_size", &t);
}

/* ---------------------------------------------------------------- exit */

static void write_json(uint32_t *order, size_t nsites, size_t blocks, size_t bytes) {
  char path[64];
  if (!out_path(path, sizeof path, "tidemalloc-leaks.%p", ".json"))
    return;
  os_file_remove(path); /* an older process of the same pid left it */
  int fd = os_file_create(path);
  if (fd < 0)
    return;
  struct out o = {.fd = fd};
  json_open(&o, NULL, '{');
  json_u(&o, "live_blocks", blocks);
  json_u(&o, "live_bytes", bytes);
  json_open(&o, "sites", '[');
  for (size_t k = 0; k < nsites; k++) {
    struct site *s = &dbg.sites[order[k]];
    out_str(&o, "\n  ");
    json_open(&o, NULL, '{');
    json_u(&o, "bytes", s->live_bytes);
    json_u(&o, "blocks", s->live_blocks);
    json_open(&o, "stack", '[');
    for (uint32_t i = 0; i < s->nframes; i++) {
      const char *file = "";
      uintptr_t off = s->frame[i];
      if (!stack_frame_file(s->frame[i], &file, &off) && i > 0)
        break;
      json_open(&o, NULL, '{');
      json_str(&o, "file", file);
      json_addr(&o, "offset", off);
      json_close(&o, '}');
    }
    json_close(&o, ']');
    json_close(&o, '}');
  }
  json_close(&o, ']');
  json_close(&o, '}');
  out_str(&o, "\n");
  out_flush(&o);
  os_file_close(fd);
}

#define REPORT_SITES 4096 /* the largest this many are kept for the JSON */
#define REPORT_TEXT_SITES 40 /* and this many printed */

__attribute__((destructor)) void debug_report_at_exit(void) {
  if (!tide_debug_on || !dbg.sites)
    return;
  lock_acquire(&dbg.lock);
  stack_modules_load();
  /* The sites with live blocks, largest first (a selection of the top
   * REPORT_SITES, in memory of its own). */
  uint32_t *order = os_map(REPORT_SITES * sizeof *order);
  size_t nsel = 0, blocks = 0, bytes = 0, nlive = 0;
  for (uint32_t i = 1; i < SITE_SLOTS; i++) {
    struct site *s = &dbg.sites[i];
    if (s->hash == 0 || s->live_blocks == 0)
      continue;
    nlive++;
    blocks += s->live_blocks;
    bytes += s->live_bytes;
    if (!order)
      continue;
    size_t at = nsel < REPORT_SITES ? nsel++ : REPORT_SITES;
    if (at == REPORT_SITES) {
      if (dbg.sites[order[REPORT_SITES - 1]].live_bytes >= s->live_bytes)
        continue;
      at = REPORT_SITES - 1;
    }
    while (at > 0 && dbg.sites[order[at - 1]].live_bytes < s->live_bytes) {
      order[at] = order[at - 1];
      at--;
    }
    order[at] = i;
  }
  int cancel = os_nocancel_begin();
  struct out o = {.fd = 2};
  out_str(&o, "tidemalloc: leak report: ");
  out_u(&o, bytes, 0);
  out_str(&o, " bytes in ");
  out_u(&o, blocks, 0);
  out_str(&o, " blocks still live at exit, from ");
  out_u(&o, nlive, 0);
  out_str(&o, " call sites");
  out_str(&o, nlive ? "; largest first:\n" : "\n");
  for (size_t k = 0; k < nsel && k < REPORT_TEXT_SITES; k++) {
    struct site *s = &dbg.sites[order[k]];
    out_str(&o, "  ");
    out_u(&o, s->live_bytes, 0);
    out_str(&o, " bytes in ");
    out_u(&o, s->live_blocks, 0);
    out_str(&o, " blocks at ");
    out_site(&o, order[k]);
    out_str(&o, "\n");
  }
  if (nlive > REPORT_TEXT_SITES) {
    out_str(&o, "  ... and ");
    out_u(&o, nlive - REPORT_TEXT_SITES, 0);
    out_str(&o, opt.debug >= 2 ? " more sites (all in tidemalloc-leaks.<pid>.json)\n" : " more sites (debug=2 writes them all as JSON)\n");
  }
  out_flush(&o);
  if (opt.debug >= 2 && order)
    write_json(order, nsel, blocks, bytes);
  os_nocancel_end(cancel);
  lock_release(&dbg.lock);
}

void debug_prefork(void) { lock_acquire(&dbg.lock); }
void debug_postfork_parent(void) { lock_release(&dbg.lock); }
void debug_postfork_child(void) { lock_init(&dbg.lock); }
