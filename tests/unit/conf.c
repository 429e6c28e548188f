/* SPDX-License-Identifier: MIT */
/*
 * Settings (issue 15, "Settings"): the sources and their order (defaults,
 * GLIBC_TUNABLES, MALLOC_*_, the old TIDEMALLOC_* variables,
 * TIDEMALLOC_CONF, mallopt), what tide_config_print() says about each,
 * the one-line warning for every kind of bad value, verbose=1, and
 * AT_SECURE (a setuid copy of this binary ignores the environment).
 *
 * The binary re-executes itself with an environment; the child writes its
 * warnings, a marker line and then tide_config_print() to stderr, and the
 * parent reads them.  Built twice: against the debug archive (tide_*
 * beside glibc's malloc) and as conf-std against the drop-in archive,
 * where malloc is tidemalloc's own -- a parser that allocated would call
 * back into the start-up it is part of, and hang (the time limit catches
 * that).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "flavour.h"
#include "harness.h"
#include "tidemalloc.h"

#define MARKER "--- config ---\n"

static const char *self;

/* ---- child: show what start-up made of the environment ---- */

static int child_print(bool use_mallopt) {
  void *p = F(malloc)(100); /* start-up has run in any case */
  F(free)(p);
  if (use_mallopt)
    tide_mallopt(TIDE_M_PURGE_DECAY_MS, 1234);
  if (write(2, MARKER, sizeof MARKER - 1) < 0)
    return 3;
  tide_config_print(2);
  return 0;
}

/* ---- parent ---- */

struct run {
  const char *const *env;
  const char *mode;
  const char *exe;
};

static void exec_child(void *arg) {
  const struct run *r = arg;
  char *argv[] = {(char *)r->exe, (char *)r->mode, NULL};
  execve(r->exe, argv, (char *const *)r->env);
  _exit(99);
}

struct result {
  struct th_child c;
  const char *config;  /* after the marker, or NULL */
  size_t warnings;     /* lines of the form "tidemalloc: warning: " before it */
  char first_warning[300];
};

static void run_child(struct result *r, const char *mode, const char *const *env, const char *exe) {
  struct run how = {env, mode, exe ? exe : self};
  th_run_child(&r->c, exec_child, &how, 20);
  char *m = strstr(r->c.err, MARKER);
  r->config = m ? m + sizeof MARKER - 1 : NULL;
  if (m)
    *m = '\0';
  r->warnings = 0;
  r->first_warning[0] = '\0';
  for (char *line = r->c.err; *line;) {
    char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    if (strncmp(line, "tidemalloc: warning: ", 21) == 0) {
      if (r->warnings++ == 0) {
        size_t n = len < sizeof r->first_warning - 1 ? len : sizeof r->first_warning - 1;
        memcpy(r->first_warning, line, n);
        r->first_warning[n] = '\0';
      }
    }
    line += len + (nl ? 1 : 0);
  }
}

/* The value and source tide_config_print() gave for a setting ("" when
 * missing); the source is its first word ("default" for "default
 * (dynamic)"). */
static void setting_of(const struct result *r, const char *name, char *value, char *from, char *def) {
  value[0] = from[0] = def[0] = '\0';
  if (!r->config)
    return;
  size_t n = strlen(name);
  for (const char *line = r->config; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    if (strncmp(line, name, n) == 0 && line[n] == ' ') {
      char nm[64];
      if (sscanf(line, "%63s %63s %63s", nm, value, from) != 3)
        value[0] = from[0] = '\0';
      /* the default is the first field after the source (which may be
       * "default (dynamic)") */
      const char *p = strstr(line, from) + strlen(from);
      if (strncmp(p, " (dynamic)", 10) == 0)
        p += 10;
      if (sscanf(p, "%63s", def) != 1)
        def[0] = '\0';
      return;
    }
  }
}

