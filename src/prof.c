/* SPDX-License-Identifier: MIT */
/*
 * Sampled heap profiling (TIDEMALLOC_CONF=prof=1; off by default).
 *
 * What is sampled.  Think of every byte a program asks for as a coin
 * that comes up "sampled" with probability 1/R (R = prof_rate, 512 KiB
 * by default).  An allocation is sampled when one of its bytes is, so a
 * block of s bytes is sampled with probability p(s) = 1 - exp(-s/R), and
 * a sample counts for w(s) = s / p(s) bytes: in expectation exactly s,
 * for every size, so the sums below are unbiased estimates of bytes
 * whatever the program's mix of sizes.  (Small blocks count for about R
 * + s/2 each, blocks much larger than R for their size: they are nearly
 * always sampled.)  The coins are not tossed one by one: each thread
 * counts down the bytes to its next sampled byte, a draw from the
 * exponential distribution of mean R rounded down (the geometric
 * distribution of the gaps between sampled bytes; an allocation of s
 * bytes then crosses the end of the countdown with probability exactly
 * p(s)), made with a per-thread xorshift generator and a logarithm of our
 * own (the library does not link libm).  After a sample the countdown
 * starts afresh from the end of that allocation, which the memoryless
 * draw allows.
 *
 * Where the countdown is kept, and what it costs.
 *  - The malloc and calloc fast paths (src/api.c) added each request to
 *    tc->bytes_requested; they now subtract it from tc->bytes_left
 *    instead and branch when it goes below zero: one instruction more per
 *    malloc, none per free.  prof_malloc_hit then adds the bytes that
 *    countdown covered to bytes_requested (tcache_publish does the same
 *    for the statistics) and arms it again: with profiling off to 2^62
 *    bytes (never again, in practice), else with a draw.
 *  - Every other allocation (malloc's slow path -- a cache miss, a large
 *    block --, calloc's, memalign, realloc) is counted, only when
 *    profiling is on, against a second countdown kept here per thread
 *    (slow_due).  The two count disjoint bytes with draws of their own,
 *    so every byte is still sampled with probability 1/R.
 *  - realloc(p, n) counts as an allocation of n.  A sampled block, or a
 *    block whose new size is sampled, moves (a new block, copy, free);
 *    other blocks are resized as usual.
 *
 * A sampled allocation (sample()): its call stack, by the frame-pointer
 * walk debug mode uses (src/stack.c), then a block placed where free's
 * fast path never takes it -- no run block, its memory at page offset 0
 * or 16: a freed sample of its size class from the pool (below), else
 * tide_raw_sampled in src/api.c (a page-aligned arena chunk, the whole
 * of its class's size, or, from the mmap threshold up, the mmapped chunk
 * it gets anyway, whose memory is at offset 16).  free() sends every
 * such pointer that is no run block the slow way in full already
 * (mmapped chunks, and the rare arena chunk at a page's start), so
 * recognising samples costs its fast path nothing: the slow path looks
 * such a pointer up (prof_forget) only when profiling is on, and a
 * sampled block it finds goes to the pool, or back to its arena, never
 * into a thread cache (where its page offset would send every later free
 * of that memory the slow way).  The block itself is an ordinary chunk.
 *
 * The tables, under prof.lock, in memory of their own (os_map, mapped at
 * the first sample); nothing here calls malloc:
 *  - live samples: open addressing on the block's address (linear
 *    probing, deletion by shifting back), each with its stack and
 *    weight; doubled when half full, up to PROF_LIVE_MAX (past that a
 *    sample counts in the allocation profile only, and is "dropped");
 *  - stacks: each distinct stack once, its frames in a pool, with the
 *    weighted bytes of its live samples and of all its samples since
 *    start, found through a hash index; past PROF_STACKS_MAX stacks (or a
 *    full pool) new stacks count as one "[unknown]" stack.
 * The lock is never held while an arena lock is taken, nor the other way
 * round.
 *
 * Profiles: tide_prof_dump(path), and at exit to the prof_file setting
 * (if the library served any allocation: not when it was only loaded by
 * dlopen, as `tidemalloc config` does), write path.heap (the live heap: samples still allocated) and
 * path.alloc (every sample since start), "%p" in path standing for the
 * process id.  Each is "collapsed stacks" text: a comment line starting
 * with '#' (rate, samples, total), then one line per stack, its frames
 * from the outermost caller to the call of malloc separated by ';', a
 * space and its estimated bytes, largest first.  Frames are
 * "file+0xoffset" as in debug mode's reports (`tidemalloc symbolize`
 * names them; `tidemalloc flame` draws the file as an SVG flame graph).
 *
 * Not handled: debug mode (the profiler stays off there: debug mode has
 * every block's stack already), and allocations made before start-up
 * finished (none reach here).  Frames are only as good as the program's
 * frame pointers: code built without them gives its caller's frame
 * alone; C++'s operator new names a frame of tidemalloc itself first (it
 * calls malloc), then the frames above its caller's frame pointer.
 */
