/* SPDX-License-Identifier: MIT */
/*
 * tidemalloc view: a heap dump (docs/json.md, schema 1) drawn to scale as
 * SVG, or as an HTML page holding that SVG with hover text.  See the top
 * of tools/view.c for the picture's layout and the colours.
 */
#ifndef TIDE_TOOLS_VIEW_H
#define TIDE_TOOLS_VIEW_H

enum view_format { VIEW_AUTO, VIEW_SVG, VIEW_HTML };

/* `tidemalloc view [options] dump.json`: argv[0] is "view".  Returns the
 * exit status (0; 1 when the dump cannot be read or drawn; 2 bad usage). */
int view_main(int argc, char **argv);

/* Draws the dump in json_path ("-": stdin) to out_path ("-" or NULL:
 * stdout); VIEW_AUTO takes the format from out_path's name (.html, .htm:
 * HTML; else SVG).  layout_path, if not NULL, receives where each box was
 * drawn.  Returns 0, or 1 with a message on stderr. */
int view_file(const char *json_path, const char *out_path, enum view_format format, const char *layout_path);

/* `tidemalloc run --view out -- cmd...`, after LD_PRELOAD is set: runs cmd
 * with stats_file pointing into a private temporary directory, waits for
 * it, and draws the dump its own process wrote at exit to out.  Returns
 * the command's exit status (128 + N when signal N ended it), or 1 when
 * it succeeded but no picture could be made. */
int view_run(char **cmd, const char *out_path);

#endif
