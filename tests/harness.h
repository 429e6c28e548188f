/* SPDX-License-Identifier: MIT */
/*
 * The test harness: one header, no library.
 *
 * Each test binary is a list of checks.  CHECK(cond, fmt, ...) prints
 * "  ok   <what>" or "  FAIL <what> (file:line)" and counts; TEST_MAIN_END()
 * prints "# <binary>: N checks, N failed" and returns non-zero on failure.
 * tests/run.sh adds the binaries' counts up into the single closing line
 * "N passed, N failed".
 *
 * Beside the counting, two helpers that several binaries share:
 *   th_run_child()  run a function in a forked child, capture its stderr and
 *                   how it ended (the misuse and out-of-memory tests);
 *   th_rng          a small seeded generator, so a failure is reproducible.
 */
#ifndef TIDE_TEST_HARNESS_H
#define TIDE_TEST_HARNESS_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int th_checks, th_failures;

/* cond is evaluated exactly once. */
#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    int th_ok_ = (cond) ? 1 : 0;                                               \
    th_checks++;                                                               \
    if (th_ok_) {                                                              \
      printf("  ok   ");                                                       \
    } else {                                                                   \
      th_failures++;                                                           \
      printf("  FAIL ");                                                       \
    }                                                                          \
    printf(__VA_ARGS__);                                                       \
    if (!th_ok_)                                                               \
      printf("  (%s:%d: %s)", __FILE__, __LINE__, #cond);                      \
    printf("\n");                                                              \
    fflush(stdout);                                                            \
  } while (0)

/* An informational line; run.sh shows lines starting with "# " only in the
 * log, and the closing summary line of each binary. */
#define NOTE(...)                                                              \
  do {                                                                         \
    printf("#   ");                                                            \
    printf(__VA_ARGS__);                                                       \
    printf("\n");                                                              \
    fflush(stdout);                                                            \
  } while (0)

#define TEST_MAIN_END(name)                                                    \
  do {                                                                         \
    printf("# %s: %d checks, %d failed\n", (name), th_checks, th_failures);    \
    return th_failures ? 1 : 0;                                                \
  } while (0)

/* ---- running a case in a child process ---- */

struct th_child {
  int status;          /* as from waitpid */
  char err[16384];     /* the child's stderr, NUL-terminated (truncated) */
  size_t errlen;
};

/* Forks; the child runs fn(arg) with stderr sent into a pipe and stdout to
 * /dev/null, then _exit(0)s.  A child that runs longer than timeout_s
 * seconds is killed by SIGALRM.  Returns 0, or -1 if fork/pipe failed. */
static inline int th_run_child(struct th_child *c, void (*fn)(void *), void *arg,
                               unsigned timeout_s) {
  int fds[2];
  memset(c, 0, sizeof *c);
  fflush(stdout);
  fflush(stderr);
  if (pipe(fds) != 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    FILE *devnull = freopen("/dev/null", "w", stdout);
    (void)devnull;
    signal(SIGABRT, SIG_DFL);
    alarm(timeout_s);
    fn(arg);
    _exit(0);
  }
  close(fds[1]);
  for (;;) {
    char buf[4096];
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    size_t room = sizeof c->err - 1 - c->errlen;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(c->err + c->errlen, buf, take);
    c->errlen += take;
  }
  c->err[c->errlen] = '\0';
  close(fds[0]);
  while (waitpid(pid, &c->status, 0) < 0 && errno == EINTR) {
  }
  return 0;
}

static inline int th_child_aborted(const struct th_child *c) {
  return WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGABRT;
}

static inline int th_child_exited0(const struct th_child *c) {
  return WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0;
}

/* "exit 0", "signal 11 (Segmentation fault)", ... for messages. */
static inline const char *th_status_str(int status) {
  static char buf[96];
  if (WIFEXITED(status))
    snprintf(buf, sizeof buf, "exit %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, sizeof buf, "signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else
    snprintf(buf, sizeof buf, "status 0x%x", (unsigned)status);
  return buf;
}

/* The first line of the child's stderr, for messages. */
static inline const char *th_first_line(const struct th_child *c) {
  static char buf[200];
  size_t i = 0;
  while (i < c->errlen && c->err[i] != '\n' && i < sizeof buf - 1) {
    buf[i] = c->err[i];
    i++;
  }
  buf[i] = '\0';
  return buf;
}

/* Runs fn() in a forked child whose check lines go to our stdout; its
 * counts are added to ours, and a child that dies (or takes longer than
 * timeout_s) adds one failure, so the checks after it still run. */
static inline void th_isolated(const char *what, void (*fn)(void), unsigned timeout_s) {
  int fds[2];
  fflush(stdout);
  fflush(stderr);
  if (pipe(fds) != 0) {
    fn();
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(timeout_s);
    th_checks = th_failures = 0;
    fn();
    fflush(stdout);
    int counts[2] = {th_checks, th_failures};
    _exit(write(fds[1], counts, sizeof counts) == (ssize_t)sizeof counts ? 0 : 3);
  }
  close(fds[1]);
  int counts[2] = {0, 0}, status = 0;
  ssize_t got = pid > 0 ? read(fds[0], counts, sizeof counts) : -1;
  close(fds[0]);
  if (pid > 0)
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  if (got == (ssize_t)sizeof counts) {
    th_checks += counts[0];
    th_failures += counts[1];
  }
  th_checks++;
  if (got == (ssize_t)sizeof counts && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    printf("  ok   %s: ran to its end\n", what);
  } else {
    th_failures++;
    printf("  FAIL %s: did not run to its end (%s)\n", what,
           WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exit status");
  }
  fflush(stdout);
}

/* ---- a seeded generator (xorshift64*), identical on every machine ---- */

struct th_rng {
  uint64_t s;
};

static inline void th_rng_seed(struct th_rng *r, uint64_t seed) {
  r->s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  if (r->s == 0)
    r->s = 1;
}

static inline uint64_t th_rng_next(struct th_rng *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [lo, hi]. */
static inline uint64_t th_rng_range(struct th_rng *r, uint64_t lo, uint64_t hi) {
  return lo + th_rng_next(r) % (hi - lo + 1);
}


/* Resident set size of this process, from /proc/self/statm (0 if unreadable). */
static inline size_t th_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &size, &res) != 2)
      res = 0;
    fclose(f);
  }
  return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

#endif