#include "prof.h"

#include "debug.h"
#include "os.h"
#include "out.h"
#include "stack.h"
#include "tcache.h"

#include <fcntl.h>
#include <unistd.h>

#define PROF_FRAMES 64
#define PROF_STACKS_MAX 65536u          /* ids 1..; 0 is "[unknown]" */
#define PROF_STACK_SLOTS (2 * PROF_STACKS_MAX) /* the index: at most half full */
#define PROF_POOL_FRAMES ((uint32_t)1 << 21) /* 16 MiB of frames */
#define PROF_LIVE_MIN ((size_t)1024)
#define PROF_LIVE_MAX ((size_t)1 << 23) /* 192 MiB of table: 4 M live samples */
/* The countdown with profiling off: never reached in practice. */
#define PROF_OFF_LEFT ((intptr_t)1 << 62)

struct prof_stack {
  uint64_t live_bytes, alloc_bytes; /* weighted: estimates of bytes */
  uint64_t live_samples, alloc_samples;
  uint32_t first, nframes; /* its frames: pool[first .. first + nframes), innermost first */
  uint32_t hash, unused;
};

struct prof_live {
  uintptr_t mem; /* 0: an empty slot */
  uint64_t weight;
  uint32_t stack; /* PROF_POOLED: a freed sample the pool keeps */
  uint32_t unused;
};
#define PROF_POOLED UINT32_MAX

/* Freed samples of a thread-cache size class (arena chunks of exactly
 * the class's size), kept for the next samples of that class: a sample
 * then costs no memalign, and the page-aligned chunk does not go back
 * to the arena, whose next blocks cut from it would have their memory
 * at page offset 0 or 16 too and so take free's slow path in full for
 * nothing.
 * At most PROF_POOL_PER_CLASS a class and PROF_POOL_BYTES in all; each
 * stays in the live table marked PROF_POOLED (a second free of it is
 * caught) and carries the free key in its second word, as a cached
 * block does. */
#define PROF_POOL_PER_CLASS 8
#define PROF_POOL_BYTES ((size_t)256 * 1024)

static struct {
  struct tide_lock lock;
  bool mapped, map_failed;
  struct prof_stack *stacks; /* [PROF_STACKS_MAX] */
  uint32_t nstacks;          /* ids handed out, "[unknown]" included */
  uint32_t *index;           /* [PROF_STACK_SLOTS]: stack ids, 0 = empty */
  uintptr_t *pool;           /* [PROF_POOL_FRAMES] */
  uint32_t pool_used;
  struct prof_live *live; /* [1 << (64 - live_shift)] */
  size_t live_cap, live_count;
  unsigned live_shift;
  uint64_t samples, dropped;
  void *pooled_blocks[TCACHE_BINS][PROF_POOL_PER_CLASS];
  uint8_t pooled[TCACHE_BINS];
  size_t pool_bytes;
} prof = {.lock = TIDE_LOCK_INIT};

bool prof_on;
static bool prof_wanted;
static size_t prof_rate = PROF_DEFAULT_RATE;
static char prof_file[PROF_PATH_MAX] = PROF_DEFAULT_FILE;
static uint64_t prof_secret = 0x8bb84b93962eacc9u; /* drawn at prof_init */
/* Some thread counted an allocation: without one (the library loaded by
 * dlopen and never called, as `tidemalloc config` does) there is no
 * profile to write at exit. */
static bool prof_used;

/* Per thread, in its cache (src/tcache.h): the generator and the slow
 * paths' countdown, set when the cache is made.  A thread without a
 * cache (caches off, or a thread exiting) uses shared ones, by atomic
 * operations: races there can only add or lose a sample.  Static TLS
 * stays small (tests/pkg/dlopen checks it): the one byte here says
 * whether the thread is inside the profiler (sampling, or holding
 * prof.lock), so that a malloc or free made meanwhile by a signal
 * handler of the thread -- or by a fork handler of the program's, the
 * handler having forked -- is neither sampled nor looked up, instead of
 * waiting for a lock its own thread holds. */
static __thread volatile bool busy;
static intptr_t shared_left;
static uint64_t shared_draws;

/* ------------------------------------------------------------- settings */

