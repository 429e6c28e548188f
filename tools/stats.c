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

static int blank(char c) { return c == ' ' || c == '\t'; }

/* The last value of key in the comma-separated settings conf, into out,
 * with spaces around the name and the value taken off as the library
 * does. */
static int conf_value(const char *conf, const char *key, char *out, size_t cap) {
  int found = 0;
  size_t klen = strlen(key);
  for (const char *s = conf; *s;) {
    while (blank(*s) || *s == ',')
      s++;
    const char *end = strchr(s, ',');
    if (!end)
      end = s + strlen(s);
    const char *eq = memchr(s, '=', (size_t)(end - s));
    if (eq) {
      const char *kend = eq;
      while (kend > s && blank(kend[-1]))
        kend--;
      const char *v = eq + 1, *vend = end;
      while (v < vend && blank(*v))
        v++;
      while (vend > v && blank(vend[-1]))
        vend--;
      if ((size_t)(kend - s) == klen && strncmp(s, key, klen) == 0 && (size_t)(vend - v) < cap) {
        memcpy(out, v, (size_t)(vend - v));
        out[vend - v] = '\0';
        found = 1;
      }
    }
    s = end;
  }
  return found;
}

/* Does process pid catch signal sig (its SigCgt mask in /proc/PID/status)?
 * A process that does not -- tidemalloc not loaded, the setting refused,
 * a setuid program, which reads no settings -- would be killed by it. */
static int catches(long pid, int sig) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  int yes = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "SigCgt:", 7) == 0) {
      unsigned long long mask = strtoull(line + 7, NULL, 16);
      yes = sig >= 1 && sig <= 64 && (mask >> (sig - 1) & 1);
    }
  fclose(f);
  return yes;
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
  char *sig_end;
  long signo = strtol(sig, &sig_end, 10);
  if (*sig_end || signo < 1 || signo > 64 || !catches(pid, (int)signo)) {
    fprintf(stderr,
            "%s: stats: process %ld does not catch signal %s (tidemalloc not in it, or the setting refused):\n"
            "  not sending it, it would end the process\n",
            tool_prog, pid, sig);
    return 1;
  }
  conf_value(conf, "stats_file", file, sizeof file);
  expand_pid(file, pid, path, sizeof path);
  struct stat before;
  int existed = stat(path, &before) == 0;
  if (kill((pid_t)pid, (int)signo) != 0) {
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