static void expect_setting(const char *what, const char *const *env, const char *name, const char *want_value,
                           const char *want_from) {
  struct result r;
  run_child(&r, "print", env, NULL);
  char value[64], from[64], def[64];
  setting_of(&r, name, value, from, def);
  CHECK(th_child_exited0(&r.c) && r.warnings == 0 && strcmp(value, want_value) == 0 && strcmp(from, want_from) == 0,
        "%s: %s = %s from %s (got %s from %s, %zu warnings, %s)", what, name, want_value, want_from, value, from,
        r.warnings, th_status_str(r.c.status));
}

/* A bad value: exactly one warning line, word for word, the program runs
 * on, and the setting keeps its value and source. */
static void expect_warning(const char *const *env, const char *want_line, const char *name, const char *value,
                           const char *from) {
  struct result r;
  run_child(&r, "print", env, NULL);
  char v[64], f[64], d[64];
  setting_of(&r, name, v, f, d);
  CHECK(th_child_exited0(&r.c) && r.warnings == 1 && strcmp(r.first_warning, want_line) == 0,
        "%s -> exactly \"%s\" (got %zu warnings, first \"%s\"; %s)", env[0], want_line, r.warnings,
        r.first_warning, th_status_str(r.c.status));
  CHECK(strcmp(v, value) == 0 && strcmp(f, from) == 0, "%s: %s stays %s from %s (got %s from %s)", env[0], name,
        value, from, v, f);
}

static void test_defaults(void) {
  static const char *const env[] = {NULL};
  struct result r;
  run_child(&r, "print", env, NULL);
  CHECK(th_child_exited0(&r.c) && r.config && r.warnings == 0, "no environment: config printed, no warning (%s)",
        th_status_str(r.c.status));
  if (!r.config)
    return;
  size_t lines = 0, bad = 0;
  for (const char *line = r.config; *line;) {
    const char *nl = strchr(line, '\n');
    if (line[0] != '#') {
      char name[64], value[64], from[64], def[64];
      lines++;
      if (sscanf(line, "%63s", name) == 1) {
        setting_of(&r, name, value, from, def);
        if (strcmp(from, "default") != 0 || strcmp(value, def) != 0) {
          NOTE("%s: %s from %s, default %s", name, value, from, def);
          bad++;
        }
      }
    }
    if (!nl)
      break;
    line = nl + 1;
  }
  CHECK(lines >= 18 && bad == 0, "every one of the %zu settings is at its default, from \"default\" (%zu are not)",
        lines, bad);
  CHECK(strstr(r.config, "# names kept for later versions") == NULL, "no names are reserved any more");
  char value[64], from[64], def[64];
  setting_of(&r, "stats_file", value, from, def);
  CHECK(strcmp(value, "-") == 0 && strcmp(def, "-") == 0, "stats_file is a setting, unset by default (%s, %s)", value,
        def);
  setting_of(&r, "signal", value, from, def);
  CHECK(strcmp(value, "0") == 0, "signal is a setting, 0 by default (%s)", value);
}