bool prof_set_on(size_t v) {
  prof_wanted = v != 0;
  return true;
}
long long prof_get_on(void) { return prof_wanted; }
bool prof_set_rate(size_t v) {
  if (v == 0)
    return false;
  prof_rate = v;
  return true;
}
long long prof_get_rate(void) { return (long long)prof_rate; }
bool prof_set_file(const char *v, size_t len) {
  if (len == 0 || len >= sizeof prof_file)
    return false;
  memcpy(prof_file, v, len);
  prof_file[len] = 0;
  return true;
}
const char *prof_get_file(void) { return prof_file; }

void prof_init(void) {
  if (!prof_wanted)
    return;
  if (tide_debug_on) {
    os_write_err("tidemalloc: warning: prof: heap profiling is off in debug mode\n");
    return;
  }
  prof_secret = os_random64() | 1;
  prof_on = true;
}

/* ------------------------------------------------------------- the draws */

static uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1du;
}

#define LN2 0.6931471805599453

static double bits_to_double(uint64_t b) {
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}

/* ln(x) for a normal x > 0: x = m 2^e with m in [0.707, 1.414), and
 * ln(m) = 2 atanh(t), t = (m - 1) / (m + 1), |t| < 0.172, by its series
 * (the first term left out is below 1e-11 of the result). */
static double prof_ln(double x) {
  uint64_t b;
  memcpy(&b, &x, sizeof b);
  int e = (int)((b >> 52) & 0x7ff) - 1023;
  double m = bits_to_double((b & (((uint64_t)1 << 52) - 1)) | ((uint64_t)1023 << 52));
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e++;
  }
  double t = (m - 1) / (m + 1), t2 = t * t;
  double series = 1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9 + t2 * (1.0 / 11 + t2 / 13)))));
  return e * LN2 + 2 * t * series;
}

/* 1 - exp(-x) for x >= 0, accurate for small x too (where 1 - exp(-x)
 * computed as written would lose its digits). */
static double one_minus_exp_neg(double x) {
  if (x > 60)
    return 1;
  if (x < 0.5) { /* x - x^2/2! + x^3/3! - ... */
    double term = x, sum = x;
    for (int k = 2; k <= 18; k++) {
      term *= -x / k;
      sum += term;
    }
    return sum;
  }
  /* exp(-x) = 2^-k exp(-r), x = k ln 2 + r, 0 <= r < ln 2 */
  int k = (int)(x / LN2);
  double r = x - k * LN2, term = 1, e = 1;
  for (int i = 1; i <= 18; i++) {
    term *= -r / i;
    e += term;
  }
  return 1 - e * bits_to_double((uint64_t)(1023 - k) << 52);
}

/* What a sample of a request of n bytes stands for: n / p(n). */
static uint64_t weight(size_t n) {
  if (n == 0)
    return 0;
  double s = (double)n, p = one_minus_exp_neg(s / (double)prof_rate);
  return (uint64_t)(s / p + 0.5);
}

/* Bytes to the next sampled byte, from 64 random bits: exponential of
 * mean prof_rate, rounded down.  u in (0, 1], so the draw is at most 37
 * prof_rate. */
static intptr_t draw_from(uint64_t bits) {
  double u = (double)((bits >> 11) + 1) * 0x1p-53;
  return (intptr_t)(-prof_ln(u) * (double)prof_rate);
}
static intptr_t draw(struct tcache *tc) { return draw_from(rng_next(&tc->prof_rng)); }
static intptr_t draw_shared(void) {
  return draw_from(mix64(__atomic_add_fetch(&shared_draws, 0x9e3779b97f4a7c15u, __ATOMIC_RELAXED) ^ prof_secret));
}

intptr_t prof_first_left(struct tcache *tc) {
  if (!prof_on)
    return PROF_OFF_LEFT;
  tc->prof_rng = mix64(prof_secret ^ (uintptr_t)tc) | 1; /* caches differ by their address */
  tc->prof_left = draw(tc);
  __atomic_store_n(&prof_used, true, __ATOMIC_RELAXED);
  return draw(tc);
}

/* The slow paths' countdown: is this request of n sampled? */
static inline bool slow_due(size_t n) {
  struct tcache *tc = tcache_tls; /* (tcache_none: a thread without a cache) */
  if (likely(tc != tcache_none_ptr())) {
    if (likely(n <= (size_t)tc->prof_left)) {
      tc->prof_left -= (intptr_t)n;
      return false;
    }
    tc->prof_left = draw(tc);
    return true;
  }
  __atomic_store_n(&prof_used, true, __ATOMIC_RELAXED);
  intptr_t left = __atomic_load_n(&shared_left, __ATOMIC_RELAXED);
  if (left >= 0 && n <= (size_t)left) {
    __atomic_fetch_sub(&shared_left, (intptr_t)n, __ATOMIC_RELAXED);
    return false;
  }
  __atomic_store_n(&shared_left, draw_shared(), __ATOMIC_RELAXED);
  return true;
}

