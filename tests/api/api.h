/* SPDX-License-Identifier: MIT */
/*
 * Shared by the API tests: one source, two builds.
 *
 *   build/tests/api/NAME      linked with libtidemalloc-debug.a, calls tide_*
 *                             while glibc's malloc serves stdio;
 *   build/tests/api/NAME-std  compiled with -DTIDE_TEST_STD, linked with the
 *                             drop-in libtidemalloc.a, calls the standard
 *                             names (malloc, free, mallopt, ...), so it also
 *                             proves those names are exported and win.
 *
 *   build/tests/api/NAME-preload  the standard names again, linked with no
 *                             tidemalloc at all: run.sh starts it under
 *                             LD_PRELOAD=libtidemalloc.so, so it checks what
 *                             the shared drop-in exports and interposes;
 *                             tide_heap_check and tide_stats_get are looked
 *                             up with dlsym.
 *
 * F(name) picks the name; every call in the API tests goes through it.
 */
#ifndef TIDE_TEST_API_H
#define TIDE_TEST_API_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "tidemalloc.h"

#ifdef TIDE_TEST_PRELOAD
#define TIDE_TEST_STD 1
#include <dlfcn.h>
#include <string.h>
/* Missing symbols are reported once, by api/basic-preload's export check;
 * here they read as "sound" and "all zero". */
static inline int tm_heap_check(void) {
  int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "tide_heap_check");
  return f ? f() : 0;
}
static inline void tm_stats_get(struct tide_stats *s) {
  void (*f)(struct tide_stats *) = (void (*)(struct tide_stats *))dlsym(RTLD_DEFAULT, "tide_stats_get");
  if (f)
    f(s);
  else
    memset(s, 0, sizeof *s);
}
static inline void tm_heap_dump(int fd) {
  void (*f)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "tide_heap_dump");
  if (f)
    f(fd);
}
#define tide_heap_check tm_heap_check
#define tide_stats_get tm_stats_get
#define tide_heap_dump tm_heap_dump
#endif

#ifdef TIDE_TEST_STD
#include <malloc.h>
#define F(name) name
#ifdef TIDE_TEST_PRELOAD
#define FLAVOUR "preload"
#else
#define FLAVOUR "std"
#endif
typedef struct mallinfo2 tm_mallinfo2;
typedef struct mallinfo tm_mallinfo;
/* Newer than glibc 2.36's headers; the drop-in exports them.  (Weak in the
 * preload build, which links against glibc alone: ld.so binds them to the
 * preloaded library.) */
#ifdef TIDE_TEST_PRELOAD
#define TM_WEAK __attribute__((weak))
#else
#define TM_WEAK
#endif
void free_sized(void *ptr, size_t size) TM_WEAK;
void free_aligned_sized(void *ptr, size_t alignment, size_t size) TM_WEAK;
void *pvalloc(size_t size);
void *valloc(size_t size);
/* The header promises glibc's numbers for the mallopt parameters. */
_Static_assert(TIDE_M_MXFAST == M_MXFAST, "M_MXFAST");
_Static_assert(TIDE_M_TRIM_THRESHOLD == M_TRIM_THRESHOLD, "M_TRIM_THRESHOLD");
_Static_assert(TIDE_M_TOP_PAD == M_TOP_PAD, "M_TOP_PAD");
_Static_assert(TIDE_M_MMAP_THRESHOLD == M_MMAP_THRESHOLD, "M_MMAP_THRESHOLD");
_Static_assert(TIDE_M_MMAP_MAX == M_MMAP_MAX, "M_MMAP_MAX");
_Static_assert(TIDE_M_CHECK_ACTION == M_CHECK_ACTION, "M_CHECK_ACTION");
_Static_assert(TIDE_M_PERTURB == M_PERTURB, "M_PERTURB");
_Static_assert(TIDE_M_ARENA_TEST == M_ARENA_TEST, "M_ARENA_TEST");
_Static_assert(TIDE_M_ARENA_MAX == M_ARENA_MAX, "M_ARENA_MAX");
_Static_assert(sizeof(struct mallinfo2) == sizeof(struct tide_mallinfo2),
               "mallinfo2 layout");
#else
#define F(name) tide_##name
#define FLAVOUR "debug"
typedef struct tide_mallinfo2 tm_mallinfo2;
typedef struct tide_mallinfo tm_mallinfo;
#endif

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* Sizes of every kind: fast (<= 128), small (< 1 KiB chunk), large,
 * and mmapped (>= the 128 KiB default threshold). */
static const size_t api_kind_sizes[] = {24, 100, 600, 2000, 70000, 200000, 2 * MiB};
#define API_NKINDS (sizeof api_kind_sizes / sizeof api_kind_sizes[0])

/* A byte pattern that differs per block and per offset. */
static inline unsigned char api_pat(unsigned tag, size_t i) {
  return (unsigned char)((tag * 131u) ^ (i * 7u) ^ (i >> 8));
}

static inline void api_fill(void *p, size_t n, unsigned tag) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    b[i] = api_pat(tag, i);
}

/* Returns the first offset that does not match, or n when all do. */
static inline size_t api_verify(const void *p, size_t n, unsigned tag) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != api_pat(tag, i))
      return i;
  return n;
}

static inline int api_all_bytes(const void *p, size_t n, unsigned char v) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != v)
      return 0;
  return 1;
}

static inline int api_aligned(const void *p, size_t a) {
  return ((uintptr_t)p & (a - 1)) == 0;
}

/* The heap checker aborts on a broken heap, so reaching the CHECK is
 * already most of the test. */
#define HEAP_OK(where) CHECK(tide_heap_check() == 0, "heap sound after %s", where)

#endif
