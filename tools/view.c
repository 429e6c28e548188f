/* SPDX-License-Identifier: MIT */
/*
 * tidemalloc view: the heap dump of docs/json.md (schema 1) as a picture.
 *
 *   tidemalloc view [--svg | --html] [-o FILE] [--layout FILE]
 *                   [--width PX] [--rows N] dump.json
 *
 * The picture, top to bottom:
 *
 *   title and totals   live, cached, in use, OS, resident; then the others
 *   legend             every colour below, and this thread's cache (right)
 *   per arena          its figures; per region (brk segment or heap):
 *                        the region to scale, wrapped into rows;
 *                        "entries": one cell per entry of the dump
 *                      at the right, the bins, fast bins and remote stacks
 *   mmapped chunks     a strip of their own, to scale, in address order
 *
 * To scale means honest: each region has one scale, a power of two bytes
 * per pixel, the finest that fits the region in --rows rows (8) of --width
 * pixels (960), and every chunk is exactly size / scale pixels wide, even
 * when that is less than a pixel.  Chunks too small to see there are seen
 * in the entries strip below it, where every entry of the dump (a run of
 * "count" equal chunks) gets a cell of the same width whatever its size.
 * Ticks along the top edge of a row mark chunk boundaries where chunks
 * are 3 pixels wide or more; a black outline marks each run's span
 * ("run_bytes" from its header), in both strips; a magenta mark, 2 pixels
 * wide whatever the scale, the place of a "broken" header.
 *
 * Every box has a <title>: address, size, count, state, bin.  The HTML
 * page shows it at once beside the pointer (a few lines of script).
 * --layout FILE writes where each box went (CSS pixels, the SVG's own
 * units), one per line:
 *
 *   svg W H
 *   strip ARENA REGION x0 y0 PITCH SCALE ROW_BYTES ROWS
 *                                                (a to-scale strip: rows
 *                                                 PITCH apart, SCALE bytes a
 *                                                 pixel; "mmapped -" for the
 *                                                 mapped chunks)
 *   legend KEY FILL x y w h
 *   seg ARENA REGION ENTRY KEY x y w h CHUNK_W   (to scale; an entry that
 *                                                 wraps has several)
 *   cell ARENA REGION ENTRY KEY x y w h          (the entries strip)
 *   mmap N KEY x y w h                           (N: index in "list")
 *
 * ARENA is the arena's position in "arenas", REGION and ENTRY positions in
 * "regions" and "chunks".  The colours are fixed (the table `styles`);
 * the tests read them from there, and the legend shows each.
 *
 * The JSON reader is ours and small: the whole document is read into a
 * tree, values are looked up by key, unknown keys are ignored (the schema
 * may add fields), and a schema number other than 1 is refused.
 */
#define _GNU_SOURCE
#include "view.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

static const char *me = "tidemalloc view";

/* ------------------------------------------------------------------ */
/* JSON                                                                 */
/* ------------------------------------------------------------------ */

enum jtype { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
  enum jtype t;
  int exact;            /* J_NUM: a non-negative integer held exactly in u */
  unsigned long long u; /* J_NUM */
  double d;             /* J_NUM */
  char *s;              /* J_STR, NUL-terminated */
  size_t n;             /* J_ARR, J_OBJ: how many members */
  struct jv *v;         /* their values */
  char **k;             /* J_OBJ: their keys */
};

struct jparser {
  const char *p, *start, *end;
  int depth;
  char err[200];
};

#define JSON_MAX_DEPTH 64

