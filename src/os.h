/* SPDX-License-Identifier: MIT */
/*
 * The OS contract.  src/os.c is the only file that makes memory system
 * calls; everything above it speaks in these terms:
 *
 *   os_sbrk(n)            move the break by n (n may be negative); returns the
 *                         old break, or NULL when the kernel refuses.
 *   os_map(n)             n fresh zero bytes, read/write; NULL on failure.
 *   os_reserve(n, align)  n bytes of address space aligned to align, no
 *                         access, nothing committed; NULL on failure.
 *   os_commit(p, n)       make reserved pages read/write (zero on first touch).
 *   os_decommit(p, n)     give pages back and make them inaccessible again.
 *   os_unmap(p, n)        release a mapping or part of one.
 *   os_remap(p, old, new) resize a mapping, moving it if needed; NULL on failure.
 *   os_advise_huge(p, n)  with the hugetlb option, ask for transparent huge
 *                         pages there (the kernel may stall to assemble one).
 *   os_purge(p, n)        give the pages back, keep the range mapped: it reads
 *                         as zero afterwards (MADV_DONTNEED), or, with the
 *                         purge_lazy option, as zero or as it was (MADV_FREE);
 *                         true when it now reads as zero.
 * All sizes and addresses given to the page calls are page multiples.
 */
#ifndef TIDE_OS_H
#define TIDE_OS_H

#include "internal.h"

extern size_t os_page;                 /* page size, set by os_init */
void os_init(void);
static inline size_t os_page_up(size_t n) { return (n + os_page - 1) & ~(os_page - 1); }
static inline uintptr_t os_page_down(uintptr_t n) { return n & ~(uintptr_t)(os_page - 1); }

void *os_sbrk(intptr_t increment);
void *os_map(size_t size);
void *os_reserve(size_t size, size_t align);
bool os_commit(void *p, size_t size);
void os_decommit(void *p, size_t size);
void os_unmap(void *p, size_t size);
void *os_remap(void *p, size_t old_size, size_t new_size);
bool os_purge(void *p, size_t size); /* true: the range now reads as zero */
void os_advise_huge(void *p, size_t size);
#define OS_HUGE_PAGE ((size_t)2 * 1024 * 1024)

int os_write_all(int fd, const char *buf, size_t n); /* write(2) until done (0) or failed (its errno); keeps errno */
void os_write_err(const char *s);      /* the same, a string to stderr */
/* Sleep while *word == expected (until a wake); wake one sleeper.  Both
 * keep errno. */
void os_futex_wait(unsigned *word, unsigned expected);
void os_futex_wake(unsigned *word);
/* Around every write tidemalloc makes: write(2) is a cancellation point,
 * and a thread with a cancellation pending must neither lose our output
 * nor be cancelled inside malloc_stats or an error report. */
int os_nocancel_begin(void);
void os_nocancel_end(int old_state);
uint64_t os_random64(void);
uint64_t os_now_ns(void);              /* CLOCK_MONOTONIC */
uint64_t os_now_coarse_ms(void);       /* CLOCK_MONOTONIC_COARSE, in ms */
int os_cpu_count(void);                /* CPUs this process may use (affinity, cgroup quota) */
int os_thread_count(void);             /* threads of this process, or 0 if unknown */
size_t os_resident_bytes(void);        /* its resident bytes (/proc/self/statm), or 0 */
int os_pid(void);
int os_tid(void);
/* Reports to files: create a new file (not through a symlink, mode 0600,
 * never on descriptors 0-2) for writing, -1 on failure; close; remove;
 * rename into place.  Callers hold cancellation off. */
int os_file_create(const char *path);
int os_file_close(int fd); /* 0, or the errno of a failed close */
void os_file_remove(const char *path);
bool os_file_rename(const char *from, const char *to);
/* handler runs on sig (SA_RESTART); false if sig cannot be caught. */
bool os_signal_catch(int sig, void (*handler)(int));
/* The mapping of /proc/self/maps that holds addr: its bounds, the file it
 * maps (path[0] == 0 if none) and where that file's first mapping starts
 * (for file-relative addresses, as addr2line takes them).  Never
 * allocates; false if addr is in no mapping. */
struct os_mapping {
  uintptr_t lo, hi, base;
  char path[256];
};
bool os_mapping_of(uintptr_t addr, struct os_mapping *m);
/* Is every page of [lo, hi) mapped (mincore)?  Keeps errno. */
bool os_mapped(uintptr_t lo, uintptr_t hi);
/* fn for each line of /proc/self/maps (the file's offset, its path or
 * ""), until it returns false. */
void os_maps_each(bool (*fn)(void *ctx, uintptr_t lo, uintptr_t hi, uintptr_t off, const char *path), void *ctx);
void os_yield(void);                   /* sched_yield, keeping errno */
const char *os_getenv(const char *name);

#endif
