/* SPDX-License-Identifier: MIT */
/*
 * A plain program for debug mode (TIDEMALLOC_CONF=debug=1 under
 * LD_PRELOAD): each mode makes one known mistake at a known line, marked
 * "SITE:<name>" so tests/debug/debug.sh can find the line to expect.
 *
 *   victim ok        correct use of every entry point; exits 0
 *   victim leak      leaves 3 blocks of 1000 bytes and 1 of 5000 live
 *   victim overflow  writes one byte past a 100-byte block, then frees it
 *   victim uaf       writes into a freed block, then frees 5000 others
 *   victim double    frees a block twice
 *   victim deep      leaves a block allocated 1 MB down the stack, after
 *                    an allocation near its top (its call stack must still
 *                    be walked: the stack's mapping grew meanwhile)
 *   victim sized     free_sized() with a size past the block's 100 bytes
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile keep[8];

__attribute__((noinline)) static void *leak_small(void) {
  return malloc(1000); /* SITE:leak_small */
}
__attribute__((noinline)) static void *leak_big(void) {
  return malloc(5000); /* SITE:leak_big */
}

__attribute__((noinline)) static void *deep_alloc(void) {
  return malloc(7777); /* SITE:deep */
}
__attribute__((noinline)) static void *recurse(int depth) {
  volatile char pad[512];
  pad[0] = (char)depth;
  void *p = depth > 0 ? recurse(depth - 1) : deep_alloc();
  return pad[0] == (char)depth ? p : NULL;
}

__attribute__((noinline)) static int ok(void) {
  char *p = malloc(100), *q = calloc(10, 10), *r = NULL;
  if (!p || !q || malloc_usable_size(p) != 100 || malloc_usable_size(q) != 100)
    return 1;
  for (int i = 0; i < 100; i++)
    if (q[i] != 0)
      return 2;
  memset(p, 1, 100);
  p = realloc(p, 5000);
  if (!p || p[99] != 1 || malloc_usable_size(p) != 5000)
    return 3;
  if (posix_memalign((void **)&r, 4096, 300) != 0 || ((unsigned long)r & 4095) != 0)
    return 4;
  r[299] = 1;
  free(p);
  free(q);
  free(r);
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "ok";
  if (strcmp(mode, "ok") == 0)
    return ok();
  if (strcmp(mode, "leak") == 0) {
    for (int i = 0; i < 3; i++)
      keep[i] = leak_small();
    keep[3] = leak_big();
    free(malloc(77)); /* not a leak */
    return 0;
  }
  if (strcmp(mode, "overflow") == 0) {
    char *p = malloc(100); /* SITE:overflow */
    p[100] = 'x';
    free(p);
    return 0;
  }
  if (strcmp(mode, "uaf") == 0) {
    char *p = malloc(64); /* SITE:uaf */
    free(p);
    p[10] = 'x';
    for (int i = 0; i < 5000; i++)
      free(malloc(32));
    return 0;
  }
  if (strcmp(mode, "deep") == 0) {
    keep[0] = malloc(16);
    keep[1] = recurse(2000);
    return 0;
  }
  if (strcmp(mode, "sized") == 0) {
    void (*free_sized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    char *p = malloc(100);
    if (free_sized)
      free_sized(p, 120);
    return 0;
  }
  if (strcmp(mode, "double") == 0) {
    char *p = malloc(32); /* SITE:double */
    free(p);
    free(p);
    return 0;
  }
  return 9;
}
