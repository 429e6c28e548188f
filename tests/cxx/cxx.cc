/* SPDX-License-Identifier: MIT */
/*
 * C++ on tidemalloc (issue 14): operator new and delete in every form come
 * from tidemalloc, with C++'s rules (new_handler loop, std::bad_alloc,
 * nothrow NULL, sized delete checked), and real C++ -- containers,
 * strings, exceptions, threads, over-aligned types -- runs on it.
 *
 * One source, four builds (tests/tests.mk):
 *   cxx-preload     nothing linked; run under LD_PRELOAD=libtidemalloc.so
 *   cxx-linked      -ltidemalloc (the shared library, found by rpath)
 *   cxx-static      libtidemalloc.a linked into a dynamic executable
 *   cxx-fullstatic  -static: libtidemalloc.a, libstdc++.a and libc.a
 */
#include <dlfcn.h>
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "harness.h"
#include "tidemalloc.h"

#ifndef TIDE_CXX_FLAVOUR
#define TIDE_CXX_FLAVOUR "?"
#endif

/* Keeps the compiler from eliding a new/delete pair. */
static void *volatile sink;

static void (*stats_get)(struct tide_stats *);
static size_t (*usable_size)(void *);

/* ---- which operator new runs ---- */

static void test_which(void) {
#ifdef TIDE_CXX_PRELOAD
  stats_get = (void (*)(struct tide_stats *))dlsym(RTLD_DEFAULT, "tide_stats_get");
  usable_size = (size_t(*)(void *))dlsym(RTLD_DEFAULT, "tide_malloc_usable_size");
#else
  stats_get = tide_stats_get;
  usable_size = tide_malloc_usable_size;
#endif
  CHECK(stats_get && usable_size, "tidemalloc's own functions are there");
  if (!stats_get || !usable_size)
    return;
#ifndef TIDE_CXX_FULLSTATIC
  /* Where the dynamic linker finds operator new: the library, or (linked
   * from the archive) the executable itself. */
  void *f = dlsym(RTLD_DEFAULT, "_Znwm"), *g = dlsym(RTLD_DEFAULT, "_ZdlPvm");
  void *a = dlsym(RTLD_DEFAULT, "_ZnwmSt11align_val_t");
  Dl_info fi, mi;
  bool ok = f && g && a && dladdr(f, &fi) && dladdr((void *)&test_which, &mi);
#ifdef TIDE_CXX_STATIC
  const bool want_exe = true;
#else
  const bool want_exe = false;
#endif
  bool in_tm = ok && (want_exe ? fi.dli_fbase == mi.dli_fbase : strstr(fi.dli_fname, "libtidemalloc") != NULL);
  Dl_info gi, ai;
  in_tm = in_tm && dladdr(g, &gi) && gi.dli_fbase == fi.dli_fbase && dladdr(a, &ai) && ai.dli_fbase == fi.dli_fbase;
  CHECK(in_tm, "operator new, sized delete and aligned new resolve to %s (%s)",
        want_exe ? "this executable" : "libtidemalloc", ok ? fi.dli_fname : "not found");
#endif
  /* And they do allocate from tidemalloc: its counter moves. */
  struct tide_stats before, after;
  stats_get(&before);
  std::vector<int *> v;
  for (int i = 0; i < 1000; i++)
    v.push_back(new int(i));
  stats_get(&after);
  CHECK(after.malloc_calls - before.malloc_calls >= 1000, "1000 x new int: tidemalloc counted %zu mallocs",
        after.malloc_calls - before.malloc_calls);
  int sum = 0;
  for (int *p : v) {
    sum += *p;
    delete p;
  }
  CHECK(sum == 999 * 1000 / 2, "and the ints are intact");
  char *s = new char[100];
  CHECK(usable_size(s) >= 100, "new char[100]: tidemalloc knows the block (%zu usable)", usable_size(s));
  delete[] s;
}

/* ---- containers and strings ---- */