/* The fast paths' countdown (tc's) went below zero: what it covered is
 * counted as requested, and it is armed again.  True: sample. */
static bool fast_due(struct tcache *tc) {
  tc->bytes_requested += (size_t)(tc->bytes_armed - tc->bytes_left);
  intptr_t next = prof_on ? draw(tc) : PROF_OFF_LEFT;
  tc->bytes_armed = tc->bytes_left = next;
  return prof_on;
}

/* ------------------------------------------------------------- tables */

/* Under the lock: map the tables at the first sample. */
static bool tables_ready(void) {
  if (likely(prof.mapped))
    return true;
  if (prof.map_failed)
    return false;
  prof.stacks = os_map(PROF_STACKS_MAX * sizeof *prof.stacks);
  prof.index = os_map(PROF_STACK_SLOTS * sizeof *prof.index);
  prof.pool = os_map(PROF_POOL_FRAMES * sizeof *prof.pool);
  if (!prof.stacks || !prof.index || !prof.pool) {
    prof.map_failed = true;
    return false;
  }
  prof.nstacks = 1; /* 0: "[unknown]" */
  prof.mapped = true;
  return true;
}

static uint32_t hash_frames(const uintptr_t *f, uint32_t n) {
  uint64_t h = 0x243f6a8885a308d3u ^ n;
  for (uint32_t i = 0; i < n; i++)
    h = mix64(h ^ f[i]);
  return (uint32_t)h;
}

/* The id of this stack, added if new; 0 when there is no room. */
static uint32_t stack_id(const uintptr_t *f, uint32_t n) {
  uint32_t h = hash_frames(f, n);
  for (uint32_t i = h & (PROF_STACK_SLOTS - 1);; i = (i + 1) & (PROF_STACK_SLOTS - 1)) {
    uint32_t id = prof.index[i];
    if (id == 0) {
      if (prof.nstacks >= PROF_STACKS_MAX || n > PROF_POOL_FRAMES - prof.pool_used)
        return 0;
      id = prof.nstacks++;
      struct prof_stack *s = &prof.stacks[id];
      s->hash = h;
      s->nframes = n;
      s->first = prof.pool_used;
      memcpy(prof.pool + prof.pool_used, f, n * sizeof *f);
      prof.pool_used += n;
      prof.index[i] = id;
      return id;
    }
    struct prof_stack *s = &prof.stacks[id];
    if (s->hash == h && s->nframes == n && memcmp(prof.pool + s->first, f, n * sizeof *f) == 0)
      return id;
  }
}

static size_t live_home(uintptr_t mem) { return (size_t)(((mem >> 4) * 0x9e3779b97f4a7c15u) >> prof.live_shift); }

static void live_put(struct prof_live *e) {
  size_t mask = prof.live_cap - 1;
  size_t i = live_home(e->mem);
  while (prof.live[i].mem != 0)
    i = (i + 1) & mask;
  prof.live[i] = *e;
}

/* Room for one more entry: the table at most half full, grown if need be
 * (false when it cannot grow and is three quarters full). */
static bool live_room(void) {
  if ((prof.live_count + 1) * 2 <= prof.live_cap)
    return true;
  size_t cap = prof.live_cap ? prof.live_cap * 2 : PROF_LIVE_MIN;
  struct prof_live *t = cap <= PROF_LIVE_MAX ? os_map(cap * sizeof *t) : NULL;
  if (!t)
    return (prof.live_count + 1) * 4 <= prof.live_cap * 3;
  struct prof_live *old = prof.live;
  size_t old_cap = prof.live_cap;
  prof.live = t;
  prof.live_cap = cap;
  prof.live_shift = 64 - (unsigned)__builtin_ctzll(cap);
  for (size_t i = 0; i < old_cap; i++)
    if (old[i].mem)
      live_put(&old[i]);
  if (old)
    os_unmap(old, old_cap * sizeof *old);
  return true;
}

/* The entry of mem, or NULL. */
static struct prof_live *live_find(uintptr_t mem) {
  if (prof.live_count == 0)
    return NULL;
  size_t mask = prof.live_cap - 1;
  for (size_t i = live_home(mem);; i = (i + 1) & mask) {
    if (prof.live[i].mem == mem)
      return &prof.live[i];
    if (prof.live[i].mem == 0)
      return NULL;
  }
}

