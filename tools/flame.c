/* SPDX-License-Identifier: MIT */
/*
 * tidemalloc flame [--title TEXT] [--width PIXELS] [--raw] [profile]
 *
 * Reads "collapsed stacks" (a heap profile of tidemalloc's, or any file
 * of lines "frame;frame;...;frame value", outermost caller first; lines
 * starting with '#' are comments) from the file or stdin, and writes an
 * SVG flame graph to stdout: the root at the bottom, each frame a
 * rectangle as wide as the bytes under it, its callees stacked on top,
 * widest first; a label where it fits and a <title> (shown on hover)
 * with the whole name, the bytes and the share of the total.
 *
 * Frames "file+0xoffset" (as tidemalloc writes them) are named here with
 * addr2line, one run per file for all its offsets (--raw leaves them as
 * they are); frames `tidemalloc symbolize` already named ("file+0xoff
 * (function at file:line)") are labelled by their function.  Frames
 * with the same name under the same caller are one rectangle.
 *
 * The tool runs on glibc's malloc, and may use it freely.
 */
#define _GNU_SOURCE
#include "flame.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_HEIGHT 16
#define PAD_X 10
#define PAD_TOP 52
#define PAD_BOTTOM 10
#define CHAR_WIDTH 7.0 /* of the 12 px monospace font, about */

void flame_usage(FILE *f, const char *prog) {
  fprintf(f, "       %s flame [--title TEXT] [--width PIXELS] [--raw] [profile] > flame.svg\n", prog);
}

static void die_oom(void) {
  fprintf(stderr, "tidemalloc flame: out of memory\n");
  exit(1);
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p)
    die_oom();
  return p;
}

static char *xstrndup(const char *s, size_t n) {
  char *d = strndup(s, n);
  if (!d)
    die_oom();
  return d;
}

/* ------------------------------------------------------------ strings */

/* A string table: each distinct frame text once, with its label. */
struct name {
  char *text;  /* the frame as written */
  char *label; /* what the graph shows */
  char *where; /* file:line from addr2line, or NULL */
};
static struct name *names;
static size_t nnames;
static uint32_t *name_slots; /* open addressing: index + 1, 0 = empty */
static size_t name_cap;

static uint64_t hash_str(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
  return h;
}

static void name_grow(void) {
  size_t cap = name_cap ? name_cap * 2 : 1024;
  uint32_t *slots = calloc(cap, sizeof *slots);
  if (!slots)
    die_oom();
  for (size_t i = 0; i < nnames; i++) {
    size_t j = hash_str(names[i].text, strlen(names[i].text)) & (cap - 1);
    while (slots[j])
      j = (j + 1) & (cap - 1);
    slots[j] = (uint32_t)(i + 1);
  }
  free(name_slots);
  name_slots = slots;
  name_cap = cap;
}

static uint32_t name_of(const char *s, size_t n) {
  if ((nnames + 1) * 2 > name_cap)
    name_grow();
  size_t j = hash_str(s, n) & (name_cap - 1);
  for (; name_slots[j]; j = (j + 1) & (name_cap - 1)) {
    struct name *e = &names[name_slots[j] - 1];
    if (strlen(e->text) == n && memcmp(e->text, s, n) == 0)
      return name_slots[j] - 1;
  }
  if ((nnames & (nnames - 1)) == 0 || nnames < 16)
    names = xrealloc(names, (nnames < 16 ? 16 : nnames * 2) * sizeof *names);
  names[nnames] = (struct name){.text = xstrndup(s, n)};
  name_slots[j] = (uint32_t)(nnames + 1);
  return (uint32_t)nnames++;
}

/* ------------------------------------------------------------ the tree */

struct node {
  uint32_t name;          /* index into names (by label once named) */
  double value;
  int32_t first_child, next_sibling;
  int depth;
  double x;               /* left edge, in units of value */
};
static struct node *nodes;
static size_t nnodes, nodes_cap;

