/* SPDX-License-Identifier: MIT */
/*
 * Call stacks, without allocating (src/stack.c): debug mode keeps one per
 * block (src/debug.c), heap profiling one per sample (src/prof.c).
 *
 * A stack is the return address of the call into tidemalloc, then the
 * return addresses found by following the program's frame pointers, as
 * far as they are sound: each frame must lie in the calling thread's
 * stack, above the one before it.  Code built without frame pointers
 * ends the walk early (there is no unwinder).
 *
 * Frames are printed as "file+0xoffset" (the offset from the file's
 * first mapping, as addr2line takes it; `tidemalloc symbolize` turns
 * them into function, file and line), or as a bare address when no file
 * maps it.
 */
#ifndef TIDE_STACK_H
#define TIDE_STACK_H

#include "internal.h"
#include "out.h"

/* ra, then the frames above fp (may be NULL): at most max into f; returns
 * how many.  The first call in a thread reads /proc/self/maps once to
 * find its stack's bounds (again when it runs outside them: the main
 * thread's stack grows, a signal stack is another mapping). */
uint32_t stack_capture(uintptr_t ra, const void *fp, uintptr_t *f, uint32_t max);

/* Read the mapped files of /proc/self/maps into a table of their own, for
 * the reports that print many frames (at exit, a profile dump); called
 * again, it reads them anew (a library loaded since).  Without it, each
 * frame printed reads /proc/self/maps (an error report: once, then abort). */
void stack_modules_load(void);
/* The file mapping addr and addr's offset in it; false if none does. */
bool stack_frame_file(uintptr_t addr, const char **path, uintptr_t *offset);
/* "file+0xoffset", or "0xaddress". */
void stack_out_frame(struct out *o, uintptr_t addr);

#endif
