/*
 * The test harness: one header, no library.
 *
 * Each test binary is a list of checks.  CHECK(cond, fmt, ...) prints
 * "  ok   <what>" or "  FAIL <what> (file:line)" and counts; TEST_MAIN_END()
 * prints "# <binary>: N checks, N failed" and returns non-zero on failure.
 * tests/run.sh adds the binaries' counts up into the single closing line
 * "N passed, N failed".
 */
#ifndef TIDE_TEST_HARNESS_H
#define TIDE_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>

static int th_checks, th_failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    th_checks++;                                                               \
    if (cond) {                                                                \
      printf("  ok   ");                                                       \
    } else {                                                                   \
      th_failures++;                                                           \
      printf("  FAIL ");                                                       \
    }                                                                          \
    printf(__VA_ARGS__);                                                       \
    if (!(cond))                                                               \
      printf("  (%s:%d: %s)", __FILE__, __LINE__, #cond);                      \
    printf("\n");                                                              \
    fflush(stdout);                                                            \
  } while (0)

#define TEST_MAIN_END(name)                                                    \
  do {                                                                         \
    printf("# %s: %d checks, %d failed\n", (name), th_checks, th_failures);    \
    return th_failures ? 1 : 0;                                                \
  } while (0)

#endif
