/* SPDX-License-Identifier: MIT */
/*
 * tidemalloc — a ptmalloc-style allocator that gives memory back.
 *
 * Public API.  Every function here exists in every build of the library
 * under its tide_ name.  The drop-in build (libtidemalloc.so / .a) also
 * exports the standard names (malloc, free, ..., mallopt, mallinfo2,
 * malloc_trim, malloc_stats, malloc_info), glibc's __libc_* names and
 * C++'s operator new and delete (src/cxx.c); the prefixed build
 * (libtidemalloc-prefixed.a, libtidemalloc-debug.a) exports only the
 * tide_ names, so it can live beside another malloc in one process.
 */
#ifndef TIDEMALLOC_H
#define TIDEMALLOC_H

#include <stddef.h>
#include <stdio.h>

/* ---- version: these three lines are the only place it is written; the
 * Makefile reads them (soname, pkg-config, CMake, man pages, .deb) ---- */
#define TIDEMALLOC_VERSION_MAJOR 0
#define TIDEMALLOC_VERSION_MINOR 1
#define TIDEMALLOC_VERSION_PATCH 0

#define TIDEMALLOC_STR2_(x) #x
#define TIDEMALLOC_STR_(x) TIDEMALLOC_STR2_(x)
/* "0.1.0" */
#define TIDEMALLOC_VERSION                                                   \
  TIDEMALLOC_STR_(TIDEMALLOC_VERSION_MAJOR)                                  \
  "." TIDEMALLOC_STR_(TIDEMALLOC_VERSION_MINOR) "." TIDEMALLOC_STR_(TIDEMALLOC_VERSION_PATCH)
