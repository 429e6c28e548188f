/*
 * spin — calibration, no allocation: T threads each run the same pure
 * arithmetic loop.  time(1 thread) * T / time(T threads) is the parallel
 * speed-up this machine gives at all, the ceiling for any allocator's
 * thread scaling (on shared or hyper-threaded cores it is well below T).
 *
 *   spin threads=T loops=N
 */
#include "common.h"

static long loops;

static void *worker(void *arg) {
  uint64_t x = (uint64_t)(uintptr_t)arg + 1;
  for (long i = 0; i < loops; i++)
    x = x * 6364136223846793005ull + 1442695040888963407ull;
  bench_sink = x;
  return NULL;
}

int main(int argc, char **argv) {
  int nthreads = (int)arg_long(argc, argv, "threads", 1);
  loops = arg_long(argc, argv, "loops", 200000000);
  pthread_t th[64];
  if (nthreads < 1 || nthreads > 64)
    return 2;
  double t0 = now_s();
  for (int i = 0; i < nthreads; i++)
    pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
  for (int i = 0; i < nthreads; i++)
    pthread_join(th[i], NULL);
  double t = now_s() - t0;
  printf("result threads=%d secs=%.4f\n", nthreads, t);
  return 0;
}
