/* SPDX-License-Identifier: MIT */
/*
 * Direct-mmap chunks, their registry, and glibc's dynamic mmap threshold.
 */
#include "mmapped.h"
#include "out.h"

#include "os.h"
#include "purge.h"
#include "stats.h"

#define DEFAULT_MMAP_THRESHOLD_MAX (32 * MiB)

/* Open-addressing table of live mmapped chunks (linear probing,
 * backward-shift deletion), in memory of its own from os_map: each one's
 * address and the length of its mapping, which its size must match when
 * it is freed or resized (a size written over would unmap or remap a
 * neighbouring mapping). */
struct reg_slot {
  uintptr_t key;
  size_t len;
};
static struct {
  struct tide_lock lock;
  struct reg_slot *slots;
  size_t cap; /* power of two, or 0 */
  size_t count;
  size_t bytes, max_bytes, max_count;
} reg = {.lock = TIDE_LOCK_INIT};

static size_t slot_of(uintptr_t key, size_t cap) {
  return (size_t)((key >> 4) * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
}

static bool reg_grow(void) {
  size_t ncap = reg.cap ? reg.cap * 2 : 1024;
  struct reg_slot *ns = os_map(ncap * sizeof *ns);
  if (!ns)
    return false;
  for (size_t i = 0; i < reg.cap; i++) {
    if (!reg.slots[i].key)
      continue;
    size_t j = slot_of(reg.slots[i].key, ncap);
    while (ns[j].key)
      j = (j + 1) & (ncap - 1);
    ns[j] = reg.slots[i];
  }
  if (reg.slots)
    os_unmap(reg.slots, reg.cap * sizeof *reg.slots);
  reg.slots = ns;
  reg.cap = ncap;
  return true;
}

/* Callers hold reg.lock. */
static bool reg_insert(uintptr_t key, size_t len) {
  if ((reg.count + 1) * 2 > reg.cap && !reg_grow())
    return false;
  size_t j = slot_of(key, reg.cap);
  while (reg.slots[j].key)
    j = (j + 1) & (reg.cap - 1);
  reg.slots[j] = (struct reg_slot){key, len};
  reg.count++;
  return true;
}

static bool reg_find(uintptr_t key, size_t *at) {
  if (!reg.cap)
    return false;
  for (size_t j = slot_of(key, reg.cap);; j = (j + 1) & (reg.cap - 1)) {
    if (reg.slots[j].key == key) {
      *at = j;
      return true;
    }
    if (!reg.slots[j].key)
      return false;
  }
}

static void reg_remove_at(size_t hole) {
  size_t mask = reg.cap - 1;
  reg.slots[hole] = (struct reg_slot){0, 0};
  reg.count--;
  /* Shift later members of the run back over the hole. */
  for (size_t j = (hole + 1) & mask; reg.slots[j].key; j = (j + 1) & mask) {
    size_t home = slot_of(reg.slots[j].key, reg.cap);
    bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      reg.slots[hole] = reg.slots[j];
      reg.slots[j] = (struct reg_slot){0, 0};
      hole = j;
    }
  }
}

/* Freed mappings kept for reuse, oldest first (under reg.lock).  Few and
 * bounded in bytes; each goes back to the OS once it has waited the decay
 * time (the background thread) or at malloc_trim. */
#define MAP_CACHE_SLOTS 8
#define MAP_CACHE_BYTES (128 * MiB)
static struct kept {
  char *base;
  size_t len;
  uint64_t freed_ms;
} kept[MAP_CACHE_SLOTS];
static unsigned nkept;
static size_t kept_bytes;

static struct kept kept_take(unsigned i) {
  struct kept k = kept[i];
  memmove(&kept[i], &kept[i + 1], (nkept - i - 1) * sizeof kept[0]);
  nkept--;
  kept_bytes -= k.len;
  return k;
}

/* Take the kept mapping that suits len best: the smallest that holds it,
 * else the largest (to be grown).  reg.lock held; false when none. */
static bool kept_pick(size_t len, struct kept *k) {
  if (nkept == 0)
    return false;
  unsigned best = MAP_CACHE_SLOTS, largest = 0;
  for (unsigned i = 0; i < nkept; i++) {
    if (kept[i].len >= len && (best == MAP_CACHE_SLOTS || kept[i].len < kept[best].len))
      best = i;
    if (kept[i].len > kept[largest].len)
      largest = i;
  }
  *k = kept_take(best != MAP_CACHE_SLOTS ? best : largest);
  return true;
}

/* k resized to len bytes (its tail unmapped, or grown where it is or
 * elsewhere), or NULL.  No lock held: these are system calls. */
static char *kept_resize(struct kept k, size_t len) {
  if (k.len > len)
    os_unmap(k.base + len, k.len - len);
  if (k.len >= len)
    return k.base;
  char *m = os_remap(k.base, k.len, len);
  if (!m)
    os_unmap(k.base, k.len);
  return m;
}

