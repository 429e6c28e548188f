/* SPDX-License-Identifier: MIT */
/*
 * Settings: one table (settings[] below) of every setting, with its name,
 * default, range and a line of documentation.  They are read once, at
 * start-up, from these sources; a later one wins:
 *
 *   1. built-in defaults (the DEFAULT_* values, also in `opt`'s initialiser)
 *   2. GLIBC_TUNABLES=glibc.malloc.<name>=<value>:...   (glibc's meaning)
 *   3. glibc's MALLOC_*_ variables (MALLOC_ARENA_MAX, ...) (glibc's meaning)
 *   4. the old TIDEMALLOC_* variables (TIDEMALLOC_DECAY_MS, ...), aliases
 *   5. TIDEMALLOC_CONF="name=value,name=value" -- every setting by its name
 *
 * and later mallopt() writes through the same table.  A value that cannot
 * be used (unknown name, garbage, out of range) prints one line,
 * "tidemalloc: warning: <key>: <why>; using <value>", and the setting
 * keeps what it had.  Programs running setuid or setgid (AT_SECURE) take
 * nothing from the environment, as glibc does.  Parsing never allocates:
 * getenv, then pointer and length walks over the strings in place.
 *
 * tide_config_print(fd) prints every setting, its value and where the
 * value came from; TIDEMALLOC_CONF=verbose=1 does so to stderr at start-up.
 */
#include "arena.h"
#include "arenas.h"
#include "debug.h"
#include "os.h"
#include "out.h"
#include "prof.h"
#include "purge.h"
#include "tcache.h"

#include <stdlib.h>
#include <limits.h>
#include <sys/auxv.h>

#define DEFAULT_MXFAST 128                   /* request bytes served by fast bins */
#define DEFAULT_MMAP_THRESHOLD (128 * KiB)
#define DEFAULT_MMAP_THRESHOLD_MAX (32 * MiB) /* HEAP_MAX_SIZE / 2 */
#define DEFAULT_TRIM_THRESHOLD (128 * KiB)
#define DEFAULT_TOP_PAD (128 * KiB)
#define DEFAULT_MMAP_MAX 65536
#define DEFAULT_TCACHE_COUNT TCACHE_DEFAULT_COUNT
#define DEFAULT_TCACHE_MAX (TCACHE_BIG_MAX_CHUNK - SIZE_SZ)
#define DEFAULT_DECAY_MS 200
#define DEFAULT_DEBUG_CHECK 100000

struct tide_options opt = {
    .max_fast = (DEFAULT_MXFAST + SIZE_SZ) & ~CHUNK_ALIGN_MASK,
    .trim_threshold = DEFAULT_TRIM_THRESHOLD,
    .top_pad = DEFAULT_TOP_PAD,
    .mmap_threshold = DEFAULT_MMAP_THRESHOLD,
    .mmap_max = DEFAULT_MMAP_MAX,
    .dynamic_threshold = true,
    .tcache_count = DEFAULT_TCACHE_COUNT,
    .tcache_max_bytes = DEFAULT_TCACHE_MAX,
    .purge_decay_ms = DEFAULT_DECAY_MS,
    .debug_check = DEFAULT_DEBUG_CHECK,
    .purge_thread = 1,
    .arena_share = true,
};

/* Values kept only to be shown again (opt holds them in another form, or
 * nowhere: tcache_unsorted_limit is accepted and has no effect). */
static size_t mxfast_request = DEFAULT_MXFAST;
static size_t tcache_unsorted_limit;

/* ------------------------------------------------------------ setters */

/* Each takes a value already checked against the table's range; false
 * when it still cannot be used. */
