/* SPDX-License-Identifier: MIT */
/*
 * Misuse must abort with "tidemalloc: <function>(): <what>".
 *
 * Each case runs in a forked child (th_run_child); the parent checks that
 * the child died of SIGABRT and that its stderr holds "tidemalloc: " and
 * the function at hand.  The binary is built in two flavours: on the
 * debug build (this one, misuse) the heap checker runs inside the
 * allocator and may be the one that notices, so "heap_check(): " is taken
 * as well; on the prefixed build (misuse-fast) the entry point's own
 * checks must name themselves.
 *
 * Then the standard names: tests/wrong/victim.c, a plain program, is run
 * under LD_PRELOAD with the drop-in .so and the debug .so.
 *
 * usage: misuse LIBDIR VICTIM
 */
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "harness.h"
#include "tidemalloc.h"

#ifdef TIDE_TEST_FAST
#define FLAVOUR "fast"
static const int lenient = 0;
#else
#define FLAVOUR "debug"
static const int lenient = 1;
#endif

static char static_area[8192] __attribute__((aligned(64)));
static volatile size_t sink;

static void no_core(void) {
  struct rlimit rl = {0, 0};
  setrlimit(RLIMIT_CORE, &rl);
}

/* ---- the cases: each misuses the allocator once and should not return ---- */

static void double_free_sized(size_t n, int guard) {
  char *p = tide_malloc(n);
  char *g = guard ? tide_malloc(32) : NULL;
  memset(p, 0x33, n);
  tide_free(p);
  tide_free(p);
  tide_free(g);
}
static void c_double_free_24(void *a) { (void)a; double_free_sized(24, 1); }
static void c_double_free_600(void *a) { (void)a; double_free_sized(600, 1); }
static void c_double_free_600_top(void *a) { (void)a; double_free_sized(600, 0); }
static void c_double_free_5000(void *a) { (void)a; double_free_sized(5000, 1); }
static void c_double_free_5000_top(void *a) { (void)a; double_free_sized(5000, 0); }
static void c_double_free_1m(void *a) { (void)a; double_free_sized(1 << 20, 1); }

/* free(a); free(b); free(a): the freed chunk is no longer at the head of
 * its list (glibc 2.36 catches this one through its tcache key) */
static void c_double_free_interleaved(void *arg) {
  (void)arg;
  char *a = tide_malloc(24), *b = tide_malloc(24), *g = tide_malloc(24);
  tide_free(a);
  tide_free(b);
  tide_free(a);
  tide_free(g);
}

/* A block the thread cache handed on to a fast bin (its bin overflowed)
 * freed again: it is in no cache now, and the header after it still says
 * "in use" (fast-bin chunks keep that); nothing follows the second free. */
static void c_double_free_fastbin(void *arg) {
  (void)arg;
  void *b[80];
  for (int i = 0; i < 80; i++)
    b[i] = tide_malloc(48);
  for (int i = 0; i < 80; i++)
    tide_free(b[i]);
  tide_free(b[0]);
}

static void c_double_free_interleaved_600(void *arg) {
  (void)arg;
  char *a = tide_malloc(600), *g1 = tide_malloc(32), *b = tide_malloc(600);
  char *g2 = tide_malloc(32);
  tide_free(a);
  tide_free(b);
  tide_free(a);
  tide_free(g1);
  tide_free(g2);
}

static void c_free_stack(void *arg) {
  (void)arg;
  char buf[512] __attribute__((aligned(16)));
  memset(buf, 0, sizeof buf);
  tide_free(buf + 64);
  sink = (size_t)buf[0];
}

/* a stack buffer dressed as a chunk: plausible size, plausible next chunk */
static void c_free_stack_fake_chunk(void *arg) {
  (void)arg;
  size_t buf[64] __attribute__((aligned(16)));
  memset(buf, 0, sizeof buf);
  buf[1] = 0x40 | 1; /* size 64, P */
  buf[9] = 0x40 | 1; /* the "next" chunk: size 64, P */
  buf[17] = 0x40 | 1;
  tide_free(&buf[2]);
  sink = buf[0];
}