static void test_sources(void) {
  /* each source on its own */
  expect_setting("GLIBC_TUNABLES", (const char *const[]){"GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4096", NULL},
                 "mmap_threshold", "4096", "GLIBC_TUNABLES");
  expect_setting("MALLOC_MMAP_THRESHOLD_", (const char *const[]){"MALLOC_MMAP_THRESHOLD_=8192", NULL},
                 "mmap_threshold", "8192", "MALLOC_MMAP_THRESHOLD_");
  expect_setting("TIDEMALLOC_CONF", (const char *const[]){"TIDEMALLOC_CONF=mmap_threshold=16384", NULL},
                 "mmap_threshold", "16384", "TIDEMALLOC_CONF");
  expect_setting("an old variable", (const char *const[]){"TIDEMALLOC_DECAY_MS=300", NULL}, "decay_ms", "300",
                 "TIDEMALLOC_DECAY_MS");
  expect_setting("TIDEMALLOC_STATS alias", (const char *const[]){"TIDEMALLOC_STATS=1", NULL}, "stats", "1",
                 "TIDEMALLOC_STATS");
  /* later wins */
  expect_setting("tunable < MALLOC_*_",
                 (const char *const[]){"MALLOC_MMAP_THRESHOLD_=8192", "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4096",
                                       NULL},
                 "mmap_threshold", "8192", "MALLOC_MMAP_THRESHOLD_");
  expect_setting("MALLOC_*_ < TIDEMALLOC_CONF",
                 (const char *const[]){"TIDEMALLOC_CONF=arena_max=3", "MALLOC_ARENA_MAX=5",
                                       "GLIBC_TUNABLES=glibc.malloc.arena_max=7", NULL},
                 "arena_max", "3", "TIDEMALLOC_CONF");
  expect_setting("TIDEMALLOC_* < TIDEMALLOC_CONF",
                 (const char *const[]){"TIDEMALLOC_DECAY_MS=300", "TIDEMALLOC_CONF=decay_ms=400", NULL}, "decay_ms",
                 "400", "TIDEMALLOC_CONF");
  expect_setting("the last of one key in TIDEMALLOC_CONF",
                 (const char *const[]){"TIDEMALLOC_CONF=decay_ms=1,decay_ms=2, decay_ms = 3 ", NULL}, "decay_ms", "3",
                 "TIDEMALLOC_CONF");
  /* spellings only TIDEMALLOC_CONF takes */
  expect_setting("size suffix", (const char *const[]){"TIDEMALLOC_CONF=mmap_threshold=1m", NULL}, "mmap_threshold",
                 "1048576", "TIDEMALLOC_CONF");
  expect_setting("hex", (const char *const[]){"TIDEMALLOC_CONF=top_pad=0x10000", NULL}, "top_pad", "65536",
                 "TIDEMALLOC_CONF");
  expect_setting("a word for a yes/no", (const char *const[]){"TIDEMALLOC_CONF=purge_lazy=on", NULL},
                 "purge_lazy", "1", "TIDEMALLOC_CONF");
  expect_setting("a yes/no named alone", (const char *const[]){"TIDEMALLOC_CONF=purge_lazy", NULL}, "purge_lazy",
                 "1", "TIDEMALLOC_CONF");
  expect_setting("never", (const char *const[]){"TIDEMALLOC_CONF=decay_ms=-1", NULL}, "decay_ms", "-1",
                 "TIDEMALLOC_CONF");
  expect_setting("glibc's hugetlb", (const char *const[]){"TIDEMALLOC_CONF=hugetlb=1", NULL}, "hugetlb", "1",
                 "TIDEMALLOC_CONF");
  /* mallopt comes last, at run time */
  struct result r;
  run_child(&r, "mallopt", (const char *const[]){"TIDEMALLOC_CONF=decay_ms=400", NULL}, NULL);
  char value[64], from[64], def[64];
  setting_of(&r, "decay_ms", value, from, def);
  CHECK(strcmp(value, "1234") == 0 && strcmp(from, "mallopt") == 0, "mallopt after TIDEMALLOC_CONF: %s from %s",
        value, from);
  /* the setting does what it says (not just what the print says) */
  run_child(&r, "threshold", (const char *const[]){"TIDEMALLOC_CONF=mmap_threshold=1m", NULL}, NULL);
  CHECK(th_child_exited0(&r.c) && strstr(r.c.err, "result: heap"), "mmap_threshold=1m: a 500 KB block is not "
                                                                    "mmapped (%s)", th_first_line(&r.c));
  run_child(&r, "threshold", (const char *const[]){"TIDEMALLOC_CONF=mmap_threshold=4096", NULL}, NULL);
  CHECK(th_child_exited0(&r.c) && strstr(r.c.err, "result: mmapped"), "mmap_threshold=4096: it is (%s)",
        th_first_line(&r.c));
}

