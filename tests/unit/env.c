/* SPDX-License-Identifier: MIT */
/*
 * Options read from the environment at start-up (glibc's MALLOC_*_
 * variables and GLIBC_TUNABLES=glibc.malloc.*), and M_PERTURB.
 *
 * The binary re-executes itself with a mode argument and an environment;
 * the child reports what it saw on stderr, the parent checks it.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "tidemalloc.h"

static const char *self;

/* ---- child modes: print one line to stderr ---- */

static int mode_threshold(void) {
  void *p = tide_malloc(500000);
  int mm = p && (((size_t *)p)[-1] & 2);
  fprintf(stderr, "result: %s\n", mm ? "mmapped" : "heap");
  tide_free(p);
  return 0;
}

static int mode_fastbins(void) {
  void *f[200];
  for (int i = 0; i < 200; i++)
    f[i] = tide_malloc(100);
  void *guard = tide_malloc(100);
  struct tide_mallinfo2 a = tide_mallinfo2();
  for (int i = 0; i < 200; i++)
    tide_free(f[i]);
  struct tide_mallinfo2 b = tide_mallinfo2();
  fprintf(stderr, "result: %zu\n", b.smblks - a.smblks);
  tide_free(guard);
  return 0;
}

static int mode_perturb(void) {
  unsigned char *p = tide_malloc(200);
  int all = 1;
  for (int i = 0; i < 200; i++)
    if (p[i] != (unsigned char)~0xA5)
      all = 0;
  fprintf(stderr, "result: %s\n", all ? "filled" : "not filled");
  tide_free(p);
  return 0;
}

/* Does the mapping holding p carry MADV_HUGEPAGE ("hg" in VmFlags)? */
static int advised_huge(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f)
    return -1;
  char line[512];
  int in = 0, hg = -1;
  uintptr_t a = (uintptr_t)p;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    char *sp = strchr(line, ' ');
    if (sp && sp > line && strchr(line, '-') && strchr(line, '-') < sp && sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
      in = a >= lo && a < hi;
      continue;
    }
    if (in && strncmp(line, "VmFlags:", 8) == 0)
      hg = strstr(line, " hg") != NULL;
  }
  fclose(f);
  return hg;
}

static void *huge_thread(void *out) {
  void *p = tide_malloc(100); /* in a heap of a second arena */
  *(int *)out = advised_huge(p);
  /* Fill the heap to its 64 MiB end and start another: growth in whole
   * huge pages must stop exactly there. */
  enum { N = 700 };
  static char *blocks[N];
  for (int i = 0; i < N; i++) {
    blocks[i] = tide_malloc(100 * 1024);
    if (!blocks[i])
      *(int *)out = -2;
    else
      memset(blocks[i], i, 100 * 1024);
  }
  for (int i = 0; i < N; i++)
    if (blocks[i] && (blocks[i][0] != (char)i || blocks[i][100 * 1024 - 1] != (char)i))
      *(int *)out = -3;
  for (int i = 0; i < N; i++)
    tide_free(blocks[i]);
  tide_free(p);
  return NULL;
}

static int mode_huge(void) {
  void *small = tide_malloc(100); /* main arena: the break */
  void *big = tide_malloc(4 << 20);  /* its own mapping */
  int heap = -1;
  pthread_t t;
  pthread_create(&t, NULL, huge_thread, &heap);
  pthread_join(t, NULL);
  fprintf(stderr, "result: brk=%d heap=%d mmap=%d\n", advised_huge(small), heap, advised_huge(big));
  tide_free(small);
  tide_free(big);
  return 0;
}

/* Can this kernel take MADV_HUGEPAGE at all? */
static bool kernel_has_thp(void) {
  size_t n = 4 << 20;
  void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return false;
  bool ok = madvise(m, n, MADV_HUGEPAGE) == 0;
  munmap(m, n);
  return ok;
}

/* ---- parent ---- */

struct run {
  const char *mode, *env;
};

static void exec_mode(void *arg) {
  const struct run *r = arg;
  char *envp[] = {(char *)r->env, NULL};
  char *argv[] = {(char *)self, (char *)r->mode, NULL};
  execve(self, argv, r->env ? envp : argv + 2);
  _exit(99);
}

static void expect(const char *mode, const char *env, const char *want) {
  struct run r = {mode, env};
  struct th_child c;
  th_run_child(&c, exec_mode, &r, 20);
  char line[64];
  snprintf(line, sizeof line, "result: %s\n", want);
  CHECK(th_child_exited0(&c) && strstr(c.err, line) != NULL, "%s with %s: %s (child said \"%s\")",
        mode, env ? env : "no environment", want, th_first_line(&c));
}

int main(int argc, char **argv) {
  self = argv[0];
  if (argc > 1) {
    if (strcmp(argv[1], "threshold") == 0)
      return mode_threshold();
    if (strcmp(argv[1], "fastbins") == 0)
      return mode_fastbins();
    if (strcmp(argv[1], "perturb") == 0)
      return mode_perturb();
    if (strcmp(argv[1], "huge") == 0)
      return mode_huge();
    return 2;
  }
  printf("# unit/env\n");
  expect("threshold", NULL, "mmapped");
  expect("threshold", "MALLOC_MMAP_THRESHOLD_=1048576", "heap");
  expect("threshold", "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576", "heap");
  expect("threshold", "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=0x100000", "heap");
  expect("fastbins", "GLIBC_TUNABLES=glibc.malloc.tcache_count=0", "200");
  expect("fastbins", "GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0", "0");
  expect("perturb", "MALLOC_PERTURB_=165", "filled");
  expect("huge", NULL, "brk=0 heap=0 mmap=0");
  /* Where the kernel has no transparent huge pages, the option must do no
   * harm: nothing is advised and allocation works. */
  const char *thp = kernel_has_thp() ? "brk=1 heap=1 mmap=1" : "brk=0 heap=0 mmap=0";
  expect("huge", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1", thp);
  expect("huge", "GLIBC_TUNABLES=glibc.malloc.hugetlb=2", thp);

  /* M_PERTURB through mallopt, in this process */
  CHECK(tide_mallopt(TIDE_M_PERTURB, 0xA5) == 1, "mallopt(M_PERTURB, 0xA5)");
  unsigned char *p = tide_malloc(3000);
  int all = 1;
  for (int i = 0; i < 3000; i++)
    if (p[i] != 0x5A)
      all = 0;
  CHECK(all, "with M_PERTURB 0xA5, malloc'd memory is filled with 0x5A (~0xA5)");
  unsigned char *z = tide_calloc(1, 3000);
  int zero = 1;
  for (int i = 0; i < 3000; i++)
    if (z[i])
      zero = 0;
  CHECK(zero, "calloc'd memory is still zero under M_PERTURB");
  tide_free(p);
  tide_free(z);
  tide_mallopt(TIDE_M_PERTURB, 0);
  CHECK(tide_heap_check() == 0, "heap sound");
  TEST_MAIN_END("unit/env");
}