/* With no background thread, kept mappings stay within the dirty cap
 * (purge_unthreaded_cap, an eighth of live memory).  When a mapping had
 * to be let go for the cap and a new one is mapped within the decay,
 * blocks of that size come and go faster than the cap allows: it doubles
 * (at most KEEP_MAX_SHIFT times, and never past MAP_CACHE_BYTES), and it
 * halves again every KEEP_RELAX_MS.  Under reg.lock or racy: hints. */
#define KEEP_MAX_SHIFT 4
#define KEEP_RELAX_MS 10000
static unsigned keep_shift;
static uint64_t capped_ms, keep_raised_ms;

static size_t unthreaded_limit(void) {
  if (!purge_keeps_unthreaded())
    return 0;
  uint64_t now = os_now_coarse_ms();
  if (keep_shift > 0 && now > keep_raised_ms + KEEP_RELAX_MS) {
    keep_shift--;
    keep_raised_ms = now;
  }
  size_t limit = purge_unthreaded_cap() << keep_shift;
  return limit < MAP_CACHE_BYTES ? limit : MAP_CACHE_BYTES;
}

static void note_capped(void) { capped_ms = os_now_coarse_ms(); }

static void note_fresh_map(void) {
  if (!capped_ms || purge_defers() || !purge_keeps_unthreaded())
    return;
  uint64_t now = os_now_coarse_ms();
  if (now < capped_ms + (uint64_t)opt.purge_decay_ms && keep_shift < KEEP_MAX_SHIFT) {
    keep_shift++;
    keep_raised_ms = now;
  }
  capped_ms = 0;
}

bool mmapped_can_map(void) { return (int)__atomic_load_n(&reg.count, __ATOMIC_RELAXED) < opt.mmap_max; }

struct chunk *mmapped_alloc(size_t nb, bool may_reuse) {
  size_t len = os_page_up(nb + SIZE_SZ);
  if (len < nb)
    return NULL;
  char *m = NULL;
  if (__atomic_load_n(&nkept, __ATOMIC_RELAXED) && !purge_defers())
    mmapped_cache_expire(false); /* nobody else comes for them */
  if (may_reuse && __atomic_load_n(&nkept, __ATOMIC_RELAXED)) {
    struct kept k;
    lock_acquire(&reg.lock);
    bool got = kept_pick(len, &k);
    lock_release(&reg.lock);
    if (got)
      m = kept_resize(k, len);
  }
  if (!m) {
    note_fresh_map();
    m = os_map(len);
    if (!m)
      return NULL;
    if (len >= OS_HUGE_PAGE)
      os_advise_huge(m, len);
  }
  struct chunk *p = (struct chunk *)m;
  p->prev_size = 0;
  chunk_set_head(p, len | IS_MMAPPED);
  lock_acquire(&reg.lock);
  bool ok = reg_insert((uintptr_t)p, len);
  if (ok) {
    if (reg.count > reg.max_count)
      reg.max_count = reg.count;
    reg.bytes += len;
    if (reg.bytes > reg.max_bytes)
      reg.max_bytes = reg.bytes;
  }
  lock_release(&reg.lock);
  if (!ok) {
    os_unmap(m, len);
    return NULL;
  }
  stats_note_growth();
  return p;
}

bool mmapped_known(struct chunk *p) {
  size_t at;
  lock_acquire(&reg.lock);
  bool found = reg_find((uintptr_t)p, &at);
  lock_release(&reg.lock);
  return found;
}

void mmapped_free(struct chunk *p) {
  size_t at;
  lock_acquire(&reg.lock);
  if (unlikely(!reg_find((uintptr_t)p, &at))) {
    lock_release(&reg.lock);
    tide_fatal(tide_current_fn, "invalid pointer (not an mmapped chunk of ours)");
  }
  size_t off = p->prev_size, size = chunk_size(p);
  if (unlikely(off > (uintptr_t)p || off + size != reg.slots[at].len)) {
    lock_release(&reg.lock);
    tide_fatal(tide_current_fn, "invalid pointer (corrupted mmapped chunk: its size is not its mapping's)");
  }
  reg_remove_at(at);
  reg.bytes -= off + size;
  lock_release(&reg.lock);

  /* glibc's dynamic threshold: a freed mapping this size says such blocks
   * come and go, so later ones are served from the arenas. */
  if (opt.dynamic_threshold && size > opt.mmap_threshold && size <= DEFAULT_MMAP_THRESHOLD_MAX) {
    opt.mmap_threshold = size;
    opt.trim_threshold = 2 * size;
  }
  char *base = (char *)p - off;
  size_t len = off + size;
  if (len <= MAP_CACHE_BYTES)
    purge_wake(); /* before purge_defers(): see purge.c, "background thread" */
  size_t limit = MAP_CACHE_BYTES;
  bool capped = !purge_defers();
  if (capped) {
    /* No thread will come for it: keep it only within the cap, and let
     * the large calls expire what has waited the decay. */
    limit = unthreaded_limit();
    if (__atomic_load_n(&nkept, __ATOMIC_RELAXED))
      mmapped_cache_expire(false);
  }
  if (len > limit) {
    if (capped)
      note_capped();
    os_unmap(base, len);
    return;
  }
  /* Keep it; the oldest make room. */
  struct kept out[MAP_CACHE_SLOTS];
  unsigned nout = 0;
  lock_acquire(&reg.lock);
  while (nkept == MAP_CACHE_SLOTS || kept_bytes + len > limit)
    out[nout++] = kept_take(0);
  if (capped && nout)
    note_capped();
  kept[nkept++] = (struct kept){base, len, os_now_coarse_ms()};
  kept_bytes += len;
  lock_release(&reg.lock);
  for (unsigned i = 0; i < nout; i++)
    os_unmap(out[i].base, out[i].len);
}