static void test_warnings(void) {
  expect_warning((const char *const[]){"MALLOC_ARENA_MAX=abc", NULL},
                 "tidemalloc: warning: MALLOC_ARENA_MAX: not a number; using auto", "arena_max", "auto", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_DECAY_MS=xyz", NULL},
                 "tidemalloc: warning: TIDEMALLOC_DECAY_MS: not a number; using 200", "decay_ms", "200", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=decay_msx=5", NULL},
                 "tidemalloc: warning: decay_msx: unknown setting in TIDEMALLOC_CONF; using nothing", "decay_ms", "200",
                 "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=mxfast=161", NULL},
                 "tidemalloc: warning: mxfast: out of range 0..160; using 128", "mxfast", "128", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=decay_ms=-2", NULL},
                 "tidemalloc: warning: decay_ms: out of range -1..2147483647; using 200", "decay_ms", "200", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=decay_ms=99999999999999999999999", NULL},
                 "tidemalloc: warning: decay_ms: out of range -1..2147483647; using 200", "decay_ms", "200", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=decay_ms=12abc", NULL},
                 "tidemalloc: warning: decay_ms: not a number; using 200", "decay_ms", "200", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=decay_ms=", NULL},
                 "tidemalloc: warning: decay_ms: not a number; using 200", "decay_ms", "200", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=decay_ms", NULL},
                 "tidemalloc: warning: decay_ms: no value (write name=value); using 200", "decay_ms", "200", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=mmap_threshold=-1", NULL},
                 "tidemalloc: warning: mmap_threshold: out of range 0..33554432; using 131072", "mmap_threshold",
                 "131072", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=stats=maybe", NULL},
                 "tidemalloc: warning: stats: not 0 or 1; using 0", "stats", "0", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_PURGE_THREAD=3", NULL},
                 "tidemalloc: warning: TIDEMALLOC_PURGE_THREAD: out of range 0..2; using 1", "background_thread", "1",
                 "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=debug=7", NULL},
                 "tidemalloc: warning: debug: out of range 0..2; using 0", "debug", "0", "default");
  expect_warning((const char *const[]){"TIDEMALLOC_CONF=prof_rate=0", NULL},
                 "tidemalloc: warning: prof_rate: out of range 1..1099511627776; using 524288", "prof_rate", "524288",
                 "default");
  expect_setting("prof_file", (const char *const[]){"TIDEMALLOC_CONF=prof_file=/tmp/p.%p", NULL}, "prof_file",
                 "/tmp/p.%p", "TIDEMALLOC_CONF");
  expect_warning((const char *const[]){"GLIBC_TUNABLES=glibc.malloc.arena_max=0", NULL},
                 "tidemalloc: warning: glibc.malloc.arena_max: out of range 1..2147483647; using auto", "arena_max",
                 "auto", "default");
  expect_warning((const char *const[]){"GLIBC_TUNABLES=glibc.cpu.x86_foo=1:glibc.malloc.nosuch=1", NULL},
                 "tidemalloc: warning: glibc.malloc.nosuch: unknown setting; using nothing", "mxfast", "128",
                 "default");
  expect_warning((const char *const[]){"MALLOC_PERTURB_=256", NULL},
                 "tidemalloc: warning: MALLOC_PERTURB_: out of range 0..255; using 0", "perturb", "0", "default");
  /* a bad item does not spoil the good ones around it */
  struct result r;
  run_child(&r, "print", (const char *const[]){"TIDEMALLOC_CONF=decay_ms=50,,bogus,arena_max=x,stats=1", NULL}, NULL);
  char v1[64], f1[64], d[64], v2[64], f2[64], v3[64], f3[64];
  setting_of(&r, "decay_ms", v1, f1, d);
  setting_of(&r, "stats", v2, f2, d);
  setting_of(&r, "arena_max", v3, f3, d);
  CHECK(th_child_exited0(&r.c) && r.warnings == 2 && strcmp(v1, "50") == 0 && strcmp(v2, "1") == 0 &&
            strcmp(v3, "auto") == 0,
        "decay_ms=50,,bogus,arena_max=x,stats=1: two warnings, decay_ms %s, stats %s, arena_max %s", v1, v2, v3);
}

