/* SPDX-License-Identifier: MIT */
/*
 * A program as a user of the installed library writes it: built by
 * tests/pkg/install.sh and deb.sh with pkg-config, by hand, statically
 * and with CMake, then run.  It says which malloc it got and exits 0
 * only when that is tidemalloc's.
 *   client            the drop-in (shared or static): malloc is tidemalloc
 *   client prefixed   built with -DCLIENT_PREFIXED against the prefixed
 *                     archive: tide_malloc beside glibc's malloc
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemalloc.h>

int main(void) {
  if (strcmp(tide_version(), TIDEMALLOC_VERSION) != 0) {
    printf("client: header %s, library %s\n", TIDEMALLOC_VERSION, tide_version());
    return 1;
  }
#ifdef CLIENT_PREFIXED
  char *p = tide_malloc(1000);
  strcpy(p, "prefixed");
  void *q = malloc(10); /* glibc's */
  int ok = tide_malloc_usable_size(p) >= 1000 && tide_heap_check() == 0;
  free(q);
  tide_free(p);
  printf("client: tidemalloc %s, tide_malloc beside the system malloc: %s\n", tide_version(), ok ? "ok" : "broken");
  return ok ? 0 : 1;
#else
  /* Where the program's malloc comes from. */
  Dl_info where;
  void *m = dlsym(RTLD_DEFAULT, "malloc");
  const char *from = m && dladdr(m, &where) ? where.dli_fname : "?";
  char *blocks[1000];
  for (int i = 0; i < 1000; i++) {
    blocks[i] = malloc((size_t)i * 10 + 1);
    memset(blocks[i], i & 0xff, (size_t)i * 10 + 1);
  }
  struct tide_stats s;
  tide_stats_get(&s);
  for (int i = 0; i < 1000; i++)
    free(blocks[i]);
  char *dup = strdup("libc's strdup allocates with our malloc");
  int ours = s.malloc_calls >= 1000 && tide_malloc_usable_size(dup) > 0;
  free(dup);
  printf("client: tidemalloc %s, malloc from %s, %zu mallocs counted: %s\n", tide_version(), from,
         s.malloc_calls, ours ? "ok" : "not tidemalloc");
  return ours && tide_heap_check() == 0 ? 0 : 1;
#endif
}