/* 0.1.0 -> 100, 1.2.3 -> 10203: for #if TIDEMALLOC_VERSION_NUMBER >= ... */
#define TIDEMALLOC_VERSION_NUMBER                                            \
  (TIDEMALLOC_VERSION_MAJOR * 10000 + TIDEMALLOC_VERSION_MINOR * 100 + TIDEMALLOC_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually loaded ("0.1.0"); TIDEMALLOC_VERSION
 * is the one of the header a program was compiled with. */
const char *tide_version(void);

/* ---- the malloc family (same contracts as the standard functions) ---- */
void *tide_malloc(size_t size);
void tide_free(void *ptr);
void *tide_calloc(size_t nmemb, size_t size);
void *tide_realloc(void *ptr, size_t size);
void *tide_reallocarray(void *ptr, size_t nmemb, size_t size);
void *tide_memalign(size_t alignment, size_t size);
int tide_posix_memalign(void **memptr, size_t alignment, size_t size);
void *tide_aligned_alloc(size_t alignment, size_t size);
void *tide_valloc(size_t size);
void *tide_pvalloc(size_t size);
size_t tide_malloc_usable_size(void *ptr);
void tide_free_sized(void *ptr, size_t size);
void tide_free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* ---- glibc extensions ---- */

/* mallopt parameters: glibc's numbers, so programs built against
 * <malloc.h> pass the same values. */
#define TIDE_M_MXFAST 1
#define TIDE_M_TRIM_THRESHOLD (-1)
#define TIDE_M_TOP_PAD (-2)
#define TIDE_M_MMAP_THRESHOLD (-3)
#define TIDE_M_MMAP_MAX (-4)
#define TIDE_M_CHECK_ACTION (-5)
#define TIDE_M_PERTURB (-6)
#define TIDE_M_ARENA_TEST (-7)
#define TIDE_M_ARENA_MAX (-8)
/* tidemalloc's own parameters (values glibc does not use). */
#define TIDE_M_PURGE_DECAY_MS (-101) /* ms before freed pages go back; -1 = never */
#define TIDE_M_PURGE_THREAD (-102)   /* background purge thread: 0 never, 1 once the program
                                        makes a thread (default), 2 start it now */
#define TIDE_M_TCACHE_COUNT (-103)   /* entries per thread-cache bin */
#define TIDE_M_TCACHE_MAX (-104)     /* largest request served by the thread cache */
#define TIDE_M_PURGE_LAZY (-105)     /* 1: purge with MADV_FREE instead of MADV_DONTNEED */
#define TIDE_M_ARENA_SHARE (-106)    /* 1 (default): threads share arenas until they contend;
                                        0: each new thread gets an arena of its own, as in glibc */

int tide_mallopt(int param, int value);

/* Same layout as glibc's struct mallinfo2. */
struct tide_mallinfo2 {
  size_t arena;    /* bytes obtained from the OS with brk/heaps (non-mmapped) */
  size_t ordblks;  /* free chunks (not fast) */
  size_t smblks;   /* free fast-bin chunks */
  size_t hblks;    /* mmapped chunks */
  size_t hblkhd;   /* bytes in mmapped chunks */
  size_t usmblks;  /* always 0, as in glibc */
  size_t fsmblks;  /* bytes in free fast-bin chunks */
  size_t uordblks; /* bytes in use (non-mmapped) */
  size_t fordblks; /* bytes free (non-mmapped) */
  size_t keepcost; /* releasable bytes at the top of the main arena */
};
struct tide_mallinfo2 tide_mallinfo2(void);

/* Same layout as glibc's (deprecated) struct mallinfo: ints that saturate. */
struct tide_mallinfo {
  int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct tide_mallinfo tide_mallinfo(void);

int tide_malloc_trim(size_t pad);
void tide_malloc_stats(void);
int tide_malloc_info(int options, FILE *fp);

/* ---- tidemalloc's own extensions ---- */

/* Process-wide counters since start-up (exact under the arena locks;
 * thread caches add theirs when they refill or flush). */
struct tide_stats {
  size_t malloc_calls;     /* malloc, calloc, realloc(NULL,..), memalign family */
  size_t free_calls;       /* free of a non-NULL pointer, realloc(p, 0) */
  size_t realloc_calls;
  size_t bytes_requested;  /* sum of requested sizes */
  size_t in_use_bytes;     /* chunk bytes currently handed out (incl. mmapped and
                              thread-cached chunks) */
  size_t peak_in_use_bytes; /* highest in_use_bytes seen when the heap grew */
  size_t os_bytes;         /* bytes currently obtained from the OS (brk + heaps + mmapped;
                              purged pages inside them still count) */
  size_t peak_os_bytes;     /* highest os_bytes seen when the heap grew */
  size_t mmapped_chunks;   /* live mmapped chunks */
  size_t arenas;           /* arenas created */
  size_t purged_bytes;     /* bytes handed back to the OS with madvise/munmap/sbrk since start */
  size_t cached_bytes;     /* of in_use_bytes, blocks sitting free in thread caches (since 0.2) */
  size_t live_bytes;       /* in_use_bytes - cached_bytes: what the program holds (since 0.2) */
};
void tide_stats_get(struct tide_stats *out);

/* Walk every arena and verify every invariant of the heap (see
 * src/check.c).  Returns 0 when the heap is sound; on the first broken
 * invariant prints "tidemalloc: heap_check(): <what>" and aborts. */
int tide_heap_check(void);

/* Write a picture of the heap (arenas, bins, chunks) to fd. */
void tide_heap_dump(int fd);

/* The statistics as JSON (docs/json.md, schema 1), to fd: totals, and per
 * arena its figures and non-empty bins.  Never allocates. */
void tide_stats_json(int fd);
/* The same and every arena's regions and chunks in address order, the
 * mmapped chunks and the thread caches: what `tidemalloc view` draws.
 * Never allocates; each arena is walked under its lock. */
void tide_heap_dump_json(int fd);

/* Write every setting to fd, one a line: its name, the value in effect,
 * where that value came from (default, GLIBC_TUNABLES, a MALLOC_*_ or
 * TIDEMALLOC_* variable, TIDEMALLOC_CONF, mallopt), its default, its range
 * and what it does.  Lines starting with '#' are comments.  Never
 * allocates.  `tidemalloc config` and TIDEMALLOC_CONF=verbose=1 print this. */
void tide_config_print(int fd);

/* Heap profiling (TIDEMALLOC_CONF=prof=1; README "Heap profiling"):
 * write the profiles now, the live heap (sampled blocks still allocated)
 * to <path>.heap and every sampled allocation since start to
 * <path>.alloc, as collapsed stacks ("frame;frame;... bytes" lines);
 * "%p" in path is the process id; NULL: the prof_file setting.  Never
 * allocates.  Returns 0, or -1 with errno set: ENOTSUP when profiling
 * is off, ENAMETOOLONG, or what open(2) or write(2) said. */
int tide_prof_dump(const char *path);

#ifdef __cplusplus
}
#endif
#endif /* TIDEMALLOC_H */
