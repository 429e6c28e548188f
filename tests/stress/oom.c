/* SPDX-License-Identifier: MIT */
/*
 * Out of memory.  A forked child lowers RLIMIT_AS to 256 MiB above what
 * it uses, then: impossible large requests of every function return NULL
 * with ENOMEM (realloc leaving its block intact); the heap is filled with
 * 40 KiB blocks until malloc says ENOMEM; then, with half of them freed,
 * small and medium allocations keep working, the heap checker passes, and
 * once everything is freed a 10 MiB block can be had again.
 *
 * The child prints its own check lines and hands its counts back through
 * a pipe.  Two builds: tide_* on the debug library, and (-std) the drop-in,
 * where stdio itself allocates through tidemalloc under the limit.
 */
#include <string.h>
#include <malloc.h>
#include <sys/resource.h>

#include "harness.h"
#include "tidemalloc.h"

#include "flavour.h"

static size_t vm_size(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f) {
    if (fscanf(f, "%lu", &pages) != 1)
      pages = 0;
    fclose(f);
  }
  return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

#define EXPECT_ENOMEM(expr, what)                                              \
  do {                                                                         \
    errno = 0;                                                                 \
    void *r_ = (expr);                                                         \
    int e_ = errno;                                                            \
    CHECK(r_ == NULL && e_ == ENOMEM, "%s -> NULL, ENOMEM (errno %d)", what, e_); \
    F(free)(r_);                                                               \
  } while (0)

static void child(void) {
  size_t vm = vm_size();
  struct rlimit rl = {vm + 256 * MiB, vm + 256 * MiB};
  CHECK(vm > 0 && setrlimit(RLIMIT_AS, &rl) == 0,
        "RLIMIT_AS set to %zu MiB (in use %zu MiB + 256)", (size_t)rl.rlim_cur >> 20, vm >> 20);

  EXPECT_ENOMEM(F(malloc)(512 * MiB), "malloc(512 MiB)");
  EXPECT_ENOMEM(F(malloc)(1024 * MiB), "malloc(1 GiB)");
  EXPECT_ENOMEM(F(malloc)(300 * MiB), "malloc(300 MiB)");
  EXPECT_ENOMEM(F(calloc)(400, MiB), "calloc(400, 1 MiB)");
  EXPECT_ENOMEM(F(memalign)(2 * MiB, 400 * MiB), "memalign(2 MiB, 400 MiB)");
  EXPECT_ENOMEM(F(aligned_alloc)(4096, 400 * MiB), "aligned_alloc(4096, 400 MiB)");
  EXPECT_ENOMEM(F(valloc)(400 * MiB), "valloc(400 MiB)");
  void *pm = (void *)0x1;
  int r = F(posix_memalign)(&pm, 64, 400 * MiB);
  CHECK(r == ENOMEM && pm == (void *)0x1, "posix_memalign(64, 400 MiB) -> ENOMEM (got %d)", r);
  unsigned char *keep = F(malloc)(5000);
  if (keep)
    memset(keep, 0x42, 5000);
  errno = 0;
  void *rr = F(realloc)(keep, 700 * MiB);
  int e = errno;
  int intact = keep != NULL;
  for (size_t i = 0; keep && i < 5000; i++)
    if (keep[i] != 0x42)
      intact = 0;
  CHECK(rr == NULL && e == ENOMEM && intact, "realloc(5000-byte block, 700 MiB) -> NULL, "
                                             "ENOMEM, block intact");
  CHECK(tide_heap_check() == 0, "heap sound after the refused requests");

  /* fill the heap to the limit */
  enum { MAXB = 16384 };
  static unsigned char *b[MAXB];
  size_t nb = 0;
  int last_errno = 0;
  while (nb < MAXB) {
    errno = 0;
    b[nb] = F(malloc)(40000);
    if (!b[nb]) {
      last_errno = errno;
      break;
    }
    memset(b[nb], (int)(nb & 0xFF), 64);
    nb++;
  }
  CHECK(nb < MAXB && last_errno == ENOMEM,
        "40 KiB blocks until the limit: %zu MiB, then NULL with ENOMEM (errno %d)",
        nb * 40000 >> 20, last_errno);
  CHECK(nb * 40000 > 150 * MiB, "more than 150 MiB of the 256 MiB allowed was usable");
  CHECK(tide_heap_check() == 0, "heap sound at the limit");

  for (size_t i = 0; i < nb; i += 2) {
    F(free)(b[i]);
    b[i] = NULL;
  }
  size_t fails = 0;
  static void *small[4000];
  for (int i = 0; i < 4000; i++) {
    small[i] = F(malloc)((size_t)(16 + i % 200));
    if (!small[i])
      fails++;
    else
      memset(small[i], 1, (size_t)(16 + i % 200));
  }
  CHECK(fails == 0, "4000 small blocks after freeing half (%zu failed)", fails);
  fails = 0;
  static void *medium[300];
  for (int i = 0; i < 300; i++) {
    medium[i] = F(calloc)(1, 20000);
    if (!medium[i])
      fails++;
  }
  CHECK(fails == 0, "300 x calloc(20000) after freeing half (%zu failed)", fails);
  size_t damaged = 0;
  for (size_t i = 1; i < nb; i += 2)
    for (int k = 0; k < 64; k++)
      if (b[i][k] != (unsigned char)(i & 0xFF))
        damaged++;
  CHECK(damaged == 0, "the blocks still held are intact");
  CHECK(tide_heap_check() == 0, "heap sound after going on at the limit");

  for (int i = 0; i < 4000; i++)
    F(free)(small[i]);
  for (int i = 0; i < 300; i++)
    F(free)(medium[i]);
  for (size_t i = 0; i < nb; i++)
    F(free)(b[i]);
  F(free)(keep);
  unsigned char *big = F(malloc)(10 * MiB);
  CHECK(big != NULL, "once everything is freed, a 10 MiB block can be had again");
  if (big)
    memset(big, 7, 10 * MiB);
  F(free)(big);
  CHECK(tide_heap_check() == 0, "heap sound at the end");
}

int main(void) {
  printf("# stress/oom (%s)\n", FLAVOUR);
  fflush(stdout);
  int fds[2];
  if (pipe(fds) != 0)
    return 2;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(60);
    child();
    int counts[2] = {th_checks, th_failures};
    if (write(fds[1], counts, sizeof counts) != (ssize_t)sizeof counts)
      _exit(3);
    _exit(0);
  }
  close(fds[1]);
  int counts[2] = {0, 0};
  ssize_t got = read(fds[0], counts, sizeof counts);
  int st = 0;
  waitpid(pid, &st, 0);
  th_checks += counts[0];
  th_failures += counts[1];
  CHECK(got == (ssize_t)sizeof counts && WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "the child ran to its end (%s)", th_status_str(st));
  TEST_MAIN_END("stress/oom-" FLAVOUR);
}
