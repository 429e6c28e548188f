/* SPDX-License-Identifier: MIT */
/*
 * A plain program for heap profiling (TIDEMALLOC_CONF=prof=1 under
 * LD_PRELOAD; tests/prof/prof.sh checks what it writes).  Each site_*
 * function allocates a known amount from one call site:
 *
 *   site_a  64 MiB in 1 KiB blocks, kept
 *   site_b  16 MiB in 200 B blocks (83,886 of them), freed as it goes
 *   site_c  4 blocks of 1 MiB, kept
 *   site_e  16 MiB in 8 KiB blocks, kept
 *   site_g  4,096 blocks of 64 B, each realloc'd to 4 KiB, kept (16 MiB)
 *   site_h  8 MiB in 256 B blocks with calloc, kept; every byte must be 0
 *   site_i  8 MiB in 512 B blocks with aligned_alloc(64), kept
 *   site_j  8 MiB in 512 B blocks with posix_memalign(64), kept
 *   site_d  a second thread: 16 MiB in 512 B blocks, freed by main
 *   site_f  8 MiB in 100 B blocks, freed by a second thread
 *
 *   sites sites BASE   A, B, C, E, G, H, I, J; tide_prof_dump(BASE.1);
 *                      then D and F; tide_prof_dump(BASE.2); exits with
 *                      the blocks kept still live (the profile at exit)
 *   sites off          tide_prof_dump(NULL) must fail with ENOTSUP
 *   sites double       frees a block twice (run with prof_rate=1, so it
 *                      is a sample: the second free must abort)
 *   sites reuse        (prof_rate=1) many blocks of one size freed and
 *                      allocated again, their contents checked: freed
 *                      samples are reused for new ones
 *   sites medium BASE  (mmap_threshold=8192) 10 KiB samples cut from a big
 *                      top, some at offset 16 of a page, all freed;
 *                      tide_prof_dump(BASE): none may be live
 *   sites pool         (prof_rate=1) aligned_alloc(64) blocks of chunk sizes
 *                      between the size classes, freed, then 100 rounds of
 *                      malloc/free of the same sizes; prints "pool grew N"
 *                      (bytes in use over the start, tide_stats_get):
 *                      freed samples no request can take must not stay
 *
 * Prints "dump1 0", "dump2 0" (or -1 and the errno) and "calloc zero 1".
 * Built with frame pointers (tests/tests.mk), so the stacks are whole.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KiB 1024
#define MiB (1024 * 1024)

static void *volatile keep_a[64 * MiB / KiB];
static void *volatile keep_c[4];
static void *volatile keep_e[16 * MiB / (8 * KiB)];
static void *volatile keep_g[4096];
static void *volatile keep_h[8 * MiB / 256];
static void *volatile keep_i[8 * MiB / 512];
static void *volatile keep_j[8 * MiB / 512];
static void *volatile d_blocks[16 * MiB / 512];
static void *volatile f_blocks[8 * MiB / 100];

__attribute__((noinline)) static void site_a(void) {
  for (size_t i = 0; i < sizeof keep_a / sizeof keep_a[0]; i++) {
    char *p = malloc(KiB);
    p[0] = 1;
    keep_a[i] = p;
  }
}

__attribute__((noinline)) static void site_b(void) {
  enum { BATCH = 1000 };
  static void *volatile batch[BATCH];
  size_t left = 83886; /* 16 MiB of 200-byte blocks */
  while (left > 0) {
    size_t k = left < BATCH ? left : BATCH;
    for (size_t i = 0; i < k; i++) {
      char *p = malloc(200);
      memset(p, 0x5b, 200); /* dirty memory, for calloc to clean later */
      batch[i] = p;
    }
    for (size_t i = 0; i < k; i++)
      free(batch[i]);
    left -= k;
  }
}

__attribute__((noinline)) static void site_c(void) {
  for (int i = 0; i < 4; i++) {
    char *p = malloc(MiB);
    p[0] = 1;
    keep_c[i] = p;
  }
}

__attribute__((noinline)) static void site_e(void) {
  for (size_t i = 0; i < sizeof keep_e / sizeof keep_e[0]; i++) {
    char *p = malloc(8 * KiB);
    p[0] = 1;
    keep_e[i] = p;
  }
}

__attribute__((noinline)) static void site_g(void) {
  for (size_t i = 0; i < sizeof keep_g / sizeof keep_g[0]; i++) {
    char *p = malloc(64);
    memset(p, (int)i, 64);
    p = realloc(p, 4 * KiB);
    if (!p || p[63] != (char)i)
      abort();
    keep_g[i] = p;
  }
}

__attribute__((noinline)) static int site_h(void) {
  int zero = 1;
  for (size_t i = 0; i < sizeof keep_h / sizeof keep_h[0]; i++) {
    unsigned char *p = calloc(1, 256);
    for (int j = 0; j < 256; j++)
      zero &= p[j] == 0;
    keep_h[i] = p;
  }
  return zero;
}

__attribute__((noinline)) static void site_i(void) {
  for (size_t i = 0; i < sizeof keep_i / sizeof keep_i[0]; i++) {
    char *p = aligned_alloc(64, 512);
    if (!p || ((unsigned long)p & 63))
      abort();
    keep_i[i] = p;
  }
}

