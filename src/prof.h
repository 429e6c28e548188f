/* SPDX-License-Identifier: MIT */
/*
 * Sampled heap profiling (src/prof.c; TIDEMALLOC_CONF=prof=1, off by
 * default).  The entry points of src/api.c reach these only on a slow
 * path: the fast paths' one extra branch is tc->bytes_left going below
 * zero (src/tcache.h), and free's fast path never takes a sampled block.
 */
#ifndef TIDE_PROF_H
#define TIDE_PROF_H

#include "internal.h"

struct tcache;

#define PROF_DEFAULT_RATE ((size_t)512 * 1024) /* mean bytes between samples */
#define PROF_DEFAULT_FILE "tidemalloc-prof.%p"  /* + .heap and .alloc; %p: the pid */
#define PROF_PATH_MAX 1024

/* Sampling is on: set once, at initialisation. */
extern TIDE_HIDDEN bool prof_on;

/* Sampled blocks are no run blocks, and have their memory at page
 * offset 0 or 16 (16 is where an mmapped chunk's memory is): free's fast
 * path takes only run blocks, and sends every other pointer placed so
 * the slow way in full.  Only such a pointer can be a sample. */
#define PROF_PAGE ((size_t)4096)
static inline bool prof_placed(const void *mem) { return ((uintptr_t)mem & (PROF_PAGE - 1)) <= 16; }

/* After opt_init: turns sampling on if the settings ask for it. */
void prof_init(void);
/* A new thread cache: its profiler's state set (with profiling on), the
 * first value of its countdown (tc->bytes_left) returned. */
intptr_t prof_first_left(struct tcache *tc);

/* The fast paths' countdown went below zero after popping mem for a
 * request of n: count it, arm it again, maybe sample.  Tail-called from
 * malloc and calloc, so the return address is the program's call. */
void *prof_malloc_hit(size_t n, void *mem);
void *prof_calloc_hit(size_t n, void *mem);
/* The slow paths when prof_on (tail-called from api.c, like the above):
 * count n against the thread's other countdown; sample, or go on with
 * the raw allocator. */
void *prof_malloc(size_t n);
void *prof_calloc(size_t n);
void *prof_memalign(size_t align, size_t n);
/* The same for a caller that knows the program's return address and
 * frame pointer (posix_memalign). */
void *prof_memalign_from(size_t align, size_t n, uintptr_t ra, const void *fp);
void *prof_realloc(void *mem, size_t n);
/* free(mem), mem prof_placed, prof_on: if mem is a sampled block, it
 * leaves the live profile, and the profiler keeps it for a later sample
 * (PROF_KEPT: free has nothing more to do), or it must go back to its
 * arena, not to a thread cache (PROF_TO_ARENA).  A second free of a
 * block the profiler keeps is reported, and aborts. */
enum { PROF_NOT_SAMPLED, PROF_TO_ARENA, PROF_KEPT };
int prof_forget(void *mem);

void prof_prefork(void);
void prof_postfork_parent(void);
void prof_postfork_child(void);

/* The settings (src/options.c's table). */
bool prof_set_on(size_t v);
long long prof_get_on(void);
bool prof_set_rate(size_t v);
long long prof_get_rate(void);
bool prof_set_file(const char *v, size_t len);
const char *prof_get_file(void);

/* src/api.c: the allocator below the profiler, and a block placed as a
 * sampled one must be (prof_placed). */
void *tide_raw_calloc(size_t n);
void *tide_raw_realloc(void *mem, size_t n);
void *tide_raw_sampled(size_t n, size_t align, bool zero);

#endif
