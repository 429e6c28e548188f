/* SPDX-License-Identifier: MIT */
/*
 * The records of the daily-rotation service, shared by the rotation
 * workload (bench/workloads/rotation.c) and `make demo`'s program
 * (tools/rotation_demo.c): the size mix of a day's feed, and what each
 * record starts with.  Include after common.h.
 */
#ifndef BENCH_RECORDS_H
#define BENCH_RECORDS_H

typedef struct {
  void **p;
  size_t n, cap;
  size_t bytes;
} recs_t;

typedef struct {
  size_t size;
  uint32_t day;
  uint32_t tag;
} rec_hdr_t;

/* 60 % 16-128 B, 25 % to 1 KiB, 12 % to 8 KiB, 2.7 % to 64 KiB, the rest
 * to 512 KiB. */
static inline size_t record_size(rng_t *r) {
  unsigned k = (unsigned)(rng_next(r) % 1000);
  if (k < 600)
    return rng_range(r, 16, 128);
  if (k < 850)
    return rng_range(r, 129, 1024);
  if (k < 970)
    return rng_range(r, 1025, 8192);
  if (k < 997)
    return rng_range(r, 8193, 65536);
  return rng_range(r, 65537, 512 * 1024);
}

#endif
