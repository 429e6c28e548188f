/* SPDX-License-Identifier: MIT */
/*
 * One test source, two builds: the tide_* names on the debug library, or
 * (-DTIDE_TEST_STD=1) the standard names on the drop-in, where stdio and
 * pthread allocate through tidemalloc too.  F(malloc) is the function
 * under test; FLAVOUR names the build in the output.
 */
#ifndef TIDE_TEST_FLAVOUR_H
#define TIDE_TEST_FLAVOUR_H

#ifdef TIDE_TEST_STD
#include <malloc.h>
#define F(name) name
#define FLAVOUR "std"
#else
#define F(name) tide_##name
#define FLAVOUR "debug"
#endif

#ifndef MiB
#define MiB ((size_t)1 << 20)
#endif

#endif
