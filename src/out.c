/* SPDX-License-Identifier: MIT */
/*
 * The formatter that never allocates (src/out.h): text into a stack
 * buffer, written with write(2) when full or flushed; and JSON on top of
 * it, for the statistics and the heap dump (docs/json.md).
 */
#include "out.h"
#include "os.h"

void out_flush(struct out *o) {
  if (o->n && !o->error)
    o->error = os_write_all(o->fd, o->buf, o->n);
  o->n = 0;
}

bool out_path(char *buf, size_t cap, const char *tmpl, const char *suffix) {
  char pid[24];
  size_t np = 0, n = 0;
  for (unsigned long v = (unsigned long)os_pid(); v || np == 0; v /= 10)
    pid[np++] = (char)('0' + v % 10);
  for (const char *t = tmpl; *t; t++) {
    if (t[0] == '%' && t[1] == 'p') {
      for (size_t k = np; k-- > 0;) {
        if (n + 1 >= cap)
          return false;
        buf[n++] = pid[k];
      }
      t++;
      continue;
    }
    if (t[0] == '%' && t[1] == '%')
      t++;
    if (n + 1 >= cap)
      return false;
    buf[n++] = *t;
  }
  size_t ls = strlen(suffix);
  if (n + ls >= cap)
    return false;
  memcpy(buf + n, suffix, ls + 1);
  return true;
}

void out_str(struct out *o, const char *s) {
  while (*s) {
    if (o->n == sizeof o->buf)
      out_flush(o);
    o->buf[o->n++] = *s++;
  }
}

void out_u(struct out *o, size_t v, int width) {
  char tmp[32];
  int i = (int)sizeof tmp - 1;
  tmp[i] = '\0';
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while ((int)sizeof tmp - 1 - i < width)
    tmp[--i] = ' ';
  out_str(o, tmp + i);
}

void out_hex(struct out *o, uintptr_t v) {
  char tmp[24];
  int i = (int)sizeof tmp - 1;
  tmp[i] = '\0';
  do {
    tmp[--i] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  tmp[--i] = 'x';
  tmp[--i] = '0';
  out_str(o, tmp + i);
}

/* ---- JSON: a comma goes before every value or key but the first of its
 * object or array, which o->comma tracks (one flag suffices: opening a
 * container clears it, closing one sets it). */

static void json_sep(struct out *o) {
  if (o->comma)
    out_str(o, ",");
  o->comma = false;
}

/* "s", escaped: quotes, backslashes and control bytes. */
static void json_string(struct out *o, const char *s) {
  out_str(o, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char esc[3] = {'\\', (char)c, 0};
      out_str(o, esc);
    } else if (c < 0x20) {
      char esc[7] = {'\\', 'u', '0', '0', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15], 0};
      out_str(o, esc);
    } else {
      char one[2] = {(char)c, 0};
      out_str(o, one);
    }
  }
  out_str(o, "\"");
}

void json_key(struct out *o, const char *key) {
  json_sep(o);
  if (key) {
    json_string(o, key);
    out_str(o, ":");
  }
}

void json_open(struct out *o, const char *key, char bracket) {
  json_key(o, key);
  char b[2] = {bracket, 0};
  out_str(o, b);
  o->comma = false;
}

void json_close(struct out *o, char bracket) {
  char b[2] = {bracket, 0};
  out_str(o, b);
  o->comma = true;
}

void json_u(struct out *o, const char *key, size_t v) {
  json_key(o, key);
  out_u(o, v, 0);
  o->comma = true;
}

void json_str(struct out *o, const char *key, const char *s) {
  json_key(o, key);
  json_string(o, s);
  o->comma = true;
}

void json_addr(struct out *o, const char *key, uintptr_t v) {
  json_key(o, key);
  out_str(o, "\"");
  out_hex(o, v);
  out_str(o, "\"");
  o->comma = true;
}

void json_bool(struct out *o, const char *key, bool v) {
  json_key(o, key);
  out_str(o, v ? "true" : "false");
  o->comma = true;
}

void json_null(struct out *o, const char *key) {
  json_key(o, key);
  out_str(o, "null");
  o->comma = true;
}