static bool set_mxfast(size_t v) {
  opt.max_fast = v == 0 ? 0 : (v + SIZE_SZ) & ~CHUNK_ALIGN_MASK;
  mxfast_request = v;
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
  opt.mmap_threshold = v;
  opt.dynamic_threshold = false;
  return true;
}
static bool set_mmap_max(size_t v) {
  opt.mmap_max = (int)v;
  opt.dynamic_threshold = false;
  return true;
}
static bool set_check(size_t v) {
  opt.check_action = (int)v;
  return true;
}
static bool set_perturb(size_t v) {
  opt.perturb = (int)v;
  return true;
}
static bool set_arena_max(size_t v) {
  opt.arena_max = v;
  return true;
}
static bool set_arena_test(size_t v) {
  opt.arena_test = v;
  return true;
}
static bool set_tcache_count(size_t v) {
  if (tide_debug_on)
    v = 0; /* debug mode: every block through the checked path */
  opt.tcache_count = v;
  tcache_set_count(v);
  if (v == 0)
    tcache_big_flush_mine();
  return true;
}
static bool set_tcache_max(size_t v) {
  if (tide_debug_on)
    v = 0;
  opt.tcache_max_bytes = v;
  /* Up to 1032 bytes in the per-size bins; past that, the medium cache. */
  size_t bins = v == 0 ? 0 : v >= TCACHE_MAX_REQUEST ? TCACHE_SMALL_BINS : tcache_request_index(v) + 1;
  tcache_nbins = (uint16_t)(bins < TCACHE_SMALL_BINS ? bins : TCACHE_SMALL_BINS);
  size_t nb = 0;
  tcache_big_max_chunk = v > TCACHE_MAX_REQUEST && request2size(v, &nb) ? nb : 0;
  tcache_big_flush_mine();
  /* The largest request whose chunk falls in the bins in use. */
  tcache_max_request = tcache_nbins == 0 ? 0 : (size_t)(tcache_nbins + 1) * CHUNK_ALIGN - SIZE_SZ;
  tcache_set_count(opt.tcache_count); /* bins past the new end: limit 0 */
  return true;
}
static bool set_tcache_unsorted_limit(size_t v) {
  tcache_unsorted_limit = v;
  return true;
}
static bool set_hugetlb(size_t v) {
  opt.huge_pages = v != 0; /* 2 (hugetlbfs pages) is served as 1 */
  return true;
}
static bool set_decay_ms(size_t v) {
  opt.purge_decay_ms = v == SIZE_MAX ? -1 : (long)v; /* -1: never */
  return true;
}
static bool set_background_thread(size_t v) {
  opt.purge_thread = (int)v;
  return true;
}
static bool set_purge_lazy(size_t v) {
  opt.purge_lazy = v != 0;
  return true;
}
static bool set_arena_share(size_t v) {
  opt.arena_share = v != 0;
  return true;
}
static bool set_stats(size_t v) {
  opt.stats_at_exit = v != 0;
  return true;
}
static bool set_verbose(size_t v) {
  opt.verbose = v != 0;
  return true;
}
static bool set_debug(size_t v) {
  opt.debug = (int)v;
  return true;
}
static bool set_debug_check(size_t v) {
  opt.debug_check = v;
  return true;
}
static bool set_signal(size_t v) {
  opt.stats_signal = (int)v;
  return true;
}

/* Getters, for printing: the value as it would be written. */
static long long get_mxfast(void) { return (long long)mxfast_request; }
static long long get_trim_threshold(void) { return (long long)opt.trim_threshold; }
static long long get_top_pad(void) { return (long long)opt.top_pad; }
static long long get_mmap_threshold(void) { return (long long)opt.mmap_threshold; }
static long long get_mmap_max(void) { return opt.mmap_max; }
static long long get_check(void) { return opt.check_action; }
static long long get_perturb(void) { return opt.perturb; }
static long long get_arena_max(void) { return (long long)opt.arena_max; }
static long long get_arena_test(void) { return (long long)opt.arena_test; }
static long long get_tcache_count(void) { return (long long)opt.tcache_count; }
static long long get_tcache_max(void) { return (long long)opt.tcache_max_bytes; }
static long long get_tcache_unsorted_limit(void) { return (long long)tcache_unsorted_limit; }
static long long get_hugetlb(void) { return opt.huge_pages; }
static long long get_decay_ms(void) { return opt.purge_decay_ms; }
static long long get_background_thread(void) { return opt.purge_thread; }
static long long get_purge_lazy(void) { return opt.purge_lazy; }
static long long get_arena_share(void) { return opt.arena_share; }
static long long get_stats(void) { return opt.stats_at_exit; }
static long long get_verbose(void) { return opt.verbose; }
static long long get_debug(void) { return opt.debug; }
static long long get_debug_check(void) { return (long long)opt.debug_check; }
static long long get_signal(void) { return opt.stats_signal; }
static bool set_stats_file(const char *v, size_t len) {
  if (len == 0 || len >= sizeof opt.stats_file || memchr(v, '\0', len))
    return false;
  memcpy(opt.stats_file, v, len);
  opt.stats_file[len] = '\0';
  return true;
}
static const char *get_stats_file(void) { return opt.stats_file; }

