/* SPDX-License-Identifier: MIT */
/*
 * `tidemalloc stats [--timeout S] PID`: asks a running process for its
 * statistics and heap dump, and prints them (JSON, docs/json.md).
 *
 * The process must run tidemalloc with a signal set
 * (TIDEMALLOC_CONF=signal=12, and stats_file=... if not the default
 * /tmp/tidemalloc.%p.json).  Both settings are read from the process's
 * environment (/proc/PID/environ: as it was when the process started).
 * The library writes the dump to "<file>.tmp" and renames it, so the file
 * is complete once it has a new inode; we wait for that.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

/* The last value of key in the comma-separated settings conf, into out. */
static int conf_value(const char *conf, const char *key, char *out, size_t cap) {
  int found = 0;
  size_t klen = strlen(key);
  for (const char *s = conf; *s;) {
    while (*s == ' ' || *s == ',')
      s++;
    const char *end = strchr(s, ',');
    if (!end)
      end = s + strlen(s);
    if ((size_t)(end - s) > klen && strncmp(s, key, klen) == 0 && s[klen] == '=') {
      size_t n = (size_t)(end - s - klen - 1);
      if (n < cap) {
        memcpy(out, s + klen + 1, n);
        out[n] = '\0';
        found = 1;
      }
    }
    s = end;
  }
  return found;
}

/* TIDEMALLOC_CONF of process pid, into buf; 0 if it has none. */
static int process_conf(long pid, char *buf, size_t cap) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/environ", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  static char env[1 << 20];
  size_t n = fread(env, 1, sizeof env - 1, f);
  fclose(f);
  env[n] = '\0';
  int found = 0;
  for (size_t i = 0; i < n; i += strlen(env + i) + 1)
    if (strncmp(env + i, "TIDEMALLOC_CONF=", 16) == 0 && strlen(env + i + 16) < cap) {
      strcpy(buf, env + i + 16);
      found = 1;
    }
  return found;
}

static void expand_pid(const char *tmpl, long pid, char *out, size_t cap) {
  size_t n = 0;
  for (const char *t = tmpl; *t && n + 24 < cap; t++) {
    if (t[0] == '%' && t[1] == 'p') {
      n += (size_t)snprintf(out + n, cap - n, "%ld", pid);
      t++;
    } else {
      out[n++] = *t;
    }
  }
  out[n] = '\0';
}

int cmd_stats(int argc, char **argv) {
  double timeout = 5;
  int i = 2;
  if (i + 1 < argc && strcmp(argv[i], "--timeout") == 0) {
    timeout = atof(argv[i + 1]);
    i += 2;
  }
  if (i + 1 != argc) {
    fprintf(stderr, "usage: %s stats [--timeout SECONDS] PID\n", tool_prog);
    return 2;
  }
  char *end;
  long pid = strtol(argv[i], &end, 10);
  if (*end || pid <= 0) {
    fprintf(stderr, "%s: stats: not a process id: %s\n", tool_prog, argv[i]);
    return 2;
  }
  char conf[8192], sig[32], file[1024] = "/tmp/tidemalloc.%p.json", path[1100];
  int have = process_conf(pid, conf, sizeof conf);
  if (have < 0) {
    fprintf(stderr, "%s: stats: no process %ld (or its environment is not readable: %s)\n", tool_prog, pid,
            strerror(errno));
    return 1;
  }
  if (!have || !conf_value(conf, "signal", sig, sizeof sig) || atoi(sig) <= 0) {
    fprintf(stderr,
            "%s: stats: process %ld was not started with a signal for its statistics;\n"
            "  start it with TIDEMALLOC_CONF=signal=12 (SIGUSR2; any signal the program does not use)\n",
            tool_prog, pid);
    return 1;
  }
  if (have)
    conf_value(conf, "stats_file", file, sizeof file);
  expand_pid(file, pid, path, sizeof path);
  struct stat before;
  int existed = stat(path, &before) == 0;
  if (kill((pid_t)pid, atoi(sig)) != 0) {
    fprintf(stderr, "%s: stats: kill %ld: %s\n", tool_prog, pid, strerror(errno));
    return 1;
  }
  struct timespec nap = {0, 20 * 1000 * 1000};
  for (double waited = 0; waited < timeout; waited += 0.02) {
    struct stat now;
    if (stat(path, &now) == 0 && (!existed || now.st_ino != before.st_ino || now.st_mtim.tv_sec != before.st_mtim.tv_sec ||
                                  now.st_mtim.tv_nsec != before.st_mtim.tv_nsec)) {
      FILE *f = fopen(path, "r");
      if (!f)
        break;
      char buf[65536];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
      fclose(f);
      return 0;
    }
    nanosleep(&nap, NULL);
  }
  fprintf(stderr, "%s: stats: process %ld wrote nothing to %s within %.1f s (is it running tidemalloc?)\n",
          tool_prog, pid, path, timeout);
  return 1;
}
