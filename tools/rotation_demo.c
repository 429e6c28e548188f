/* SPDX-License-Identifier: MIT */
/*
 * rotation_demo — the daily-rotation service of `make demo`, with its
 * phases and its live bytes visible over time.
 *
 * It is bench/workloads/rotation.c's service (the story tidemalloc was
 * written for), told as a timeline instead of one figure per day.  Each day:
 *   load  two loader threads build the day's records (16 B-512 KiB, mostly
 *         small, DAY_MIB in all, every byte written), spread over LOAD_MS as
 *         if they arrived through the day; a few per mille are copied into
 *         a small long-lived cache, so blocks that stay are scattered
 *         through memory that is otherwise freed;
 *   free  at the day boundary a third thread (the janitor) frees the
 *         previous day's records, blocks the loaders allocated;
 *   idle  nothing allocates for IDLE_MS.
 * The main thread only coordinates and counts: every TICK_MS it prints the
 * bytes the program holds in malloc'd blocks (the sizes it asked for:
 * records, the cache, the arrays of record pointers).  It never reads the
 * RSS while running; a sampler outside does (tools/rotation_chart.py).  At
 * the end of each idle it reads /proc/self/statm once (open and read, no
 * allocation) for its "day" line.
 *
 * Every record starts with its size, day and a tag, and the janitor checks
 * them before freeing; a damaged record ends the program with status 4.
 * Sizes and cache choices come from seeded generators, one per loader, and
 * each loader keeps its own half of the cache, so the live bytes at the end
 * of each phase are the same under every allocator.
 *
 * Output (stdout; t in seconds of CLOCK_MONOTONIC, bytes in bytes):
 *   start t=T pid=P days=N day_mib=N load_ms=N idle_ms=N tick_ms=N
 *   live t=T bytes=B                       every TICK_MS
 *   phase t=T day=D name=load|free|idle    when a phase starts
 *   day n=D t=T live=B rss=B               at the end of day D's idle
 *   end t=T
 *
 *   rotation_demo days=5 day_mib=128 load_ms=600 idle_ms=1000 tick_ms=20 cache_permille=30
 */
#include "../bench/workloads/common.h"
#include "../bench/workloads/records.h"

#include <fcntl.h>
#include <stdatomic.h>


#define NLOADERS 2
#define TAG 0x7e1d0000u

static long day_bytes, cache_permille, load_ms;
static recs_t today[NLOADERS], yesterday[NLOADERS];
static uint32_t cur_day, janitor_day;
static int quitting, janitor_bad;
static pthread_barrier_t load_go, jan_go;
static atomic_int workers_done;
static atomic_size_t live; /* bytes held in malloc'd blocks, as asked for */

/* The cache: each loader owns CACHE_SLOTS / NLOADERS slots; a new entry
 * replaces one of its own at random. */
#define CACHE_SLOTS 8192
static void *cache[CACHE_SLOTS];
static size_t cache_size[CACHE_SLOTS];

static void live_add(size_t n) { atomic_fetch_add_explicit(&live, n, memory_order_relaxed); }
static void live_sub(size_t n) { atomic_fetch_sub_explicit(&live, n, memory_order_relaxed); }

static void pause_s(double s) {
  if (s <= 0)
    return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

static void recs_push(recs_t *v, void *p, size_t size) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 1024;
    v->p = realloc(v->p, cap * sizeof(void *));
    if (!v->p)
      exit(3);
    live_add((cap - v->cap) * sizeof(void *));
    v->cap = cap;
  }
  v->p[v->n++] = p;
  v->bytes += size;
}

static void *loader(void *arg) {
  int id = (int)(intptr_t)arg;
  rng_t r;
  rng_seed(&r, 1000 + (uint64_t)id);
  size_t slot0 = (size_t)id * (CACHE_SLOTS / NLOADERS);
  for (;;) {
    pthread_barrier_wait(&load_go);
    if (quitting)
      return NULL;
    recs_t *v = &today[id];
    size_t quota = (size_t)day_bytes / NLOADERS, next_pace = 1 << 20;
    double t0 = now_s();
    while (v->bytes < quota) {
      size_t n = record_size(&r);
      rec_hdr_t *h = xmalloc(n);
      memset(h, (int)(n & 0xff), n);
      h->size = n;
      h->day = cur_day;
      h->tag = TAG | (uint32_t)id;
      recs_push(v, h, n);
      live_add(n);
      if ((long)(rng_next(&r) % 1000) < cache_permille) {
        size_t k = slot0 + (size_t)(rng_next(&r) % (CACHE_SLOTS / NLOADERS));
        void *c = xmalloc(n);
        memcpy(c, h, n);
        live_add(n);
        free(cache[k]);
        live_sub(cache_size[k]);
        cache[k] = c;
        cache_size[k] = n;
      }
      /* The records arrive through the day: at most the share of the quota
       * that the share of LOAD_MS gone allows. */
      if (load_ms > 0 && v->bytes >= next_pace) {
        next_pace += 1 << 20;
        pause_s(t0 + (double)load_ms / 1000.0 * (double)v->bytes / (double)quota - now_s());
      }
    }
    atomic_fetch_add(&workers_done, 1);
  }
}