static void c_free_static(void *arg) {
  (void)arg;
  tide_free(static_area + 128);
}

static void c_free_static_fake_chunk(void *arg) {
  (void)arg;
  size_t *w = (size_t *)static_area;
  w[1] = 0x100 | 1;
  w[33] = 0x100 | 1;
  tide_free(&w[2]);
}

static void c_free_middle(void *arg) {
  (void)arg;
  char *p = tide_malloc(600);
  char *g = tide_malloc(32);
  memset(p, 0xAA, 600);
  tide_free(p + 64);
  tide_free(g);
}

static void c_free_middle_small(void *arg) {
  (void)arg;
  char *p = tide_malloc(100);
  char *g = tide_malloc(32);
  memset(p, 0, 100);
  tide_free(p + 48);
  tide_free(g);
}

static void c_free_misaligned(void *arg) {
  (void)arg;
  char *p = tide_malloc(600);
  char *g = tide_malloc(32);
  tide_free(p + 8);
  tide_free(g);
}

static void c_free_middle_mmapped(void *arg) {
  (void)arg;
  char *p = tide_malloc(1 << 20);
  memset(p, 0x41, 1 << 20);
  tide_free(p + 4096);
}

/* write the 8 bytes after the usable area: the next chunk's size field.
 * Pairs are allocated until one is adjacent (b's header right after a's
 * usable bytes), so "the next chunk" is b, a block in use. */
static void overflow_then_free(size_t n, int free_next) {
  char *held[64];
  int nh = 0;
  char *a = tide_malloc(n), *b = tide_malloc(n);
  for (;;) {
    if (a == b + tide_malloc_usable_size(b) + 8) { /* handed out downwards */
      char *t = a;
      a = b;
      b = t;
    }
    if (b == a + tide_malloc_usable_size(a) + 8 || nh >= 62)
      break;
    held[nh++] = a;
    held[nh++] = b;
    a = tide_malloc(n);
    b = tide_malloc(n);
  }
  if (b != a + tide_malloc_usable_size(a) + 8)
    fprintf(stderr, "no two adjacent %zu-byte blocks found\n", n);
  char *g = tide_malloc(32);
  size_t u = tide_malloc_usable_size(a);
  memset(a, 'A', u + 8);
  if (free_next) {
    tide_free(b);
  } else {
    /* The overflow must be caught at this very free, not later. */
    tide_free(a);
    _exit(0);
  }
  tide_free(g);
  for (int i = 0; i < nh; i++)
    tide_free(held[i]);
}
static void c_overflow_24(void *a) { (void)a; overflow_then_free(24, 0); }
static void c_overflow_600(void *a) { (void)a; overflow_then_free(600, 0); }
static void c_overflow_600_next(void *a) { (void)a; overflow_then_free(600, 1); }
static void c_overflow_5000(void *a) { (void)a; overflow_then_free(5000, 0); }

static void c_realloc_freed(void *arg) {
  (void)arg;
  char *a = tide_malloc(600);
  char *g = tide_malloc(32);
  tide_free(a);
  a = tide_realloc(a, 2000);
  tide_free(g);
}

static void c_realloc_freed_large(void *arg) {
  (void)arg;
  char *a = tide_malloc(5000);
  char *g = tide_malloc(32);
  tide_free(a);
  a = tide_realloc(a, 100);
  tide_free(g);
}

static void c_realloc_stack(void *arg) {
  (void)arg;
  char buf[256] __attribute__((aligned(16)));
  memset(buf, 0, sizeof buf);
  char *p = tide_realloc(buf + 32, 1000);
  sink = (size_t)p;
}

/* glibc's chunks look just like ours: tidemalloc must still refuse them */
static void c_free_glibc_small(void *arg) {
  (void)arg;
  char *p = malloc(200);
  tide_free(p);
}

static void c_free_glibc_mmapped(void *arg) {
  (void)arg;
  char *p = malloc(4 << 20);
  tide_free(p);
}

/* a use-after-free write into a freed chunk's list links, then malloc */
static void c_corrupt_links(void *arg) {
  (void)arg;
  char *a = tide_malloc(600);
  char *g = tide_malloc(32);
  tide_free(a);
  memset(a, 0x41, 32);
  char *b = tide_malloc(600);
  char *c = tide_malloc(600);
  sink = (size_t)b + (size_t)c;
  tide_free(g);
}