/* ------------------------------------------------------------ the table */

enum setting_kind {
  KIND_SIZE,     /* bytes: decimal or 0x...; in TIDEMALLOC_CONF also k, m, g (KiB, MiB, GiB) */
  KIND_INT,      /* a plain number */
  KIND_BOOL,     /* 0 or 1; in TIDEMALLOC_CONF also true/false, yes/no, on/off */
  KIND_MS,       /* milliseconds, or -1 for never */
  KIND_PATH,     /* a file name (up to the next comma; %p stands for the pid): path_settings[] */
  KIND_RESERVED, /* a name kept for a later version: warns, changes nothing */
};

struct setting {
  const char *name;    /* its key in TIDEMALLOC_CONF; with `tunable`, also glibc.malloc.<name> */
  bool tunable;        /* glibc has it in GLIBC_TUNABLES */
  const char *env;     /* glibc's environment variable, or NULL */
  const char *alias;   /* tidemalloc's older variable, or NULL */
  int param;           /* mallopt parameter, or 0 */
  enum setting_kind kind;
  long long def;       /* built-in default (as written; 0 = automatic where `auto0`) */
  long long lo, hi;    /* the range a value must fall in */
  bool auto0;          /* 0 means "chosen at run time" (shown as "auto") */
  bool (*set)(size_t);
  long long (*get)(void);
  const char *doc;
};

/* KIND_PATH settings: what set, get and def are for the others. */
struct path_setting {
  const char *name;
  bool (*set)(const char *v, size_t len);
  const char *(*get)(void);
  const char *def;
};
static const struct path_setting path_settings[] = {
    {"stats_file", set_stats_file, get_stats_file, ""},
    {"prof_file", prof_set_file, prof_get_file, PROF_DEFAULT_FILE},
};
static const struct path_setting *path_of(const char *name) {
  for (size_t i = 0; i < sizeof path_settings / sizeof path_settings[0]; i++)
    if (strcmp(path_settings[i].name, name) == 0)
      return &path_settings[i];
  return NULL;
}

#define INT_MAX_LL ((long long)INT32_MAX)
#define SIZE_MAX_LL ((long long)(SIZE_MAX >> 1)) /* shown as "any" */

