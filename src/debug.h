/* SPDX-License-Identifier: MIT */
/*
 * Debug mode (src/debug.c): redzones, junk, a quarantine, the heap checker
 * every so many operations, and the leak report at exit.  The entry
 * points in api.c hand every call to these when tide_debug_on (the thread
 * caches are off then, so every call reaches a slow path); these use the
 * raw allocator below, which is the ordinary one.
 */
#ifndef TIDE_DEBUG_H
#define TIDE_DEBUG_H

#include "internal.h"

extern TIDE_HIDDEN bool tide_debug_on;

/* ra: the caller's return address; fp: its frame pointer, or NULL. */
void *debug_malloc(size_t n, uintptr_t ra, const void *fp);
void *debug_calloc(size_t n, uintptr_t ra);
void *debug_memalign(size_t align, size_t n, uintptr_t ra);
void debug_free(void *mem, uintptr_t ra, const void *fp);
void *debug_realloc(void *mem, size_t n, uintptr_t ra);
size_t debug_usable_size(void *mem);
void debug_report_at_exit(void);
void debug_prefork(void);
void debug_postfork_parent(void);
void debug_postfork_child(void);

/* The allocator without debug mode (src/api.c). */
void *tide_raw_malloc(size_t n);
void *tide_raw_memalign(size_t align, size_t n);
void tide_raw_free(void *mem);
/* Checks mem as free() does (a block of ours, in use); aborts if not. */
void tide_raw_check(void *mem, const char *fn);
size_t tide_raw_usable(void *mem);

#endif
