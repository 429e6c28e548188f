/* SPDX-License-Identifier: MIT */
/*
 * The only file that calls brk/sbrk, mmap, munmap, mremap, mprotect and
 * madvise.  See src/os.h for the contract.
 */
#include "os.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <signal.h>
#include <stdio.h> /* rename */
#include <time.h>
#include <unistd.h>

size_t os_page = 4096;

void os_init(void) {
  long p = sysconf(_SC_PAGESIZE);
  if (p > 0)
    os_page = (size_t)p;
}

void *os_sbrk(intptr_t increment) {
  void *old = sbrk(increment);
  return old == (void *)-1 ? NULL : old;
}

void *os_map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void *os_reserve(size_t size, size_t align) {
  /* Over-reserve, then cut the misaligned ends off. */
  size_t span = size + align;
  char *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  char *aligned = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
  size_t head = (size_t)(aligned - p);
  size_t tail = span - head - size;
  if (head)
    munmap(p, head);
  if (tail)
    munmap(aligned + size, tail);
  return aligned;
}

void os_advise_huge(void *p, size_t size) {
  if (opt.huge_pages)
    madvise(p, size, MADV_HUGEPAGE);
}

bool os_commit(void *p, size_t size) { return mprotect(p, size, PROT_READ | PROT_WRITE) == 0; }

void os_decommit(void *p, size_t size) {
  /* A fixed PROT_NONE mapping on top drops the pages and their commit charge. */
  mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
}

void os_unmap(void *p, size_t size) { munmap(p, size); }

void *os_remap(void *p, size_t old_size, size_t new_size) {
  void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  return q == MAP_FAILED ? NULL : q;
}

bool os_purge(void *p, size_t size) {
  if (opt.purge_lazy && madvise(p, size, MADV_FREE) == 0)
    return false;
  return madvise(p, size, MADV_DONTNEED) == 0;
}

int os_nocancel_begin(void) {
  int old = PTHREAD_CANCEL_ENABLE;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
  return old;
}

void os_nocancel_end(int old_state) { pthread_setcancelstate(old_state, NULL); }

int os_write_all(int fd, const char *buf, size_t n) {
  int cancel = os_nocancel_begin();
  int saved = errno;
  int err = 0;
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR)
        continue;
      err = w < 0 ? errno : EIO; /* a closed or full descriptor: the report is lost, not retried */
      break;
    }
    buf += w;
    n -= (size_t)w;
  }
  errno = saved;
  os_nocancel_end(cancel);
  return err;
}

void os_write_err(const char *s) { os_write_all(2, s, strlen(s)); }

uint64_t os_random64(void) {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&v;
  }
  return v | 1;
}

uint64_t os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t os_now_coarse_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Read a small file into buf without allocating; returns bytes read. */
static size_t read_small_file(const char *path, char *buf, size_t cap) {
  int cancel = os_nocancel_begin(); /* open, read and close are cancellation points */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    os_nocancel_end(cancel);
    return 0;
  }
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  os_nocancel_end(cancel);
  if (n < 0)
    n = 0;
  buf[n] = '\0';
  return (size_t)n;
}

int os_cpu_count(void) {
  int n = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    n = CPU_COUNT(&set);
  if (n <= 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    n = c > 0 ? (int)c : 1;
  }
  /* cgroup v2 quota: "max 100000" or "<quota> <period>". */
  char buf[64];
  if (read_small_file("/sys/fs/cgroup/cpu.max", buf, sizeof buf) > 0 && buf[0] != 'm') {
    char *e;
    long quota = strtol(buf, &e, 10);
    long period = strtol(e, NULL, 10);
    if (quota > 0 && period > 0) {
      long q = (quota + period - 1) / period;
      if (q < n)
        n = (int)q;
    }
  }
  return n;
}

void os_yield(void) {
  int saved = errno;
  sched_yield();
  errno = saved;
}

int os_thread_count(void) {
  /* /proc/self/stat: "pid (comm) state ppid ..."; num_threads is the 18th
   * field after the closing parenthesis (comm may hold anything). */
  char buf[1024];
  size_t n = read_small_file("/proc/self/stat", buf, sizeof buf);
  char *p = n ? strrchr(buf, ')') : NULL;
  if (!p)
    return 0;
  for (int field = 0; field < 18 && *p; p++)
    if (*p == ' ')
      field++;
  long v = strtol(p, NULL, 10);
  return v > 0 && v < INT32_MAX ? (int)v : 0;
}

size_t os_resident_bytes(void) {
  /* /proc/self/statm: "size resident shared ..." in pages. */
  char buf[128];
  size_t n = read_small_file("/proc/self/statm", buf, sizeof buf);
  size_t i = 0, pages = 0;
  while (i < n && buf[i] != ' ')
    i++;
  for (i++; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
    pages = pages * 10 + (size_t)(buf[i] - '0');
  return pages * os_page;
}

int os_file_create(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0 && fd <= 2) {
    /* stdin, stdout or stderr was closed: keep the file off them, or the
     * program's own output would land in it. */
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    if (moved < 0)
      unlink(path); /* (no descriptor left: no empty file left either) */
    fd = moved;
  }
  return fd;
}

