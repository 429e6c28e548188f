/* SPDX-License-Identifier: MIT */
/*
 * The shared drop-in's hooks on thread creation (libtidemalloc.so only):
 * pthread_create, and C11's thrd_create (glibc's calls its own
 * pthread_create directly, past any hook).
 *
 * The moment the program makes a thread is the safe point where the
 * background thread (src/purge.c) is made: the caller is the program, so
 * no libc lock is held that pthread_create would need -- unlike inside
 * malloc or free, which libc calls with its own locks held -- and a
 * process that never makes a thread never gets one from tidemalloc.
 *
 * The static archives have src/wrap.c instead: there the program's calls
 * can only reach us through -Wl,--wrap=pthread_create.
 */
#include "purge.h"

#include <dlfcn.h>
#include <threads.h>

typedef int create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef int thrd_create_fn(thrd_t *, thrd_start_t, void *);

static int hook_pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg);
static int hook_thrd_create(thrd_t *thr, thrd_start_t start, void *arg);

/* libc's function of that name: the next definition after ours, else
 * the first in the global scope (when this library was dlopen'ed, libc's
 * comes first there); never our own hook. */
static void *libc_function(const char *name, void *self) {
  void *f = dlsym(RTLD_NEXT, name);
  if (!f || f == self)
    f = dlsym(RTLD_DEFAULT, name);
  return f == self ? NULL : f;
}

static int hook_pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg) {
  static create_fn *libc;
  create_fn *create = __atomic_load_n(&libc, __ATOMIC_ACQUIRE);
  if (unlikely(!create)) {
    create = (create_fn *)libc_function("pthread_create", (void *)hook_pthread_create);
    if (!create)
      return EAGAIN;
    __atomic_store_n(&libc, create, __ATOMIC_RELEASE);
  }
  int err = create(thread, attr, start, arg);
  if (err == 0)
    purge_thread_created();
  return err;
}

static int hook_thrd_create(thrd_t *thr, thrd_start_t start, void *arg) {
  static thrd_create_fn *libc;
  thrd_create_fn *create = __atomic_load_n(&libc, __ATOMIC_ACQUIRE);
  if (unlikely(!create)) {
    create = (thrd_create_fn *)libc_function("thrd_create", (void *)hook_thrd_create);
    if (!create)
      return thrd_error;
    __atomic_store_n(&libc, create, __ATOMIC_RELEASE);
  }
  int r = create(thr, start, arg);
  if (r == thrd_success)
    purge_thread_created();
  return r;
}

/* Exported under libc's names; the hooks compare against their own
 * (hidden) addresses, which no other definition can take over. */
extern __typeof(hook_pthread_create) pthread_create __attribute__((alias("hook_pthread_create"), visibility("default")));
extern __typeof(hook_thrd_create) thrd_create __attribute__((alias("hook_thrd_create"), visibility("default")));
