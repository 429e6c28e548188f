/* SPDX-License-Identifier: MIT */
/*
 * xmalloc — producer/consumer (modelled on the idea of xmalloc-test): a
 * producer thread allocates blocks of 16..512 B, writes them and passes them
 * in batches over a lock-free single-producer single-consumer ring to a
 * consumer thread, which checks and frees them.  Every free is a free of a
 * block another thread allocated.  With pairs=P there are P such pairs.
 *
 *   xmalloc blocks=N (per producer) pairs=P
 */
#include "common.h"
#include <sched.h>
#include <stdatomic.h>

#define BATCH 256
#define RING 64

typedef struct {
  void *p[BATCH];
  int n;
} batch_t;

typedef struct {
  batch_t slot[RING];
  _Alignas(64) atomic_ulong head; /* written by the producer */
  _Alignas(64) atomic_ulong tail; /* written by the consumer */
  long blocks;
  uint64_t seed;
  int bad;
} ring_t;

static void *producer(void *arg) {
  ring_t *q = arg;
  rng_t r;
  rng_seed(&r, q->seed);
  unsigned long head = 0;
  for (long done = 0; done < q->blocks;) {
    while (head - atomic_load_explicit(&q->tail, memory_order_acquire) >= RING)
      sched_yield();
    batch_t *b = &q->slot[head % RING];
    b->n = 0;
    for (; b->n < BATCH && done < q->blocks; done++) {
      size_t n = rng_range(&r, 16, 512);
      unsigned char *p = xmalloc(n);
      uint16_t n16 = (uint16_t)n;
      memcpy(p, &n16, 2);
      p[n - 1] = 0xA5;
      b->p[b->n++] = p;
    }
    atomic_store_explicit(&q->head, ++head, memory_order_release);
  }
  return NULL;
}

static void *consumer(void *arg) {
  ring_t *q = arg;
  unsigned long tail = 0;
  for (long done = 0; done < q->blocks;) {
    while (atomic_load_explicit(&q->head, memory_order_acquire) == tail)
      sched_yield();
    batch_t *b = &q->slot[tail % RING];
    for (int i = 0; i < b->n; i++) {
      unsigned char *p = b->p[i];
      uint16_t n16;
      memcpy(&n16, p, 2);
      if (n16 < 16 || n16 > 512 || p[n16 - 1] != 0xA5)
        q->bad = 1;
      free(p);
    }
    done += b->n;
    atomic_store_explicit(&q->tail, ++tail, memory_order_release);
  }
  return NULL;
}

int main(int argc, char **argv) {
  long blocks = arg_long(argc, argv, "blocks", 20000000);
  int pairs = (int)arg_long(argc, argv, "pairs", 1);
  ring_t *q = aligned_alloc(64, sizeof(ring_t) * (size_t)pairs);
  memset(q, 0, sizeof(ring_t) * (size_t)pairs);
  pthread_t *th = calloc((size_t)pairs * 2, sizeof *th);
  double t0 = now_s();
  for (int i = 0; i < pairs; i++) {
    q[i].blocks = blocks;
    q[i].seed = (uint64_t)i + 5;
    pthread_create(&th[2 * i], NULL, producer, &q[i]);
    pthread_create(&th[2 * i + 1], NULL, consumer, &q[i]);
  }
  int bad = 0;
  for (int i = 0; i < 2 * pairs; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < pairs; i++)
    bad |= q[i].bad;
  double t = now_s() - t0;
  if (bad) {
    fprintf(stderr, "xmalloc: corrupted block\n");
    return 4;
  }
  long total = blocks * pairs;
  printf("result pairs=%d frees=%ld secs=%.4f mops_per_s=%.3f\n", pairs, total, t, (double)total / t / 1e6);
  return 0;
}
