/* SPDX-License-Identifier: MIT */
/*
 * Options: one table, read once at start-up from the environment
 * (glibc's MALLOC_*_ variables, GLIBC_TUNABLES=glibc.malloc.*, and
 * tidemalloc's own TIDEMALLOC_*); mallopt() writes through the same
 * table.
 */
#include "arena.h"
#include "arenas.h"
#include "os.h"
#include "purge.h"
#include "tcache.h"

#include <stdlib.h>

#define DEFAULT_MXFAST 128                   /* request bytes served by fast bins */
#define DEFAULT_MMAP_THRESHOLD (128 * KiB)
#define DEFAULT_MMAP_THRESHOLD_MAX (32 * MiB) /* HEAP_MAX_SIZE / 2 */
#define DEFAULT_TRIM_THRESHOLD (128 * KiB)
#define DEFAULT_TOP_PAD (128 * KiB)
#define DEFAULT_MMAP_MAX 65536
#define DEFAULT_TCACHE_COUNT TCACHE_DEFAULT_COUNT
#define DEFAULT_DECAY_MS 200

struct tide_options opt = {
    .max_fast = (DEFAULT_MXFAST + SIZE_SZ) & ~CHUNK_ALIGN_MASK,
    .trim_threshold = DEFAULT_TRIM_THRESHOLD,
    .top_pad = DEFAULT_TOP_PAD,
    .mmap_threshold = DEFAULT_MMAP_THRESHOLD,
    .mmap_max = DEFAULT_MMAP_MAX,
    .dynamic_threshold = true,
    .tcache_count = DEFAULT_TCACHE_COUNT,
    .tcache_max_bytes = TCACHE_BIG_MAX_CHUNK - SIZE_SZ,
    .purge_decay_ms = DEFAULT_DECAY_MS,
    .purge_thread = true,
};

/* Setters: false when the value is out of range (mallopt returns 0). */
static bool set_mxfast(size_t v) {
  if (v > MXFAST_MAX)
    return false;
  opt.max_fast = v == 0 ? 0 : (v + SIZE_SZ) & ~CHUNK_ALIGN_MASK;
  return true;
}
static bool set_trim_threshold(size_t v) {
  opt.trim_threshold = v;
  opt.dynamic_threshold = false;
  return true;
}
static bool set_top_pad(size_t v) {
  opt.top_pad = v;
  opt.dynamic_threshold = false;
  return true;
}
static bool set_mmap_threshold(size_t v) {
  if (v > DEFAULT_MMAP_THRESHOLD_MAX)
    return false;
  opt.mmap_threshold = v;
  opt.dynamic_threshold = false;
  return true;
}
static bool set_mmap_max(size_t v) {
  if (v > INT32_MAX)
    return false;
  opt.mmap_max = (int)v;
  opt.dynamic_threshold = false;
  return true;
}
static bool set_check(size_t v) {
  opt.check_action = (int)v;
  return true;
}
static bool set_perturb(size_t v) {
  opt.perturb = (int)(v & 0xff);
  return true;
}
static bool set_arena_max(size_t v) {
  if (v == 0 || v > INT32_MAX)
    return false;
  opt.arena_max = v;
  return true;
}
static bool set_arena_test(size_t v) {
  if (v == 0 || v > INT32_MAX)
    return false;
  opt.arena_test = v;
  return true;
}
static bool set_tcache_count(size_t v) {
  if (v > UINT16_MAX)
    return false;
  opt.tcache_count = v;
  tcache_set_count(v);
  if (v == 0)
    tcache_big_flush_mine();
  return true;
}
static bool set_tcache_max(size_t v) {
  if (v > TCACHE_BIG_MAX_CHUNK - SIZE_SZ)
    return false;
  opt.tcache_max_bytes = v;
  /* Up to 1032 bytes in the per-size bins; past that, the medium cache. */
  size_t bins = v == 0 ? 0 : tcache_request_index(v) + 1;
  tcache_nbins = (uint16_t)(bins < TCACHE_BINS ? bins : TCACHE_BINS);
  size_t nb = 0;
  tcache_big_max_chunk = v > TCACHE_MAX_REQUEST && request2size(v, &nb) ? nb : 0;
  tcache_big_flush_mine();
  /* The largest request whose chunk falls in the bins in use. */
  tcache_max_request = tcache_nbins == 0 ? 0 : (size_t)(tcache_nbins + 1) * CHUNK_ALIGN - SIZE_SZ;
  tcache_set_count(opt.tcache_count); /* bins past the new end: limit 0 */
  return true;
}
static bool set_decay_ms(size_t v) {
  if (v == SIZE_MAX) { /* -1: never */
    opt.purge_decay_ms = -1;
    return true;
  }
  if (v > (size_t)INT32_MAX)
    return false;
  opt.purge_decay_ms = (long)v;
  return true;
}
static bool set_purge_thread(size_t v) {
  opt.purge_thread = v != 0;
  return true;
}
static bool set_purge_lazy(size_t v) {
  opt.purge_lazy = v != 0;
  return true;
}
static bool set_huge_pages(size_t v) {
  if (v > 2)
    return false;
  opt.huge_pages = v != 0; /* 2 (hugetlbfs pages) is served as 1 */
  return true;
}
static bool set_stats(size_t v) {
  opt.stats_at_exit = v != 0;
  return true;
}