/* Take e out, moving back the entries after it that would no longer be
 * found past the hole. */
static void live_remove(struct prof_live *e) {
  size_t mask = prof.live_cap - 1;
  size_t hole = (size_t)(e - prof.live);
  for (size_t j = (hole + 1) & mask; prof.live[j].mem != 0; j = (j + 1) & mask) {
    size_t home = live_home(prof.live[j].mem);
    /* j may move to the hole unless its home lies cyclically in (hole, j]. */
    bool stays = hole < j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!stays) {
      prof.live[hole] = prof.live[j];
      hole = j;
    }
  }
  prof.live[hole].mem = 0;
  __atomic_store_n(&prof.live_count, prof.live_count - 1, __ATOMIC_RELAXED);
}

/* A sampled block (its stack f[0..nf), its weight w) joins both
 * profiles (prof.lock held, the tables ready). */
static void record_locked(void *mem, uint64_t w, const uintptr_t *f, uint32_t nf) {
  uint32_t id = stack_id(f, nf);
  struct prof_stack *s = &prof.stacks[id];
  s->alloc_bytes += w;
  s->alloc_samples++;
  prof.samples++;
  struct prof_live *old = live_find((uintptr_t)mem);
  if (old && old->stack == PROF_POOLED) { /* taken from the pool */
    old->stack = id;
    old->weight = w;
    s->live_bytes += w;
    s->live_samples++;
    return;
  }
  if (old) { /* cannot happen: every free of a sample comes by prof_forget */
    prof.stacks[old->stack].live_bytes -= old->weight;
    prof.stacks[old->stack].live_samples--;
    live_remove(old);
  }
  if (live_room()) {
    struct prof_live e = {.mem = (uintptr_t)mem, .weight = w, .stack = id};
    live_put(&e);
    __atomic_store_n(&prof.live_count, prof.live_count + 1, __ATOMIC_RELAXED);
    s->live_bytes += w;
    s->live_samples++;
  } else {
    prof.dropped++;
  }
}

/* The size class a request of n is sampled in, when its samples are
 * pooled: TCACHE_BINS if not. */
static size_t pool_class(size_t n, size_t align) {
  size_t nb;
  if (align > CHUNK_ALIGN || !request2size(n, &nb) || nb > TCACHE_MEDIUM_MAX_CHUNK)
    return TCACHE_BINS;
  return nb <= (TCACHE_SMALL_BINS + 1) * CHUNK_ALIGN ? tcache_class_index(nb) : tcache_medium_index(nb);
}

/* A block from the pool for class cls, or NULL (prof.lock held). */
static void *pool_take(size_t cls) {
  if (cls >= TCACHE_BINS || prof.pooled[cls] == 0)
    return NULL;
  void *mem = prof.pooled_blocks[cls][--prof.pooled[cls]];
  prof.pool_bytes -= tcache_bin_size(cls);
  ((uintptr_t *)mem)[1] = 0; /* the free key */
  return mem;
}

/* e, a live sample just freed: into the pool if it is a chunk of a class
 * size (a small bin of no class is asked for by no request: pool_class)
 * and there is room (prof.lock held). */
static bool pool_put(struct prof_live *e) {
  void *mem = (void *)e->mem;
  struct chunk *p = mem2chunk(mem);
  size_t size = chunk_size(p), cls = tcache_bin_of(size);
  if (chunk_is_mmapped(p) || cls >= TCACHE_BINS || (cls < TCACHE_SMALL_BINS && tcache_class_index(size) != cls) ||
      prof.pooled[cls] >= PROF_POOL_PER_CLASS ||
      prof.pool_bytes + size > PROF_POOL_BYTES || !chunk_inuse(p))
    return false;
  prof.pooled_blocks[cls][prof.pooled[cls]++] = mem;
  prof.pool_bytes += size;
  e->stack = PROF_POOLED;
  e->weight = 0;
  ((uintptr_t *)mem)[1] = free_key(mem);
  return true;
}

int prof_forget(void *mem) {
  if (__atomic_load_n(&prof.live_count, __ATOMIC_RELAXED) == 0 || busy)
    return PROF_NOT_SAMPLED;
  busy = true;
  lock_acquire(&prof.lock);
  int r = PROF_NOT_SAMPLED;
  struct prof_live *e = live_find((uintptr_t)mem);
  if (e && e->stack == PROF_POOLED) {
    lock_release(&prof.lock);
    tide_fatal("free", "double free detected (a block the heap profiler keeps)");
  }
  if (e) {
    struct prof_stack *s = &prof.stacks[e->stack];
    s->live_bytes -= e->weight;
    s->live_samples--;
    if (pool_put(e)) {
      r = PROF_KEPT;
    } else {
      live_remove(e);
      r = PROF_TO_ARENA;
    }
  }
  lock_release(&prof.lock);
  busy = false;
  return r;
}

