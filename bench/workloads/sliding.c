/* SPDX-License-Identifier: MIT */
/*
 * sliding — threads with a sliding working set (issue 12, shape 3).  Each
 * of T threads keeps its last `window` blocks in a ring: every step
 * allocates a block of 16 B-16 KiB (weighted small: 30 % 16-31 B, 25 %
 * 32-63 B, ... 1 % 8-16 KiB), writes its pattern, and retires the oldest
 * one.  One retired block in `handoff` goes to another thread to free (in
 * batches of 100, each batch to the next thread in turn; xfer.h); the rest
 * are checked and freed by their owner.  A thread looks at its mailbox every
 * 64 steps.  A receiver with `limit` blocks to free gets no more until it
 * has freed some (mbox_wait in xfer.h), so the live set stays within the
 * windows plus T x (limit + 100) blocks, whatever the scheduler does.
 *
 *   sliding threads=T steps=N (per thread) window=N handoff=N limit=N
 */
#include "xfer.h"

static int nthreads, handoff;
static long steps, window, limit;
static mailbox_t *boxes;
static atomic_int done_sending;

/* Percent of blocks in each octave from 16 B up (16-31, 32-63, ... 8192-16384). */
static const int weight[10] = {30, 25, 15, 10, 7, 5, 3, 2, 2, 1};

static uint32_t draw_size(rng_t *r) {
  int x = (int)(rng_next(r) % 100), k = 0;
  while (x >= weight[k]) {
    x -= weight[k];
    k++;
  }
  uint32_t lo = 16u << k;
  return lo + (uint32_t)(rng_next(r) % (lo + (k == 9)));
}

typedef xfer_worker_t worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  int id = w->id;
  void **ring = xmalloc((size_t)window * sizeof(void *));
  uint32_t *sz = xmalloc((size_t)window * sizeof(uint32_t));
  rng_t r;
  rng_seed(&r, (uint64_t)id + 77);
  xbatch_t *out = NULL;
  int dest = (id + 1) % nthreads;
  for (long i = 0; i < steps; i++) {
    long k = i % window;
    if (i >= window) {
      uint64_t tag = mix64(((uint64_t)id << 48) ^ (uint64_t)(i - window));
      if (nthreads > 1 && rng_next(&r) % (uint64_t)handoff == 0) {
        w->waits += mbox_wait(&boxes[dest], &boxes[id], limit, &w->xfreed, &w->bad);
        w->xsent++;
        if (xfer_add(&out, &boxes[dest], ring[k], sz[k], tag)) {
          dest = (dest + 1) % nthreads;
          if (dest == id)
            dest = (dest + 1) % nthreads;
        }
      } else {
        if (!pat_ok(ring[k], sz[k], tag))
          w->bad++;
        free(ring[k]);
      }
    }
    sz[k] = draw_size(&r);
    ring[k] = xmalloc(sz[k]);
    pat_fill(ring[k], sz[k], mix64(((uint64_t)id << 48) ^ (uint64_t)i));
    if ((i & 63) == 63 && nthreads > 1)
      w->xfreed += mbox_drain(&boxes[id], &w->bad);
  }
  w->mallocs = steps;
  for (long i = steps > window ? steps - window : 0; i < steps; i++) {
    long k = i % window;
    if (!pat_ok(ring[k], sz[k], mix64(((uint64_t)id << 48) ^ (uint64_t)i)))
      w->bad++;
    free(ring[k]);
  }
  if (out)
    mbox_push(&boxes[dest], out);
  mbox_finish(&boxes[id], &done_sending, nthreads, &w->xfreed, &w->bad);
  free(ring);
  free(sz);
  return NULL;
}

int main(int argc, char **argv) {
  nthreads = (int)arg_long(argc, argv, "threads", 4);
  steps = arg_long(argc, argv, "steps", 5000000);
  window = arg_long(argc, argv, "window", 4000);
  handoff = (int)arg_long(argc, argv, "handoff", 8);
  limit = arg_long(argc, argv, "limit", 2000);
  if (nthreads < 1 || nthreads > 64 || window < 1 || handoff < 1)
    return 2;
  char extra[64];
  snprintf(extra, sizeof extra, "window=%ld", window);
  return xfer_run("sliding", nthreads, &boxes, worker, extra);
}
