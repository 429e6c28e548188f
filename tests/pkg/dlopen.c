/* SPDX-License-Identifier: MIT */
/*
 * tidemalloc loaded with dlopen() into a program that was started
 * without it (issue 14: dlopen used to fail with "cannot allocate memory
 * in static TLS block").
 *
 *   dlopen-plain lib PATH     the drop-in libtidemalloc.so: dlopen, use the
 *                             tide_* functions from 4 threads, dlclose, and
 *                             keep running threads afterwards (the library
 *                             is linked -z nodelete, so its thread-exit
 *                             destructors and purge thread stay mapped)
 *   dlopen-plain plugin PATH  a plugin that links libtidemalloc-prefixed.a
 *                             statically and does its work with it
 *
 * The process's own malloc stays glibc's in both cases: a library loaded
 * later does not interpose on symbols already bound.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "tidemalloc.h" /* TIDEMALLOC_VERSION */

static void *(*p_malloc)(size_t);
static void (*p_free)(void *);
static void *(*p_realloc)(void *, size_t);
static int (*p_heap_check)(void);

/* Each thread allocates, fills, checks and frees; a few blocks are freed
 * by the next thread (cross-thread frees). */
#define NTHREADS 4
#define ROUNDS 20000
static void *handover[NTHREADS];

static void *worker(void *arg) {
  intptr_t id = (intptr_t)arg;
  struct th_rng r;
  th_rng_seed(&r, (uint64_t)id + 1);
  intptr_t bad = 0;
  void *keep[64] = {0};
  for (int i = 0; i < ROUNDS; i++) {
    size_t n = (size_t)th_rng_range(&r, 1, i % 100 == 0 ? 300000 : 2000);
    int slot = (int)th_rng_range(&r, 0, 63);
    if (keep[slot]) {
      unsigned char *q = keep[slot];
      if (q[0] != (unsigned char)slot)
        bad++;
      p_free(q);
    }
    unsigned char *p = p_malloc(n);
    if (!p) {
      bad++;
      continue;
    }
    memset(p, slot, n);
    if (i % 7 == 0) {
      p = p_realloc(p, n + 100);
      if (!p) {
        bad++;
        continue;
      }
    }
    keep[slot] = p;
  }
  for (int i = 0; i < 64; i++)
    p_free(keep[i]);
  void *mine = p_malloc(100);
  void *theirs = __atomic_exchange_n(&handover[(id + 1) % NTHREADS], mine, __ATOMIC_ACQ_REL);
  p_free(theirs);
  return (void *)bad;
}

static intptr_t run_workers(void) {
  pthread_t t[NTHREADS];
  intptr_t bad = 0;
  for (intptr_t i = 0; i < NTHREADS; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
      bad++;
  for (int i = 0; i < NTHREADS; i++) {
    void *r;
    pthread_join(t[i], &r);
    bad += (intptr_t)r;
  }
  for (int i = 0; i < NTHREADS; i++) {
    p_free(handover[i]);
    handover[i] = NULL;
  }
  return bad;
}

/* The size of the static TLS block the object named like `name` needs. */
struct tls_query {
  const char *name;
  size_t memsz;
  int found;
};
static int find_tls(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  struct tls_query *q = arg;
  if (!info->dlpi_name || !strstr(info->dlpi_name, q->name))
    return 0;
  q->found = 1;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_TLS)
      q->memsz = info->dlpi_phdr[i].p_memsz;
  return 1;
}

static void *thread_noop(void *arg) {
  void *p = malloc(64); /* glibc's, with a thread of its own */
  free(p);
  return arg;
}

static void *sym(void *h, const char *name) {
  void *f = dlsym(h, name);
  CHECK(f != NULL, "dlsym(%s)", name);
  return f;
}