static const struct setting settings[] = {
    /* glibc's, with glibc's meanings */
    {"mxfast", true, NULL, NULL, TIDE_M_MXFAST, KIND_SIZE, DEFAULT_MXFAST, 0, (long long)MXFAST_MAX, false,
     set_mxfast, get_mxfast, "largest request a plain free() keeps in a fast bin"},
    {"trim_threshold", true, "MALLOC_TRIM_THRESHOLD_", NULL, TIDE_M_TRIM_THRESHOLD, KIND_SIZE,
     (long long)DEFAULT_TRIM_THRESHOLD, 0, SIZE_MAX_LL, false, set_trim_threshold, get_trim_threshold,
     "free memory at the top past this goes back to the OS (setting it fixes the mmap threshold)"},
    {"top_pad", true, "MALLOC_TOP_PAD_", NULL, TIDE_M_TOP_PAD, KIND_SIZE, (long long)DEFAULT_TOP_PAD, 0,
     SIZE_MAX_LL, false, set_top_pad, get_top_pad, "extra bytes asked of the OS at each growth, kept at a trim"},
    {"mmap_threshold", true, "MALLOC_MMAP_THRESHOLD_", NULL, TIDE_M_MMAP_THRESHOLD, KIND_SIZE,
     (long long)DEFAULT_MMAP_THRESHOLD, 0, (long long)DEFAULT_MMAP_THRESHOLD_MAX, false, set_mmap_threshold,
     get_mmap_threshold, "requests this big get a mapping of their own (rises with frees up to 32 MiB until set)"},
    {"mmap_max", true, "MALLOC_MMAP_MAX_", NULL, TIDE_M_MMAP_MAX, KIND_INT, DEFAULT_MMAP_MAX, 0, INT_MAX_LL, false,
     set_mmap_max, get_mmap_max, "most mmapped chunks at once (0: none)"},
    {"arena_max", true, "MALLOC_ARENA_MAX", NULL, TIDE_M_ARENA_MAX, KIND_INT, 0, 1, INT_MAX_LL, true,
     set_arena_max, get_arena_max, "most arenas (auto: 8 x usable CPUs + 1)"},
    {"arena_test", true, "MALLOC_ARENA_TEST", NULL, TIDE_M_ARENA_TEST, KIND_INT, 0, 1, INT_MAX_LL, true,
     set_arena_test, get_arena_test, "accepted for compatibility; no effect"},
    {"tcache_count", true, NULL, NULL, TIDE_M_TCACHE_COUNT, KIND_INT, DEFAULT_TCACHE_COUNT, 0, UINT16_MAX, false,
     set_tcache_count, get_tcache_count, "entries per thread-cache bin (fewer past 1 KiB and past 28 threads)"},
    {"tcache_max", true, NULL, NULL, TIDE_M_TCACHE_MAX, KIND_SIZE, (long long)DEFAULT_TCACHE_MAX, 0,
     (long long)DEFAULT_TCACHE_MAX, false, set_tcache_max, get_tcache_max,
     "largest request a thread cache keeps (size-class bins to 1032, a few medium blocks above)"},
    {"tcache_unsorted_limit", true, NULL, NULL, 0, KIND_INT, 0, 0, SIZE_MAX_LL, false, set_tcache_unsorted_limit,
     get_tcache_unsorted_limit, "accepted for compatibility; no effect"},
    {"perturb", true, "MALLOC_PERTURB_", NULL, TIDE_M_PERTURB, KIND_INT, 0, 0, 255, false, set_perturb,
     get_perturb, "fill allocated memory with ~byte and freed memory with byte (0: off)"},
    {"check", true, "MALLOC_CHECK_", NULL, TIDE_M_CHECK_ACTION, KIND_INT, 0, 0, INT_MAX_LL, false, set_check,
     get_check, "accepted for compatibility; the checks are always on"},
    {"hugetlb", true, NULL, NULL, 0, KIND_INT, 0, 0, 2, false, set_hugetlb, get_hugetlb,
     "1: transparent huge pages for heaps, the break and mappings of 2 MiB or more (2 is taken as 1)"},
    /* tidemalloc's own */
    {"decay_ms", false, NULL, "TIDEMALLOC_DECAY_MS", TIDE_M_PURGE_DECAY_MS, KIND_MS, DEFAULT_DECAY_MS, -1,
     INT_MAX_LL, false, set_decay_ms, get_decay_ms, "free pages unused this long go back to the OS (-1: never)"},
    {"background_thread", false, NULL, "TIDEMALLOC_PURGE_THREAD", TIDE_M_PURGE_THREAD, KIND_INT, 1, 0, 2, false,
     set_background_thread, get_background_thread,
     "a thread gives back the memory of idle processes: 0 never, 1 once the program makes a thread, 2 from start-up"},
    {"purge_lazy", false, NULL, "TIDEMALLOC_PURGE_LAZY", TIDE_M_PURGE_LAZY, KIND_BOOL, 0, 0, 1, false,
     set_purge_lazy, get_purge_lazy, "give pages back with MADV_FREE (cheaper; RSS drops only under pressure)"},
    {"arena_share", false, NULL, NULL, TIDE_M_ARENA_SHARE, KIND_BOOL, 1, 0, 1, false,
     set_arena_share, get_arena_share,
     "threads share arenas until one takes its arena lock often while another does (0: an arena per thread, as glibc)"},
    {"stats", false, NULL, "TIDEMALLOC_STATS", 0, KIND_BOOL, 0, 0, 1, false, set_stats, get_stats,
     "print one line of statistics to stderr at exit"},
    {"verbose", false, NULL, NULL, 0, KIND_BOOL, 0, 0, 1, false, set_verbose, get_verbose,
     "print these settings and where each came from to stderr at start-up"},
    {"debug", false, NULL, NULL, 0, KIND_INT, 0, 0, 2, false, set_debug, get_debug,
     "debug mode: redzones, junk, a quarantine, the leak report at exit (2: also as JSON); slow"},
    {"debug_check", false, NULL, NULL, 0, KIND_INT, DEFAULT_DEBUG_CHECK, 0, SIZE_MAX_LL, false, set_debug_check,
     get_debug_check, "debug mode: run the heap checker every this many operations (0: never)"},
    {"stats_file", false, NULL, NULL, 0, KIND_PATH, 0, 0, 0, false, NULL, NULL,
     "write the heap dump as JSON (docs/json.md) here at exit and on `signal` (%p: the pid)"},
    {"signal", false, NULL, NULL, 0, KIND_INT, 0, 0, 64, false, set_signal, get_signal,
     "on this signal (e.g. 12, SIGUSR2) write the heap dump to stats_file (default /tmp/tidemalloc.%p.json)"},
    /* heap profiling (src/prof.c) */
    {"prof", false, NULL, NULL, 0, KIND_BOOL, 0, 0, 1, false, prof_set_on, prof_get_on,
     "heap profiling: sample allocations, write the live heap and allocation profiles at exit"},
    {"prof_rate", false, NULL, NULL, 0, KIND_SIZE, (long long)PROF_DEFAULT_RATE, 1, (long long)1 << 40, false,
     prof_set_rate, prof_get_rate, "heap profiling: mean bytes allocated between two samples"},
    {"prof_file", false, NULL, NULL, 0, KIND_PATH, 0, 0, 0, false, NULL, NULL,
     "heap profiling: profiles at exit go to this + .heap and .alloc (%p: the pid)"},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

/* Where each setting's value came from. */
enum source { SRC_DEFAULT, SRC_TUNABLES, SRC_ENV, SRC_ALIAS, SRC_CONF, SRC_MALLOPT };
static unsigned char source[NSETTINGS];
static bool secure_mode; /* AT_SECURE: the environment was not read */

/* ----------------------------------------------------- text, no malloc */

static bool equal(const char *s, size_t len, const char *word) {
  return strlen(word) == len && memcmp(s, word, len) == 0;
}

static void out_ll(struct out *o, long long v) {
  if (v < 0) {
    out_str(o, "-");
    v = -v;
  }
  out_u(o, (size_t)v, 0);
}

static void out_value(struct out *o, const struct setting *s, long long v) {
  if (s->kind == KIND_RESERVED)
    out_str(o, "-");
  else if (s->kind == KIND_PATH) /* (the default column prints its def) */
    out_str(o, *path_of(s->name)->get() ? path_of(s->name)->get() : "-");
  else if (s->auto0 && v == 0)
    out_str(o, "auto");
  else
    out_ll(o, v);
}

/* "tidemalloc: warning: <key>: <why>; using <value>", in one write. */
static void warn(const char *key, size_t keylen, const char *why, const struct setting *s) {
  struct out o = {.fd = 2};
  out_str(&o, "tidemalloc: warning: ");
  for (size_t i = 0; i < keylen && i < 200; i++) {
    char c[2] = {key[i], 0};
    out_str(&o, c);
  }
  out_str(&o, ": ");
  out_str(&o, why);
  out_str(&o, "; using ");
  if (s && s->kind != KIND_RESERVED)
    out_value(&o, s, s->get ? s->get() : 0);
  else
    out_str(&o, "nothing");
  out_str(&o, "\n");
  out_flush(&o);
}

/* ------------------------------------------------------------ values */

enum parsed { PARSE_OK, PARSE_GARBAGE, PARSE_RANGE };

/* Digits in base 10 or, after 0x, 16. */
static enum parsed parse_digits(const char *s, size_t len, unsigned long long *out) {
  unsigned long long v = 0;
  unsigned base = 10;
  size_t i = 0;
  if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    i = 2;
  }
  if (i == len)
    return PARSE_GARBAGE;
  bool overflow = false;
  for (; i < len; i++) {
    unsigned d;
    char c = s[i];
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f')
      d = (unsigned)(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F')
      d = (unsigned)(c - 'A' + 10);
    else
      return PARSE_GARBAGE;
    if (v > (ULLONG_MAX - d) / base)
      overflow = true;
    v = v * base + d;
  }
  *out = v;
  return overflow ? PARSE_RANGE : PARSE_OK;
}

/* The value text of a setting -> a number in its range.  `conf`: the
 * TIDEMALLOC_CONF spelling, which also takes size suffixes and words. */
static enum parsed parse_value(const struct setting *s, const char *v, size_t len, bool conf, long long *out) {
  if (s->kind == KIND_BOOL && conf) {
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
      if (equal(v, len, yes[i])) {
        *out = 1;
        return PARSE_OK;
      }
      if (equal(v, len, no[i])) {
        *out = 0;
        return PARSE_OK;
      }
    }
  }
  bool negative = len > 0 && v[0] == '-';
  if (negative) {
    v++;
    len--;
  }
  unsigned long long mult = 1;
  if (conf && s->kind == KIND_SIZE && len > 1) {
    switch (v[len - 1]) {
    case 'k': case 'K': mult = KiB; break;
    case 'm': case 'M': mult = MiB; break;
    case 'g': case 'G': mult = 1024 * MiB; break;
    default: break;
    }
    if (mult != 1)
      len--;
  }
  unsigned long long n;
  enum parsed digits = parse_digits(v, len, &n);
  if (digits != PARSE_OK)
    return digits;
  if (n > (unsigned long long)LLONG_MAX / mult)
    return PARSE_RANGE;
  long long x = (long long)(n * mult);
  if (negative)
    x = -x;
  if (x < s->lo || x > s->hi)
    return PARSE_RANGE;
  *out = x;
  return PARSE_OK;
}