__attribute__((noinline)) static void site_j(void) {
  for (size_t i = 0; i < sizeof keep_j / sizeof keep_j[0]; i++) {
    void *p = NULL;
    if (posix_memalign(&p, 64, 512) != 0 || ((unsigned long)p & 63))
      abort();
    keep_j[i] = p;
  }
}

__attribute__((noinline)) static void site_d(void) {
  for (size_t i = 0; i < sizeof d_blocks / sizeof d_blocks[0]; i++)
    d_blocks[i] = malloc(512);
}

__attribute__((noinline)) static void site_f(void) {
  for (size_t i = 0; i < sizeof f_blocks / sizeof f_blocks[0]; i++)
    f_blocks[i] = malloc(100);
}

static void *allocating_thread(void *arg) {
  (void)arg;
  site_d();
  return NULL;
}

static void *freeing_thread(void *arg) {
  (void)arg;
  for (size_t i = 0; i < sizeof f_blocks / sizeof f_blocks[0]; i++)
    free(f_blocks[i]);
  return NULL;
}

static int dump_errno;

static int dump(int (*prof_dump)(const char *), const char *name, const char *path) {
  errno = 0;
  int r = prof_dump ? prof_dump(path) : -2;
  dump_errno = errno;
  printf("%s %d%s%s\n", name, r, r == -1 ? " " : "", r == -1 ? strerrorname_np(dump_errno) : "");
  fflush(stdout);
  return r;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "sites";
  int (*prof_dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "tide_prof_dump");
  if (strcmp(mode, "off") == 0) {
    site_c();
    return dump(prof_dump, "dump", NULL) == -1 && dump_errno == ENOTSUP ? 0 : 1;
  }
  if (strcmp(mode, "double") == 0) {
    char *p = malloc(100);
    free(p);
    free(p);
    return 0;
  }
  if (strcmp(mode, "reuse") == 0) {
    enum { N = 64 };
    static unsigned char *b[N];
    for (int round = 0; round < 200; round++) {
      for (int i = 0; i < N; i++) {
        b[i] = malloc(48 + (size_t)(i % 4) * 16);
        memset(b[i], round ^ i, 48);
      }
      for (int i = 0; i < N; i++)
        for (int j = 0; j < 48; j++)
          if (b[i][j] != (unsigned char)(round ^ i))
            return 3; /* two live blocks share memory */
      for (int i = 0; i < N; i++)
        free(b[i]);
    }
    return dump(prof_dump, "dump", argv[2]) == 0 ? 0 : 4;
  }
  if (strcmp(mode, "medium") == 0) {
    /* (with mmap_threshold=8192, trim_threshold high) a big free top,
     * then 10 KiB blocks, most of them samples cut from it -- some at
     * offset 16 of a page -- each freed and one more taken, then all
     * freed: none may stay in the live heap */
    enum { TOP = 20000, N = 4000, SZ = 10248 };
    static void *t[TOP], *b[N];
    for (int i = 0; i < TOP; i++)
      t[i] = malloc(4000);
    for (int i = 0; i < TOP; i++)
      free(t[i]);
    for (int i = 0; i < N; i++)
      b[i] = malloc(SZ);
    for (int i = 0; i < N; i++) {
      free(b[i]);
      b[i] = malloc(SZ);
    }
    for (int i = 0; i < N; i++)
      free(b[i]);
    return dump(prof_dump, "dump", argv[2]) == 0 ? 0 : 4;
  }
  if (strcmp(mode, "pool") == 0) {
    struct stats {
      size_t malloc_calls, free_calls, realloc_calls, bytes_requested, in_use_bytes;
      size_t rest[9];
    } s0, s1;
    void (*get)(struct stats *) = (void (*)(struct stats *))dlsym(RTLD_DEFAULT, "tide_stats_get");
    if (!get)
      return 5;
    enum { PER = 8 };
    static void *b[64][PER];
    get(&s0);
    size_t k = 0;
    for (size_t c = 160; c <= 1024 && k < 64; c += 16, k++) /* chunk sizes, most of no class */
      for (int i = 0; i < PER; i++)
        b[k][i] = aligned_alloc(64, c - 8);
    for (size_t j = 0; j < k; j++)
      for (int i = 0; i < PER; i++)
        free(b[j][i]);
    for (int round = 0; round < 100; round++)
      for (size_t c = 160; c <= 1024; c += 16)
        free(malloc(c - 8));
    get(&s1);
    printf("pool grew %zu\n", s1.in_use_bytes > s0.in_use_bytes ? s1.in_use_bytes - s0.in_use_bytes : 0);
    return 0;
  }
  if (strcmp(mode, "sites") != 0 || argc < 3)
    return 9;
  char path[4096];
  site_a();
  site_b();
  site_c();
  site_e();
  site_g();
  int zero = site_h();
  site_i();
  site_j();
  printf("calloc zero %d\n", zero);
  snprintf(path, sizeof path, "%s.1", argv[2]);
  dump(prof_dump, "dump1", path);

  pthread_t t;
  pthread_create(&t, NULL, allocating_thread, NULL);
  pthread_join(t, NULL);
  for (size_t i = 0; i < sizeof d_blocks / sizeof d_blocks[0]; i++)
    free(d_blocks[i]);
  site_f();
  pthread_create(&t, NULL, freeing_thread, NULL);
  pthread_join(t, NULL);
  snprintf(path, sizeof path, "%s.2", argv[2]);
  dump(prof_dump, "dump2", path);
  return 0;
}