static void test_lib(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  CHECK(h != NULL, "dlopen(%s): %s", path, h ? "loaded" : dlerror());
  if (!h)
    return;
  struct tls_query q = {"libtidemalloc", 0, 0};
  dl_iterate_phdr(find_tls, &q);
  CHECK(q.found && q.memsz <= 64, "its static TLS is %zu bytes (at most 64: a few pointers)", q.memsz);
  const char *(*version)(void) = (const char *(*)(void))sym(h, "tide_version");
  p_malloc = (void *(*)(size_t))sym(h, "tide_malloc");
  p_free = (void (*)(void *))sym(h, "tide_free");
  p_realloc = (void *(*)(void *, size_t))sym(h, "tide_realloc");
  p_heap_check = (int (*)(void))sym(h, "tide_heap_check");
  if (!version || !p_malloc || !p_free || !p_realloc || !p_heap_check)
    return;
  CHECK(strcmp(version(), TIDEMALLOC_VERSION) == 0, "tide_version() = \"%s\", the header's version", version());
  void *p = p_malloc(1000);
  Dl_info where;
  CHECK(p && dladdr((void *)p_malloc, &where) && strstr(where.dli_fname, "libtidemalloc"),
        "tide_malloc comes from %s", p ? where.dli_fname : "nowhere");
  p_free(p);
  CHECK(run_workers() == 0, "4 threads allocate, check and free %d blocks each through it", ROUNDS);
  CHECK(p_heap_check() == 0, "its heap is sound afterwards");
  /* glibc stays the process's malloc: malloc is not the library's. */
  void *m = dlsym(RTLD_DEFAULT, "malloc");
  CHECK(m && dladdr(m, &where) && strstr(where.dli_fname, "libc.so"),
        "the program's malloc is still glibc's (%s)", m ? where.dli_fname : "?");
  CHECK(dlclose(h) == 0, "dlclose");
  /* -z nodelete: still mapped, so its code keeps running. */
  void *again = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  CHECK(again != NULL, "still loaded after dlclose (linked -z nodelete)");
  pthread_t t[8];
  int ok = 1;
  for (int i = 0; i < 8; i++)
    ok &= pthread_create(&t[i], NULL, thread_noop, NULL) == 0;
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  CHECK(ok && run_workers() == 0, "threads still come and go, and it still serves them, after dlclose");
}

static void test_plugin(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  CHECK(h != NULL, "dlopen(%s): %s", path, h ? "loaded" : dlerror());
  if (!h)
    return;
  int (*work)(int) = (int (*)(int))sym(h, "plugin_work");
  p_malloc = (void *(*)(size_t))sym(h, "tide_malloc");
  p_free = (void (*)(void *))sym(h, "tide_free");
  p_realloc = (void *(*)(void *, size_t))sym(h, "tide_realloc");
  p_heap_check = (int (*)(void))sym(h, "tide_heap_check");
  if (!work || !p_malloc || !p_free || !p_realloc || !p_heap_check)
    return;
  CHECK(work(100000) == 0, "plugin_work(): the plugin's own allocations, checked inside it");
  CHECK(run_workers() == 0, "4 host threads use the plugin's tide_malloc");
  CHECK(p_heap_check() == 0, "the plugin's heap is sound afterwards");
  Dl_info where;
  void *m = dlsym(RTLD_DEFAULT, "malloc");
  CHECK(m && dladdr(m, &where) && strstr(where.dli_fname, "libc.so"),
        "the host's malloc is still glibc's (%s)", m ? where.dli_fname : "?");
}

int main(int argc, char **argv) {
  if (argc != 3)
    return 2;
  printf("# pkg/dlopen %s\n", argv[1]);
  if (strcmp(argv[1], "lib") == 0)
    test_lib(argv[2]);
  else if (strcmp(argv[1], "plugin") == 0)
    test_plugin(argv[2]);
  else
    return 2;
  TEST_MAIN_END(strcmp(argv[1], "lib") == 0 ? "pkg/dlopen-lib" : "pkg/dlopen-plugin");
}