static void test_verbose(void) {
  struct result r;
  run_child(&r, "quiet", (const char *const[]){"TIDEMALLOC_CONF=verbose=1,decay_ms=70", NULL}, NULL);
  CHECK(th_child_exited0(&r.c) && strstr(r.c.err, "# tidemalloc " TIDEMALLOC_VERSION " settings") &&
            strstr(r.c.err, "\ndecay_ms              70         TIDEMALLOC_CONF"),
        "verbose=1 prints the settings at start-up (\"%s\")", th_first_line(&r.c));
  run_child(&r, "quiet", (const char *const[]){"TIDEMALLOC_CONF=decay_ms=70", NULL}, NULL);
  CHECK(th_child_exited0(&r.c) && r.c.errlen == 0, "without it, nothing (%zu bytes on stderr)", r.c.errlen);
}

/* A setuid copy of this binary (owner nobody) runs with AT_SECURE set:
 * the environment must change nothing. */
static void test_secure(void) {
  if (geteuid() != 0) {
    NOTE("not root: cannot make a setuid copy; AT_SECURE not tested here");
    return;
  }
  char dir[] = "/tmp/tide-conf.XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0, "mkdtemp");
    return;
  }
  char copy[128];
  snprintf(copy, sizeof copy, "%s/conf-setuid", dir);
  int in = open(self, O_RDONLY), out = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0755);
  char buf[65536];
  ssize_t n;
  bool ok = in >= 0 && out >= 0;
  while (ok && (n = read(in, buf, sizeof buf)) > 0)
    ok = write(out, buf, (size_t)n) == n;
  if (in >= 0)
    close(in);
  if (out >= 0)
    close(out);
  chmod(dir, 0755);
  ok = ok && chown(copy, 65534, 65534) == 0 && chmod(copy, 04755) == 0;
  CHECK(ok, "a setuid-nobody copy of this test at %s", copy);
  if (ok) {
    struct result r;
    static const char *const env[] = {"TIDEMALLOC_CONF=decay_ms=50,verbose=1", "MALLOC_ARENA_MAX=abc",
                                      "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4096", NULL};
    run_child(&r, "print", env, copy);
    char v[64], f[64], d[64], v2[64], f2[64];
    setting_of(&r, "decay_ms", v, f, d);
    setting_of(&r, "mmap_threshold", v2, f2, d);
    CHECK(th_child_exited0(&r.c) && r.config && strstr(r.config, "AT_SECURE") && r.warnings == 0 &&
              strcmp(v, "200") == 0 && strcmp(f, "default") == 0 && strcmp(v2, "131072") == 0,
          "setuid: the environment is ignored (decay_ms %s from %s, mmap_threshold %s, %zu warnings; %s)", v, f, v2,
          r.warnings, th_status_str(r.c.status));
    /* and an ordinary run of the same copy's bytes does read it */
    run_child(&r, "print", env, NULL);
    setting_of(&r, "decay_ms", v, f, d);
    CHECK(strcmp(v, "50") == 0 && r.config && !strstr(r.config, "AT_SECURE"),
          "the same environment without setuid: decay_ms %s", v);
  }
  unlink(copy);
  rmdir(dir);
}

int main(int argc, char **argv) {
  self = argv[0];
  if (argc > 1) {
    if (strcmp(argv[1], "print") == 0)
      return child_print(false);
    if (strcmp(argv[1], "mallopt") == 0)
      return child_print(true);
    if (strcmp(argv[1], "quiet") == 0) {
      F(free)(F(malloc)(10));
      return 0;
    }
    if (strcmp(argv[1], "threshold") == 0) {
      void *p = F(malloc)(500000);
      int mm = p && (((size_t *)p)[-1] & 2);
      fprintf(stderr, "result: %s\n", mm ? "mmapped" : "heap");
      F(free)(p);
      return 0;
    }
    return 2;
  }
  printf("# unit/conf (%s)\n", FLAVOUR);
  test_defaults();
  test_sources();
  test_warnings();
  test_verbose();
  test_secure();
  TEST_MAIN_END("unit/conf");
}
