/* SPDX-License-Identifier: MIT */
/*
 * glibc's other names for the malloc family (__libc_malloc, cfree, ...),
 * which glibc 2.36 exports and some programs, debuggers and interposers
 * call directly: under LD_PRELOAD=libtidemalloc.so each must resolve to
 * tidemalloc, and blocks must pass freely between the two sets of names.
 * Also C++'s operator new where there is no libstdc++ to throw with.
 * Built plain (no tidemalloc linked); run.sh starts it under the preload.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <string.h>

#include "harness.h"

static void *resolve(const char *name) {
  void *f = dlsym(RTLD_DEFAULT, name);
  Dl_info where;
  CHECK(f && dladdr(f, &where) && strstr(where.dli_fname, "libtidemalloc"), "%s resolves to %s", name,
        f && dladdr(f, &where) ? where.dli_fname : "nothing");
  return f;
}

/* C++'s operator new in a process without libstdc++ (this C program):
 * there is no new_handler and nothing to throw with, so a failure ends
 * the program with tidemalloc's message; the nothrow form returns NULL. */
static const size_t huge = (size_t)1 << 62;
static void new_huge(void *arg) {
  void *(*op_new)(size_t) = (void *(*)(size_t))arg;
  op_new(huge);
}
static void test_cxx_without_libstdcxx(void) {
  void *(*op_new)(size_t) = (void *(*)(size_t))resolve("_Znwm");
  void *(*op_new_nothrow)(size_t, const void *) = (void *(*)(size_t, const void *))resolve("_ZnwmRKSt9nothrow_t");
  void (*op_delete_sized)(void *, size_t) = (void (*)(void *, size_t))resolve("_ZdlPvm");
  CHECK(dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv") == NULL, "no libstdc++ in this process");
  if (!op_new || !op_new_nothrow || !op_delete_sized)
    return;
  void *p = op_new(100);
  CHECK(p && malloc_usable_size(p) >= 100, "operator new(100) from C");
  op_delete_sized(p, 100);
  CHECK(op_new_nothrow(huge, NULL) == NULL, "operator new(2^62, nothrow) is NULL");
  struct th_child c;
  th_run_child(&c, new_huge, (void *)op_new, 20);
  CHECK(th_child_aborted(&c) && strstr(c.err, "tidemalloc: operator new(): out of memory\n"),
        "operator new(2^62) aborts with \"tidemalloc: operator new(): out of memory\" (%s: %s)",
        th_status_str(c.status), th_first_line(&c));
}

int main(void) {
  printf("# pkg/compat\n");
  void *(*l_malloc)(size_t) = (void *(*)(size_t))resolve("__libc_malloc");
  void (*l_free)(void *) = (void (*)(void *))resolve("__libc_free");
  void *(*l_calloc)(size_t, size_t) = (void *(*)(size_t, size_t))resolve("__libc_calloc");
  void *(*l_realloc)(void *, size_t) = (void *(*)(void *, size_t))resolve("__libc_realloc");
  void *(*l_memalign)(size_t, size_t) = (void *(*)(size_t, size_t))resolve("__libc_memalign");
  void *(*l_valloc)(size_t) = (void *(*)(size_t))resolve("__libc_valloc");
  void *(*l_pvalloc)(size_t) = (void *(*)(size_t))resolve("__libc_pvalloc");
  int (*l_mallopt)(int, int) = (int (*)(int, int))resolve("__libc_mallopt");
  struct mallinfo (*l_mallinfo)(void) = (struct mallinfo(*)(void))resolve("__libc_mallinfo");
  void (*l_cfree)(void *) = (void (*)(void *))resolve("cfree");
  int (*heap_check)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "tide_heap_check");
  CHECK(heap_check != NULL, "tide_heap_check is there (running under the preload)");
  if (!l_malloc || !l_free || !l_calloc || !l_realloc || !l_memalign || !l_valloc || !l_pvalloc || !l_mallopt ||
      !l_mallinfo || !l_cfree || !heap_check)
    TEST_MAIN_END("pkg/compat");

  char *a = l_malloc(100);
  memset(a, 1, 100);
  char *b = malloc(200);
  char *c = l_calloc(10, 10);
  int zero = 1;
  for (int i = 0; i < 100; i++)
    zero &= c[i] == 0;
  CHECK(a && b && zero, "__libc_malloc and __libc_calloc hand out blocks (calloc's zeroed)");
  a = l_realloc(a, 5000);
  CHECK(a && a[99] == 1, "__libc_realloc keeps the contents");
  void *m = l_memalign(256, 100), *v = l_valloc(10), *pv = l_pvalloc(10);
  CHECK(m && ((size_t)m & 255) == 0 && v && ((size_t)v & 4095) == 0 && pv && malloc_usable_size(pv) >= 4096,
        "__libc_memalign, __libc_valloc, __libc_pvalloc align");
  CHECK(malloc_usable_size(a) >= 5000, "malloc_usable_size of a __libc_realloc block");
  free(a);        /* a __libc_ block through the standard name */
  l_free(b);      /* and the other way round */
  l_cfree(c);     /* cfree is free */
  l_free(m);
  free(v);
  l_free(pv);
  CHECK(l_mallopt(M_PERTURB, 0) == 1, "__libc_mallopt(M_PERTURB, 0) = 1");
  struct mallinfo mi = l_mallinfo();
  CHECK(mi.arena > 0, "__libc_mallinfo().arena = %d", mi.arena);
  CHECK(heap_check() == 0, "the heap is sound after blocks crossed between the names");
  test_cxx_without_libstdcxx();
  TEST_MAIN_END("pkg/compat");
}
