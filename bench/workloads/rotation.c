/* SPDX-License-Identifier: MIT */
/*
 * rotation — the daily-rotation service of the seed notes.
 *
 * A long-running service keeps one day of records in memory.  Each "day":
 *   1. L loader threads build the day's records: mixed sizes from 16 B to
 *      512 KiB, mostly small, DAY_MIB in all, every byte written;
 *   2. while loading, a few percent of records are copied into a small
 *      long-lived cache (random replacement), so long-lived blocks end up
 *      scattered through memory that is otherwise freed;
 *   3. at the day boundary a janitor thread frees the previous day's
 *      records (blocks other threads allocated);
 *   4. the service settles for SETTLE_MS (no allocation at all), then RSS is
 *      read from /proc/self/statm and compared with the live bytes.
 * At the end the janitor frees the last day, the cache is emptied, and after
 * another settle RSS is read once more.
 *
 * Output: one "day" line per day and a "result" line:
 *   day n=D live_mib=X rss_mib=Y ratio=Y/X
 *   result days=N steady_ratio=.. max_ratio=.. final_rss_mib=.. work_secs=..
 *          load_secs=.. free_secs=..  (work = building + freeing)
 * steady_ratio averages the days after the first rotation (n >= 1).
 *
 *   rotation days=N day_mib=N loaders=L settle_ms=N cache_permille=N
 */
#include "common.h"
#include "records.h"


static int nloaders;
static long day_bytes, cache_permille;
static recs_t *today, *yesterday; /* one recs_t per loader */
static uint32_t cur_day;
static int quitting;
static pthread_barrier_t load_go, load_done, jan_go, jan_done;

/* The cache: a fixed number of slots; a new entry replaces a random one. */
#define CACHE_SLOTS 8192
static void *cache[CACHE_SLOTS];
static size_t cache_size[CACHE_SLOTS];
static size_t cache_bytes;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void recs_push(recs_t *v, void *p, size_t size) {
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 1024;
    v->p = realloc(v->p, v->cap * sizeof(void *));
    if (!v->p)
      exit(3);
  }
  v->p[v->n++] = p;
  v->bytes += size;
}

static void *loader(void *arg) {
  int id = (int)(intptr_t)arg;
  rng_t r;
  rng_seed(&r, 1000 + (uint64_t)id);
  for (;;) {
    pthread_barrier_wait(&load_go);
    if (quitting)
      return NULL;
    recs_t *v = &today[id];
    long quota = day_bytes / nloaders;
    while ((long)v->bytes < quota) {
      size_t n = record_size(&r);
      rec_hdr_t *h = xmalloc(n);
      memset(h, (int)(n & 0xff), n);
      h->size = n;
      h->day = cur_day;
      h->tag = 0x7e1d0000u | (uint32_t)id;
      recs_push(v, h, n);
      if ((long)(rng_next(&r) % 1000) < cache_permille) {
        void *c = xmalloc(n);
        memcpy(c, h, n);
        size_t k = (size_t)(rng_next(&r) % CACHE_SLOTS);
        pthread_mutex_lock(&cache_lock);
        void *old = cache[k];
        size_t old_size = cache_size[k];
        cache[k] = c;
        cache_size[k] = n;
        cache_bytes += n - old_size;
        pthread_mutex_unlock(&cache_lock);
        free(old);
      }
    }
    pthread_barrier_wait(&load_done);
  }
}

static int janitor_bad;
static uint32_t janitor_day; /* the day whose records the janitor frees */

static void *janitor(void *arg) {
  (void)arg;
  for (;;) {
    pthread_barrier_wait(&jan_go);
    if (quitting)
      return NULL;
    for (int i = 0; i < nloaders; i++) {
      recs_t *v = &yesterday[i];
      for (size_t k = 0; k < v->n; k++) {
        rec_hdr_t *h = v->p[k];
        if (h->day != janitor_day || (h->tag & 0xffff0000u) != 0x7e1d0000u)
          janitor_bad = 1;
        free(h);
      }
      free(v->p);
      memset(v, 0, sizeof *v);
    }
    pthread_barrier_wait(&jan_done);
  }
}

