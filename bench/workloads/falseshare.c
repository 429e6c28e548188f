/* SPDX-License-Identifier: MIT */
/*
 * falseshare — false sharing of cache lines between threads (modelled on
 * the ideas of cache-thrash and cache-scratch from the Hoard papers).
 *
 *   mode=thrash   active: each thread allocates a small object, writes it
 *                 many times, frees it, again and again.  An allocator that
 *                 gives two threads neighbouring bytes makes them fight for
 *                 one cache line.
 *   mode=scratch  passive: the main thread allocates one small object per
 *                 thread and hands it over; each thread frees it first, then
 *                 works as in thrash.  An allocator that gives the freed
 *                 neighbouring bytes back to another thread shares lines.
 *
 *   falseshare mode=0|1 (0 thrash, 1 scratch) threads=T iters=N writes=N size=B
 */
#include "common.h"

typedef struct {
  long iters, writes;
  size_t size;
  void *handed; /* scratch: object allocated by the main thread */
} job_t;

static void *worker(void *arg) {
  job_t *j = arg;
  if (j->handed)
    free(j->handed);
  for (long i = 0; i < j->iters; i++) {
    volatile unsigned char *p = xmalloc(j->size);
    for (long w = 0; w < j->writes; w++) {
      for (size_t b = 0; b < j->size; b++)
        p[b] = (unsigned char)(p[b] + 1);
    }
    free((void *)p);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int scratch = (int)arg_long(argc, argv, "mode", 0);
  int nthreads = (int)arg_long(argc, argv, "threads", 2);
  long iters = arg_long(argc, argv, "iters", 20000);
  long writes = arg_long(argc, argv, "writes", 2000);
  size_t size = (size_t)arg_long(argc, argv, "size", 8);
  pthread_t *th = calloc((size_t)nthreads, sizeof *th);
  job_t *jobs = calloc((size_t)nthreads, sizeof *jobs);
  double t0 = now_s();
  for (int i = 0; i < nthreads; i++) {
    jobs[i].iters = iters;
    jobs[i].writes = writes;
    jobs[i].size = size;
    jobs[i].handed = scratch ? xmalloc(size) : NULL;
  }
  for (int i = 0; i < nthreads; i++)
    pthread_create(&th[i], NULL, worker, &jobs[i]);
  for (int i = 0; i < nthreads; i++)
    pthread_join(th[i], NULL);
  double t = now_s() - t0;
  printf("result mode=%s threads=%d secs=%.4f\n", scratch ? "scratch" : "thrash", nthreads, t);
  return 0;
}