static const char *range_text(const struct setting *s, char *buf, size_t cap) {
  struct out o = {.fd = -1};
  if (s->kind == KIND_BOOL) {
    out_str(&o, "not 0 or 1");
  } else {
    out_str(&o, "out of range ");
    out_ll(&o, s->lo);
    out_str(&o, "..");
    if (s->hi >= SIZE_MAX_LL)
      out_str(&o, "any");
    else
      out_ll(&o, s->hi);
  }
  size_t n = o.n < cap - 1 ? o.n : cap - 1;
  memcpy(buf, o.buf, n);
  buf[n] = '\0';
  return buf;
}

/* Apply one value from a source; key/keylen name it in a warning. */
static void apply(size_t i, const char *key, size_t keylen, const char *v, size_t vlen, enum source src) {
  const struct setting *s = &settings[i];
  if (s->kind == KIND_RESERVED) {
    warn(key, keylen, "not in tidemalloc " TIDEMALLOC_VERSION " (a name kept for a later version)", NULL);
    return;
  }
  if (s->kind == KIND_PATH) {
    if (path_of(s->name)->set(v, vlen))
      source[i] = (unsigned char)src;
    else
      warn(key, keylen, vlen ? "too long" : "empty", s);
    return;
  }
  long long x;
  switch (parse_value(s, v, vlen, src == SRC_CONF, &x)) {
  case PARSE_GARBAGE:
    warn(key, keylen, s->kind == KIND_BOOL ? "not 0 or 1" : "not a number", s);
    return;
  case PARSE_RANGE: {
    char why[96];
    warn(key, keylen, range_text(s, why, sizeof why), s);
    return;
  }
  case PARSE_OK:
    break;
  }
  if (!s->set(x < 0 ? SIZE_MAX : (size_t)x)) {
    warn(key, keylen, "refused", s);
    return;
  }
  source[i] = (unsigned char)src;
}