static int32_t node_new(uint32_t name, int depth) {
  if (nnodes == nodes_cap) {
    nodes_cap = nodes_cap ? nodes_cap * 2 : 1024;
    nodes = xrealloc(nodes, nodes_cap * sizeof *nodes);
  }
  nodes[nnodes] = (struct node){.name = name, .first_child = -1, .next_sibling = -1, .depth = depth};
  return (int32_t)nnodes++;
}

/* The stacks as read: frame name indices, and the value of each line. */
struct stack {
  uint32_t *frames;
  size_t n;
  double value;
};
static struct stack *stacks;
static size_t nstacks;

/* ------------------------------------------------------------ input */

static char *first_comment; /* the profile's own header line, shown under the title */

static void read_input(FILE *in, size_t *skipped) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, in)) >= 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = 0;
    if (len == 0)
      continue;
    if (line[0] == '#') {
      if (!first_comment) {
        const char *c = line + 1;
        while (*c == ' ')
          c++;
        first_comment = xstrndup(c, strlen(c));
      }
      continue;
    }
    char *sp = strrchr(line, ' ');
    char *tab = strrchr(line, '\t');
    if (tab && (!sp || tab > sp))
      sp = tab;
    char *end;
    double v = sp ? strtod(sp + 1, &end) : 0;
    if (!sp || end == sp + 1 || *end || v < 0) {
      (*skipped)++;
      continue;
    }
    if (v == 0)
      continue;
    struct stack st = {.value = v};
    size_t fcap = 0;
    for (char *f = line; f < sp;) {
      char *semi = memchr(f, ';', (size_t)(sp - f));
      char *fend = semi ? semi : sp;
      if (fend > f) {
        if (st.n == fcap) {
          fcap = fcap ? fcap * 2 : 16;
          st.frames = xrealloc(st.frames, fcap * sizeof *st.frames);
        }
        st.frames[st.n++] = name_of(f, (size_t)(fend - f));
      }
      f = fend + 1;
    }
    if ((nstacks & (nstacks - 1)) == 0 || nstacks < 16)
      stacks = xrealloc(stacks, (nstacks < 16 ? 16 : nstacks * 2) * sizeof *stacks);
    stacks[nstacks++] = st;
  }
  free(line);
}

/* ------------------------------------------------------------ names */

/* "path+0xhex" with nothing else: a raw frame; its parts. */
static int raw_frame(const char *t, char *path, size_t cap, unsigned long long *off) {
  const char *plus = strstr(t, "+0x");
  if (!plus || t[0] != '/' || (size_t)(plus - t) >= cap)
    return 0;
  char *end;
  *off = strtoull(plus + 3, &end, 16);
  if (*end || end == plus + 3)
    return 0;
  memcpy(path, t, (size_t)(plus - t));
  path[plus - t] = 0;
  return 1;
}

