/* SPDX-License-Identifier: MIT */
/* Statistics (src/stats.c) and the heap inspector (src/inspect.c). */
#ifndef TIDE_STATS_H
#define TIDE_STATS_H

#include "internal.h"

struct tide_mallinfo2 stats_mallinfo2(void);
void stats_print(void);                  /* malloc_stats */
int stats_info_xml(int options, FILE *fp); /* malloc_info */
void stats_get(struct tide_stats *out);
void stats_dump(int fd); /* tide_heap_dump, src/inspect.c */
/* The heap just grew: sample the process-wide bytes in use for the peak
 * (in use only grows past its old peak by taking memory from the OS, so
 * sampling there finds the peak; reads other arenas' counters unlocked). */
void stats_note_growth(void);

#endif