static size_t find_setting(const char *name, size_t len) {
  for (size_t i = 0; i < NSETTINGS; i++)
    if (equal(name, len, settings[i].name))
      return i;
  return NSETTINGS;
}

/* ------------------------------------------------------------ sources */

static void config_print(int fd);

static const char tunable_prefix[] = "glibc.malloc.";

/* GLIBC_TUNABLES=glibc.malloc.name=value:other.name=value:...; names of
 * other namespaces are glibc's business and are skipped. */
static void parse_tunables(const char *s) {
  size_t plen = sizeof tunable_prefix - 1;
  while (*s) {
    const char *end = s;
    while (*end && *end != ':')
      end++;
    const char *eq = s;
    while (eq < end && *eq != '=')
      eq++;
    if ((size_t)(end - s) > plen && memcmp(s, tunable_prefix, plen) == 0) {
      const char *name = s + plen;
      size_t i = find_setting(name, (size_t)(eq - name));
      if (i == NSETTINGS || !settings[i].tunable)
        warn(s, (size_t)(eq - s), "unknown setting", NULL);
      else if (eq == end)
        warn(s, (size_t)(eq - s), "no value", &settings[i]);
      else
        apply(i, s, (size_t)(eq - s), eq + 1, (size_t)(end - eq - 1), SRC_TUNABLES);
    }
    s = *end ? end + 1 : end;
  }
}