static bool is_sampled(void *mem) {
  if (!prof_placed(mem) || __atomic_load_n(&prof.live_count, __ATOMIC_RELAXED) == 0 || busy)
    return false;
  busy = true;
  lock_acquire(&prof.lock);
  struct prof_live *e = live_find((uintptr_t)mem);
  if (e && e->stack == PROF_POOLED) {
    lock_release(&prof.lock);
    tide_fatal("realloc", "pointer already freed (a block the heap profiler keeps)");
  }
  lock_release(&prof.lock);
  busy = false;
  return e != NULL;
}

/* ------------------------------------------------------------- sampling */

/* The return address and the caller's frame pointer of the function
 * this is written in: the program's, when that function was reached by
 * a jump from an entry point (which keeps no frame of its own). */
#define CALLER_RA ((uintptr_t)__builtin_return_address(0))
#define CALLER_FP (*(void **)__builtin_frame_address(0))

/* A sampled block for a request of n, or NULL (errno kept) if none could
 * be placed: the caller then serves the request as usual. */
static void *sample(size_t n, size_t align, bool zero, uintptr_t ra, const void *fp) {
  if (busy)
    return NULL;
  busy = true;
  uintptr_t f[PROF_FRAMES];
  uint32_t nf = stack_capture(ra, fp, f, PROF_FRAMES);
  uint64_t w = weight(n);
  size_t cls = pool_class(n, align);
  lock_acquire(&prof.lock);
  void *mem = pool_take(cls);
  if (mem)
    record_locked(mem, w, f, nf);
  lock_release(&prof.lock);
  if (mem) {
    if (zero)
      memset(mem, 0, tide_raw_usable(mem));
    struct tcache *tc = tcache_mine(); /* counted as the allocator counts a malloc */
    if (tc) {
      tc->mallocs++;
      tc->bytes_requested += n;
    }
  } else {
    /* A class's whole chunk, so that the pool can take it back (the
     * arena path counts the malloc). */
    int saved = errno;
    mem = tide_raw_sampled(cls < TCACHE_BINS ? tcache_bin_size(cls) - SIZE_SZ : n, align, zero);
    if (mem) {
      lock_acquire(&prof.lock);
      if (tables_ready())
        record_locked(mem, w, f, nf);
      lock_release(&prof.lock);
    } else {
      errno = saved;
    }
  }
  busy = false;
  return mem;
}

/* A fast path's sample: the block it popped goes back into the cache,
 * and the malloc it counted is counted by sample() instead; NULL (none
 * could be placed) if the popped block is to be used after all. */
static void *fast_sample(struct tcache *tc, size_t n, void *mem, bool zero, uintptr_t ra, const void *fp) {
  tc->mallocs--;
  tc->bytes_requested -= n;
  void *s = sample(n, 0, zero, ra, fp);
  if (!s) {
    tc->mallocs++;
    tc->bytes_requested += n;
    return NULL;
  }
  if (!tcache_push(tc, mem, tcache_request_index(n)))
    tide_free(mem); /* (the bin's limit fell meanwhile) */
  return s;
}

void *prof_malloc_hit(size_t n, void *mem) {
  struct tcache *tc = tcache_tls;
  if (!fast_due(tc))
    return mem;
  void *s = fast_sample(tc, n, mem, false, CALLER_RA, CALLER_FP);
  return s ? s : mem;
}

void *prof_calloc_hit(size_t n, void *mem) {
  struct tcache *tc = tcache_tls;
  if (fast_due(tc)) {
    void *s = fast_sample(tc, n, mem, true, CALLER_RA, CALLER_FP);
    if (s)
      return s;
  }
  return memset(mem, 0, tide_raw_usable(mem));
}

/* The slow paths' entries: the count, then a jump either way -- to the
 * raw allocator, or to the sampling half, a function of its own so that
 * the other case sets up no frame (CALLER_FP makes one); both jumps keep
 * the program's return address. */
static TIDE_NOINLINE void *malloc_sampled(size_t n) {
  void *s = sample(n, 0, false, CALLER_RA, CALLER_FP);
  return s ? s : tide_raw_malloc(n);
}
void *prof_malloc(size_t n) {
  if (likely(!slow_due(n)))
    return tide_raw_malloc(n);
  return malloc_sampled(n);
}

