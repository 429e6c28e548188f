/* SPDX-License-Identifier: MIT */
/*
 * A tiny formatter for text that must not allocate (statistics, the heap
 * dump, error reports): a stack buffer flushed to a file descriptor with
 * write(2).  Implemented in src/out.c.
 */
#ifndef TIDE_OUT_H
#define TIDE_OUT_H

#include "internal.h"

struct out {
  int fd;
  size_t n;
  bool comma;  /* JSON: the next value or key needs a comma before it */
  int error;   /* errno of the first write that did not go through, or 0 */
  char buf[1024];
};

void out_flush(struct out *o);
void out_str(struct out *o, const char *s);
/* Unsigned decimal, right-aligned in width columns (0: no padding). */
void out_u(struct out *o, size_t v, int width);
void out_hex(struct out *o, uintptr_t v);

/* A file name from a setting's template: "%p" becomes the process id,
 * "%%" a "%"; then suffix.  Into buf (cap bytes); false if it does not
 * fit. */
bool out_path(char *buf, size_t cap, const char *tmpl, const char *suffix);

/* JSON (docs/json.md), no allocation.  key NULL: an array element.
 * json_open(o, key, '{' or '['), json_close(o, '}' or ']'). */
void json_key(struct out *o, const char *key);
void json_open(struct out *o, const char *key, char bracket);
void json_close(struct out *o, char bracket);
void json_u(struct out *o, const char *key, size_t v);
void json_str(struct out *o, const char *key, const char *s);
void json_addr(struct out *o, const char *key, uintptr_t v); /* "0x..." */
void json_bool(struct out *o, const char *key, bool v);
void json_null(struct out *o, const char *key);

#endif
