/*
 * The shared drop-in's hook on pthread_create (libtidemalloc.so only).
 *
 * The moment the program makes a thread is the safe point where the
 * background thread (src/purge.c) is made: the caller is the program, so
 * no libc lock is held that pthread_create would need -- unlike inside
 * malloc or free, which libc calls with its own locks held -- and a
 * process that never makes a thread never gets one from tidemalloc.
 *
 * Not in the static archives: there the program's call cannot be passed
 * on to libc's pthread_create (libc.so exports it under this name only;
 * libc.a defines it as a weak alias that our definition would replace).
 * Statically linked programs start the thread with
 * mallopt(TIDE_M_PURGE_THREAD, 2) or TIDEMALLOC_PURGE_THREAD=2.
 */
#include "purge.h"

#include <dlfcn.h>

typedef int create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

TIDE_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg);

/* libc's pthread_create: the next definition after ours, else the first
 * one in the global scope (when this library was dlopen'ed it may come
 * before libc's there). */
static create_fn *libc_create(void) {
  static create_fn *found;
  create_fn *f = __atomic_load_n(&found, __ATOMIC_ACQUIRE);
  if (likely(f != NULL))
    return f;
  f = (create_fn *)dlsym(RTLD_NEXT, "pthread_create");
  if (!f || f == pthread_create)
    f = (create_fn *)dlsym(RTLD_DEFAULT, "pthread_create");
  if (f == pthread_create)
    f = NULL;
  if (f)
    __atomic_store_n(&found, f, __ATOMIC_RELEASE);
  return f;
}

TIDE_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg) {
  create_fn *create = libc_create();
  if (unlikely(!create))
    return EAGAIN;
  int err = create(thread, attr, start, arg);
  if (err == 0)
    purge_thread_created();
  return err;
}
