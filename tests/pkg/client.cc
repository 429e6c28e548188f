/* SPDX-License-Identifier: MIT */
/* A C++ program built against the installed library with pkg-config:
 * operator new must come from tidemalloc (tests/pkg/install.sh). */
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include <tidemalloc.h>

int main() {
  std::map<int, std::string> m;
  struct tide_stats before, after;
  tide_stats_get(&before);
  for (int i = 0; i < 1000; i++)
    m[i] = std::string(100, 'x');
  tide_stats_get(&after);
  Dl_info where;
  void *f = dlsym(RTLD_DEFAULT, "_Znwm");
  const char *from = f && dladdr(f, &where) ? where.dli_fname : "?";
  bool ok = after.malloc_calls - before.malloc_calls >= 2000 && std::strstr(from, "libtidemalloc");
  std::printf("client++: operator new from %s, %zu mallocs: %s\n", from, after.malloc_calls - before.malloc_calls,
              ok ? "ok" : "not tidemalloc");
  return ok ? 0 : 1;
}