static TIDE_NOINLINE void *calloc_sampled(size_t n) {
  void *s = sample(n, 0, true, CALLER_RA, CALLER_FP);
  return s ? s : tide_raw_calloc(n);
}
void *prof_calloc(size_t n) {
  if (likely(!slow_due(n)))
    return tide_raw_calloc(n);
  return calloc_sampled(n);
}

void *prof_memalign_from(size_t align, size_t n, uintptr_t ra, const void *fp) {
  if (slow_due(n)) {
    void *s = sample(n, align, false, ra, fp);
    if (s)
      return s;
  }
  return tide_raw_memalign(align, n);
}
static TIDE_NOINLINE void *memalign_sampled(size_t align, size_t n) {
  void *s = sample(n, align, false, CALLER_RA, CALLER_FP);
  return s ? s : tide_raw_memalign(align, n);
}
void *prof_memalign(size_t align, size_t n) {
  if (likely(!slow_due(n)))
    return tide_raw_memalign(align, n);
  return memalign_sampled(align, n);
}

/* It moves: a sampled block must not change size in place (its weight
 * is its size's), and a new sample needs a block placed so. */
static TIDE_NOINLINE void *realloc_moving(void *mem, size_t n, bool due) {
  tide_raw_check(mem, "realloc");
  size_t old = tide_raw_usable(mem);
  void *nmem = due ? sample(n, 0, false, CALLER_RA, CALLER_FP) : NULL;
  if (!nmem)
    nmem = tide_raw_malloc(n);
  if (!nmem)
    return NULL;
  memcpy(nmem, mem, old < n ? old : n);
  tide_free(mem);
  return nmem;
}
void *prof_realloc(void *mem, size_t n) {
  bool due = slow_due(n);
  if (likely(!due && !is_sampled(mem)))
    return tide_raw_realloc(mem, n);
  return realloc_moving(mem, n, due);
}

/* ------------------------------------------------------------- dumps */

/* A frame, with ' ' and ';' (the format's separators) in a path made '_'. */
static void out_frame(struct out *o, uintptr_t addr) {
  const char *path;
  uintptr_t off;
  if (!stack_frame_file(addr, &path, &off)) {
    out_hex(o, addr);
    return;
  }
  char clean[256];
  size_t i = 0;
  for (; path[i] && i < sizeof clean - 1; i++)
    clean[i] = path[i] == ' ' || path[i] == ';' ? '_' : path[i];
  clean[i] = 0;
  out_str(o, clean);
  out_str(o, "+");
  out_hex(o, off);
}

static uint64_t stack_bytes(uint32_t id, bool live) {
  return live ? prof.stacks[id].live_bytes : prof.stacks[id].alloc_bytes;
}

/* order[0..n): stack ids, sorted largest first (a heap sort: no memory). */
static void sift(uint32_t *order, size_t at, size_t n, bool live) {
  for (;;) {
    size_t c = 2 * at + 1;
    if (c >= n)
      return;
    if (c + 1 < n && stack_bytes(order[c + 1], live) < stack_bytes(order[c], live))
      c++;
    if (stack_bytes(order[at], live) <= stack_bytes(order[c], live))
      return;
    uint32_t t = order[at];
    order[at] = order[c];
    order[c] = t;
    at = c;
  }
}
static void sort_largest_first(uint32_t *order, size_t n, bool live) {
  for (size_t i = n / 2; i-- > 0;)
    sift(order, i, n, live);
  for (size_t end = n; end > 1; end--) { /* the smallest goes last */
    uint32_t t = order[0];
    order[0] = order[end - 1];
    order[end - 1] = t;
    sift(order, 0, end - 1, live);
  }
}

