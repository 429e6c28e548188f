/* SPDX-License-Identifier: MIT */
/*
 * bulk — threads that allocate in bulk and free in bulk (the shape of
 * MicroQuill's SmartHeap benchmarks sh6bench/sh8bench, as described in
 * issue 12).  Each of T threads runs rounds; a round fills an array of
 * min..max blocks whose sizes cycle through a fixed histogram (90 % 8-200 B,
 * 9 % 500 B-4 KiB, rare 9 KiB, 34 KiB and 160 KiB), then frees the bottom
 * two fifths in allocation order and the top two fifths in reverse.  The
 * middle fifth is kept until the next round has done the same, so blocks of
 * three lifetimes mix.  Every block carries a pattern, checked before it is
 * freed.
 *
 * With xthread=1 each thread also allocates one block in every `every` for
 * the other threads: they travel in batches of 100 (xfer.h), each batch to
 * the next thread in turn, and the receiver checks and frees them when it
 * next looks at its mailbox (after each batch it sends, and each round).  A
 * receiver with `limit` blocks still to free is waited for (xfer.h).
 *
 *   bulk threads=T rounds=N min=10000 max=50000 xthread=0|1 every=4 limit=N
 */
#include "xfer.h"

#define CYCLE 1024
static uint32_t cycle[CYCLE];

/* The size histogram, shuffled once: 1 block of 160 KiB, 3 of 34 KiB, 6 of
 * 9 KiB, 94 of 500 B-4 KiB and 920 of 8-200 B in every 1024. */
static void make_cycle(void) {
  rng_t r;
  rng_seed(&r, 12);
  int i = 0;
  cycle[i++] = 160 * 1024;
  for (int k = 0; k < 3; k++)
    cycle[i++] = 34 * 1024;
  for (int k = 0; k < 6; k++)
    cycle[i++] = 9 * 1024;
  for (int k = 0; k < 94; k++)
    cycle[i++] = (uint32_t)rng_range(&r, 500, 4096);
  while (i < CYCLE)
    cycle[i++] = (uint32_t)rng_range(&r, 8, 200);
  for (int k = CYCLE - 1; k > 0; k--) {
    int j = (int)(rng_next(&r) % (uint64_t)(k + 1));
    uint32_t t = cycle[k];
    cycle[k] = cycle[j];
    cycle[j] = t;
  }
}

static int nthreads, xthread, every;
static long rounds, minblocks, maxblocks, limit;
static mailbox_t *boxes;
static atomic_int done_sending;

typedef xfer_worker_t worker_t;

static uint64_t tag_of(int id, long round, long i) {
  return mix64(((uint64_t)id << 56) ^ ((uint64_t)round << 28) ^ (uint64_t)i);
}

static void free_range(void **arr, const uint32_t *sz, int id, long round, long from, long to, int step,
                       long *bad) {
  for (long i = from; i != to; i += step) {
    if (!pat_ok(arr[i], sz[i], tag_of(id, round, i)))
      (*bad)++;
    free(arr[i]);
  }
}

static void *worker(void *arg) {
  worker_t *w = arg;
  int id = w->id;
  /* Two arrays: round r fills buf[r & 1]; its middle fifth stays there
   * until round r + 1 has freed its own bottom and top. */
  void **buf[2];
  uint32_t *sz[2];
  for (int k = 0; k < 2; k++) {
    buf[k] = xmalloc((size_t)maxblocks * sizeof(void *));
    sz[k] = xmalloc((size_t)maxblocks * sizeof(uint32_t));
  }
  long klo = 0, khi = 0; /* the kept middle of the previous round */
  xbatch_t *out = NULL;
  int dest = (id + 1) % nthreads;
  long xseq = 0;
  for (long r = 0; r < rounds; r++) {
    void **arr = buf[r & 1];
    uint32_t *s = sz[r & 1];
    long n = minblocks + (long)(mix64((uint64_t)(id * 100003 + r)) % (uint64_t)(maxblocks - minblocks + 1));
    size_t off = (size_t)(id * 97 + r * 31);
    for (long i = 0; i < n; i++) {
      uint32_t size = cycle[(off + (size_t)i) % CYCLE];
      arr[i] = xmalloc(size);
      s[i] = size;
      pat_fill(arr[i], size, tag_of(id, r, i));
      if (xthread && i % every == 0) {
        uint32_t xs = cycle[(off + (size_t)i * 7 + 500) % CYCLE];
        uint64_t tag = mix64(((uint64_t)(id + 64) << 56) ^ (uint64_t)xseq++);
        void *p = xmalloc(xs);
        pat_fill(p, xs, tag);
        w->xsent++;
        if (!out)
          w->waits += mbox_wait(&boxes[dest], &boxes[id], limit, &w->xfreed, &w->bad);
        if (xfer_add(&out, &boxes[dest], p, xs, tag)) {
          dest = (dest + 1) % nthreads;
          if (dest == id)
            dest = (dest + 1) % nthreads;
          w->xfreed += mbox_drain(&boxes[id], &w->bad);
        }
      }
    }
    w->mallocs += n;
    long lo = 2 * n / 5, hi = 3 * n / 5;
    free_range(arr, s, id, r, 0, lo, 1, &w->bad);
    free_range(arr, s, id, r, n - 1, hi - 1, -1, &w->bad);
    if (r > 0)
      free_range(buf[(r - 1) & 1], sz[(r - 1) & 1], id, r - 1, klo, khi, 1, &w->bad);
    klo = lo;
    khi = hi;
    if (xthread)
      w->xfreed += mbox_drain(&boxes[id], &w->bad);
  }
  if (rounds > 0)
    free_range(buf[(rounds - 1) & 1], sz[(rounds - 1) & 1], id, rounds - 1, klo, khi, 1, &w->bad);
  if (out)
    mbox_push(&boxes[dest], out);
  if (xthread)
    mbox_finish(&boxes[id], &done_sending, nthreads, &w->xfreed, &w->bad);
  w->mallocs += w->xsent;
  for (int k = 0; k < 2; k++) {
    free(buf[k]);
    free(sz[k]);
  }
  return NULL;
}

int main(int argc, char **argv) {
  nthreads = (int)arg_long(argc, argv, "threads", 4);
  rounds = arg_long(argc, argv, "rounds", 20);
  minblocks = arg_long(argc, argv, "min", 10000);
  maxblocks = arg_long(argc, argv, "max", 50000);
  xthread = (int)arg_long(argc, argv, "xthread", 0);
  every = (int)arg_long(argc, argv, "every", 4);
  limit = arg_long(argc, argv, "limit", 10000);
  if (nthreads < 1 || nthreads > 64 || minblocks < 5 || maxblocks < minblocks || every < 1 ||
      (xthread && nthreads < 2))
    return 2;
  make_cycle();
  char extra[64];
  snprintf(extra, sizeof extra, "xthread=%d", xthread);
  return xfer_run("bulk", nthreads, &boxes, worker, extra);
}