static int shell_safe(const char *p) {
  for (; *p; p++)
    if (!(*p == '/' || *p == '.' || *p == '-' || *p == '_' || *p == '+' || (*p >= '0' && *p <= '9') ||
          (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
      return 0;
  return 1;
}

static char *chomp_dup(const char *s) {
  size_t n = strcspn(s, "\n");
  return xstrndup(s, n);
}

/* addr2line for the raw frames of one file: idx[0..n) are name indices. */
static void name_with_addr2line(const char *path, const uint32_t *idx, size_t n) {
  enum { BATCH = 200 };
  for (size_t at = 0; at < n; at += BATCH) {
    size_t k = n - at < BATCH ? n - at : BATCH;
    size_t cmdcap = strlen(path) + 64 + k * 20;
    char *cmd = xrealloc(NULL, cmdcap);
    size_t used = (size_t)snprintf(cmd, cmdcap, "addr2line -f -C -e '%s'", path);
    for (size_t i = 0; i < k; i++) {
      char p2[4096];
      unsigned long long off;
      raw_frame(names[idx[at + i]].text, p2, sizeof p2, &off);
      /* A return address: the call is the byte before it. */
      used += (size_t)snprintf(cmd + used, cmdcap - used, " 0x%llx", off ? off - 1 : 0);
    }
    snprintf(cmd + used, cmdcap - used, " 2>/dev/null");
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p)
      return;
    char fn[4096], where[4096];
    for (size_t i = 0; i < k && fgets(fn, sizeof fn, p) && fgets(where, sizeof where, p); i++) {
      struct name *e = &names[idx[at + i]];
      if (strncmp(fn, "??", 2) != 0)
        e->label = chomp_dup(fn);
      if (strncmp(where, "??", 2) != 0)
        e->where = chomp_dup(where);
    }
    pclose(p);
  }
}

static int cmp_by_text(const void *a, const void *b) {
  return strcmp(names[*(const uint32_t *)a].text, names[*(const uint32_t *)b].text);
}

/* Every name gets its label. */
static void label_names(int raw) {
  if (!raw) {
    /* The raw frames, sorted so that each file's are together. */
    uint32_t *order = xrealloc(NULL, nnames * sizeof *order);
    size_t n = 0;
    char path[4096];
    unsigned long long off;
    for (size_t i = 0; i < nnames; i++)
      if (raw_frame(names[i].text, path, sizeof path, &off) && shell_safe(path))
        order[n++] = (uint32_t)i;
    qsort(order, n, sizeof *order, cmp_by_text);
    for (size_t i = 0; i < n;) {
      raw_frame(names[order[i]].text, path, sizeof path, &off);
      size_t j = i + 1;
      char p2[4096];
      while (j < n && raw_frame(names[order[j]].text, p2, sizeof p2, &off) && strcmp(p2, path) == 0)
        j++;
      name_with_addr2line(path, order + i, j - i);
      i = j;
    }
    free(order);
  }
  for (size_t i = 0; i < nnames; i++) {
    struct name *e = &names[i];
    if (e->label)
      continue;
    const char *t = e->text;
    const char *open = strstr(t, " (");
    size_t tl = strlen(t);
    if (open && tl > 0 && t[tl - 1] == ')') {
      /* "file+0xoff (function at file:line)" from tidemalloc symbolize */
      const char *fn = open + 2, *close = t + tl - 1, *at = NULL;
      for (const char *s = fn; s + 4 <= close; s++)
        if (memcmp(s, " at ", 4) == 0)
          at = s;
      e->label = xstrndup(fn, (size_t)((at ? at : close) - fn));
      if (at)
        e->where = xstrndup(at + 4, (size_t)(close - at - 4));
      continue;
    }
    /* unnamed: the file's base name and the offset */
    const char *slash = strrchr(t, '/'), *plus = strstr(t, "+0x");
    const char *from = slash && (!plus || slash < plus) ? slash + 1 : t;
    e->label = xstrndup(from, strlen(from));
  }
}

/* ------------------------------------------------------------ layout */

static uint32_t label_id(uint32_t name) {
  /* Frames with the same label merge: the first name with that label. */
  static uint32_t *by_label;
  static size_t cap;
  if (!by_label) {
    cap = 1;
    while (cap < nnames * 2 + 2)
      cap *= 2;
    by_label = calloc(cap, sizeof *by_label);
    if (!by_label)
      die_oom();
  }
  const char *l = names[name].label;
  size_t j = hash_str(l, strlen(l)) & (cap - 1);
  for (; by_label[j]; j = (j + 1) & (cap - 1))
    if (strcmp(names[by_label[j] - 1].label, l) == 0)
      return by_label[j] - 1;
  by_label[j] = name + 1;
  return name;
}

static int32_t child_of(int32_t parent, uint32_t name) {
  for (int32_t c = nodes[parent].first_child; c >= 0; c = nodes[c].next_sibling)
    if (nodes[c].name == name)
      return c;
  int32_t c = node_new(name, nodes[parent].depth + 1);
  nodes[c].next_sibling = nodes[parent].first_child;
  nodes[parent].first_child = c;
  return c;
}

static int cmp_nodes(const void *a, const void *b) {
  const struct node *x = &nodes[*(const int32_t *)a], *y = &nodes[*(const int32_t *)b];
  if (x->value != y->value)
    return x->value < y->value ? 1 : -1;
  return strcmp(names[x->name].label, names[y->name].label);
}

/* Children widest first, each placed after the ones before it. */
static void place(int32_t n, int *max_depth) {
  if (nodes[n].depth > *max_depth)
    *max_depth = nodes[n].depth;
  size_t k = 0;
  for (int32_t c = nodes[n].first_child; c >= 0; c = nodes[c].next_sibling)
    k++;
  if (k == 0)
    return;
  int32_t *kids = xrealloc(NULL, k * sizeof *kids);
  k = 0;
  for (int32_t c = nodes[n].first_child; c >= 0; c = nodes[c].next_sibling)
    kids[k++] = c;
  qsort(kids, k, sizeof *kids, cmp_nodes);
  double x = nodes[n].x;
  for (size_t i = 0; i < k; i++) {
    nodes[kids[i]].x = x;
    x += nodes[kids[i]].value;
    place(kids[i], max_depth);
  }
  free(kids);
}

/* ------------------------------------------------------------ output */

static void xml_text(FILE *o, const char *s, size_t max) {
  for (size_t i = 0; s[i] && i < max; i++) {
    switch (s[i]) {
    case '&': fputs("&amp;", o); break;
    case '<': fputs("&lt;", o); break;
    case '>': fputs("&gt;", o); break;
    case '"': fputs("&quot;", o); break;
    default:
      if ((unsigned char)s[i] >= 0x20 || s[i] == '\t')
        fputc(s[i], o);
    }
  }
}

static void human_bytes(char *buf, size_t cap, double v) {
  static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* A warm colour of its own for each name (the same run to run). */
static void colour(const char *label, int *r, int *g, int *b) {
  uint64_t h = hash_str(label, strlen(label));
  *r = 200 + (int)(h % 55);
  *g = 70 + (int)((h >> 8) % 150);
  *b = 30 + (int)((h >> 16) % 50);
}

static void write_svg(FILE *o, const char *title, double width, int max_depth) {
  double total = nodes[0].value;
  int height = PAD_TOP + (max_depth + 1) * FRAME_HEIGHT + PAD_BOTTOM;
  double scale = total > 0 ? (width - 2 * PAD_X) / total : 0;
  char tot[32];
  human_bytes(tot, sizeof tot, total);
  fprintf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  fprintf(o,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%d\" "
          "viewBox=\"0 0 %.0f %d\" font-family=\"monospace\" font-size=\"12\">\n",
          width, height, width, height);
  fprintf(o, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%d\" fill=\"#faf7f0\"/>\n", width, height);
  fprintf(o, "<text x=\"%.1f\" y=\"20\" text-anchor=\"middle\" font-size=\"16\">", width / 2);
  xml_text(o, title, 200);
  fprintf(o, "</text>\n<text x=\"%d\" y=\"38\" fill=\"#555\">", PAD_X);
  fprintf(o, "%s in all; hover over a frame for its bytes", tot);
  if (first_comment) {
    fputs(" -- ", o);
    xml_text(o, first_comment, 160);
  }
  fprintf(o, "</text>\n");
  for (size_t i = 0; i < nnodes; i++) {
    struct node *n = &nodes[i];
    double w = n->value * scale;
    if (w < 0.2)
      continue; /* too thin to see (its callees are thinner still) */
    double x = PAD_X + n->x * scale;
    double y = height - PAD_BOTTOM - (n->depth + 1) * FRAME_HEIGHT;
    struct name *nm = &names[n->name];
    const char *label = i == 0 ? "all" : nm->label;
    char bytes[32];
    human_bytes(bytes, sizeof bytes, n->value);
    int r, g, b;
    colour(label, &r, &g, &b);
    fputs("<g><title>", o);
    xml_text(o, label, 4096);
    fprintf(o, " -- %s, %.2f%%", bytes, total > 0 ? 100 * n->value / total : 0);
    if (i != 0 && (nm->where || strcmp(nm->label, nm->text) != 0)) {
      fputs(" (", o);
      xml_text(o, nm->where ? nm->where : nm->text, 4096);
      fputs(")", o);
    }
    fprintf(o, "</title><rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" rx=\"2\" fill=\"rgb(%d,%d,%d)\"/>", x, y,
            w, FRAME_HEIGHT - 1, r, g, b);
    size_t fit = w > 6 ? (size_t)((w - 6) / CHAR_WIDTH) : 0;
    size_t len = strlen(label);
    if (fit >= 3) {
      fprintf(o, "<text x=\"%.2f\" y=\"%.1f\">", x + 3, y + FRAME_HEIGHT - 4);
      if (len <= fit) {
        xml_text(o, label, len);
      } else {
        xml_text(o, label, fit - 2);
        fputs("..", o);
      }
      fputs("</text>", o);
    }
    fputs("</g>\n", o);
  }
  fprintf(o, "</svg>\n");
}

/* ------------------------------------------------------------ main */

int flame_main(int argc, char **argv, const char *prog) {
  const char *title = NULL, *file = NULL;
  double width = 1200;
  int raw = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--title") == 0 && i + 1 < argc) {
      title = argv[++i];
    } else if (strcmp(a, "--width") == 0 && i + 1 < argc) {
      width = strtod(argv[++i], NULL);
      if (width < 100 || width > 100000) {
        fprintf(stderr, "%s flame: --width: 100 to 100000 pixels\n", prog);
        return 2;
      }
    } else if (strcmp(a, "--raw") == 0) {
      raw = 1;
    } else if (strcmp(a, "-") == 0 || a[0] != '-') {
      if (file) {
        fprintf(stderr, "%s flame: one profile at a time\n", prog);
        return 2;
      }
      file = a;
    } else {
      fprintf(stderr, "%s flame: unknown option %s\n", prog, a);
      fprintf(stderr, "usage:\n");
      flame_usage(stderr, prog);
      return 2;
    }
  }
  FILE *in = stdin;
  if (file && strcmp(file, "-") != 0) {
    in = fopen(file, "r");
    if (!in) {
      fprintf(stderr, "%s flame: %s: %s\n", prog, file, strerror(errno));
      return 1;
    }
  }
  size_t skipped = 0;
  read_input(in, &skipped);
  if (in != stdin)
    fclose(in);
  if (skipped)
    fprintf(stderr, "%s flame: %zu lines that are not \"frames value\" left out\n", prog, skipped);
  label_names(raw);
  uint32_t root_name = name_of("all", 3);
  if (!names[root_name].label)
    names[root_name].label = xstrndup("all", 3);
  node_new(root_name, 0);
  for (size_t s = 0; s < nstacks; s++) {
    int32_t at = 0;
    nodes[0].value += stacks[s].value;
    for (size_t i = 0; i < stacks[s].n; i++) {
      at = child_of(at, label_id(stacks[s].frames[i]));
      nodes[at].value += stacks[s].value;
    }
  }
  int max_depth = 0;
  place(0, &max_depth);
  char deftitle[512];
  if (!title) {
    const char *base = file && strcmp(file, "-") != 0 ? strrchr(file, '/') : NULL;
    snprintf(deftitle, sizeof deftitle, "Heap profile%s%s", file && strcmp(file, "-") != 0 ? ": " : "",
             file && strcmp(file, "-") != 0 ? (base ? base + 1 : file) : "");
    title = deftitle;
  }
  write_svg(stdout, title, width, max_depth);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "%s flame: writing: %s\n", prog, strerror(errno));
    return 1;
  }
  return 0;
}