/* One profile into name (prof.lock held); 0, or -1 with errno. */
static int write_profile(const char *name, bool live, uint32_t *order) {
  os_file_remove(name); /* a new file (never through a symlink), as the heap dump's */
  int fd = os_file_create(name);
  if (fd < 0)
    return -1;
  uint32_t n = prof.mapped ? prof.nstacks : 0, shown = 0;
  uint64_t total = 0, samples = 0;
  for (uint32_t id = 0; id < n; id++)
    if (stack_bytes(id, live)) {
      total += stack_bytes(id, live);
      samples += live ? prof.stacks[id].live_samples : prof.stacks[id].alloc_samples;
      if (order)
        order[shown++] = id;
    }
  if (order)
    sort_largest_first(order, shown, live);
  struct out w = {.fd = fd};
  out_str(&w, "# tidemalloc " TIDEMALLOC_VERSION " heap profile, ");
  out_str(&w, live ? "live: sampled blocks still allocated" : "allocated: every sample since start");
  out_str(&w, "; pid ");
  out_u(&w, (size_t)os_pid(), 0);
  out_str(&w, ", prof_rate ");
  out_u(&w, prof_rate, 0);
  out_str(&w, ", ");
  out_u(&w, (size_t)samples, 0);
  out_str(&w, " samples, ");
  out_u(&w, (size_t)total, 0);
  out_str(&w, " bytes estimated");
  if (prof.dropped) {
    out_str(&w, ", ");
    out_u(&w, (size_t)prof.dropped, 0);
    out_str(&w, " samples not kept live (table full)");
  }
  out_str(&w, "\n");
  for (uint32_t k = 0, id = 0; order ? k < shown : id < n; k++, id++) {
    uint32_t sid = order ? order[k] : id;
    uint64_t bytes = stack_bytes(sid, live);
    if (!bytes)
      continue;
    struct prof_stack *s = &prof.stacks[sid];
    const uintptr_t *f = prof.pool + s->first;
    /* The frames that were sound: up to the first (past the caller's)
     * that no file maps, a frame pointer that was no frame. */
    uint32_t nf = s->nframes;
    for (uint32_t i = 1; i < nf; i++) {
      const char *path;
      uintptr_t off;
      if (!stack_frame_file(f[i], &path, &off)) {
        nf = i;
        break;
      }
    }
    if (sid == 0 || nf == 0) {
      out_str(&w, "[unknown]");
    }
    for (uint32_t i = nf; i-- > 0;) {
      out_frame(&w, f[i]);
      if (i)
        out_str(&w, ";");
    }
    out_str(&w, " ");
    out_u(&w, (size_t)bytes, 0);
    out_str(&w, "\n");
  }
  out_flush(&w);
  int err = os_file_close(fd);
  if (w.error || err) {
    errno = w.error ? w.error : err;
    return -1;
  }
  return 0;
}

/* Both profiles of base; 0, or -1 with errno and the file that failed
 * in *failed. */
static int dump(const char *base, const char **failed) {
  static char heap[PROF_PATH_MAX + 64], alloc[PROF_PATH_MAX + 64]; /* under dump_lock */
  static struct tide_lock dump_lock = TIDE_LOCK_INIT;
  lock_acquire(&dump_lock);
  *failed = base;
  if (!out_path(heap, sizeof heap, base, ".heap") || !out_path(alloc, sizeof alloc, base, ".alloc")) {
    lock_release(&dump_lock);
    errno = ENAMETOOLONG;
    return -1;
  }
  int cancel = os_nocancel_begin();
  bool was_busy = busy;
  busy = true;
  lock_acquire(&prof.lock);
  stack_modules_load();
  uint32_t *order = NULL;
  size_t order_bytes = prof.mapped ? prof.nstacks * sizeof *order : 0;
  if (order_bytes)
    order = os_map(order_bytes); /* unsorted without it */
  *failed = heap;
  int r = write_profile(heap, true, order);
  if (r == 0) {
    *failed = alloc;
    r = write_profile(alloc, false, order);
  }
  int err = errno;
  if (order)
    os_unmap(order, order_bytes);
  lock_release(&prof.lock);
  busy = was_busy;
  lock_release(&dump_lock);
  os_nocancel_end(cancel);
  errno = err;
  return r;
}

TIDE_EXPORT int tide_prof_dump(const char *path) {
  tide_ensure_init();
  if (!prof_on) {
    errno = ENOTSUP;
    return -1;
  }
  int saved = errno;
  const char *failed;
  if (dump(path ? path : prof_file, &failed) != 0)
    return -1;
  errno = saved;
  return 0;
}

__attribute__((destructor)) static void prof_at_exit(void) {
  if (!prof_on || !__atomic_load_n(&prof_used, __ATOMIC_RELAXED))
    return;
  int saved = errno;
  const char *failed;
  if (dump(prof_file, &failed) != 0) {
    struct out o = {.fd = 2};
    out_str(&o, "tidemalloc: warning: prof: could not write the heap profile ");
    out_str(&o, failed);
    out_str(&o, " (errno ");
    out_u(&o, (size_t)errno, 0);
    out_str(&o, ")\n");
    out_flush(&o);
  }
  errno = saved;
}

/* ------------------------------------------------------------- fork */

void prof_prefork(void) { lock_acquire(&prof.lock); }
void prof_postfork_parent(void) { lock_release(&prof.lock); }
void prof_postfork_child(void) {
  lock_init(&prof.lock);
  struct tcache *tc = tcache_mine(); /* draws of its own, not the parent's again */
  if (tc)
    tc->prof_rng = mix64(tc->prof_rng ^ (uint64_t)os_pid()) | 1;
}
