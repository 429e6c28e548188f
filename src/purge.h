/*
 * Returning memory to the OS (src/purge.c): trimming the top chunk
 * (sbrk for the main arena's break, shrinking and deleting heaps), and
 * malloc_trim.
 */
#ifndef TIDE_PURGE_H
#define TIDE_PURGE_H

#include "internal.h"

/* Arena lock held.  Keep pad bytes above the top's minimum; true if any
 * memory went back to the OS. */
bool purge_trim_top(struct arena *a, size_t pad);
/* malloc_trim: every arena; true if memory was released. */
bool purge_trim_all(size_t pad);

#endif