static void *janitor(void *arg) {
  (void)arg;
  for (;;) {
    pthread_barrier_wait(&jan_go);
    if (quitting)
      return NULL;
    for (int i = 0; i < NLOADERS; i++) {
      recs_t *v = &yesterday[i];
      for (size_t k = 0; k < v->n; k++) {
        rec_hdr_t *h = v->p[k];
        size_t n = h->size;
        if (h->day != janitor_day || (h->tag & 0xffff0000u) != TAG ||
            (n > sizeof *h && ((unsigned char *)h)[n - 1] != (n & 0xff)))
          janitor_bad = 1;
        free(h);
        live_sub(n);
      }
      free(v->p);
      live_sub(v->cap * sizeof(void *));
      memset(v, 0, sizeof *v);
    }
    atomic_fetch_add(&workers_done, 1);
  }
}

/* Resident set size from /proc/self/statm, without allocating. */
static size_t rss_now(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  unsigned long total, res;
  if (sscanf(buf, "%lu %lu", &total, &res) != 2)
    return 0;
  return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static long tick_ms;

static void print_live(void) {
  printf("live t=%.4f bytes=%zu\n", now_s(), atomic_load_explicit(&live, memory_order_relaxed));
}

/* Print the live bytes every TICK_MS until `want` workers are done (or,
 * with want = 0, for ms milliseconds). */
static void watch(int want, long ms) {
  double until = now_s() + (double)ms / 1000.0;
  for (;;) {
    print_live();
    if (want ? atomic_load(&workers_done) >= want : now_s() >= until)
      break;
    double step = (double)tick_ms / 1000.0;
    if (!want && until - now_s() < step)
      step = until - now_s();
    pause_s(step);
  }
  print_live();
}

int main(int argc, char **argv) {
  int days = (int)arg_long(argc, argv, "days", 5);
  long day_mib = arg_long(argc, argv, "day_mib", 128);
  load_ms = arg_long(argc, argv, "load_ms", 600);
  long idle_ms = arg_long(argc, argv, "idle_ms", 1000);
  tick_ms = arg_long(argc, argv, "tick_ms", 20);
  cache_permille = arg_long(argc, argv, "cache_permille", 30);
  if (days < 1 || day_mib < 1 || load_ms < 0 || idle_ms < 0 || tick_ms < 1 || cache_permille < 0) {
    fprintf(stderr, "usage: rotation_demo days=N day_mib=N load_ms=N idle_ms=N tick_ms=N cache_permille=N\n");
    return 2;
  }
  day_bytes = day_mib << 20;

  pthread_barrier_init(&load_go, NULL, NLOADERS + 1);
  pthread_barrier_init(&jan_go, NULL, 2);
  pthread_t lt[NLOADERS], jt;
  for (int i = 0; i < NLOADERS; i++)
    pthread_create(&lt[i], NULL, loader, (void *)(intptr_t)i);
  pthread_create(&jt, NULL, janitor, NULL);

  printf("start t=%.4f pid=%d days=%d day_mib=%ld load_ms=%ld idle_ms=%ld tick_ms=%ld\n", now_s(), (int)getpid(), days,
         day_mib, load_ms, idle_ms, tick_ms);
  for (int d = 0; d < days; d++) {
    printf("phase t=%.4f day=%d name=load\n", now_s(), d);
    cur_day = (uint32_t)d;
    atomic_store(&workers_done, 0);
    pthread_barrier_wait(&load_go); /* the loaders build day d into today */
    watch(NLOADERS, 0);

    printf("phase t=%.4f day=%d name=free\n", now_s(), d);
    janitor_day = (uint32_t)(d - 1);
    atomic_store(&workers_done, 0);
    pthread_barrier_wait(&jan_go); /* the janitor frees day d-1 (yesterday) */
    watch(1, 0);
    for (int i = 0; i < NLOADERS; i++) { /* the day boundary: today becomes yesterday */
      recs_t tmp = yesterday[i];
      yesterday[i] = today[i];
      today[i] = tmp;
    }

    printf("phase t=%.4f day=%d name=idle\n", now_s(), d);
    watch(0, idle_ms);
    printf("day n=%d t=%.4f live=%zu rss=%zu\n", d, now_s(), atomic_load(&live), rss_now());
  }
  printf("end t=%.4f\n", now_s());
  fflush(stdout);
  quitting = 1;
  pthread_barrier_wait(&load_go);
  pthread_barrier_wait(&jan_go);
  for (int i = 0; i < NLOADERS; i++)
    pthread_join(lt[i], NULL);
  pthread_join(jt, NULL);
  if (janitor_bad) {
    fprintf(stderr, "rotation_demo: a record was damaged\n");
    return 4;
  }
  return 0;
}
