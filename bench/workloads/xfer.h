/*
 * Handing blocks to another thread to free: a thread collects blocks in a
 * batch (up to XFER_MAX blocks, each with its size and pattern tag) and,
 * when the batch is full, pushes it onto the receiving thread's mailbox, a
 * lock-free stack of batches.  The receiver takes its whole mailbox at once
 * (one atomic exchange, so there is no ABA), checks every block and frees
 * it, then frees the batch (itself a block from the sender).  Used by bulk
 * (xthread=1) and sliding.
 */
#ifndef BENCH_XFER_H
#define BENCH_XFER_H

#include "common.h"
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
  char pad[64 - sizeof(void *)];
} mailbox_t;

static inline void mbox_push(mailbox_t *m, xbatch_t *b) {
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
  return n;
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

#endif
