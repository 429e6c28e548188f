/* SPDX-License-Identifier: MIT */
/*
 * The arena list, the main arena, thread-to-arena binding, the arena
 * limit, and the fork handlers (src/arenas.c).
 *
 * Lock order: arenas_list_lock, then arena locks in list order (main
 * first), then the mmapped-chunk registry.  Nothing takes an arena lock
 * while holding another arena's lock except in that order (fork, stats).
 */
#ifndef TIDE_ARENAS_H
#define TIDE_ARENAS_H

#include "internal.h"

void arenas_init(void);
/* The calling thread's arena, locked.  On contention the thread may move
 * to another arena or a new one (within the limit). */
struct arena *arenas_lock_mine(void);
/* While on, the calling thread's allocations get mappings of their own
 * (the main arena if mmap is not allowed): used while tidemalloc starts its
 * own thread, so what pthread_create allocates for it pins no arena's
 * memory -- a small block left at the top of a heap keeps every byte below
 * it from being trimmed. */
void arenas_isolate(bool on);
extern __thread bool arenas_isolating;
/* After a failed allocation in `failed` (unlocked): another arena to try,
 * locked, or NULL. */
struct arena *arenas_lock_other(struct arena *failed);
/* Which arena owns a non-mmapped chunk (checks the pointer is ours). */
struct arena *arenas_of_chunk(void *chunk, size_t size_field);
struct arena *arenas_first(void);
size_t arenas_count(void);
/* The calling thread's arena, without locking or binding (NULL if none). */
struct arena *arenas_thread_arena(void);
/* Called from the thread-exit hook. */
void arenas_thread_exit(void);

#endif