/* fake chunks with the M or A bit, and one in memory the program mapped */
static void c_fake_mmapped_chunk(void *arg) {
  (void)arg;
  size_t *w = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  w[0] = 0;                   /* offset from the mapping's start */
  w[1] = ((size_t)1 << 20) | 2; /* size 1 MiB, M */
  tide_free(&w[2]);
}

static void c_fake_heap_chunk(void *arg) {
  (void)arg;
  size_t *w = (size_t *)static_area;
  w[1] = 0x100 | 4 | 1; /* size 256, A, P */
  w[33] = 0x100 | 4 | 1;
  tide_free(&w[2]);
}

static void c_fake_chunk_in_own_mapping(void *arg) {
  (void)arg;
  size_t *w = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  w[1] = 0x100 | 1; /* size 256, P: looks like a main-arena chunk */
  w[33] = 0x100 | 1;
  w[65] = 0x100 | 1;
  tide_free(&w[2]);
}

static void c_realloc_fake_mmapped(void *arg) {
  (void)arg;
  size_t *w = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  w[0] = 0;
  w[1] = ((size_t)1 << 20) | 2;
  void *p = tide_realloc(&w[2], 2 << 20);
  sink = (size_t)p;
}

/* A block another thread freed waits on its arena's remote stack until
 * the owner's cache takes the stack over; a write after free there (the
 * cache-entry key is overwritten) must be caught when it is taken. */
#define REMOTE_BLOCKS 200
static void *remote_blocks[REMOTE_BLOCKS];
static pthread_barrier_t remote_freed;
static void *free_remote_blocks(void *arg) {
  (void)arg;
  for (int i = 0; i < REMOTE_BLOCKS; i++)
    tide_free(remote_blocks[i]);
  /* The first block went to the owner's remote stack at the first
   * overflow of this thread's cache. */
  memset(remote_blocks[0], 0x41, 16);
  pthread_barrier_wait(&remote_freed);
  for (;;) /* stays alive: its exit would flush (and check) first */
    pause();
  return NULL;
}
static void c_write_after_remote_free(void *arg) {
  (void)arg;
  tide_mallopt(TIDE_M_PURGE_THREAD, 0); /* nobody drains the stack but us */
  for (int i = 0; i < REMOTE_BLOCKS; i++)
    remote_blocks[i] = tide_malloc(64);
  pthread_barrier_init(&remote_freed, NULL, 2);
  pthread_t t;
  pthread_create(&t, NULL, free_remote_blocks, NULL);
  pthread_barrier_wait(&remote_freed);
  for (int i = 0; i < 4 * REMOTE_BLOCKS; i++)
    sink += (size_t)tide_malloc(64);
}

/* A block of another thread's arena freed twice by this thread: the
 * first free put it on the way back to its arena (not in this thread's
 * cache proper), and the second must still be caught. */
static void *foreign_block;
static void *alloc_foreign(void *arg) {
  (void)arg;
  foreign_block = tide_malloc(40);
  sink += (size_t)tide_malloc(40); /* keeps the thread's heap busy */
  return NULL;
}
static void c_double_free_foreign(void *arg) {
  (void)arg;
  sink += (size_t)tide_malloc(40); /* this thread has a cache and an arena */
  pthread_t t;
  pthread_create(&t, NULL, alloc_foreign, NULL);
  pthread_join(t, NULL);
  tide_free(foreign_block);
  tide_free(foreign_block);
}

/* A block freed by its thread (it sits in that thread's cache), then freed
 * again by another thread. */
static void *cached_block;
static void *free_cached_block(void *arg) {
  (void)arg;
  sink += (size_t)tide_malloc(40); /* this thread has a cache of its own */
  tide_free(cached_block);
  return NULL;
}
static void c_double_free_other_thread(void *arg) {
  (void)arg;
  cached_block = tide_malloc(40);
  void *g = tide_malloc(40);
  tide_free(cached_block);
  pthread_t t;
  pthread_create(&t, NULL, free_cached_block, NULL);
  pthread_join(t, NULL);
  tide_free(g);
}

