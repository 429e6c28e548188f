/* SPDX-License-Identifier: MIT */
/*
 * The drop-in where glibc itself allocates: run by run.sh as a plain
 * program under LD_PRELOAD=libtidemalloc.so (and the debug .so).  ld.so,
 * dlopen/dlsym/dlerror, pthread (thread stacks' TLS, keys with
 * destructors), stdio, iconv, qsort, atexit handlers and fork all call
 * malloc/free on their own; every one must work, and malloc must be
 * tidemalloc's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <iconv.h>
#include <pthread.h>
#include <string.h>

#include "harness.h"

static pthread_key_t key;
static __thread char tls_buf[4096];
static __thread void *tls_block;
static int destructed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void destroy(void *p) {
  free(p);
  pthread_mutex_lock(&lock);
  destructed++;
  pthread_mutex_unlock(&lock);
}

static void *thread_main(void *arg) {
  int id = (int)(intptr_t)arg;
  memset(tls_buf, id, sizeof tls_buf);
  tls_block = malloc(1000 + (size_t)id);
  pthread_setspecific(key, malloc(64));
  char *s = NULL;
  if (asprintf(&s, "thread %d", id) < 0)
    return (void *)1;
  void *r = (tls_buf[100] == (char)id && tls_block) ? NULL : (void *)1;
  free(s);
  free(tls_block);
  return r;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static void at_exit_alloc(void) {
  void *p = malloc(12345);
  free(p);
}

int main(void) {
  printf("# stress/startup (under LD_PRELOAD)\n");
  Dl_info where;
  void *m = dlsym(RTLD_DEFAULT, "malloc");
  CHECK(m && dladdr(m, &where) && strstr(where.dli_fname, "libtidemalloc"),
        "malloc is tidemalloc's (%s)", m && dladdr(m, &where) ? where.dli_fname : "?");

  void *lib = dlopen("libm.so.6", RTLD_NOW);
  double (*cosine)(double) = lib ? (double (*)(double))dlsym(lib, "cos") : NULL;
  CHECK(cosine && cosine(0.0) == 1.0, "dlopen + dlsym work");
  CHECK(lib && !dlsym(lib, "no_such_symbol_here") && dlerror() != NULL,
        "dlerror reports a missing symbol");
  if (lib)
    dlclose(lib);

  pthread_key_create(&key, destroy);
  pthread_t t[16];
  int bad = 0;
  for (int round = 0; round < 10; round++) {
    for (int i = 0; i < 16; i++)
      if (pthread_create(&t[i], NULL, thread_main, (void *)(intptr_t)(i + 1)) != 0)
        bad++;
    for (int i = 0; i < 16; i++) {
      void *r;
      pthread_join(t[i], &r);
      if (r)
        bad++;
    }
  }
  CHECK(bad == 0, "160 threads with TLS and keys ran");
  CHECK(destructed == 160, "every key destructor ran and freed its block (%d)", destructed);

  iconv_t cd = iconv_open("UTF-16", "UTF-8");
  CHECK(cd != (iconv_t)-1, "iconv_open allocates its converter");
  if (cd != (iconv_t)-1)
    iconv_close(cd);

  enum { N = 200000 };
  int *a = malloc(N * sizeof *a);
  for (int i = 0; i < N; i++)
    a[i] = (int)((unsigned)i * 2654435761u >> 3);
  qsort(a, N, sizeof *a, cmp_int); /* glibc's qsort takes a malloc'd buffer */
  int sorted = 1;
  for (int i = 1; i < N; i++)
    if (a[i - 1] > a[i])
      sorted = 0;
  CHECK(sorted, "qsort of 200000 ints");
  free(a);

  FILE *f = tmpfile();
  for (int i = 0; f && i < 10000; i++)
    fprintf(f, "%d\n", i);
  CHECK(f != NULL, "stdio with a tmpfile");
  if (f)
    fclose(f);

  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    void *p = malloc(100000);
    free(p);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a forked child allocates");

  atexit(at_exit_alloc);
  TEST_MAIN_END("stress/startup");
}