static bool is_space(char c) { return c == ' ' || c == '\t'; }

/* TIDEMALLOC_CONF=name=value,name=value (spaces around items allowed; a
 * yes/no setting named alone, as in "verbose,stats", is turned on). */
static void parse_conf(const char *s) {
  while (*s) {
    while (is_space(*s) || *s == ',')
      s++;
    if (!*s)
      break;
    const char *end = s;
    while (*end && *end != ',')
      end++;
    const char *eq = s;
    while (eq < end && *eq != '=')
      eq++;
    const char *kend = eq;
    while (kend > s && is_space(kend[-1]))
      kend--;
    const char *v = eq < end ? eq + 1 : end, *vend = end;
    while (v < vend && is_space(*v))
      v++;
    while (vend > v && is_space(vend[-1]))
      vend--;
    size_t klen = (size_t)(kend - s);
    size_t i = find_setting(s, klen);
    if (i == NSETTINGS)
      warn(s, klen, "unknown setting in TIDEMALLOC_CONF", NULL);
    else if (eq == end && settings[i].kind == KIND_BOOL)
      apply(i, s, klen, "1", 1, SRC_CONF); /* a bare name turns it on */
    else if (eq == end)
      warn(s, klen, "no value (write name=value)", &settings[i]);
    else
      apply(i, s, klen, v, (size_t)(vend - v), SRC_CONF);
    s = end;
  }
}

void opt_init(void) {
  /* setuid/setgid (or file capabilities): the environment is someone
   * else's, so it changes nothing, as in glibc. */
  if (getauxval(AT_SECURE)) {
    secure_mode = true;
    return;
  }
  const char *t = os_getenv("GLIBC_TUNABLES");
  if (t)
    parse_tunables(t);
  /* The MALLOC_*_ variables win over tunables, as they are more specific. */
  for (size_t i = 0; i < NSETTINGS; i++) {
    const char *e = settings[i].env ? os_getenv(settings[i].env) : NULL;
    if (e)
      apply(i, settings[i].env, strlen(settings[i].env), e, strlen(e), SRC_ENV);
  }
  for (size_t i = 0; i < NSETTINGS; i++) {
    const char *e = settings[i].alias ? os_getenv(settings[i].alias) : NULL;
    if (e)
      apply(i, settings[i].alias, strlen(settings[i].alias), e, strlen(e), SRC_ALIAS);
  }
  const char *conf = os_getenv("TIDEMALLOC_CONF");
  if (conf)
    parse_conf(conf);
  if (opt.debug) {
    tide_debug_on = true; /* read once: blocks made before and after would differ */
    set_tcache_count(0);
    set_tcache_max(0);
  }
  if (opt.verbose)
    config_print(2); /* (tide_config_print would wait for this very init) */
}

/* ------------------------------------------------------------ printing */

static void out_pad(struct out *o, size_t written, size_t width) {
  for (; written < width; written++)
    out_str(o, " ");
}

/* Appends s, then spaces up to width (at least one). */
static void out_col(struct out *o, const char *s, size_t width) {
  out_str(o, s);
  size_t n = strlen(s);
  out_pad(o, n, n < width ? width : n + 1);
}