static void test_containers(void) {
  std::vector<long> v;
  for (long i = 0; i < 1000000; i++)
    v.push_back(i * 7 % 1000003);
  std::sort(v.begin(), v.end());
  CHECK(std::is_sorted(v.begin(), v.end()) && v.size() == 1000000, "vector: 10^6 push_backs, sorted");
  std::map<int, std::string> m;
  for (int i = 0; i < 100000; i++)
    m[i] = std::to_string(i) + std::string(i % 50, 'x');
  bool map_ok = m.size() == 100000;
  for (int i = 0; i < 100000; i += 997)
    map_ok = map_ok && m[i] == std::to_string(i) + std::string(i % 50, 'x');
  CHECK(map_ok, "map<int, string>: 10^5 entries read back");
  std::unordered_map<std::string, std::vector<int>> u;
  for (int i = 0; i < 50000; i++)
    u["key" + std::to_string(i % 5000)].push_back(i);
  size_t total = 0;
  for (auto &e : u)
    total += e.second.size();
  CHECK(u.size() == 5000 && total == 50000, "unordered_map<string, vector<int>>");
  std::list<std::string> l;
  std::deque<std::unique_ptr<int>> d;
  for (int i = 0; i < 20000; i++) {
    l.push_front(std::string(i % 300, 'a' + i % 26));
    d.push_back(std::make_unique<int>(i));
    if (i % 3 == 0)
      d.pop_front();
  }
  CHECK(l.size() == 20000 && d.size() == 20000 - 6667, "list<string> and deque<unique_ptr<int>>");
  std::string big;
  for (int i = 0; i < 100000; i++)
    big += "tidemalloc ";
  CHECK(big.size() == 1100000 && big.substr(big.size() - 11) == "tidemalloc ", "a 1.1 MB string grown by +=");
  auto sp = std::make_shared<std::vector<double>>(100000, 1.5);
  std::weak_ptr<std::vector<double>> wp = sp;
  double acc = std::accumulate(sp->begin(), sp->end(), 0.0);
  sp.reset();
  CHECK(acc == 150000.0 && wp.expired(), "make_shared / weak_ptr");
}

/* ---- exceptions ---- */

static int handler_calls;
static void counting_handler() {
  if (++handler_calls == 3)
    std::set_new_handler(nullptr); /* give up: the next failure throws */
}
struct from_handler {};
static void throwing_handler() { throw from_handler(); }

/* A size no machine can give: new must fail (an address space limit
 * makes sure of it even with generous overcommit). */
static const size_t huge = (size_t)1 << 46;

