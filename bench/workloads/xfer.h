/* SPDX-License-Identifier: MIT */
/*
 * Handing blocks to another thread to free: a thread collects blocks in a
 * batch (up to XFER_MAX blocks, each with its size and pattern tag) and,
 * when the batch is full, pushes it onto the receiving thread's mailbox, a
 * lock-free stack of batches.  The receiver takes its whole mailbox at once
 * (one atomic exchange, so there is no ABA), checks every block and frees
 * it, then frees the batch (itself a block from the sender).  Used by bulk
 * (xthread=1) and sliding.
 *
 * A receiver may not run for a while (4 threads share 2 cores), so a sender
 * waits (mbox_wait) while the receiver has `limit` blocks to free, freeing
 * its own mailbox and yielding meanwhile: every allocator then does the
 * same frees, and the blocks in flight stay bounded whatever the scheduler
 * does.  At the end (mbox_finish) a thread goes on freeing what comes in
 * until every thread has sent all it will send.
 */
#ifndef BENCH_XFER_H
#define BENCH_XFER_H

#include "common.h"
#include <sched.h>
#include <stdatomic.h>

#define XFER_MAX 100

typedef struct xbatch {
  struct xbatch *next;
  int n;
  uint32_t size[XFER_MAX];
  void *p[XFER_MAX];
  uint64_t tag[XFER_MAX];
} xbatch_t;

typedef struct {
  _Alignas(64) _Atomic(xbatch_t *) head;
  atomic_long pending; /* blocks pushed and not yet freed */
  char pad[64 - sizeof(void *) - sizeof(long)];
} mailbox_t;

static inline void mbox_init(mailbox_t *m) {
  atomic_init(&m->head, NULL);
  atomic_init(&m->pending, 0);
}

static inline void mbox_push(mailbox_t *m, xbatch_t *b) {
  atomic_fetch_add_explicit(&m->pending, b->n, memory_order_relaxed);
  xbatch_t *h = atomic_load_explicit(&m->head, memory_order_relaxed);
  do
    b->next = h;
  while (!atomic_compare_exchange_weak_explicit(&m->head, &h, b, memory_order_release, memory_order_relaxed));
}

/* Check and free everything in m; returns the blocks freed, adds the
 * corrupted ones to *bad. */
static inline long mbox_drain(mailbox_t *m, long *bad) {
  long n = 0;
  xbatch_t *b = atomic_exchange_explicit(&m->head, NULL, memory_order_acquire);
  while (b) {
    xbatch_t *next = b->next;
    for (int i = 0; i < b->n; i++) {
      if (!pat_ok(b->p[i], b->size[i], b->tag[i]))
        (*bad)++;
      free(b->p[i]);
    }
    n += b->n;
    free(b);
    b = next;
  }
  if (n)
    atomic_fetch_sub_explicit(&m->pending, n, memory_order_relaxed);
  return n;
}

/* Wait while dest has `limit` blocks or more to free (see above); returns
 * the number of yields. */
static inline long mbox_wait(mailbox_t *dest, mailbox_t *own, long limit, long *freed, long *bad) {
  long waits = 0;
  while (atomic_load_explicit(&dest->pending, memory_order_relaxed) >= limit) {
    *freed += mbox_drain(own, bad);
    waits++;
    sched_yield();
  }
  return waits;
}

/* After a thread's last push: free what comes in until all nthreads have
 * called this, then what is left. */
static inline void mbox_finish(mailbox_t *own, atomic_int *done, int nthreads, long *freed, long *bad) {
  atomic_fetch_add(done, 1);
  while (atomic_load(done) < nthreads) {
    *freed += mbox_drain(own, bad);
    sched_yield();
  }
  *freed += mbox_drain(own, bad);
}

/* Add a block to *out; a full batch goes to mailbox dest, and then the
 * result is 1 (the caller moves on to its next receiver). */
static inline int xfer_add(xbatch_t **out, mailbox_t *dest, void *p, uint32_t size, uint64_t tag) {
  xbatch_t *b = *out;
  if (!b) {
    b = xmalloc(sizeof *b);
    b->n = 0;
    *out = b;
  }
  b->p[b->n] = p;
  b->size[b->n] = size;
  b->tag[b->n] = tag;
  if (++b->n < XFER_MAX)
    return 0;
  mbox_push(dest, b);
  *out = NULL;
  return 1;
}

/* One worker's counts. */
typedef struct {
  int id;
  long mallocs, xsent, xfreed, bad, waits;
} xfer_worker_t;

/* Start nthreads workers (each gets its xfer_worker_t, id set) on
 * mailboxes made here, join them, check that every block handed over was
 * freed intact, and print the result line "result threads=N <extra>
 * mallocs=.. cross_frees=.. waits=.. secs=.. mops_per_s=..".  Returns the
 * program's exit status. */
static inline int xfer_run(const char *name, int nthreads, mailbox_t **boxes, void *(*worker)(void *),
                           const char *extra) {
  *boxes = aligned_alloc(64, sizeof(mailbox_t) * (size_t)nthreads);
  for (int i = 0; i < nthreads; i++)
    mbox_init(&(*boxes)[i]);
  xfer_worker_t *w = calloc((size_t)nthreads, sizeof *w);
  pthread_t *th = calloc((size_t)nthreads, sizeof *th);
  double t0 = now_s();
  for (int i = 0; i < nthreads; i++) {
    w[i].id = i;
    pthread_create(&th[i], NULL, worker, &w[i]);
  }
  long mallocs = 0, xsent = 0, xfreed = 0, bad = 0, waits = 0;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(th[i], NULL);
    waits += w[i].waits;
    mallocs += w[i].mallocs;
    xsent += w[i].xsent;
    xfreed += w[i].xfreed;
    bad += w[i].bad;
  }
  double t = now_s() - t0;
  int status = 0;
  if (bad) {
    fprintf(stderr, "%s: %ld corrupted blocks\n", name, bad);
    status = 4;
  } else if (xfreed != xsent) {
    fprintf(stderr, "%s: %ld blocks handed over, %ld freed\n", name, xsent, xfreed);
    status = 4;
  } else {
    printf("result threads=%d %s mallocs=%ld cross_frees=%ld waits=%ld secs=%.4f mops_per_s=%.3f\n", nthreads, extra,
           mallocs, xfreed, waits, t, (double)mallocs / t / 1e6);
  }
  free(w);
  free(th);
  free(*boxes);
  return status;
}

#endif