static void out_value_col(struct out *o, const struct setting *s, long long v, size_t width) {
  size_t before = o->n;
  out_value(o, s, v);
  /* (the buffer is flushed between lines, so o->n - before is this text) */
  size_t n = o->n >= before ? o->n - before : 0;
  out_pad(o, n, n < width ? width : n + 1);
}

static const char *source_name(size_t i) {
  const struct setting *s = &settings[i];
  switch ((enum source)source[i]) {
  case SRC_TUNABLES:
    return "GLIBC_TUNABLES";
  case SRC_ENV:
    return s->env;
  case SRC_ALIAS:
    return s->alias;
  case SRC_CONF:
    return "TIDEMALLOC_CONF";
  case SRC_MALLOPT:
    return "mallopt";
  case SRC_DEFAULT:
    break;
  }
  if ((s->set == set_mmap_threshold || s->set == set_trim_threshold) && opt.dynamic_threshold)
    return "default (dynamic)";
  return "default";
}

static void config_print(int fd) {
  struct out o = {.fd = fd};
  out_str(&o, "# tidemalloc " TIDEMALLOC_VERSION " settings; later sources win: default, GLIBC_TUNABLES, "
              "MALLOC_*_, TIDEMALLOC_*, TIDEMALLOC_CONF, mallopt\n");
  if (secure_mode)
    out_str(&o, "# setuid/setgid program (AT_SECURE): the environment was not read\n");
  out_str(&o, "# setting             value      from                    default    range          meaning\n");
  for (size_t i = 0; i < NSETTINGS; i++) {
    const struct setting *s = &settings[i];
    if (s->kind == KIND_RESERVED)
      continue;
    out_col(&o, s->name, 22);
    out_value_col(&o, s, s->get ? s->get() : 0, 11);
    out_col(&o, source_name(i), 24);
    if (s->kind == KIND_PATH)
      out_col(&o, *path_of(s->name)->def ? path_of(s->name)->def : "-", 11);
    else
      out_value_col(&o, s, s->def, 11);
    char range[64];
    struct out r = {.fd = -1};
    if (s->kind == KIND_PATH) {
      out_str(&r, "a path");
    } else if (s->kind == KIND_BOOL) {
      out_str(&r, "0|1");
    } else {
      out_ll(&r, s->lo);
      out_str(&r, "..");
      if (s->hi >= SIZE_MAX_LL)
        out_str(&r, "any");
      else
        out_ll(&r, s->hi);
    }
    memcpy(range, r.buf, r.n);
    range[r.n] = '\0';
    out_col(&o, range, 15);
    out_str(&o, s->doc);
    out_str(&o, "\n");
    out_flush(&o);
  }
  bool any = false;
  for (size_t i = 0; i < NSETTINGS; i++)
    if (settings[i].kind == KIND_RESERVED) {
      out_str(&o, any ? " " : "# names kept for later versions: ");
      out_str(&o, settings[i].name);
      any = true;
    }
  if (any)
    out_str(&o, "\n");
  out_flush(&o);
}

TIDE_EXPORT void tide_config_print(int fd) {
  tide_ensure_init();
  config_print(fd);
}

/* ------------------------------------------------------------ mallopt */

int opt_mallopt(int param, int value) {
  tide_ensure_init();
  /* As in glibc: settle the fast bins first, since max_fast may change. */
  struct arena *a = &main_arena;
  lock_acquire(&a->lock);
  arena_consolidate(a);
  lock_release(&a->lock);
  for (size_t i = 0; i < NSETTINGS; i++) {
    const struct setting *s = &settings[i];
    if (s->param == 0 || s->param != param)
      continue;
    /* -1 is "never" for the decay; other negative values are out of
     * range, as glibc's size_t parameters are huge. */
    long long v = value;
    if (s->set == set_perturb) /* glibc's mallopt takes any byte value */
      v &= 0xff;
    if (v < s->lo || v > s->hi)
      return 0;
    if (!s->set(v < 0 ? SIZE_MAX : (size_t)v))
      return 0;
    source[i] = SRC_MALLOPT;
    if (param == TIDE_M_PURGE_THREAD)
      purge_thread_setting(); /* mallopt is a safe point to make it */
    if (!purge_defers()) /* glibc's immediate trims and unmaps from now on */
      purge_release_deferred();
    return 1;
  }
  return 0;
}
