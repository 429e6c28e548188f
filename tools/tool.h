/* SPDX-License-Identifier: MIT */
/* The tidemalloc command's subcommands in files of their own. */
#ifndef TIDE_TOOL_H
#define TIDE_TOOL_H

extern const char *tool_prog; /* "tidemalloc", for messages */

int cmd_stats(int argc, char **argv); /* tools/stats.c */

#endif