static void settle(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  int days = (int)arg_long(argc, argv, "days", 6);
  day_bytes = arg_long(argc, argv, "day_mib", 256) << 20;
  nloaders = (int)arg_long(argc, argv, "loaders", 2);
  long settle_ms = arg_long(argc, argv, "settle_ms", 1000);
  cache_permille = arg_long(argc, argv, "cache_permille", 30);
  const double mib = 1048576.0;

  today = calloc((size_t)nloaders, sizeof(recs_t));
  yesterday = calloc((size_t)nloaders, sizeof(recs_t));
  pthread_barrier_init(&load_go, NULL, (unsigned)nloaders + 1);
  pthread_barrier_init(&load_done, NULL, (unsigned)nloaders + 1);
  pthread_barrier_init(&jan_go, NULL, 2);
  pthread_barrier_init(&jan_done, NULL, 2);
  pthread_t *lt = calloc((size_t)nloaders, sizeof *lt), jt;
  for (int i = 0; i < nloaders; i++)
    pthread_create(&lt[i], NULL, loader, (void *)(intptr_t)i);
  pthread_create(&jt, NULL, janitor, NULL);

  printf("start rss_mib=%.1f\n", (double)rss_bytes() / mib);
  double work = 0, load = 0, unload = 0, ratio_sum = 0, ratio_max = 0, rss_max = 0;
  int ratio_n = 0;
  for (int d = 0; d < days; d++) {
    double t0 = now_s();
    cur_day = (uint32_t)d;
    pthread_barrier_wait(&load_go); /* loaders build day d into today */
    pthread_barrier_wait(&load_done);
    double t1 = now_s();
    load += t1 - t0;
    janitor_day = (uint32_t)(d - 1);
    pthread_barrier_wait(&jan_go); /* janitor frees day d-1 (yesterday) */
    pthread_barrier_wait(&jan_done);
    unload += now_s() - t1;
    recs_t *tmp = yesterday; /* day boundary: today becomes yesterday */
    yesterday = today;
    today = tmp;
    work += now_s() - t0;
    settle(settle_ms);
    size_t live = cache_bytes;
    for (int i = 0; i < nloaders; i++)
      live += yesterday[i].bytes;
    size_t rss = rss_bytes();
    double ratio = (double)rss / (double)live;
    printf("day n=%d live_mib=%.1f rss_mib=%.1f ratio=%.3f\n", d, (double)live / mib, (double)rss / mib, ratio);
    fflush(stdout);
    if (d >= 1 || days == 1) {
      ratio_sum += ratio;
      ratio_n++;
      if (ratio > ratio_max)
        ratio_max = ratio;
    }
    if ((double)rss > rss_max)
      rss_max = (double)rss;
  }
  double t0 = now_s();
  janitor_day = (uint32_t)(days - 1);
  pthread_barrier_wait(&jan_go); /* free the last day */
  pthread_barrier_wait(&jan_done);
  for (int k = 0; k < CACHE_SLOTS; k++)
    free(cache[k]);
  work += now_s() - t0;
  unload += now_s() - t0;
  settle(settle_ms);
  size_t final_rss = rss_bytes();
  quitting = 1;
  pthread_barrier_wait(&load_go);
  pthread_barrier_wait(&jan_go);
  for (int i = 0; i < nloaders; i++)
    pthread_join(lt[i], NULL);
  pthread_join(jt, NULL);
  if (janitor_bad) {
    fprintf(stderr, "rotation: corrupted record\n");
    return 4;
  }
  printf("result days=%d day_mib=%ld steady_ratio=%.3f max_ratio=%.3f max_rss_mib=%.1f final_rss_mib=%.1f "
         "work_secs=%.4f load_secs=%.4f free_secs=%.4f\n",
         days, day_bytes >> 20, ratio_sum / ratio_n, ratio_max, rss_max / mib, (double)final_rss / mib, work, load, unload);
  return 0;
}