/* realloc of a block another thread has freed (it sits in that thread's
 * cache): not in this thread's cache, but free all the same. */
static void *realloc_victim;
static void *free_realloc_victim(void *arg) {
  (void)arg;
  sink += (size_t)tide_malloc(40);
  tide_free(realloc_victim);
  pthread_barrier_wait(&remote_freed);
  for (;;) /* stays alive, its cache with it */
    pause();
  return NULL;
}
static void c_realloc_freed_elsewhere(void *arg) {
  (void)arg;
  pthread_barrier_init(&remote_freed, NULL, 2);
  pthread_t t;
  pthread_create(&t, NULL, alloc_foreign, NULL);
  pthread_join(t, NULL);
  realloc_victim = foreign_block;
  pthread_create(&t, NULL, free_realloc_victim, NULL);
  pthread_barrier_wait(&remote_freed);
  sink += (size_t)tide_realloc(realloc_victim, 48);
}

/* A freed 4 KiB block waits in the thread's cache (a medium bin); its size
 * field is overwritten (an underflow of the block before it); the next
 * request of that size must not get it back unchecked (issue 11, item 9). */
static void c_medium_cached_size_overwritten(void *arg) {
  (void)arg;
  char *guard = tide_malloc(100);
  char *p = tide_malloc(4096);
  char *after = tide_malloc(100);
  tide_free(p);
  ((size_t *)p)[-1] = 0x2011; /* 8 KiB, "previous in use" */
  char *q = tide_malloc(4096);
  sink += (size_t)q;
  tide_free(after);
  tide_free(guard);
}

/* Run blocks (src/run.h): a fake block with the run flag inside a real
 * one, and a double free of a block its cache already gave back to its
 * run.  The fake passes the free's cheap checks (as a fake chunk passes
 * glibc's tcache) and is caught when its cache hands it back to its run,
 * which checks that it starts at one of the run's blocks: here the frees
 * of 100 more blocks of its size overflow the cache. */
/* (In a thread that then exits: its cache is flushed whole, wherever
 * in its bin the fake block lies.) */
static void *fake_run_block(void *arg) {
  (void)arg;
  size_t *b = tide_malloc(200);
  b[2] = 0;
  b[3] = 64 | 1 | 8; /* a 64 B "block", previous in use, in a run */
  b[11] = 64 | 1 | 8; /* and a plausible header after it */
  void *more[100];
  for (int i = 0; i < 100; i++)
    more[i] = tide_malloc(56);
  tide_free(b + 4);
  for (int i = 0; i < 100; i++)
    tide_free(more[i]);
  return NULL;
}
static void c_fake_run_block(void *arg) {
  pthread_t t;
  pthread_create(&t, NULL, fake_run_block, arg);
  pthread_join(t, NULL);
}
static void c_double_free_run_block(void *arg) {
  (void)arg;
  enum { N = 300 };
  void *p[N];
  for (int i = 0; i < N; i++)
    p[i] = tide_malloc(72);
  for (int i = 0; i < N; i++)
    tide_free(p[i]); /* past the cache: most go back to their run */
  tide_free(p[N / 2]);
}

/* A block of a medium class past 4 KiB (an arena chunk of the class's
 * size) whose size is enlarged while it waits in its bin: the flush
 * that gives it back to its arena must not coalesce it over its live
 * neighbour (it did, and malloc(16000) then returned a block over it). */
static void c_medium_flushed_size_overwritten(void *arg) {
  (void)arg;
  char *x[8];
  char *a = tide_malloc(8000), *b = tide_malloc(8000), *c = tide_malloc(8000), *d = tide_malloc(8000);
  for (int i = 0; i < 8; i++)
    x[i] = tide_malloc(8000);
  memset(b, 0x42, 8000);
  for (int i = 0; i < 4; i++)
    tide_free(x[i]);
  tide_free(a);
  size_t *sf = (size_t *)(void *)a - 1;
  *sf = 16384 | (*sf & 15); /* the overflow into a's header: a now covers b */
  tide_free(x[4]);
  tide_free(x[5]); /* the bin is full again: a goes back to the arena */
  char *e = tide_malloc(16000);
  if (e == a)
    fprintf(stderr, "EXPLOITED: a block over a live one was handed out\n");
  (void)c;
  (void)d;
}

