/* SPDX-License-Identifier: MIT */
/*
 * The static archives' hook on pthread_create (the shared library has
 * src/threadhook.c).  A program linked with -Wl,--wrap=pthread_create
 * calls __wrap_pthread_create, which goes on to libc's and then lets the
 * background thread be made (src/purge.c: the program's own call is a
 * safe point).  Without --wrap nothing refers to this file and the linker
 * leaves it out, so its strong reference to __real_pthread_create (which
 * --wrap points at libc's pthread_create, and which pulls libc.a's in a
 * -static link) never dangles.
 */
#include "purge.h"

extern int __real_pthread_create(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
int __wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg);

int __wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg) {
  int err = __real_pthread_create(thread, attr, start, arg);
  if (err == 0)
    purge_thread_created();
  return err;
}
