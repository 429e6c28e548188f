/* SPDX-License-Identifier: MIT */
/* `tidemalloc flame` (tools/flame.c): collapsed stacks to an SVG flame graph. */
#ifndef TIDE_TOOLS_FLAME_H
#define TIDE_TOOLS_FLAME_H

#include <stdio.h>

/* argv[0] is "flame"; returns the exit status. */
int flame_main(int argc, char **argv, const char *prog);
/* Its lines for the command's usage text. */
void flame_usage(FILE *f, const char *prog);

#endif
