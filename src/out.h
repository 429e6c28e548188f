/* SPDX-License-Identifier: MIT */
/*
 * A tiny formatter for text that must not allocate (statistics, the heap
 * dump, error reports): a stack buffer flushed to a file descriptor with
 * write(2).
 */
#ifndef TIDE_OUT_H
#define TIDE_OUT_H

#include "internal.h"

struct out {
  int fd;
  size_t n;
  char buf[1024];
};

void out_flush(struct out *o);
void out_str(struct out *o, const char *s);
/* Unsigned decimal, right-aligned in width columns (0: no padding). */
void out_u(struct out *o, size_t v, int width);
void out_hex(struct out *o, uintptr_t v);

#endif