static int jfail(struct jparser *jp, const char *what) {
  if (!jp->err[0]) {
    int line = 1, col = 1;
    for (const char *c = jp->start; c < jp->p && c < jp->end; c++) {
      if (*c == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
    snprintf(jp->err, sizeof jp->err, "line %d, column %d: %s", line, col, what);
  }
  return -1;
}

static void jspace(struct jparser *jp) {
  while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
    jp->p++;
}

static void jfree(struct jv *v) {
  if (v->t == J_STR)
    free(v->s);
  if (v->t == J_ARR || v->t == J_OBJ) {
    for (size_t i = 0; i < v->n; i++) {
      jfree(&v->v[i]);
      if (v->k)
        free(v->k[i]);
    }
    free(v->v);
    free(v->k);
  }
  memset(v, 0, sizeof *v);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int jhex4(struct jparser *jp, unsigned *out) {
  if (jp->end - jp->p < 4)
    return jfail(jp, "\\u needs four hex digits");
  unsigned x = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(jp->p[i]);
    if (h < 0)
      return jfail(jp, "\\u needs four hex digits");
    x = x * 16 + (unsigned)h;
  }
  jp->p += 4;
  *out = x;
  return 0;
}

/* A string, the opening quote under jp->p.  The text decoded is never
 * longer than the text read (an escape of 6 or 12 characters gives at most
 * 3 or 4 bytes of UTF-8), so one buffer of the raw length does. */
static int jstring(struct jparser *jp, char **out) {
  jp->p++;
  const char *q = jp->p;
  while (q < jp->end && *q != '"')
    q += (*q == '\\' && q + 1 < jp->end) ? 2 : 1;
  if (q >= jp->end)
    return jfail(jp, "string not closed");
  char *buf = malloc((size_t)(q - jp->p) + 1), *w = buf;
  if (!buf)
    return jfail(jp, "out of memory");
  while (*jp->p != '"') {
    unsigned char c = (unsigned char)*jp->p;
    if (c < 0x20) {
      free(buf);
      return jfail(jp, "control character in a string");
    }
    if (c != '\\') {
      *w++ = (char)c;
      jp->p++;
      continue;
    }
    jp->p++;
    char e = *jp->p++;
    unsigned cp;
    switch (e) {
    case '"': *w++ = '"'; break;
    case '\\': *w++ = '\\'; break;
    case '/': *w++ = '/'; break;
    case 'b': *w++ = '\b'; break;
    case 'f': *w++ = '\f'; break;
    case 'n': *w++ = '\n'; break;
    case 'r': *w++ = '\r'; break;
    case 't': *w++ = '\t'; break;
    case 'u':
      if (jhex4(jp, &cp) != 0) {
        free(buf);
        return -1;
      }
      if (cp >= 0xd800 && cp < 0xdc00) { /* a high surrogate: its pair must follow */
        unsigned lo;
        if (jp->end - jp->p < 2 || jp->p[0] != '\\' || jp->p[1] != 'u') {
          free(buf);
          return jfail(jp, "unpaired surrogate in \\u escape");
        }
        jp->p += 2;
        if (jhex4(jp, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff) {
          free(buf);
          return jfail(jp, "unpaired surrogate in \\u escape");
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        free(buf);
        return jfail(jp, "unpaired surrogate in \\u escape");
      }
      if (cp == 0) {
        free(buf);
        return jfail(jp, "\\u0000 in a string");
      }
      if (cp < 0x80) {
        *w++ = (char)cp;
      } else if (cp < 0x800) {
        *w++ = (char)(0xc0 | (cp >> 6));
        *w++ = (char)(0x80 | (cp & 0x3f));
      } else if (cp < 0x10000) {
        *w++ = (char)(0xe0 | (cp >> 12));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *w++ = (char)(0x80 | (cp & 0x3f));
      } else {
        *w++ = (char)(0xf0 | (cp >> 18));
        *w++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *w++ = (char)(0x80 | (cp & 0x3f));
      }
      break;
    default:
      jp->p--;
      free(buf);
      return jfail(jp, "unknown escape in a string");
    }
  }
  jp->p++;
  *w = '\0';
  *out = buf;
  return 0;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int jnumber(struct jparser *jp, struct jv *out) {
  const char *s = jp->p, *q = s;
  int integer = 1;
  if (q < jp->end && *q == '-')
    q++;
  if (q >= jp->end || *q < '0' || *q > '9')
    return jfail(jp, "bad number");
  if (*q == '0')
    q++;
  else
    while (q < jp->end && *q >= '0' && *q <= '9')
      q++;
  if (q < jp->end && *q == '.') {
    integer = 0;
    q++;
    if (q >= jp->end || *q < '0' || *q > '9')
      return jfail(jp, "bad number: a digit must follow the point");
    while (q < jp->end && *q >= '0' && *q <= '9')
      q++;
  }
  if (q < jp->end && (*q == 'e' || *q == 'E')) {
    integer = 0;
    q++;
    if (q < jp->end && (*q == '+' || *q == '-'))
      q++;
    if (q >= jp->end || *q < '0' || *q > '9')
      return jfail(jp, "bad number: a digit must follow the exponent");
    while (q < jp->end && *q >= '0' && *q <= '9')
      q++;
  }
  char tmp[64];
  size_t len = (size_t)(q - s);
  if (len >= sizeof tmp)
    return jfail(jp, "number too long");
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  out->t = J_NUM;
  out->d = strtod(tmp, NULL);
  if (integer && tmp[0] != '-') {
    errno = 0;
    out->u = strtoull(tmp, NULL, 10);
    out->exact = errno == 0;
  }
  jp->p = q;
  return 0;
}

static int jliteral(struct jparser *jp, const char *word, enum jtype t, struct jv *out) {
  size_t n = strlen(word);
  if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0)
    return jfail(jp, "unexpected character");
  jp->p += n;
  out->t = t;
  return 0;
}

static int jvalue(struct jparser *jp, struct jv *out);

/* Arrays and objects: members appended to a growing vector. */
static int jgrow(struct jparser *jp, struct jv *v, size_t *cap, int keys) {
  if (v->n < *cap)
    return 0;
  size_t ncap = *cap ? *cap * 2 : 8;
  struct jv *nv = realloc(v->v, ncap * sizeof *nv);
  if (!nv)
    return jfail(jp, "out of memory");
  v->v = nv;
  if (keys) {
    char **nk = realloc(v->k, ncap * sizeof *nk);
    if (!nk)
      return jfail(jp, "out of memory");
    v->k = nk;
  }
  *cap = ncap;
  return 0;
}

static int jcontainer(struct jparser *jp, struct jv *out, int object) {
  char close = object ? '}' : ']';
  if (++jp->depth > JSON_MAX_DEPTH)
    return jfail(jp, "nested too deep");
  out->t = object ? J_OBJ : J_ARR;
  size_t cap = 0;
  jp->p++;
  jspace(jp);
  if (jp->p < jp->end && *jp->p == close) {
    jp->p++;
    jp->depth--;
    return 0;
  }
  for (;;) {
    if (jgrow(jp, out, &cap, object) != 0)
      return -1;
    struct jv *m = &out->v[out->n];
    memset(m, 0, sizeof *m);
    if (object) {
      jspace(jp);
      if (jp->p >= jp->end || *jp->p != '"')
        return jfail(jp, "a key (a string) expected");
      if (jstring(jp, &out->k[out->n]) != 0)
        return -1;
      jspace(jp);
      if (jp->p >= jp->end || *jp->p != ':') {
        out->n++; /* (so that the key is freed) */
        return jfail(jp, "':' expected after a key");
      }
      jp->p++;
    }
    out->n++;
    if (jvalue(jp, m) != 0)
      return -1;
    jspace(jp);
    if (jp->p < jp->end && *jp->p == ',') {
      jp->p++;
      continue;
    }
    if (jp->p < jp->end && *jp->p == close) {
      jp->p++;
      jp->depth--;
      return 0;
    }
    return jfail(jp, object ? "',' or '}' expected" : "',' or ']' expected");
  }
}

static int jvalue(struct jparser *jp, struct jv *out) {
  jspace(jp);
  if (jp->p >= jp->end)
    return jfail(jp, "unexpected end of the document");
  switch (*jp->p) {
  case '{': return jcontainer(jp, out, 1);
  case '[': return jcontainer(jp, out, 0);
  case '"':
    out->t = J_STR;
    return jstring(jp, &out->s);
  case 't': return jliteral(jp, "true", J_TRUE, out);
  case 'f': return jliteral(jp, "false", J_FALSE, out);
  case 'n': return jliteral(jp, "null", J_NULL, out);
  default: return jnumber(jp, out);
  }
}

/* The whole text must be one value. */
static int jparse(const char *text, size_t len, struct jv *root, char *err, size_t errcap) {
  struct jparser jp = {.p = text, .start = text, .end = text + len};
  memset(root, 0, sizeof *root);
  int r = jvalue(&jp, root);
  if (r == 0) {
    jspace(&jp);
    if (jp.p != jp.end)
      r = jfail(&jp, "more after the end of the document");
  }
  if (r != 0) {
    snprintf(err, errcap, "%s", jp.err);
    jfree(root);
  }
  return r;
}

static const struct jv *jget(const struct jv *o, const char *key) {
  if (!o || o->t != J_OBJ)
    return NULL;
  for (size_t i = 0; i < o->n; i++)
    if (strcmp(o->k[i], key) == 0)
      return &o->v[i];
  return NULL;
}

static int jis_num(const struct jv *o, const char *key) {
  const struct jv *v = jget(o, key);
  return v && v->t == J_NUM;
}

/* A count or a size: 0 when absent, not a number, or negative. */
static unsigned long long jnum(const struct jv *o, const char *key) {
  const struct jv *v = jget(o, key);
  if (!v || v->t != J_NUM)
    return 0;
  if (v->exact)
    return v->u;
  if (!(v->d > 0)) /* (NaN too) */
    return 0;
  return v->d >= 18446744073709551615.0 ? ULLONG_MAX : (unsigned long long)v->d;
}

static const char *jstr(const struct jv *o, const char *key) {
  const struct jv *v = jget(o, key);
  return v && v->t == J_STR ? v->s : NULL;
}

static const struct jv *jarr(const struct jv *o, const char *key) {
  const struct jv *v = jget(o, key);
  return v && v->t == J_ARR ? v : NULL;
}

static int jtrue(const struct jv *o, const char *key) {
  const struct jv *v = jget(o, key);
  return v && v->t == J_TRUE;
}

/* ------------------------------------------------------------------ */
/* Colours                                                              */
/* ------------------------------------------------------------------ */

enum key {
  K_USED,
  K_TCACHE,
  K_TCACHE_OTHER,
  K_FAST,
  K_REMOTE,
  K_RUN,
  K_RUN_FREE,
  K_RUN_UNCARVED,
  K_FREE_UNSORTED,
  K_FREE_UNSORTED_PURGED,
  K_FREE_SMALL,
  K_FREE_SMALL_PURGED,
  K_FREE_LARGE,
  K_FREE_LARGE_PURGED,
  K_TOP,
  K_FENCE,
  K_BROKEN,
  K_ELIDED,
  K_UNKNOWN,
  K_GAP,
  NKEYS
};

static const struct style {
  const char *key, *fill;
  const char *label; /* in the legend */
  const char *says;  /* in hover text */
} styles[NKEYS] = {
    [K_USED] = {"used", "#2f5d9e", "held by the program", "used: held by the program"},
    [K_TCACHE] = {"tcache", "#f28e2b", "this thread's cache", "tcache: in the dumping thread's cache"},
    [K_TCACHE_OTHER] = {"tcache-other", "#9c4f12", "another thread's cache", "tcache-other: in another thread's cache"},
    [K_FAST] = {"fast", "#e9c400", "a fast bin", "fast: in a fast bin"},
    [K_REMOTE] = {"remote", "#b0409c", "freed by another thread",
                  "remote: freed by another thread, on the arena's remote stack"},
    [K_RUN] = {"run", "#2b1d5c", "a run's header", "run: a run's header"},
    [K_RUN_FREE] = {"run-free", "#48b0a8", "given back to its run", "run-free: a block given back to its run"},
    [K_RUN_UNCARVED] = {"run-uncarved", "#c6e8e4", "a run, not cut yet",
                        "run-uncarved: the part of a run not cut into blocks yet"},
    [K_FREE_UNSORTED] = {"free-unsorted", "#9bdc6e", "unsorted bin, resident", "free"},
    [K_FREE_UNSORTED_PURGED] = {"free-unsorted-purged", "#e4f5d6", "unsorted, purged", "free"},
    [K_FREE_SMALL] = {"free-small", "#3f9e3a", "small bin, resident", "free"},
    [K_FREE_SMALL_PURGED] = {"free-small-purged", "#c9e6c4", "small bin, purged", "free"},
    [K_FREE_LARGE] = {"free-large", "#1d5e2a", "large bin, resident", "free"},
    [K_FREE_LARGE_PURGED] = {"free-large-purged", "#a9c8ad", "large bin, purged", "free"},
    [K_TOP] = {"top", "#8c8c8c", "the top chunk", "top: the top chunk"},
    [K_FENCE] = {"fence", "#111111", "closes a region", "fence: closes a region"},
    [K_BROKEN] = {"broken", "#ff00ff", "bad header, walk stopped", "broken: a header that cannot be right; the walk stopped"},
    [K_ELIDED] = {"elided", "#d9c9a3", "not listed one by one", "elided"},
    [K_UNKNOWN] = {"unknown", "#e01e1e", "a state not known here", "a state this viewer does not know"},
    [K_GAP] = {"gap", "#efefef", "not walked, not listed", "gap"},
};

static const char *run_outline = "#000000";

/* The colour of a chunk entry: its state, and for "free" its bin's kind
 * and whether its pages were handed back. */
static enum key entry_key(const char *state, const char *bin_kind, const char *purge) {
  static const struct {
    const char *state;
    enum key k;
  } plain[] = {
      {"used", K_USED},     {"tcache", K_TCACHE},     {"tcache-other", K_TCACHE_OTHER}, {"fast", K_FAST},
      {"remote", K_REMOTE}, {"run", K_RUN},           {"run-free", K_RUN_FREE},         {"run-uncarved", K_RUN_UNCARVED},
      {"top", K_TOP},       {"fence", K_FENCE},       {"broken", K_BROKEN},             {"elided", K_ELIDED},
  };
  if (!state)
    return K_UNKNOWN;
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
    if (strcmp(state, plain[i].state) == 0)
      return plain[i].k;
  if (strcmp(state, "free") != 0 || !bin_kind)
    return K_UNKNOWN;
  int purged = purge && strcmp(purge, "purged") == 0;
  if (strcmp(bin_kind, "unsorted") == 0)
    return purged ? K_FREE_UNSORTED_PURGED : K_FREE_UNSORTED;
  if (strcmp(bin_kind, "small") == 0)
    return purged ? K_FREE_SMALL_PURGED : K_FREE_SMALL;
  if (strcmp(bin_kind, "large") == 0)
    return purged ? K_FREE_LARGE_PURGED : K_FREE_LARGE;
  return K_UNKNOWN;
}

/* ------------------------------------------------------------------ */
/* The dump, as the picture needs it                                    */
/* ------------------------------------------------------------------ */

struct entry {
  uint64_t addr, size, count;
  uint64_t span;     /* bytes from addr this entry covers */
  uint64_t run_end;  /* "run": addr + run_bytes */
  const struct jv *o;
  const char *state;
  enum key key;
};

struct region {
  const char *kind;
  uint64_t start, end;
  struct entry *e;
  size_t n;
};

struct model {
  const struct jv *root;
  struct region **regions; /* per arena */
  size_t *nregions;
  size_t narenas;
  const struct jv *arenas;
  uint64_t *mm_addr, *mm_size; /* the mmapped list, in address order */
  size_t *mm_index;            /* each one's position in "list" */
  size_t nmm;
};

static int parse_addr(const char *s, uint64_t *out) {
  if (!s || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || !s[2])
    return -1;
  uint64_t x = 0;
  for (const char *c = s + 2; *c; c++) {
    int h = hexval(*c);
    if (h < 0 || x >> 60)
      return -1;
    x = x * 16 + (uint64_t)h;
  }
  *out = x;
  return 0;
}

static uint64_t mul_sat(uint64_t a, uint64_t b) {
  if (a && b > UINT64_MAX / a)
    return UINT64_MAX;
  return a * b;
}

static int model_entry(struct entry *e, const struct jv *o, size_t ai, size_t ri, size_t ci) {
  memset(e, 0, sizeof *e);
  e->o = o;
  e->state = jstr(o, "state");
  if (o->t != J_OBJ || parse_addr(jstr(o, "addr"), &e->addr) != 0 || !jis_num(o, "size") || !e->state) {
    fprintf(stderr, "%s: arenas[%zu].regions[%zu].chunks[%zu]: needs \"addr\" (\"0x..\"), \"size\" and \"state\"\n",
            me, ai, ri, ci);
    return -1;
  }
  e->size = jnum(o, "size");
  e->count = jis_num(o, "count") ? jnum(o, "count") : 1;
  e->key = entry_key(e->state, jstr(o, "bin_kind"), jstr(o, "purge"));
  /* "elided": count chunks of size bytes in all */
  e->span = e->key == K_ELIDED ? e->size : mul_sat(e->size, e->count);
  if (e->key == K_RUN)
    e->run_end = e->addr + jnum(o, "run_bytes");
  return 0;
}

static int cmp_u64_pair(const void *a, const void *b) {
  const uint64_t *x = a, *y = b;
  return x[0] < y[0] ? -1 : x[0] > y[0];
}

static void model_free(struct model *m) {
  for (size_t a = 0; m->regions && m->nregions && a < m->narenas; a++) {
    for (size_t r = 0; m->regions[a] && r < m->nregions[a]; r++)
      free(m->regions[a][r].e);
    if (m->regions)
      free(m->regions[a]);
  }
  free(m->regions);
  free(m->nregions);
  free(m->mm_addr);
  free(m->mm_size);
  free(m->mm_index);
  memset(m, 0, sizeof *m);
}

static int model_build(struct model *m, const struct jv *root) {
  memset(m, 0, sizeof *m);
  m->root = root;
  const struct jv *id = jget(root, "tidemalloc");
  if (!id || id->t != J_OBJ) {
    fprintf(stderr, "%s: not a tidemalloc dump (no \"tidemalloc\" object; see docs/json.md)\n", me);
    return -1;
  }
  if (!jis_num(id, "schema") || jnum(id, "schema") != 1) {
    fprintf(stderr, "%s: schema %llu: this viewer reads schema 1 (docs/json.md)\n", me, jnum(id, "schema"));
    return -1;
  }
  m->arenas = jarr(root, "arenas");
  m->narenas = m->arenas ? m->arenas->n : 0;
  m->regions = calloc(m->narenas + 1, sizeof *m->regions);
  m->nregions = calloc(m->narenas + 1, sizeof *m->nregions);
  if (!m->regions || !m->nregions)
    return -1;
  for (size_t a = 0; a < m->narenas; a++) {
    const struct jv *regs = jarr(&m->arenas->v[a], "regions");
    size_t nr = regs ? regs->n : 0;
    m->regions[a] = calloc(nr + 1, sizeof **m->regions);
    if (!m->regions[a])
      return -1;
    m->nregions[a] = nr;
    for (size_t r = 0; r < nr; r++) {
      const struct jv *ro = &regs->v[r];
      struct region *rg = &m->regions[a][r];
      rg->kind = jstr(ro, "kind");
      if (parse_addr(jstr(ro, "start"), &rg->start) != 0 || parse_addr(jstr(ro, "end"), &rg->end) != 0) {
        fprintf(stderr, "%s: arenas[%zu].regions[%zu]: needs \"start\" and \"end\" (\"0x..\")\n", me, a, r);
        return -1;
      }
      const struct jv *ch = jarr(ro, "chunks");
      rg->n = ch ? ch->n : 0;
      rg->e = calloc(rg->n + 1, sizeof *rg->e);
      if (!rg->e)
        return -1;
      for (size_t c = 0; c < rg->n; c++)
        if (model_entry(&rg->e[c], &ch->v[c], a, r, c) != 0)
          return -1;
    }
  }
  const struct jv *list = jarr(jget(root, "mmapped"), "list");
  size_t n = list ? list->n : 0;
  uint64_t *pairs = calloc(2 * n + 2, sizeof *pairs);
  m->mm_addr = calloc(n + 1, sizeof *m->mm_addr);
  m->mm_size = calloc(n + 1, sizeof *m->mm_size);
  m->mm_index = calloc(n + 1, sizeof *m->mm_index);
  if (!pairs || !m->mm_addr || !m->mm_size || !m->mm_index) {
    free(pairs);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t addr;
    if (parse_addr(jstr(&list->v[i], "addr"), &addr) != 0 || !jis_num(&list->v[i], "size")) {
      fprintf(stderr, "%s: mmapped.list[%zu]: needs \"addr\" (\"0x..\") and \"size\"\n", me, i);
      free(pairs);
      return -1;
    }
    pairs[2 * i] = addr;
    pairs[2 * i + 1] = i;
  }
  qsort(pairs, n, 2 * sizeof *pairs, cmp_u64_pair);
  for (size_t i = 0; i < n; i++) {
    m->mm_index[i] = (size_t)pairs[2 * i + 1];
    m->mm_addr[i] = pairs[2 * i];
    m->mm_size[i] = jnum(&list->v[m->mm_index[i]], "size");
  }
  m->nmm = n;
  free(pairs);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Drawing                                                              */
/* ------------------------------------------------------------------ */

#define PAD 16         /* around everything */
#define GUTTER 28      /* between the strips and the lists */
#define LIST_W 380     /* the lists' column */
#define ROW_H 24       /* a to-scale row */
#define ROW_GAP 3
#define TICK_H 7       /* chunk boundaries: ticks this high along a row's top */
#define CELL_H 14      /* a cell of the entries strip */
#define CELL_MIN 6     /* narrowest cell */
#define CELL_MAX 60    /* widest cell */
#define LINE_H 16      /* a line of text */
#define LIST_LINE 15   /* a line of a list */

struct draw {
  FILE *f;      /* the SVG's body */
  FILE *layout; /* or NULL */
  const struct model *m;
  int strip_w;  /* pixels in a row */
  int max_rows; /* rows a region may take */
  double y;     /* next free line of the left column */
  double list_x;
};

static void xml_text(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    default:
      if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t')
        fputc(*s, f);
    }
  }
}

/* Numbers as people read them: exact below 10 KiB, else one decimal. */
static const char *human(char *buf, size_t cap, uint64_t n) {
  static const char *unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (n < 10240) {
    snprintf(buf, cap, "%llu B", (unsigned long long)n);
    return buf;
  }
  double v = (double)n / 1024;
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  snprintf(buf, cap, v < 100 ? "%.1f %s" : "%.0f %s", v, unit[u]);
  return buf;
}

/* Coordinates with three decimals at most, trailing zeros dropped. */
static const char *coord(char *buf, double v) {
  snprintf(buf, 32, "%.3f", v);
  char *dot = strchr(buf, '.');
  if (dot) {
    char *e = buf + strlen(buf) - 1;
    while (e > dot && *e == '0')
      *e-- = '\0';
    if (e == dot)
      *e = '\0';
  }
  if (strcmp(buf, "-0") == 0)
    strcpy(buf, "0");
  return buf;
}

static void text(struct draw *d, double x, double y, int size, const char *style, const char *s) {
  char a[32], b[32];
  fprintf(d->f, "<text x=\"%s\" y=\"%s\" font-size=\"%d\"%s%s>", coord(a, x), coord(b, y), size, style ? " " : "",
          style ? style : "");
  xml_text(d->f, s);
  fputs("</text>\n", d->f);
}

/* A box; title (hover text) may be NULL. */
static void box(struct draw *d, const char *cls, double x, double y, double w, double h, const char *fill,
                const char *extra, const char *title) {
  char a[32], b[32], c[32], e[32];
  fprintf(d->f, "<rect class=\"%s\" x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"%s\"%s%s", cls, coord(a, x),
          coord(b, y), coord(c, w), coord(e, h), fill, extra ? " " : "", extra ? extra : "");
  if (title) {
    fputs("><title>", d->f);
    xml_text(d->f, title);
    fputs("</title></rect>\n", d->f);
  } else {
    fputs("/>\n", d->f);
  }
}

static void outline(struct draw *d, const char *cls, double x, double y, double w, double h, const char *title) {
  char extra[96];
  snprintf(extra, sizeof extra, "stroke=\"%s\" stroke-width=\"1.5\" pointer-events=\"none\"", run_outline);
  box(d, cls, x, y, w, h, "none", extra, title);
}

/* Hover text of one entry. */
static void entry_title(char *buf, size_t cap, const struct entry *e) {
  const struct jv *o = e->o;
  char h1[32], h2[32];
  int n;
  if (e->key == K_ELIDED) {
    snprintf(buf, cap, "0x%llx\nelided: %llu chunks, %s in all (%llu B), not listed one by one",
             (unsigned long long)e->addr, (unsigned long long)e->count, human(h1, sizeof h1, e->size),
             (unsigned long long)e->size);
    return;
  }
  n = snprintf(buf, cap, "0x%llx (pointer 0x%llx)\n%llu B", (unsigned long long)e->addr,
               (unsigned long long)e->addr + 16, (unsigned long long)e->size);
  if (e->count != 1 && n >= 0 && (size_t)n < cap)
    n += snprintf(buf + n, cap - (size_t)n, " x %llu = %s", (unsigned long long)e->count,
                  human(h2, sizeof h2, e->span));
  const char *st = e->state;
  if (n >= 0 && (size_t)n < cap) {
    if (e->key >= K_FREE_UNSORTED && e->key <= K_FREE_LARGE_PURGED) {
      const char *purge = jstr(o, "purge");
      n += snprintf(buf + n, cap - (size_t)n, "\nfree in %s bin %llu, %s", jstr(o, "bin_kind"), jnum(o, "bin"),
                    !purge                        ? "?"
                    : strcmp(purge, "kept") == 0  ? "kept (under 8 KiB, never purged)"
                    : strcmp(purge, "dirty") == 0 ? "dirty (pages resident)"
                    : strcmp(purge, "purged") == 0 ? "purged (pages handed back)"
                    : strcmp(purge, "untracked") == 0 ? "untracked (neither dirty nor purged: a bookkeeping error)"
                                                      : purge);
    } else if (e->key == K_RUN) {
      n += snprintf(buf + n, cap - (size_t)n, "\nrun header: a run of %s, blocks of %llu B, room for %llu",
                    human(h1, sizeof h1, jnum(o, "run_bytes")), jnum(o, "block_size"), jnum(o, "blocks"));
    } else {
      if (e->key == K_UNKNOWN)
        n += snprintf(buf + n, cap - (size_t)n, "\nstate \"%s\": not known to this viewer", st);
      else
        n += snprintf(buf + n, cap - (size_t)n, "\n%s", styles[e->key].says);
    }
  }
  if (jtrue(o, "in_run") && n >= 0 && (size_t)n < cap)
    snprintf(buf + n, cap - (size_t)n, "\nin a run");
}

/* The finest power-of-two scale that fits bytes in max_rows rows. */
static uint64_t scale_for(uint64_t bytes, int strip_w, int max_rows) {
  uint64_t bpp = 1;
  while (bpp < (UINT64_C(1) << 40) && bytes > (uint64_t)strip_w * bpp * (uint64_t)max_rows)
    bpp *= 2;
  return bpp;
}

static const char *scale_text(char *buf, size_t cap, uint64_t bpp, int strip_w) {
  char a[32], b[32];
  snprintf(buf, cap, "1 px = %s, a row = %s", human(a, sizeof a, bpp), human(b, sizeof b, bpp * (uint64_t)strip_w));
  return buf;
}

struct strip {
  double x0, y0;     /* top left of the first row */
  uint64_t bpp;      /* bytes a pixel */
  uint64_t rowbytes; /* bytes a row */
  uint64_t bytes;    /* the whole strip */
  int strip_w;
};

static double row_y(const struct strip *s, uint64_t row) { return s->y0 + (double)row * (ROW_H + ROW_GAP); }

static uint64_t strip_rows(const struct strip *s) {
  return s->bytes ? (s->bytes + s->rowbytes - 1) / s->rowbytes : 1;
}

/* The rows' background (what no entry covers shows as "gap"). */
static void strip_background(struct draw *d, const struct strip *s) {
  uint64_t rows = strip_rows(s);
  for (uint64_t r = 0; r < rows; r++) {
    uint64_t len = s->bytes - r * s->rowbytes;
    if (len > s->rowbytes)
      len = s->rowbytes;
    box(d, "row", s->x0, row_y(s, r), (double)len / (double)s->bpp, ROW_H, styles[K_GAP].fill, NULL, NULL);
  }
}

/* Bytes [off, off + len) of a strip in fill, one box per row it touches;
 * the title goes on each.  Layout lines start with tag.  Then ticks at
 * the boundaries of its chunks (every `unit` bytes from off), tick_h
 * high, when a chunk is 3 px wide or more. */
static void strip_span(struct draw *d, const struct strip *s, uint64_t off, uint64_t len, uint64_t unit,
                       int tick_h, const char *fill, const char *title, const char *tag) {
  if (off >= s->bytes || len == 0)
    return;
  if (len > s->bytes - off)
    len = s->bytes - off;
  double unit_px = (double)unit / (double)s->bpp;
  for (uint64_t at = off; at < off + len;) {
    uint64_t row = at / s->rowbytes, in = at % s->rowbytes;
    uint64_t piece = s->rowbytes - in;
    if (piece > off + len - at)
      piece = off + len - at;
    double x = s->x0 + (double)in / (double)s->bpp, y = row_y(s, row), w = (double)piece / (double)s->bpp;
    box(d, "seg", x, y, w, ROW_H, fill, NULL, title);
    if (d->layout && tag)
      fprintf(d->layout, "%s %.3f %.3f %.3f %d %.3f\n", tag, x, y, w, ROW_H, unit_px);
    if (unit && unit_px >= 3) {
      /* the first boundary at or after `at`, counted from off */
      uint64_t k = (at - off + unit - 1) / unit;
      int any = 0;
      char a[32], b[32];
      for (uint64_t b_at = off + k * unit; b_at < at + piece; b_at += unit) {
        double bx = s->x0 + (double)(b_at % s->rowbytes) / (double)s->bpp;
        if (!any)
          fputs("<path class=\"tick\" stroke=\"#ffffff\" stroke-opacity=\"0.8\" fill=\"none\" d=\"", d->f);
        fprintf(d->f, "M%s %sv%d", coord(a, bx), coord(b, y), tick_h);
        any = 1;
      }
      if (any)
        fputs("\" pointer-events=\"none\"/>\n", d->f);
    }
    at += piece;
  }
}

/* An outline around bytes [off, off + len) of a strip, one per row. */
static void strip_outline(struct draw *d, const struct strip *s, uint64_t off, uint64_t len) {
  if (off >= s->bytes)
    return;
  if (len > s->bytes - off)
    len = s->bytes - off;
  for (uint64_t at = off; at < off + len;) {
    uint64_t row = at / s->rowbytes, in = at % s->rowbytes;
    uint64_t piece = s->rowbytes - in;
    if (piece > off + len - at)
      piece = off + len - at;
    outline(d, "run", s->x0 + (double)in / (double)s->bpp, row_y(s, row) - 1, (double)piece / (double)s->bpp,
            ROW_H + 2, NULL);
    at += piece;
  }
}

/* ---- the lists at the right ---- */

struct list {
  struct draw *d;
  double x, y;
};

static void list_head(struct list *l, const char *s) {
  text(l->d, l->x, l->y + 12, 12, "font-weight=\"bold\"", s);
  l->y += LIST_LINE + 2;
}

/* A row: a swatch (key, or -1: none), a name, a middle column and two
 * numbers right-aligned. */
static void list_row(struct list *l, int key, const char *name, const char *mid, const char *n1, const char *n2,
                     const char *title) {
  if (key >= 0)
    box(l->d, "swatch", l->x, l->y + 2, 10, 10, styles[key].fill, NULL, title);
  const char *mono = "font-family=\"monospace\"";
  text(l->d, l->x + 14, l->y + 11, 11, mono, name);
  if (mid)
    text(l->d, l->x + 120, l->y + 11, 11, mono, mid);
  char st[64];
  snprintf(st, sizeof st, "%s text-anchor=\"end\"", mono);
  if (n1)
    text(l->d, l->x + 300, l->y + 11, 11, st, n1);
  if (n2)
    text(l->d, l->x + LIST_W, l->y + 11, 11, st, n2);
  l->y += LIST_LINE;
}

/* Lists of {"size": N, "chunks": N}: fast bins, remote stacks, a cache. */
static void list_sizes(struct list *l, const char *head, const struct jv *arr, int key) {
  char buf[160];
  uint64_t chunks = 0, bytes = 0;
  size_t n = arr ? arr->n : 0;
  for (size_t i = 0; i < n; i++) {
    chunks += jnum(&arr->v[i], "chunks");
    bytes += mul_sat(jnum(&arr->v[i], "size"), jnum(&arr->v[i], "chunks"));
  }
  char hb[32];
  if (n)
    snprintf(buf, sizeof buf, "%s: %llu chunks, %s", head, (unsigned long long)chunks, human(hb, sizeof hb, bytes));
  else
    snprintf(buf, sizeof buf, "%s: none", head);
  list_head(l, buf);
  if (!n)
    return;
  list_row(l, -1, "size", NULL, "chunks", "bytes", NULL);
  for (size_t i = 0; i < n; i++) {
    uint64_t sz = jnum(&arr->v[i], "size"), c = jnum(&arr->v[i], "chunks");
    char s1[32], s2[32], s3[32], t[160];
    snprintf(s1, sizeof s1, "%llu B", (unsigned long long)sz);
    snprintf(s2, sizeof s2, "%llu", (unsigned long long)c);
    snprintf(t, sizeof t, "%s: %llu chunks of %llu B = %llu B", head, (unsigned long long)c, (unsigned long long)sz,
             (unsigned long long)mul_sat(sz, c));
    list_row(l, key, s1, NULL, s2, human(s3, sizeof s3, mul_sat(sz, c)), t);
  }
  l->y += 6;
}

static void list_bins(struct list *l, const struct jv *arena) {
  const struct jv *bins = jarr(arena, "bins");
  size_t n = bins ? bins->n : 0;
  char buf[160], hb[32];
  const struct jv *fr = jget(arena, "free");
  snprintf(buf, sizeof buf, "bins: %zu in use, %llu chunks, %s", n, jnum(fr, "chunks"),
           human(hb, sizeof hb, jnum(fr, "bytes")));
  list_head(l, buf);
  if (n)
    list_row(l, -1, "bin", "chunk sizes", "chunks", "bytes", NULL);
  for (size_t i = 0; i < n; i++) {
    const struct jv *b = &bins->v[i];
    const char *kind = jstr(b, "kind");
    enum key k = entry_key("free", kind ? kind : "", "dirty");
    char name[48], range[64], c[32], t[200];
    snprintf(name, sizeof name, "%s %llu", kind ? kind : "?", jnum(b, "index"));
    const struct jv *hi = jget(b, "hi");
    if (!hi || hi->t == J_NULL)
      snprintf(range, sizeof range, ">= %llu", jnum(b, "lo"));
    else if (jnum(b, "hi") == jnum(b, "lo"))
      snprintf(range, sizeof range, "%llu", jnum(b, "lo"));
    else
      snprintf(range, sizeof range, "%llu-%llu", jnum(b, "lo"), jnum(b, "hi"));
    snprintf(c, sizeof c, "%llu", jnum(b, "chunks"));
    int tn = snprintf(t, sizeof t, "%s bin %llu: chunks of %s B; %llu chunks, %llu B", kind ? kind : "?",
                      jnum(b, "index"), range, jnum(b, "chunks"), jnum(b, "bytes"));
    if (jis_num(b, "min") && tn > 0 && (size_t)tn < sizeof t)
      snprintf(t + tn, sizeof t - (size_t)tn, "; in it %llu-%llu B", jnum(b, "min"), jnum(b, "max"));
    list_row(l, k == K_UNKNOWN ? K_UNKNOWN : (int)k, name, range, c, human(hb, sizeof hb, jnum(b, "bytes")), t);
  }
  l->y += 6;
}

/* ---- the sections ---- */

static void draw_header(struct draw *d) {
  const struct jv *root = d->m->root, *id = jget(root, "tidemalloc"), *t = jget(root, "totals");
  char buf[512], a[32], b[32], c[32];
  const char *kind = jstr(id, "kind");
  snprintf(buf, sizeof buf, "tidemalloc %s heap of pid %llu", jstr(id, "version") ? jstr(id, "version") : "?",
           jnum(id, "pid"));
  text(d, PAD, d->y + 20, 20, "font-weight=\"bold\"", buf);
  d->y += 32;
  static const struct {
    const char *name, *label;
  } cards[] = {
      {"live_bytes", "live"},     {"cached_bytes", "cached"},     {"in_use_bytes", "in use"},
      {"os_bytes", "from the OS"}, {"resident_bytes", "resident"},
  };
  double cw = (d->strip_w - 4 * 10) / 5.0;
  for (int i = 0; i < 5; i++) {
    double x = PAD + i * (cw + 10);
    uint64_t v = jnum(t, cards[i].name);
    snprintf(buf, sizeof buf, "%s: %llu B (totals.%s)", cards[i].label, (unsigned long long)v, cards[i].name);
    box(d, "card", x, d->y, cw, 48, "#f3f5f8", "stroke=\"#c5ccd6\"", buf);
    text(d, x + 10, d->y + 16, 11, "fill=\"#555555\"", cards[i].label);
    snprintf(buf, sizeof buf, "%llu B", (unsigned long long)v);
    text(d, x + cw - 8, d->y + 16, 10, "fill=\"#777777\" text-anchor=\"end\"", buf);
    text(d, x + 10, d->y + 39, 20, "font-weight=\"bold\"", human(a, sizeof a, v));
  }
  d->y += 58;
  snprintf(buf, sizeof buf,
           "peak in use %s, peak from the OS %s, purged since start %s; %llu mmapped chunks, %llu arenas; "
           "%llu mallocs, %llu frees, %llu reallocs",
           human(a, sizeof a, jnum(t, "peak_in_use_bytes")), human(b, sizeof b, jnum(t, "peak_os_bytes")),
           human(c, sizeof c, jnum(t, "purged_bytes")), jnum(t, "mmapped_chunks"), jnum(t, "arenas"),
           jnum(t, "malloc_calls"), jnum(t, "free_calls"), jnum(t, "realloc_calls"));
  text(d, PAD, d->y + 12, 12, NULL, buf);
  d->y += LINE_H + 2;
  const struct jv *tc = jget(root, "thread_caches");
  if (tc) {
    snprintf(buf, sizeof buf, "all threads' caches: %llu blocks, %s", jnum(tc, "blocks"),
             human(a, sizeof a, jnum(tc, "bytes")));
    text(d, PAD, d->y + 12, 12, NULL, buf);
    d->y += LINE_H + 2;
  }
  if (kind && strcmp(kind, "heap") != 0) {
    snprintf(buf, sizeof buf, "a \"%s\" document: no regions or chunks (tide_heap_dump_json writes them)", kind);
    text(d, PAD, d->y + 12, 12, "fill=\"#a00000\"", buf);
    d->y += LINE_H;
  }
  d->y += 8;
}

static void draw_legend(struct draw *d) {
  double top = d->y;
  text(d, PAD, d->y + 13, 13, "font-weight=\"bold\"", "colours");
  d->y += LINE_H + 4;
  const int cols = 3;
  double colw = d->strip_w / (double)cols;
  int i = 0;
  for (int k = 0; k < NKEYS; k++, i++) {
    double x = PAD + (i % cols) * colw, y = d->y + (i / cols) * 18;
    char t[160];
    snprintf(t, sizeof t, "%s %s", styles[k].key, styles[k].fill);
    box(d, "legend", x, y, 14, 14, styles[k].fill, "stroke=\"#999999\" stroke-width=\"0.5\"", t);
    if (d->layout)
      fprintf(d->layout, "legend %s %s %.3f %.3f 14 14\n", styles[k].key, styles[k].fill, x, y);
    text(d, x + 19, y + 11, 11, "font-family=\"monospace\"", styles[k].key);
    snprintf(t, sizeof t, "%s, %s", styles[k].fill, styles[k].label);
    text(d, x + 19 + 6.7 * (double)strlen(styles[k].key) + 6, y + 11, 11, "fill=\"#444444\"", t);
  }
  /* and the run outline */
  {
    double x = PAD + (i % cols) * colw, y = d->y + (i / cols) * 18;
    outline(d, "legend-run", x, y, 14, 14, "a run's span");
    text(d, x + 19, y + 11, 11, "font-family=\"monospace\"", "outline");
    text(d, x + 19 + 6.7 * 7 + 6, y + 11, 11, "fill=\"#444444\"", "a run: \"run_bytes\" from its header");
    i++;
  }
  double left = d->y + ((i + cols - 1) / cols) * 18;
  /* this thread's cache, beside: up to 90 sizes, so four to a line */
  struct list l = {d, d->list_x, top};
  const struct jv *tc = jarr(d->m->root, "this_thread_cache");
  uint64_t chunks = 0, bytes = 0;
  size_t n = tc ? tc->n : 0;
  for (size_t k = 0; k < n; k++) {
    chunks += jnum(&tc->v[k], "chunks");
    bytes += mul_sat(jnum(&tc->v[k], "size"), jnum(&tc->v[k], "chunks"));
  }
  char head[128], hb[32];
  if (n)
    snprintf(head, sizeof head, "this thread's cache: %llu chunks, %s", (unsigned long long)chunks,
             human(hb, sizeof hb, bytes));
  else
    snprintf(head, sizeof head, "this thread's cache: none");
  list_head(&l, head);
  for (size_t k = 0; k < n; k++) {
    uint64_t sz = jnum(&tc->v[k], "size"), c = jnum(&tc->v[k], "chunks");
    double x = l.x + (double)(k % 4) * (LIST_W / 4.0), y = l.y + (double)(k / 4) * LIST_LINE;
    char t[160], chip[48];
    snprintf(t, sizeof t, "this thread's cache: %llu chunks of %llu B = %llu B", (unsigned long long)c,
             (unsigned long long)sz, (unsigned long long)mul_sat(sz, c));
    box(d, "swatch", x, y + 2, 10, 10, styles[K_TCACHE].fill, NULL, t);
    snprintf(chip, sizeof chip, "%llu B x%llu", (unsigned long long)sz, (unsigned long long)c);
    text(d, x + 13, y + 11, 11, "font-family=\"monospace\"", chip);
  }
  l.y += (double)((n + 3) / 4) * LIST_LINE;
  d->y = (left > l.y ? left : l.y) + 12;
}

/* One region: to scale, then its entries one cell each. */
static void draw_region(struct draw *d, size_t ai, size_t ri, const struct region *rg) {
  uint64_t bytes = rg->end > rg->start ? rg->end - rg->start : 0;
  struct strip s = {.x0 = PAD, .bytes = bytes, .strip_w = d->strip_w};
  s.bpp = scale_for(bytes, d->strip_w, d->max_rows);
  s.rowbytes = s.bpp * (uint64_t)d->strip_w;
  char buf[400], a[32], sc[96];
  const char *what = rg->kind && strcmp(rg->kind, "brk") == 0    ? "brk segment"
                     : rg->kind && strcmp(rg->kind, "heap") == 0 ? "heap"
                                                                  : (rg->kind ? rg->kind : "region");
  snprintf(buf, sizeof buf, "%s 0x%llx .. 0x%llx, %s, %zu entries; %s", what, (unsigned long long)rg->start,
           (unsigned long long)rg->end, human(a, sizeof a, bytes), rg->n, scale_text(sc, sizeof sc, s.bpp, d->strip_w));
  text(d, PAD, d->y + 12, 12, NULL, buf);
  d->y += LINE_H;
  s.y0 = d->y;
  if (d->layout)
    fprintf(d->layout, "strip %zu %zu %.3f %.3f %d %llu %llu %llu\n", ai, ri, s.x0, s.y0, ROW_H + ROW_GAP,
            (unsigned long long)s.bpp, (unsigned long long)s.rowbytes, (unsigned long long)strip_rows(&s));
  strip_background(d, &s);
  size_t outside = 0;
  for (size_t i = 0; i < rg->n; i++) {
    const struct entry *e = &rg->e[i];
    if (e->addr < rg->start || e->addr >= rg->end) {
      outside++;
      continue;
    }
    char title[600], tag[96];
    entry_title(title, sizeof title, e);
    snprintf(tag, sizeof tag, "seg %zu %zu %zu %s", ai, ri, i, styles[e->key].key);
    uint64_t unit = e->key == K_ELIDED ? 0 : e->size;
    strip_span(d, &s, e->addr - rg->start, e->span, unit, TICK_H, styles[e->key].fill, title, tag);
  }
  for (size_t i = 0; i < rg->n; i++) {
    const struct entry *e = &rg->e[i];
    if (e->addr < rg->start || e->addr >= rg->end)
      continue;
    if (e->key == K_RUN)
      strip_outline(d, &s, e->addr - rg->start, e->run_end - e->addr);
    if (e->key == K_BROKEN) { /* where the walk stopped: a mark whatever the scale */
      uint64_t off = e->addr - rg->start;
      double x = s.x0 + (double)(off % s.rowbytes) / (double)s.bpp, y = row_y(&s, off / s.rowbytes);
      char title[600];
      entry_title(title, sizeof title, e);
      box(d, "mark", x, y - 3, 2, ROW_H + 6, styles[K_BROKEN].fill, NULL, title);
    }
  }
  d->y = row_y(&s, strip_rows(&s)) + 2;
  if (outside) {
    snprintf(buf, sizeof buf, "%zu entries outside the region's bounds, not drawn to scale", outside);
    text(d, PAD, d->y + 11, 11, "fill=\"#a00000\"", buf);
    d->y += LINE_H;
  }
  if (!rg->n) {
    d->y += 6;
    return;
  }
  /* the entries strip */
  text(d, PAD, d->y + 11, 11, "fill=\"#555555\"", "entries, one cell each (not to scale):");
  d->y += LINE_H - 2;
  double cw = (double)d->strip_w / (double)rg->n;
  if (cw > CELL_MAX)
    cw = CELL_MAX;
  if (cw < CELL_MIN)
    cw = CELL_MIN;
  size_t per_row = (size_t)((double)d->strip_w / cw);
  if (per_row < 1)
    per_row = 1;
  for (size_t i = 0; i < rg->n; i++) {
    const struct entry *e = &rg->e[i];
    double x = PAD + (double)(i % per_row) * cw, y = d->y + (double)(i / per_row) * (CELL_H + 3);
    char title[600];
    entry_title(title, sizeof title, e);
    box(d, "entry", x, y, cw - 1, CELL_H, styles[e->key].fill, NULL, title);
    if (d->layout)
      fprintf(d->layout, "cell %zu %zu %zu %s %.3f %.3f %.3f %d\n", ai, ri, i, styles[e->key].key, x, y, cw - 1,
              CELL_H);
  }
  /* runs: outline the header's cell and the cells of the entries inside */
  for (size_t i = 0; i < rg->n; i++) {
    if (rg->e[i].key != K_RUN)
      continue;
    size_t j = i + 1;
    while (j < rg->n && rg->e[j].addr >= rg->e[i].addr && rg->e[j].addr < rg->e[i].run_end)
      j++;
    for (size_t k = i; k < j;) { /* one outline per row of cells */
      size_t row_end = (k / per_row + 1) * per_row;
      size_t last = j < row_end ? j : row_end;
      double x = PAD + (double)(k % per_row) * cw, y = d->y + (double)(k / per_row) * (CELL_H + 3);
      outline(d, "run", x - 0.5, y - 1, (double)(last - k) * cw, CELL_H + 2, NULL);
      k = last;
    }
  }
  d->y += (double)((rg->n + per_row - 1) / per_row) * (CELL_H + 3) + 10;
}

static void draw_arena(struct draw *d, size_t ai) {
  const struct jv *a = &d->m->arenas->v[ai];
  double top = d->y;
  char buf[512], h1[32], h2[32], h3[32], h4[32], h5[32];
  uint64_t threads = jnum(a, "threads");
  fprintf(d->f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c5ccd6\"/>\n", PAD, top,
          d->list_x + LIST_W, top);
  d->y += 6;
  int n = snprintf(buf, sizeof buf, "arena %llu%s, %llu thread%s", jnum(a, "index"), jtrue(a, "main") ? " (main)" : "",
                   (unsigned long long)threads, threads == 1 ? "" : "s");
  if (jnum(a, "heaps") && n > 0 && (size_t)n < sizeof buf)
    snprintf(buf + n, sizeof buf - (size_t)n, ", %llu heap%s", jnum(a, "heaps"), jnum(a, "heaps") == 1 ? "" : "s");
  text(d, PAD, d->y + 15, 15, "font-weight=\"bold\"", buf);
  d->y += LINE_H + 6;
  snprintf(buf, sizeof buf, "from the OS %s (at most %s), in use %s, top %s, dirty %s",
           human(h1, sizeof h1, jnum(a, "system_bytes")), human(h2, sizeof h2, jnum(a, "max_system_bytes")),
           human(h3, sizeof h3, jnum(a, "in_use_bytes")), human(h4, sizeof h4, jnum(a, "top_bytes")),
           human(h5, sizeof h5, jnum(a, "dirty_bytes")));
  text(d, PAD, d->y + 12, 12, NULL, buf);
  d->y += LINE_H;
  const struct jv *fa = jget(a, "fast"), *ru = jget(a, "runs"), *fr = jget(a, "free");
  snprintf(buf, sizeof buf, "fast bins %llu chunks (%s); free in bins %llu chunks (%s); runs %llu, %llu blocks "
                            "given back (%s)",
           jnum(fa, "chunks"), human(h1, sizeof h1, jnum(fa, "bytes")), jnum(fr, "chunks"),
           human(h2, sizeof h2, jnum(fr, "bytes")), jnum(ru, "count"), jnum(ru, "free_blocks"),
           human(h3, sizeof h3, jnum(ru, "free_bytes")));
  text(d, PAD, d->y + 12, 12, NULL, buf);
  d->y += LINE_H + 6;
  if (jnum(a, "unlisted")) {
    snprintf(buf, sizeof buf, "%llu cached chunks did not fit the dump's table: they show as tcache-other, or free",
             jnum(a, "unlisted"));
    text(d, PAD, d->y + 12, 12, "fill=\"#a00000\"", buf);
    d->y += LINE_H + 4;
  }
  for (size_t r = 0; r < d->m->nregions[ai]; r++)
    draw_region(d, ai, r, &d->m->regions[ai][r]);
  struct list l = {d, d->list_x, top + 8};
  list_bins(&l, a);
  list_sizes(&l, "fast bins", jarr(a, "fast_bins"), K_FAST);
  list_sizes(&l, "remote stacks", jarr(a, "remote"), K_REMOTE);
  if (l.y > d->y)
    d->y = l.y;
  d->y += 8;
}

static void draw_mmapped(struct draw *d) {
  const struct jv *mm = jget(d->m->root, "mmapped");
  double top = d->y;
  char buf[400], h1[32], h2[32], h3[32], sc[96];
  fprintf(d->f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c5ccd6\"/>\n", PAD, top,
          d->list_x + LIST_W, top);
  d->y += 6;
  uint64_t total = 0;
  for (size_t i = 0; i < d->m->nmm; i++)
    total += d->m->mm_size[i];
  snprintf(buf, sizeof buf, "mmapped chunks: %llu (%s)", jnum(mm, "chunks"), human(h1, sizeof h1, jnum(mm, "bytes")));
  text(d, PAD, d->y + 15, 15, "font-weight=\"bold\"", buf);
  d->y += LINE_H + 6;
  snprintf(buf, sizeof buf, "at most %llu (%s); freed mappings kept for reuse %s", jnum(mm, "max_chunks"),
           human(h2, sizeof h2, jnum(mm, "max_bytes")), human(h3, sizeof h3, jnum(mm, "kept_bytes")));
  text(d, PAD, d->y + 12, 12, NULL, buf);
  d->y += LINE_H;
  if (d->m->nmm) {
    struct strip s = {.x0 = PAD, .bytes = total, .strip_w = d->strip_w};
    s.bpp = scale_for(total, d->strip_w, d->max_rows);
    s.rowbytes = s.bpp * (uint64_t)d->strip_w;
    snprintf(buf, sizeof buf, "each its own mapping, drawn end to end in address order; %s",
             scale_text(sc, sizeof sc, s.bpp, d->strip_w));
    text(d, PAD, d->y + 12, 12, NULL, buf);
    d->y += LINE_H;
    s.y0 = d->y;
    if (d->layout)
      fprintf(d->layout, "strip mmapped - %.3f %.3f %d %llu %llu %llu\n", s.x0, s.y0, ROW_H + ROW_GAP,
              (unsigned long long)s.bpp, (unsigned long long)s.rowbytes, (unsigned long long)strip_rows(&s));
    strip_background(d, &s);
    uint64_t off = 0;
    for (size_t i = 0; i < d->m->nmm; i++) {
      char title[200], tag[64];
      const struct jv *item = &jarr(mm, "list")->v[d->m->mm_index[i]];
      int n = snprintf(title, sizeof title, "0x%llx (pointer 0x%llx)\n%llu B (%s)\nused: an mmapped chunk",
                       (unsigned long long)d->m->mm_addr[i], (unsigned long long)d->m->mm_addr[i] + 16,
                       (unsigned long long)d->m->mm_size[i], human(h1, sizeof h1, d->m->mm_size[i]));
      if (jis_num(item, "mapping_bytes") && n > 0 && (size_t)n < sizeof title)
        snprintf(title + n, sizeof title - (size_t)n, ", in a mapping of %llu B", jnum(item, "mapping_bytes"));
      snprintf(tag, sizeof tag, "mmap %zu used", d->m->mm_index[i]);
      /* (each mapping's start: a full-height line) */
      strip_span(d, &s, off, d->m->mm_size[i], d->m->mm_size[i], ROW_H, styles[K_USED].fill, title, tag);
      off += d->m->mm_size[i];
    }
    d->y = row_y(&s, strip_rows(&s)) + 8;
  } else if (jnum(mm, "chunks")) {
    text(d, PAD, d->y + 12, 12, "fill=\"#a00000\"", "(not listed in this document)");
    d->y += LINE_H;
  }
  d->y += 8;
}

static const char *html_head = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>";
static const char *html_style =
    "</title>\n<style>\n"
    "body { margin: 0; background: #ffffff; }\n"
    "svg { display: block; }\n"
    "#tip { position: fixed; display: none; margin: 0; padding: 6px 8px; background: #fffff0;\n"
    "       border: 1px solid #888888; font: 12px monospace; pointer-events: none; white-space: pre; }\n"
    "</style>\n</head>\n<body>\n";

/* The hover text: each <title> becomes the box's data-tip (so that the
 * browser's own slow tooltip does not show too), shown beside the pointer. */
static const char *html_tail =
    "<pre id=\"tip\"></pre>\n<script>\n"
    "(function () {\n"
    "  var tip = document.getElementById('tip');\n"
    "  document.querySelectorAll('svg title').forEach(function (t) {\n"
    "    t.parentNode.setAttribute('data-tip', t.textContent);\n"
    "    t.parentNode.removeChild(t);\n"
    "  });\n"
    "  document.addEventListener('mousemove', function (ev) {\n"
    "    var s = ev.target.getAttribute && ev.target.getAttribute('data-tip');\n"
    "    if (!s) { tip.style.display = 'none'; return; }\n"
    "    tip.textContent = s;\n"
    "    tip.style.display = 'block';\n"
    "    var x = ev.clientX + 14, y = ev.clientY + 14;\n"
    "    if (x + tip.offsetWidth > window.innerWidth) x = ev.clientX - tip.offsetWidth - 8;\n"
    "    if (y + tip.offsetHeight > window.innerHeight) y = ev.clientY - tip.offsetHeight - 8;\n"
    "    tip.style.left = Math.max(0, x) + 'px';\n"
    "    tip.style.top = Math.max(0, y) + 'px';\n"
    "  });\n"
    "})();\n</script>\n</body>\n</html>\n";

struct view_opts {
  enum view_format format;
  int strip_w, max_rows;
  const char *layout;
};

/* The picture of root into out. */
static int render(const struct jv *root, FILE *out, const struct view_opts *o) {
  struct model m;
  if (model_build(&m, root) != 0) {
    model_free(&m);
    return -1;
  }
  char *body = NULL;
  size_t body_len = 0;
  FILE *f = open_memstream(&body, &body_len);
  FILE *layout = NULL;
  if (o->layout && !(layout = fopen(o->layout, "w"))) {
    fprintf(stderr, "%s: %s: %s\n", me, o->layout, strerror(errno));
    if (f)
      fclose(f);
    free(body);
    model_free(&m);
    return -1;
  }
  if (!f) {
    model_free(&m);
    if (layout)
      fclose(layout);
    return -1;
  }
  struct draw d = {.f = f, .layout = layout, .m = &m, .strip_w = o->strip_w, .max_rows = o->max_rows, .y = PAD};
  d.list_x = PAD + d.strip_w + GUTTER;
  draw_header(&d);
  draw_legend(&d);
  for (size_t a = 0; a < m.narenas; a++)
    draw_arena(&d, a);
  draw_mmapped(&d);
  fclose(f);
  int w = PAD + d.strip_w + GUTTER + LIST_W + PAD, h = (int)d.y + PAD;
  if (layout) {
    fprintf(layout, "svg %d %d\n", w, h);
    fclose(layout);
  }
  const struct jv *id = jget(root, "tidemalloc");
  char title[128];
  snprintf(title, sizeof title, "tidemalloc heap, pid %llu", jnum(id, "pid"));
  if (o->format == VIEW_HTML) {
    fputs(html_head, out);
    xml_text(out, title);
    fputs(html_style, out);
  }
  fprintf(out,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
          "font-family=\"DejaVu Sans, Verdana, sans-serif\">\n<title>%s</title>\n"
          "<rect class=\"page\" x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
          w, h, w, h, title, w, h);
  fwrite(body, 1, body_len, out);
  fputs("</svg>\n", out);
  if (o->format == VIEW_HTML)
    fputs(html_tail, out);
  free(body);
  model_free(&m);
  return ferror(out) ? -1 : 0;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: %s: %s\n", me, path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n == cap) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  int err = ferror(f);
  if (f != stdin)
    fclose(f);
  if (!buf || err) {
    fprintf(stderr, "%s: %s: cannot read\n", me, path);
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

static int ends_with(const char *s, const char *tail) {
  size_t a = strlen(s), b = strlen(tail);
  return a >= b && strcasecmp(s + a - b, tail) == 0;
}

static int view_file_opts(const char *json_path, const char *out_path, const struct view_opts *o0) {
  struct view_opts o = *o0;
  if (o.format == VIEW_AUTO)
    o.format = out_path && (ends_with(out_path, ".html") || ends_with(out_path, ".htm")) ? VIEW_HTML : VIEW_SVG;
  size_t len;
  char *text_ = read_all(json_path, &len);
  if (!text_)
    return 1;
  struct jv root;
  char err[256];
  if (jparse(text_, len, &root, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s: not JSON: %s\n", me, json_path, err);
    free(text_);
    return 1;
  }
  free(text_);
  int to_stdout = !out_path || strcmp(out_path, "-") == 0;
  FILE *out = to_stdout ? stdout : fopen(out_path, "w");
  if (!out) {
    fprintf(stderr, "%s: %s: %s\n", me, out_path, strerror(errno));
    jfree(&root);
    return 1;
  }
  int r = render(&root, out, &o);
  jfree(&root);
  if (to_stdout)
    r |= fflush(stdout);
  else
    r |= fclose(out);
  if (r != 0) {
    fprintf(stderr, "%s: no picture made\n", me);
    return 1;
  }
  return 0;
}

int view_file(const char *json_path, const char *out_path, enum view_format format, const char *layout_path) {
  struct view_opts o = {.format = format, .strip_w = 960, .max_rows = 8, .layout = layout_path};
  return view_file_opts(json_path, out_path, &o);
}

static void view_usage(FILE *f) {
  fprintf(f, "usage: tidemalloc view [--svg | --html] [-o FILE] [--layout FILE] [--width PX] [--rows N] dump.json\n"
             "  draws a heap dump (tide_heap_dump_json, stats_file=...) to scale: SVG, or an HTML page\n"
             "  with hover text; the format follows -o's name (.html) unless given; '-' reads stdin\n"
             "  --layout FILE  where each box was drawn, one per line (see tools/view.c)\n"
             "  --width PX     pixels in a row of a region (960)\n"
             "  --rows N       rows a region may wrap into before the scale halves (8)\n");
}

static int int_arg(const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return -1;
  *out = (int)v;
  return 0;
}

int view_main(int argc, char **argv) {
  struct view_opts o = {.format = VIEW_AUTO, .strip_w = 960, .max_rows = 8};
  const char *out = NULL, *in = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int last = i + 1 >= argc;
    if (strcmp(a, "--svg") == 0) {
      o.format = VIEW_SVG;
    } else if (strcmp(a, "--html") == 0) {
      o.format = VIEW_HTML;
    } else if (strcmp(a, "-o") == 0 && !last) {
      out = argv[++i];
    } else if (strcmp(a, "--layout") == 0 && !last) {
      o.layout = argv[++i];
    } else if (strcmp(a, "--width") == 0 && !last) {
      if (int_arg(argv[++i], 200, 20000, &o.strip_w) != 0) {
        fprintf(stderr, "%s: --width: 200..20000 pixels\n", me);
        return 2;
      }
    } else if (strcmp(a, "--rows") == 0 && !last) {
      if (int_arg(argv[++i], 1, 10000, &o.max_rows) != 0) {
        fprintf(stderr, "%s: --rows: 1..10000\n", me);
        return 2;
      }
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      view_usage(stdout);
      return 0;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "%s: unknown option %s\n", me, a);
      view_usage(stderr);
      return 2;
    } else if (!in) {
      in = a;
    } else {
      view_usage(stderr);
      return 2;
    }
  }
  if (!in) {
    view_usage(stderr);
    return 2;
  }
  return view_file_opts(in, out, &o);
}

/* ------------------------------------------------------------------ */
/* tidemalloc run --view                                                */
/* ------------------------------------------------------------------ */

static int add_stats_file(const char *dir) {
  const char *old = getenv("TIDEMALLOC_CONF");
  size_t len = (old ? strlen(old) : 0) + strlen(dir) + 32;
  char *conf = malloc(len);
  if (!conf)
    return -1;
  snprintf(conf, len, "%s%sstats_file=%s/%%p.json", old && *old ? old : "", old && *old ? "," : "", dir);
  int r = setenv("TIDEMALLOC_CONF", conf, 1);
  free(conf);
  return r;
}

/* Removes the dumps left in dir and dir itself; returns how many there
 * were beside keep (or -1 if dir cannot be read). */
static int clean_dir(const char *dir, const char *keep) {
  DIR *dp = opendir(dir);
  if (!dp)
    return -1;
  int others = 0;
  struct dirent *de;
  char path[PATH_MAX + 256];
  while ((de = readdir(dp))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (keep && strcmp(path, keep) == 0)
      continue;
    others++;
    unlink(path);
  }
  closedir(dp);
  if (!keep)
    rmdir(dir);
  return others;
}

int view_run(char **cmd, const char *out_path) {
  const char *tmp = getenv("TMPDIR");
  /* (TIDEMALLOC_CONF separates settings with commas) */
  if (!tmp || !*tmp || strpbrk(tmp, ",="))
    tmp = "/tmp";
  char dir[PATH_MAX];
  if ((size_t)snprintf(dir, sizeof dir, "%s/tidemalloc-view.XXXXXX", tmp) >= sizeof dir || !mkdtemp(dir)) {
    fprintf(stderr, "tidemalloc run --view: cannot make a directory in %s: %s\n", tmp, strerror(errno));
    return 1;
  }
  if (add_stats_file(dir) != 0) {
    rmdir(dir);
    return 1;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "tidemalloc run --view: fork: %s\n", strerror(errno));
    rmdir(dir);
    return 1;
  }
  if (pid == 0) {
    execvp(cmd[0], cmd);
    int e = errno;
    fprintf(stderr, "tidemalloc: %s: %s\n", cmd[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
  }
  /* As system(3): the terminal's ^C and ^\ go to the command; we wait. */
  struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
  sigemptyset(&ign.sa_mask);
  sigaction(SIGINT, &ign, &old_int);
  sigaction(SIGQUIT, &ign, &old_quit);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGQUIT, &old_quit, NULL);
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
  char dump[PATH_MAX + 32];
  snprintf(dump, sizeof dump, "%s/%d.json", dir, (int)pid);
  struct stat st;
  if (stat(dump, &st) != 0) {
    clean_dir(dir, NULL);
    fprintf(stderr, "tidemalloc run --view: %s (pid %d) wrote no heap dump%s; no picture\n", cmd[0], (int)pid,
            WIFSIGNALED(status) ? " (a signal ended it)" : " (it must end through exit() or by returning from main)");
    return rc ? rc : 1;
  }
  int r = view_file(dump, out_path, VIEW_AUTO, NULL);
  int others = clean_dir(dir, dump);
  if (r != 0) {
    fprintf(stderr, "tidemalloc run --view: the dump is kept in %s\n", dump);
    return rc ? rc : 1;
  }
  unlink(dump);
  rmdir(dir);
  if (others > 0)
    fprintf(stderr, "tidemalloc run --view: %s: the heap of pid %d (the dumps of %d other processes it started are "
                    "not drawn)\n", out_path, (int)pid, others);
  return rc;
}