/* The same for a block past the bins, in the medium cache. */
static void c_big_cached_size_overwritten(void *arg) {
  (void)arg;
  char *guard = tide_malloc(100);
  char *p = tide_malloc(30000);
  char *after = tide_malloc(100);
  tide_free(p);
  ((size_t *)p)[-1] = 0x10001; /* 64 KiB, "previous in use" */
  char *q = tide_malloc(30000);
  sink += (size_t)q;
  tide_free(after);
  tide_free(guard);
}

/* free_sized claiming a byte more than a run block holds (free's fast
 * path takes run blocks, and checks the claim there too). */
static void c_free_sized_over(void *a) {
  (void)a;
  char *p = tide_malloc(100);
  size_t n = tide_malloc_usable_size(p);
  tide_free_sized(tide_malloc(100), n); /* exactly its usable size: fine */
  tide_free_sized(p, n + 1);
}

struct wcase {
  const char *name;
  void (*fn)(void *);
  const char *func; /* the function the message must name */
};

static const struct wcase cases[] = {
    {"free_sized of a run block with a size a byte past what it holds", c_free_sized_over, "free_sized"},
    {"double free, 24 B (fast)", c_double_free_24, "free"},
    {"double free, 600 B (small, binned)", c_double_free_600, "free"},
    {"double free, 600 B (merged into top)", c_double_free_600_top, "free"},
    {"double free, 5000 B (large, binned)", c_double_free_5000, "free"},
    {"double free, 5000 B (merged into top)", c_double_free_5000_top, "free"},
    {"double free, 1 MiB (mmapped)", c_double_free_1m, "free"},
    {"double free, 24 B, another free between", c_double_free_interleaved, "free"},
    {"double free, 600 B, another free between", c_double_free_interleaved_600, "free"},
    {"double free, 48 B, after the thread cache passed it to a fast bin", c_double_free_fastbin, "free"},
    {"free of a stack pointer", c_free_stack, "free"},
    {"free of a stack buffer dressed as a chunk", c_free_stack_fake_chunk, "free"},
    {"free of a static array", c_free_static, "free"},
    {"free of a static array dressed as a chunk", c_free_static_fake_chunk, "free"},
    {"free of a pointer into the middle of a 600 B block", c_free_middle, "free"},
    {"free of a pointer into the middle of a 100 B block", c_free_middle_small, "free"},
    {"free of a misaligned pointer (p + 8)", c_free_misaligned, "free"},
    {"free of a pointer into an mmapped block", c_free_middle_mmapped, "free"},
    {"overflow into the next size field, 24 B, free", c_overflow_24, "free"},
    {"overflow into the next size field, 600 B, free", c_overflow_600, "free"},
    {"overflow into the next size field, 600 B, free the next", c_overflow_600_next, "free"},
    {"overflow into the next size field, 5000 B, free", c_overflow_5000, "free"},
    {"realloc of a freed 600 B pointer", c_realloc_freed, "realloc"},
    {"realloc of a freed 5000 B pointer", c_realloc_freed_large, "realloc"},
    {"realloc of a stack pointer", c_realloc_stack, "realloc"},
    {"free of a glibc malloc(200) pointer", c_free_glibc_small, "free"},
    {"free of a glibc mmapped pointer", c_free_glibc_mmapped, "free"},
    {"freed chunk's links overwritten, then malloc", c_corrupt_links, "malloc"},
    {"free of a fake chunk with the mmapped bit", c_fake_mmapped_chunk, "free"},
    {"free of a fake chunk with the heap (A) bit", c_fake_heap_chunk, "free"},
    {"free of a chunk-like pointer in the program's own mapping", c_fake_chunk_in_own_mapping,
     "free"},
    {"realloc of a fake chunk with the mmapped bit", c_realloc_fake_mmapped, "realloc"},
    {"write after free into a block on the owner's remote stack, then malloc", c_write_after_remote_free, "malloc"},
    {"double free, 40 B, of a block another thread allocated", c_double_free_foreign, "free"},
    {"double free, 40 B, by another thread while the block is in its owner's cache",
     c_double_free_other_thread, "free"},
    {"realloc of a block another thread freed (in its cache)", c_realloc_freed_elsewhere, "realloc"},
    {"size field of a 4 KiB block in the thread cache overwritten, then malloc", c_medium_cached_size_overwritten,
     "malloc"},
    {"free of a fake run block inside a real one, then its cache is flushed", c_fake_run_block, "free"},
    {"double free of a block given back to its run", c_double_free_run_block, "free"},
    {"size field of an 8000 B block in the thread cache overwritten, then its bin flushed",
     c_medium_flushed_size_overwritten, "free"},
    {"size field of a 30000 B block in the medium cache overwritten, then malloc", c_big_cached_size_overwritten,
     "malloc"},
};

