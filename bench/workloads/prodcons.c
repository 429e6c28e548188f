/* SPDX-License-Identifier: MIT */
/*
 * prodcons — two workers, each a producer for the other and a consumer of
 * the other's blocks (issue 12, shape 4).  Worker A allocates 64 B
 * messages, writes a sequence number and a pattern into each, and puts them
 * on a ring to B (single producer, single consumer, up to `depth` messages
 * in flight); B does the same towards A.  Each worker alternates a burst of
 * production (1..burst messages, as many as fit) with taking everything
 * waiting for it, checking that the messages come in order and intact, and
 * freeing them.  Every free is of a block the other thread allocated, and up
 * to 2 x depth messages are live at once: an allocator that does not reuse
 * the blocks coming back from the other thread shows it in peak RSS (the
 * runner's wait4 figure; live_mib_max is the most the messages can take).
 * How far the producers get ahead depends on the allocator's speed and on
 * the scheduler (a worker preempted for a few milliseconds lets the other
 * fill its ring): inflight_peak, the two directions' peaks added, says
 * how many messages a run's peak RSS had to hold at most.
 *
 *   prodcons msgs=N (per direction) depth=N burst=N
 */
#include "common.h"
#include <sched.h>
#include <stdatomic.h>

#define MSG 64

typedef struct {
  void **slot;
  _Alignas(64) atomic_ulong head; /* written by the producer */
  _Alignas(64) atomic_ulong tail; /* written by the consumer */
} ring_t;

static long msgs, depth, burst;
static ring_t rings[2]; /* rings[i]: messages to worker i */

typedef struct {
  int id;
  long bad;
  unsigned long peak; /* most messages this worker had in flight (at a burst's end) */
} worker_t;

static uint64_t tag_of(int from, unsigned long seq) { return mix64(((uint64_t)from << 60) ^ seq); }

static void *worker(void *arg) {
  worker_t *w = arg;
  int id = w->id;
  ring_t *out = &rings[1 - id], *in = &rings[id];
  rng_t r;
  rng_seed(&r, (uint64_t)id + 3);
  unsigned long sent = 0, got = 0, out_head = 0, in_tail = 0;
  while (sent < (unsigned long)msgs || got < (unsigned long)msgs) {
    int progress = 0;
    /* produce a burst */
    unsigned long room = (unsigned long)depth - (out_head - atomic_load_explicit(&out->tail, memory_order_acquire));
    unsigned long want = 1 + (unsigned long)(rng_next(&r) % (uint64_t)burst);
    if (want > room)
      want = room;
    if (want > (unsigned long)msgs - sent)
      want = (unsigned long)msgs - sent;
    for (unsigned long k = 0; k < want; k++) {
      uint64_t *m = xmalloc(MSG);
      m[0] = sent;
      pat_fill(m + 1, MSG - 8, tag_of(id, sent));
      out->slot[out_head % (unsigned long)depth] = m;
      out_head++;
      sent++;
    }
    if (want) {
      /* In flight now, counted against the tail read before the burst
       * (the consumer only moves it on): at most this many. */
      if ((unsigned long)depth - room + want > w->peak)
        w->peak = (unsigned long)depth - room + want;
      atomic_store_explicit(&out->head, out_head, memory_order_release);
      progress = 1;
    }
    /* consume what is there */
    unsigned long avail = atomic_load_explicit(&in->head, memory_order_acquire);
    if (avail != in_tail) {
      for (; in_tail != avail; in_tail++) {
        uint64_t *m = in->slot[in_tail % (unsigned long)depth];
        if (m[0] != got || !pat_ok(m + 1, MSG - 8, tag_of(1 - id, got)))
          w->bad++;
        got++;
        free(m);
      }
      atomic_store_explicit(&in->tail, in_tail, memory_order_release);
      progress = 1;
    }
    if (!progress)
      sched_yield();
  }
  return NULL;
}

int main(int argc, char **argv) {
  msgs = arg_long(argc, argv, "msgs", 10000000);
  depth = arg_long(argc, argv, "depth", 65536);
  burst = arg_long(argc, argv, "burst", 4096);
  if (msgs < 1 || depth < 1 || burst < 1)
    return 2;
  for (int i = 0; i < 2; i++) {
    rings[i].slot = calloc((size_t)depth, sizeof(void *));
    atomic_init(&rings[i].head, 0);
    atomic_init(&rings[i].tail, 0);
  }
  worker_t w[2] = {{.id = 0}, {.id = 1}};
  pthread_t th[2];
  double t0 = now_s();
  for (int i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, worker, &w[i]);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  double t = now_s() - t0;
  if (w[0].bad || w[1].bad) {
    fprintf(stderr, "prodcons: %ld corrupted or out-of-order messages\n", w[0].bad + w[1].bad);
    return 4;
  }
  long total = 2 * msgs;
  printf("result msgs=%ld depth=%ld live_mib_max=%.1f inflight_peak=%lu secs=%.4f mops_per_s=%.3f\n", total, depth,
         2.0 * (double)depth * MSG / 1048576.0, w[0].peak + w[1].peak, t, (double)total / t / 1e6);
  for (int i = 0; i < 2; i++)
    free(rings[i].slot);
  return 0;
}