int os_file_close(int fd) { return close(fd) == 0 ? 0 : errno; }

void os_file_remove(const char *path) { unlink(path); }

int os_tid(void) { return gettid(); }

bool os_file_rename(const char *from, const char *to) { return rename(from, to) == 0; }

int os_pid(void) { return (int)getpid(); }

bool os_signal_catch(int sig, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL) == 0;
}

/* One line of /proc/self/maps: "lo-hi perms offset dev inode   path". */
static bool parse_maps_line(const char *s, uintptr_t *lo, uintptr_t *hi, uintptr_t *off, const char **path) {
  char *e;
  *lo = strtoul(s, &e, 16);
  if (*e != '-')
    return false;
  *hi = strtoul(e + 1, &e, 16);
  while (*e == ' ')
    e++;
  while (*e && *e != ' ') /* perms */
    e++;
  *off = strtoul(e, &e, 16);
  for (int field = 0; field < 2 && *e; field++) { /* dev, inode */
    while (*e == ' ')
      e++;
    while (*e && *e != ' ')
      e++;
  }
  while (*e == ' ')
    e++;
  *path = e;
  return true;
}

void os_maps_each(bool (*fn)(void *ctx, uintptr_t lo, uintptr_t hi, uintptr_t off, const char *path), void *ctx) {
  int cancel = os_nocancel_begin();
  int saved = errno;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[4096];
    size_t have = 0;
    bool more = true;
    while (more) {
      ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
      if (n <= 0)
        break;
      have += (size_t)n;
      buf[have] = 0;
      char *line = buf, *nl;
      while (more && (nl = memchr(line, '\n', (size_t)(buf + have - line))) != NULL) {
        *nl = 0;
        uintptr_t lo, hi, off;
        const char *path;
        if (parse_maps_line(line, &lo, &hi, &off, &path))
          more = fn(ctx, lo, hi, off, path);
        line = nl + 1;
      }
      have = (size_t)(buf + have - line);
      memmove(buf, line, have);
      if (have == sizeof buf - 1) /* a line longer than the buffer: skip it */
        have = 0;
    }
    close(fd);
  }
  errno = saved;
  os_nocancel_end(cancel);
}

struct mapping_search {
  uintptr_t addr, first_lo;
  struct os_mapping *m;
  bool found;
  char first_path[256];
};

static void copy_path(char *dst, size_t cap, const char *src) {
  size_t len = strlen(src);
  if (len >= cap)
    len = cap - 1;
  memcpy(dst, src, len);
  dst[len] = 0;
}

static bool mapping_search_line(void *ctx, uintptr_t lo, uintptr_t hi, uintptr_t off, const char *path) {
  struct mapping_search *s = ctx;
  /* A file's first mapping (offset 0) is its load base. */
  if (off == 0 && strcmp(path, s->first_path) != 0) {
    copy_path(s->first_path, sizeof s->first_path, path);
    s->first_lo = lo;
  }
  if (s->addr < lo || s->addr >= hi)
    return true;
  s->m->lo = lo;
  s->m->hi = hi;
  copy_path(s->m->path, sizeof s->m->path, path);
  s->m->base = path[0] == '/' && strcmp(path, s->first_path) == 0 ? s->first_lo : lo;
  s->found = true;
  return false;
}

bool os_mapping_of(uintptr_t addr, struct os_mapping *m) {
  struct mapping_search s = {.addr = addr, .m = m};
  os_maps_each(mapping_search_line, &s);
  return s.found;
}

bool os_mapped(uintptr_t lo, uintptr_t hi) {
  int saved = errno;
  unsigned char vec[1024];
  bool ok = true;
  for (uintptr_t at = os_page_down(lo); ok && at < hi;) {
    size_t len = (size_t)(os_page_up(hi) - at);
    if (len > sizeof vec * os_page)
      len = sizeof vec * os_page;
    ok = mincore((void *)at, len, vec) == 0;
    at += len;
  }
  errno = saved;
  return ok;
}

const char *os_getenv(const char *name) { return getenv(name); }

/* ------------------------------------------------- the arena lock's slow half */

#include <linux/futex.h>
#include <sys/syscall.h>

#include "lock.h"

void lock_wait(struct tide_lock *l) {
  /* Spin a little: arena critical sections are short. */
  for (int i = 0; i < 100; i++) {
    if (__atomic_load_n(&l->state, __ATOMIC_RELAXED) == 0 && lock_try(l))
      return;
    __builtin_ia32_pause();
  }
  /* Mark "waiters" and sleep until the holder wakes us. */
  int saved = errno;
  while (__atomic_exchange_n(&l->state, 2, __ATOMIC_ACQUIRE) != 0)
    syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
  errno = saved;
}

void lock_wake(struct tide_lock *l) {
  int saved = errno;
  syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  errno = saved;
}

void os_futex_wait(unsigned *word, unsigned expected) {
  int saved = errno;
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
  errno = saved;
}

void os_futex_wake(unsigned *word) {
  int saved = errno;
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  errno = saved;
}