static void run_case(const struct wcase *w) {
  struct th_child c;
  char want[64], alt[64] = "tidemalloc: heap_check(): ";
  snprintf(want, sizeof want, "tidemalloc: %s(): ", w->func);
  if (th_run_child(&c, w->fn, NULL, 20) != 0) {
    CHECK(0, "%s: could not fork", w->name);
    return;
  }
  int named = strstr(c.err, want) != NULL || (lenient && strstr(c.err, alt) != NULL);
  CHECK(th_child_aborted(&c) && named, "%s: %s, \"%s\"", w->name, th_status_str(c.status),
        th_first_line(&c));
}

/* ---- the drop-in, through LD_PRELOAD ---- */

struct preload_arg {
  const char *victim, *lib, *what;
};

static void exec_victim(void *arg) {
  const struct preload_arg *a = arg;
  char env[4200];
  snprintf(env, sizeof env, "LD_PRELOAD=%s", a->lib);
  char *envp[] = {env, NULL};
  char *argv[] = {(char *)a->victim, (char *)a->what, NULL};
  execve(a->victim, argv, envp);
  _exit(99);
}

static void run_preload(const char *victim, const char *lib, const char *what,
                        const char *func) {
  struct preload_arg a = {victim, lib, what};
  struct th_child c;
  char want[64];
  snprintf(want, sizeof want, "tidemalloc: %s(): ", func);
  th_run_child(&c, exec_victim, &a, 20);
  const char *base = strrchr(lib, '/') ? strrchr(lib, '/') + 1 : lib;
  if (strcmp(what, "ok") == 0) {
    CHECK(th_child_exited0(&c), "LD_PRELOAD=%s victim ok: runs normally (%s)", base,
          th_status_str(c.status));
    return;
  }
  CHECK(th_child_aborted(&c) && strstr(c.err, want) != NULL,
        "LD_PRELOAD=%s victim %s: %s, \"%s\"", base, what, th_status_str(c.status),
        th_first_line(&c));
}

int main(int argc, char **argv) {
  no_core();
  printf("# wrong/misuse (%s)\n", FLAVOUR);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_case(&cases[i]);

  if (argc >= 3) {
    const char *libdir = argv[1], *victim = argv[2];
    static const char *libs[] = {"libtidemalloc.so", "libtidemalloc-debug.so"};
    static const char *whats[][2] = {{"ok", ""},
                                     {"double-free", "free"},
                                     {"double-free-large", "free"},
                                     {"free-stack", "free"},
                                     {"free-static", "free"},
                                     {"overflow", "free"},
                                     {"realloc-freed", "realloc"}};
    for (size_t l = 0; l < 2; l++) {
      char lib[4096];
      char *abs = realpath(libdir, NULL);
      snprintf(lib, sizeof lib, "%s/%s", abs ? abs : libdir, libs[l]);
      free(abs);
      for (size_t w = 0; w < sizeof whats / sizeof whats[0]; w++)
        run_preload(victim, lib, whats[w][0], whats[w][1]);
    }
  }
  /* the parent's own heap was not touched by any of it */
  CHECK(tide_heap_check() == 0, "the parent's heap is sound");
  TEST_MAIN_END("wrong/misuse-" FLAVOUR);
}
