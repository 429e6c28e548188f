/* SPDX-License-Identifier: MIT */
/*
 * The library's version, from include/tidemalloc.h (the one place it is
 * written).  The string below also lets `strings libtidemalloc.so` and a
 * core dump tell which tidemalloc a process ran.
 */
#include "internal.h"

__attribute__((used)) static const char version_ident[] = "tidemalloc " TIDEMALLOC_VERSION;

TIDE_EXPORT const char *tide_version(void) { return version_ident + sizeof "tidemalloc " - 1; }