static void test_exceptions(void) {
  bool caught = false;
  try {
    sink = new char[huge];
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  CHECK(caught, "new char[2^46] throws std::bad_alloc");
  caught = false;
  try {
    sink = ::operator new(huge);
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  CHECK(caught, "operator new(2^46) throws std::bad_alloc");
  caught = false;
  try {
    sink = ::operator new(huge, std::align_val_t(64));
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  CHECK(caught, "aligned operator new(2^46, 64) throws std::bad_alloc");
  sink = new (std::nothrow) char[huge]; /* (through sink: clang elides an unused new-expression) */
  CHECK(sink == nullptr, "new (nothrow) char[2^46] is nullptr");
  CHECK(::operator new(huge, std::align_val_t(4096), std::nothrow) == nullptr,
        "aligned nothrow operator new(2^46, 4096) is nullptr");

  /* The handler runs until it removes itself, then bad_alloc. */
  handler_calls = 0;
  std::set_new_handler(counting_handler);
  caught = false;
  try {
    sink = new char[huge];
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  CHECK(caught && handler_calls == 3, "new_handler called %d times (3), then std::bad_alloc", handler_calls);
  handler_calls = 0;
  std::set_new_handler(counting_handler);
  void *p = ::operator new(huge, std::nothrow);
  CHECK(p == nullptr && handler_calls == 3, "nothrow new: the handler %d times (3), then nullptr", handler_calls);
  /* A handler's own exception passes through tidemalloc's C frames. */
  std::set_new_handler(throwing_handler);
  caught = false;
  try {
    sink = new char[huge];
  } catch (const from_handler &) {
    caught = true;
  }
  std::set_new_handler(nullptr);
  CHECK(caught, "an exception thrown by the new_handler reaches the caller");

  /* Ordinary exceptions (their objects are malloc'd too), many of them. */
  int thrown = 0;
  for (int i = 0; i < 10000; i++) {
    try {
      if (i % 2)
        throw std::runtime_error(std::string(i % 200, 'e'));
      throw std::vector<int>(i % 100, i);
    } catch (const std::runtime_error &e) {
      thrown += e.what()[0] == 'e' || i % 200 == 0;
    } catch (const std::vector<int> &v) {
      thrown += v.size() == (size_t)(i % 100);
    }
  }
  CHECK(thrown == 10000, "10000 exceptions thrown and caught (%d)", thrown);
}

/* ---- threads ---- */

static void test_threads(void) {
  std::mutex lock;
  std::vector<std::unique_ptr<std::string>> shared_box;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++)
    threads.emplace_back([t, &lock, &shared_box, &bad] {
      std::map<int, std::vector<char>> mine;
      for (int i = 0; i < 20000; i++) {
        mine[i % 1000].assign((size_t)(i % 700), (char)t);
        auto s = std::make_unique<std::string>(std::to_string(t) + ":" + std::to_string(i));
        std::unique_ptr<std::string> other;
        {
          std::lock_guard<std::mutex> g(lock);
          shared_box.push_back(std::move(s));
          if (shared_box.size() > 50) {
            other = std::move(shared_box.front()); /* probably another thread's */
            shared_box.erase(shared_box.begin());
          }
        }
        if (other && other->find(':') == std::string::npos)
          bad++;
        /* `other` is deleted here: often a block of another thread */
      }
      for (auto &e : mine)
        for (char c : e.second)
          if (c != (char)t)
            bad++;
    });
  for (auto &th : threads)
    th.join();
  CHECK(bad == 0 && shared_box.size() == 50, "4 threads: maps, strings handed between threads and deleted there");
}

/* ---- over-aligned types ---- */

struct alignas(64) Line {
  char bytes[64];
};
struct alignas(4096) Page {
  char bytes[100];
};

static bool aligned_to(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void test_aligned(void) {
  bool ok = true;
  std::vector<Line *> lines;
  std::vector<Page *> pages;
  for (int i = 0; i < 1000; i++) {
    lines.push_back(new Line());
    ok = ok && aligned_to(lines.back(), 64);
    if (i % 10 == 0) {
      pages.push_back(new Page());
      ok = ok && aligned_to(pages.back(), 4096);
    }
  }
  for (Line *l : lines)
    delete l; /* sized and aligned delete */
  for (Page *p : pages)
    delete p;
  CHECK(ok, "new alignas(64) and alignas(4096) objects are aligned");
  Line *arr = new Line[33];
  Page *parr = new Page[5];
  CHECK(aligned_to(arr, 64) && aligned_to(parr, 4096), "new Line[33] and new Page[5] are aligned");
  delete[] arr;
  delete[] parr;
  std::vector<Line> vl(1000);
  std::vector<Page> vp(20);
  CHECK(aligned_to(vl.data(), 64) && aligned_to(vp.data(), 4096), "vector<Line> and vector<Page> storage aligned");
  auto up = std::make_unique<Page>();
  CHECK(aligned_to(up.get(), 4096), "make_unique<Page>");
  void *q = ::operator new(100, std::align_val_t(256), std::nothrow);
  CHECK(q && aligned_to(q, 256), "operator new(100, align_val_t(256), nothrow)");
  ::operator delete(q, std::align_val_t(256), std::nothrow);
  q = ::operator new[](5000, std::align_val_t(1 << 16));
  CHECK(aligned_to(q, 1 << 16), "operator new[](5000, align_val_t(64 KiB))");
  ::operator delete[](q, 5000, std::align_val_t(1 << 16));
}

/* ---- sized delete: checked ---- */

static void delete_past_usable(void *) {
  void *p = ::operator new(100);
  while (((uintptr_t)p & 4095) == 16) /* (those are looked up another way) */
    p = ::operator new(100);
  ::operator delete(p, malloc_usable_size(p) + 1); /* debug mode: 101, past the 100 asked for */
}
static void delete_too_big(void *) {
  void *p = ::operator new(100);
  ::operator delete(p, 100000); /* a size the block never had */
}
static void delete_too_big_aligned(void *) {
  void *p = ::operator new(100, std::align_val_t(128));
  ::operator delete(p, 5000, std::align_val_t(128));
}
static void delete_misaligned(void *) {
  char *p = static_cast<char *>(::operator new(1000, std::align_val_t(64)));
  volatile size_t off = 16; /* (hidden from the compiler's own check) */
  ::operator delete(p + off, std::align_val_t(64));
}

static void expect_abort(void (*fn)(void *), const char *what, const char *want) {
  struct th_child c;
  th_run_child(&c, fn, nullptr, 20);
  CHECK(th_child_aborted(&c) && strstr(c.err, want), "%s aborts with \"%s\" (%s: %s)", what, want,
        th_status_str(c.status), th_first_line(&c));
}

static void test_sized_delete(void) {
  void *p = ::operator new(100);
  ::operator delete(p, 100);
  p = ::operator new(1 << 20); /* mmapped */
  ::operator delete(p, 1 << 20);
  char *a = new char[77];
  delete[] a; /* (no size for char arrays) */
  CHECK(true, "sized delete with the right size, small and mmapped blocks");
  expect_abort(delete_too_big, "operator delete(p, 100000) of a 100-byte block",
               "tidemalloc: operator delete(): size larger than the block");
  expect_abort(delete_past_usable, "operator delete(p, usable + 1) of a 100-byte block",
               "tidemalloc: operator delete(): size larger than the block");
  expect_abort(delete_too_big_aligned, "aligned sized delete with a wrong size",
               "tidemalloc: operator delete(): size larger than the block");
  expect_abort(delete_misaligned, "aligned delete of a pointer without that alignment",
               "tidemalloc: operator delete(): pointer does not have the stated alignment");
}

int main() {
  /* An address-space limit makes the huge requests fail everywhere. */
  struct rlimit r = {(rlim_t)16 << 30, (rlim_t)16 << 30};
  setrlimit(RLIMIT_AS, &r);
  printf("# cxx/%s\n", TIDE_CXX_FLAVOUR);
  test_which();
  test_containers();
  test_exceptions();
  test_threads();
  test_aligned();
  test_sized_delete();
  std::string name = std::string("cxx/") + TIDE_CXX_FLAVOUR;
  TEST_MAIN_END(name.c_str());
}
