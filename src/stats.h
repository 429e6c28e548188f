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
/* The heap dump to opt.stats_file (%p: the pid); false if not written
 * (another thread was writing one, or it failed). */
bool stats_write_file(void);
void stats_postfork_child(void);
/* stats_signal: the handler, installed at start-up; a request it left is
 * served (the dump written) by stats_serve_request, called where no lock
 * of ours is held: the background thread, the slow path of malloc. */
extern TIDE_HIDDEN int stats_dump_pending;
void stats_signal_install(void);
void stats_serve_request(void);
static inline void stats_serve_pending(void) {
  if (unlikely(__atomic_load_n(&stats_dump_pending, __ATOMIC_RELAXED)))
    stats_serve_request();
}
/* tide_stats_json (heap false) and tide_heap_dump_json (heap true). */
bool stats_write_json(int fd, bool heap);
/* The heap dump's part of one arena (a locked), src/inspect.c: its fast
 * bins, remote stacks and regions with their chunks, as members of the
 * JSON object being written.  A list stops at INSPECT_JSON_MAX entries. */
#ifndef INSPECT_JSON_MAX
#define INSPECT_JSON_MAX 4096
#endif
struct out;
void inspect_arena_json(struct out *o, struct arena *a);
/* The heap just grew: sample the process-wide bytes in use for the peak
 * (in use only grows past its old peak by taking memory from the OS, so
 * sampling there finds the peak; reads other arenas' counters unlocked). */
void stats_note_growth(void);

#endif