static size_t kept_release(bool everything, size_t *left) {
  struct kept out[MAP_CACHE_SLOTS];
  unsigned nout = 0;
  uint64_t now = os_now_coarse_ms();
  uint64_t decay = opt.purge_decay_ms < 0 ? 0 : (uint64_t)opt.purge_decay_ms;
  lock_acquire(&reg.lock);
  while (nkept > 0 && (everything || kept[0].freed_ms + decay <= now))
    out[nout++] = kept_take(0);
  *left = kept_bytes;
  lock_release(&reg.lock);
  size_t released = 0;
  for (unsigned i = 0; i < nout; i++) {
    os_unmap(out[i].base, out[i].len);
    released += out[i].len;
  }
  return released;
}

size_t mmapped_cache_expire(bool everything) {
  size_t left;
  kept_release(everything, &left);
  return left;
}

void mmapped_cache_fit_unthreaded(void) {
  if (!__atomic_load_n(&nkept, __ATOMIC_RELAXED))
    return;
  size_t limit = unthreaded_limit();
  struct kept out[MAP_CACHE_SLOTS];
  unsigned nout = 0;
  lock_acquire(&reg.lock);
  while (nkept > 0 && kept_bytes > limit)
    out[nout++] = kept_take(0);
  lock_release(&reg.lock);
  for (unsigned i = 0; i < nout; i++)
    os_unmap(out[i].base, out[i].len);
}

size_t mmapped_cache_release_all(void) {
  size_t left;
  return kept_release(true, &left);
}

struct chunk *mmapped_resize(struct chunk *p, size_t nb) {
  size_t off = p->prev_size, size = chunk_size(p);
  size_t new_len = os_page_up(off + nb + SIZE_SZ);
  if (new_len == off + size)
    return p;
  size_t at;
  lock_acquire(&reg.lock);
  if (unlikely(!reg_find((uintptr_t)p, &at))) {
    lock_release(&reg.lock);
    tide_fatal(tide_current_fn, "invalid pointer (not an mmapped chunk of ours)");
  }
  if (unlikely(off > (uintptr_t)p || off + size != reg.slots[at].len)) {
    lock_release(&reg.lock);
    tide_fatal(tide_current_fn, "invalid pointer (corrupted mmapped chunk: its size is not its mapping's)");
  }
  char *m = os_remap((char *)p - off, off + size, new_len);
  if (!m) {
    lock_release(&reg.lock);
    return NULL;
  }
  struct chunk *q = (struct chunk *)(m + off);
  chunk_set_head(q, (new_len - off) | IS_MMAPPED);
  reg_remove_at(at);
  reg_insert((uintptr_t)q, new_len); /* cannot fail: we just freed a slot */
  reg.bytes = reg.bytes - (off + size) + new_len;
  if (reg.bytes > reg.max_bytes)
    reg.max_bytes = reg.bytes;
  lock_release(&reg.lock);
  return q;
}

void mmapped_rekey(struct chunk *old, struct chunk *moved) {
  size_t at;
  lock_acquire(&reg.lock);
  if (reg_find((uintptr_t)old, &at)) {
    size_t len = reg.slots[at].len;
    reg_remove_at(at);
    reg_insert((uintptr_t)moved, len);
  }
  lock_release(&reg.lock);
}

void mmapped_json_list(struct out *o, const char *key, size_t max) {
  json_open(o, key, '[');
  lock_acquire(&reg.lock);
  size_t n = 0;
  for (size_t i = 0; i < reg.cap && n < max; i++) {
    if (!reg.slots[i].key)
      continue;
    struct chunk *c = (struct chunk *)reg.slots[i].key;
    json_open(o, NULL, '{');
    json_addr(o, "addr", (uintptr_t)c);
    json_u(o, "size", chunk_size(c));
    json_u(o, "mapping_bytes", reg.slots[i].len);
    json_close(o, '}');
    n++;
  }
  lock_release(&reg.lock);
  json_close(o, ']');
}

size_t mmapped_totals_unlocked_bytes(void) { return __atomic_load_n(&reg.bytes, __ATOMIC_RELAXED); }

struct mmapped_totals mmapped_totals(void) {
  lock_acquire(&reg.lock);
  struct mmapped_totals t = {reg.count, reg.max_count, reg.bytes, reg.max_bytes, kept_bytes};
  lock_release(&reg.lock);
  return t;
}

void mmapped_prefork(void) { lock_acquire(&reg.lock); }
void mmapped_postfork_parent(void) { lock_release(&reg.lock); }
void mmapped_postfork_child(void) { lock_init(&reg.lock); }
