/* SPDX-License-Identifier: MIT */
/*
 * fastpath — the cost of one malloc+free pair on the thread-cache path:
 * the same size allocated and freed again, ITERS times, on one thread.
 * Measured by instruction count (perf stat or callgrind) in two runs with
 * different ITERS; the difference divided by the difference in ITERS is the
 * cost of a pair plus this loop's few instructions (start-up, the first
 * refill and exit cancel out).  Build with -fno-builtin-malloc so the
 * compiler cannot remove the pair.
 *
 *   fastpath size=B iters=N
 */
#include "common.h"

int main(int argc, char **argv) {
  size_t size = (size_t)arg_long(argc, argv, "size", 64);
  long iters = arg_long(argc, argv, "iters", 1000000);
  for (long i = 0; i < iters; i++) {
    char *p = malloc(size);
    *(volatile char *)p = 1;
    free(p);
  }
  return 0;
}
