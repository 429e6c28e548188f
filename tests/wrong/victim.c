/* SPDX-License-Identifier: MIT */
/*
 * A plain program that misuses the standard malloc API in one way, chosen
 * by argv[1].  Built without tidemalloc (the -plain flavour): misuse.c
 * starts it under LD_PRELOAD=libtidemalloc.so, so the message it dies
 * with shows which allocator was bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <malloc.h>

static char not_from_malloc[4096] __attribute__((aligned(64)));

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "";
  if (strcmp(what, "ok") == 0) {
    /* a healthy run, to show the preload itself works */
    char *p = malloc(100);
    strcpy(p, "fine");
    puts(p);
    free(p);
    return 0;
  }
  if (strcmp(what, "double-free") == 0) {
    char *p = malloc(24);
    free(p);
    free(p);
  } else if (strcmp(what, "double-free-large") == 0) {
    char *p = malloc(5000);
    char *guard = malloc(24);
    free(p);
    free(p);
    free(guard);
  } else if (strcmp(what, "free-stack") == 0) {
    char buf[256] __attribute__((aligned(16)));
    memset(buf, 0, sizeof buf);
    free(buf + 32);
  } else if (strcmp(what, "free-static") == 0) {
    free(not_from_malloc + 64);
  } else if (strcmp(what, "overflow") == 0) {
    /* two adjacent blocks: b's header right after a's usable bytes */
    char *a = malloc(600);
    char *b = malloc(600);
    for (int tries = 0; tries < 32; tries++) {
      if (a == b + malloc_usable_size(b) + 8) {
        char *t = a;
        a = b;
        b = t;
      }
      if (b == a + malloc_usable_size(a) + 8)
        break;
      a = malloc(600); /* the old pair is left allocated */
      b = malloc(600);
    }
    char *guard = malloc(24);
    memset(a, 'A', malloc_usable_size(a) + 8);
    free(a);
    free(b);
    free(guard);
  } else if (strcmp(what, "realloc-freed") == 0) {
    char *a = malloc(600);
    char *guard = malloc(24);
    free(a);
    a = realloc(a, 2000);
    free(guard);
  }
  fprintf(stderr, "victim: %s was not caught\n", what);
  return 3;
}