static const struct option_def {
  const char *env;     /* environment variable, or NULL */
  const char *tunable; /* name after "glibc.malloc." in GLIBC_TUNABLES, or NULL */
  int param;           /* mallopt parameter, or 0 */
  bool (*set)(size_t);
  const char *doc;
} options[] = {
    {NULL, "mxfast", TIDE_M_MXFAST, set_mxfast, "largest request a plain free keeps in fast bins (0..160, default 128)"},
    {"MALLOC_TRIM_THRESHOLD_", "trim_threshold", TIDE_M_TRIM_THRESHOLD, set_trim_threshold,
     "top chunk size that triggers giving memory back (default 128 KiB)"},
    {"MALLOC_TOP_PAD_", "top_pad", TIDE_M_TOP_PAD, set_top_pad, "extra bytes per growth, kept at trim (default 128 KiB)"},
    {"MALLOC_MMAP_THRESHOLD_", "mmap_threshold", TIDE_M_MMAP_THRESHOLD, set_mmap_threshold,
     "requests this big get their own mapping (default 128 KiB, dynamic up to 32 MiB)"},
    {"MALLOC_MMAP_MAX_", "mmap_max", TIDE_M_MMAP_MAX, set_mmap_max, "most mmapped chunks at once (default 65536)"},
    {"MALLOC_CHECK_", "check", TIDE_M_CHECK_ACTION, set_check, "accepted for compatibility; checks are always on"},
    {"MALLOC_PERTURB_", "perturb", TIDE_M_PERTURB, set_perturb, "fill allocated memory with ~byte, freed with byte"},
    {"MALLOC_ARENA_MAX", "arena_max", TIDE_M_ARENA_MAX, set_arena_max, "most arenas (default 8 x usable CPUs + 1)"},
    {"MALLOC_ARENA_TEST", "arena_test", TIDE_M_ARENA_TEST, set_arena_test, "accepted for compatibility"},
    {NULL, "tcache_count", TIDE_M_TCACHE_COUNT, set_tcache_count, "entries per thread-cache bin (default 64)"},
    {NULL, "tcache_max", TIDE_M_TCACHE_MAX, set_tcache_max, "largest request in the thread cache (default 65528; bins up to 1032, a few medium blocks above)"},
    {"TIDEMALLOC_DECAY_MS", NULL, TIDE_M_PURGE_DECAY_MS, set_decay_ms,
     "free pages unused this long go back to the OS (default 200; -1 never)"},
    {"TIDEMALLOC_PURGE_THREAD", NULL, TIDE_M_PURGE_THREAD, set_purge_thread,
     "1: a background thread returns memory of idle processes (default 1)"},
    {"TIDEMALLOC_PURGE_LAZY", NULL, TIDE_M_PURGE_LAZY, set_purge_lazy,
     "1: purge with MADV_FREE (cheaper, but RSS only drops under memory pressure)"},
    {NULL, "hugetlb", 0, set_huge_pages,
     "1: transparent huge pages (MADV_HUGEPAGE) for heaps, the break and large mappings; 2 is taken as 1; default 0"},
    {"TIDEMALLOC_STATS", NULL, 0, set_stats, "1: print one line of statistics at exit"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

/* Parse a decimal or 0x number; -1 means "never" for the decay. */
static bool parse_number(const char *s, size_t len, size_t *out) {
  if (len == 2 && s[0] == '-' && s[1] == '1') {
    *out = SIZE_MAX;
    return true;
  }
  size_t v = 0;
  size_t i = 0;
  int base = 10;
  if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    i = 2;
  }
  if (i == len)
    return false;
  for (; i < len; i++) {
    int d;
    char c = s[i];
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return false;
    if (v > (SIZE_MAX - (size_t)d) / (size_t)base)
      return false;
    v = v * (size_t)base + (size_t)d;
  }
  *out = v;
  return true;
}

/* GLIBC_TUNABLES=glibc.malloc.name=value:other.name=value:... */
static void parse_tunables(const char *s) {
  static const char prefix[] = "glibc.malloc.";
  while (*s) {
    const char *end = s;
    while (*end && *end != ':')
      end++;
    const char *eq = s;
    while (eq < end && *eq != '=')
      eq++;
    size_t plen = sizeof prefix - 1;
    if (eq < end && (size_t)(eq - s) > plen && memcmp(s, prefix, plen) == 0) {
      const char *name = s + plen;
      size_t nlen = (size_t)(eq - name), v;
      for (size_t i = 0; i < NOPTIONS; i++) {
        const char *t = options[i].tunable;
        if (t && strlen(t) == nlen && memcmp(t, name, nlen) == 0 &&
            parse_number(eq + 1, (size_t)(end - eq - 1), &v))
          options[i].set(v);
      }
    }
    s = *end ? end + 1 : end;
  }
}

void opt_init(void) {
  const char *t = os_getenv("GLIBC_TUNABLES");
  if (t)
    parse_tunables(t);
  /* The MALLOC_*_ variables win over tunables, as they are more specific. */
  for (size_t i = 0; i < NOPTIONS; i++) {
    size_t v;
    const char *e = options[i].env ? os_getenv(options[i].env) : NULL;
    if (e && parse_number(e, strlen(e), &v))
      options[i].set(v);
  }
}

int opt_mallopt(int param, int value) {
  tide_ensure_init();
  /* As in glibc: settle the fast bins first, since max_fast may change. */
  struct arena *a = &main_arena;
  lock_acquire(&a->lock);
  arena_consolidate(a);
  lock_release(&a->lock);
  for (size_t i = 0; i < NOPTIONS; i++) {
    if (options[i].param != 0 && options[i].param == param) {
      /* Negative values become huge, as glibc's size_t parameters do. */
      if (!options[i].set((size_t)(long)value))
        return 0;
      if (!purge_defers()) /* glibc's immediate trims and unmaps from now on */
        purge_release_deferred();
      return 1;
    }
  }
  return 0;
}
