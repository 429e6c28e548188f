/* SPDX-License-Identifier: MIT */
/*
 * Call stacks without allocating: the frame-pointer walk and the table of
 * mapped files that names frames (see src/stack.h).  Moved here from
 * debug mode, which heap profiling shares it with.
 */
#include "stack.h"

#include "os.h"

/* This thread's stack, for walking frame pointers without stepping out
 * of it. */
static __thread uintptr_t stack_lo, stack_hi;

/* Bounds for a walk from sp: a thread glibc made has its stack in one
 * mapping with its thread control block at the top (x86-64: %fs:0 points
 * to it), so if all of [sp, tcb) is mapped that is the part a walk
 * upwards may read -- one mincore instead of reading /proc/self/maps, for
 * each new thread.  The main thread (its TCB lies elsewhere) and signal
 * stacks read the maps. */
static bool stack_bounds(uintptr_t sp, uintptr_t *lo, uintptr_t *hi) {
#if defined(__x86_64__)
  uintptr_t tcb;
  __asm__("mov %%fs:0, %0" : "=r"(tcb));
  if (sp < tcb && tcb - sp <= ((uintptr_t)1 << 30) && os_mapped(sp, tcb)) {
    *lo = os_page_down(sp);
    *hi = tcb;
    return true;
  }
#endif
  struct os_mapping m;
  if (!os_mapping_of(sp, &m))
    return false;
  *lo = m.lo;
  *hi = m.hi;
  return true;
}

uint32_t stack_capture(uintptr_t ra, const void *fp_in, uintptr_t *f, uint32_t max) {
  const uintptr_t *fp = fp_in;
  uint32_t n = 0;
  if (max == 0)
    return 0;
  f[n++] = ra;
  /* Looked up again whenever we run outside the bounds last found: the
   * main thread's stack grows, and a signal stack is another mapping. */
  uintptr_t lo = (uintptr_t)&n;
  if (lo < stack_lo || lo >= stack_hi) {
    if (!stack_bounds(lo, &stack_lo, &stack_hi))
      stack_lo = stack_hi = 0; /* no walk */
  }
  while (n < max && fp) {
    uintptr_t at = (uintptr_t)fp;
    if (at < lo || at < stack_lo || at + 2 * sizeof(uintptr_t) > stack_hi || (at & 7))
      break;
    uintptr_t ret = fp[1];
    if (ret < 4096)
      break;
    f[n++] = ret;
    const uintptr_t *up = (const uintptr_t *)fp[0];
    if ((uintptr_t)up <= at)
      break;
    fp = up;
  }
  return n;
}

/* ------------------------------------------------------------ modules */

#define MODULES_MAX 1024
struct module {
  uintptr_t lo, hi, base;
  char path[240];
};
static struct module *modules;
static size_t nmodules;

static bool module_line(void *ctx, uintptr_t lo, uintptr_t hi, uintptr_t off, const char *path) {
  (void)ctx;
  if (path[0] != '/' || nmodules == MODULES_MAX)
    return nmodules < MODULES_MAX;
  struct module *prev = nmodules ? &modules[nmodules - 1] : NULL;
  struct module *m = &modules[nmodules++];
  m->lo = lo;
  m->hi = hi;
  size_t len = strlen(path);
  if (len >= sizeof m->path)
    len = sizeof m->path - 1;
  memcpy(m->path, path, len);
  m->path[len] = 0;
  m->base = off == 0 || !prev || strcmp(prev->path, m->path) != 0 ? lo : prev->base;
  return true;
}

void stack_modules_load(void) {
  if (!modules)
    modules = os_map(MODULES_MAX * sizeof *modules);
  nmodules = 0;
  if (modules)
    os_maps_each(module_line, NULL);
}

bool stack_frame_file(uintptr_t addr, const char **path, uintptr_t *offset) {
  for (size_t i = 0; i < nmodules; i++)
    if (addr >= modules[i].lo && addr < modules[i].hi) {
      *path = modules[i].path;
      *offset = addr - modules[i].base;
      return true;
    }
  static struct os_mapping m; /* error reports: one thread, then abort */
  if (!modules && os_mapping_of(addr, &m) && m.path[0] == '/') {
    *path = m.path;
    *offset = addr - m.base;
    return true;
  }
  return false;
}

void stack_out_frame(struct out *o, uintptr_t addr) {
  const char *path;
  uintptr_t off;
  if (stack_frame_file(addr, &path, &off)) {
    out_str(o, path);
    out_str(o, "+");
    out_hex(o, off);
  } else {
    out_hex(o, addr);
  }
}
