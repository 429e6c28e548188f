/* SPDX-License-Identifier: MIT */
/*
 * The arena lock: one word, taken with a compare-and-swap when free (the
 * common case costs a handful of instructions, less than a pthread
 * mutex), spinning briefly and then sleeping on a futex when not.
 *
 *   state 0: free   1: held   2: held, and someone may be sleeping on it
 *
 * After fork the child re-initialises every lock (the holders are gone).
 *
 * While it forks, the forking thread holds every lock of ours (src/api.c);
 * a fork handler that runs after ours and calls malloc (pthread_atfork
 * handlers registered before ours run after it) must not wait for them:
 * for that thread, between our prepare handler and the ones after fork,
 * taking a lock succeeds at once and releasing it does nothing.
 */
#ifndef TIDE_LOCK_H
#define TIDE_LOCK_H

#include <stdbool.h>

struct tide_lock {
  int state;
};
#define TIDE_LOCK_INIT {0}

void lock_wait(struct tide_lock *l);  /* src/os.c */
void lock_wake(struct tide_lock *l);  /* src/os.c */
extern __thread bool lock_held_for_fork; /* src/api.c */

static inline void lock_init(struct tide_lock *l) { __atomic_store_n(&l->state, 0, __ATOMIC_RELAXED); }

static inline bool lock_try(struct tide_lock *l) {
  if (__builtin_expect(lock_held_for_fork, 0))
    return true;
  int free_state = 0;
  return __atomic_compare_exchange_n(&l->state, &free_state, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void lock_acquire(struct tide_lock *l) {
  if (__builtin_expect(!lock_try(l), 0))
    lock_wait(l);
}

static inline void lock_release(struct tide_lock *l) {
  if (__builtin_expect(lock_held_for_fork, 0))
    return;
  if (__builtin_expect(__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) == 2, 0))
    lock_wake(l);
}

#endif
