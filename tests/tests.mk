# SPDX-License-Identifier: MIT
# Tests: built here, run by tests/run.sh.  (Owned by the tests; included
# from the Makefile.)
#
# Every tests/<dir>/<name>.c is one test binary, built in flavours named by
# a suffix (run.sh decides which flavours run, and with what arguments):
#
#   $(BUILD)/tests/<dir>/<name>        tide_* names, libtidemalloc-debug.a
#   $(BUILD)/tests/<dir>/<name>-std    -DTIDE_TEST_STD, the drop-in
#                                      libtidemalloc.a (standard names)
#   $(BUILD)/tests/<dir>/<name>-fast   tide_* names, libtidemalloc-prefixed.a
#   $(BUILD)/tests/<dir>/<name>-plain  no tidemalloc at all: a program for
#                                      run.sh to start under LD_PRELOAD
#   $(BUILD)/tests/<dir>/<name>-preload  -DTIDE_TEST_PRELOAD, no tidemalloc:
#                                      the API tests run under LD_PRELOAD
#
# Test code is compiled with -fno-builtin so the compiler cannot fold a
# malloc/free pair or an impossible malloc away.

TEST_CFLAGS := -std=gnu11 -g -O2 -Wall -Wextra -Werror -Wshadow -Wno-unused-function \
	-Wno-use-after-free -Wno-free-nonheap-object -Wno-alloc-size-larger-than -Wno-array-bounds \
	-fno-builtin -pthread -Iinclude -Itests
# clang does not know some of gcc's warnings named above.
TEST_CFLAGS += $(if $(findstring clang,$(shell $(CC) --version 2>/dev/null | head -n 1)),-Wno-unknown-warning-option)
TEST_DIRS := unit api stress wrong
# (victim.c, startup.c and libc.c are plain programs for LD_PRELOAD:
# -plain, and libc.c also -std)
TEST_PLAIN := tests/wrong/victim.c tests/stress/startup.c tests/stress/libc.c
# (attack.c runs against the default checks only: -fast)
TEST_FAST_ONLY := tests/wrong/attack.c
TEST_SRCS := $(filter-out $(TEST_PLAIN) $(TEST_FAST_ONLY),$(wildcard $(TEST_DIRS:%=tests/%/*.c)))
TEST_HDRS := tests/harness.h include/tidemalloc.h $(wildcard $(TEST_DIRS:%=tests/%/*.h))
TEST_OUT := $(BUILD)/tests
# Programs linked with a static tidemalloc route pthread_create through
# it, as the shared library does on its own (src/purge.c, threadhook.c).
TEST_WRAP := -Wl,--wrap=pthread_create
# Where the libraries under test are (another directory lets the tests run
# against a stand-in library without rebuilding src/).
TEST_LIBDIR ?= $(BUILD)

TEST_BINS := $(TEST_SRCS:tests/%.c=$(TEST_OUT)/%) \
	$(patsubst tests/%.c,$(TEST_OUT)/%-std,$(wildcard tests/api/*.c)) \
	$(patsubst tests/%.c,$(TEST_OUT)/%-preload,$(wildcard tests/api/*.c)) \
	$(TEST_OUT)/stress/random_ops-fast $(TEST_OUT)/stress/threads-std \
	$(TEST_PLAIN:tests/%.c=$(TEST_OUT)/%-plain) $(TEST_OUT)/wrong/misuse-fast $(TEST_OUT)/stress/oom-std $(TEST_OUT)/stress/fork-std \
	$(TEST_OUT)/stress/churn-std $(TEST_OUT)/stress/purge-std $(TEST_OUT)/stress/heaps-std \
	$(TEST_OUT)/unit/inspect-fast $(TEST_OUT)/stress/ownthread-std $(TEST_OUT)/stress/bigblocks-std \
	$(TEST_OUT)/stress/libc-std $(TEST_OUT)/stress/libc-static $(TEST_OUT)/stress/runs-std \
	$(TEST_OUT)/wrong/attack-fast

# tests/pkg: the library as other programs use it (issue 14): dlopen from
# C of the drop-in .so and of a plugin that links the prefixed archive;
# glibc's other names (__libc_malloc, cfree, ...) under LD_PRELOAD.
TEST_BINS += $(TEST_OUT)/unit/conf-std
TEST_BINS += $(TEST_OUT)/pkg/dlopen-plain $(TEST_OUT)/pkg/plugin.so $(TEST_OUT)/pkg/compat-plain

# tests/stats: a heap in a known state for stats.sh, on the drop-in.
TEST_BINS += $(TEST_OUT)/stats/scripted-std

# tests/view: the scripted heap of the viewer's test (issue 15): -std
# dumps itself with tide_heap_dump_json, -plain runs under run --view.
TEST_BINS += $(TEST_OUT)/view/pattern-std $(TEST_OUT)/view/pattern-plain

# tests/debug: a plain program for debug mode, with frame pointers and
# debug info, unoptimised (each mistake stays at its line).
TEST_BINS += $(TEST_OUT)/debug/victim
$(TEST_OUT)/debug/victim: tests/debug/victim.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) -std=gnu11 -O0 -g -fno-omit-frame-pointer -fno-builtin -Wall -Wextra -Werror -o $@ $<

# tests/prof: a plain program for heap profiling, with frame pointers
# and debug info, unoptimised (each site stays a function of its own).
TEST_BINS += $(TEST_OUT)/prof/sites
$(TEST_OUT)/prof/sites: tests/prof/sites.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) -std=gnu11 -O0 -g -fno-omit-frame-pointer -fno-builtin -pthread -Wall -Wextra -Werror -o $@ $<

$(TEST_OUT)/pkg/plugin.so: tests/pkg/plugin.c $(TEST_HDRS) $(TEST_LIBDIR)/libtidemalloc-prefixed.a
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(TEST_CFLAGS) -fPIC -shared -Wl,-z,nodelete -o $@ $< $(TEST_LIBDIR)/libtidemalloc-prefixed.a

# tests/cxx: one C++ source, four ways of getting tidemalloc (see the
# file).  The C++ compiler follows CC: clang++ beside clang, else g++.
ifeq ($(origin CXX),default)
CXX := $(if $(findstring clang,$(shell $(CC) --version 2>/dev/null | head -n 1)),clang++,g++)
endif
CXX_TEST_FLAGS := -std=gnu++17 -fsized-deallocation -g -O2 -Wall -Wextra -Werror -Wno-unused-function -pthread -Iinclude -Itests
CXX_TESTS := $(addprefix $(TEST_OUT)/cxx/cxx-,preload linked static fullstatic)
TEST_BINS += $(CXX_TESTS)
CXX_DEPS := tests/cxx/cxx.cc $(TEST_HDRS)
# The C++ compiler, pkg-config and man, installed if missing (the scripts
# of tests/pkg use the last two).
.PHONY: test-deps
test-deps:
	@bash tests/pkg/deps.sh $(CXX)
$(CXX_TESTS): | test-deps

$(TEST_OUT)/cxx/cxx-preload: $(CXX_DEPS)
	@mkdir -p $(@D)
	@echo "  CXX     $@"
	@$(CXX) $(CXX_TEST_FLAGS) -DTIDE_CXX_PRELOAD -DTIDE_CXX_FLAVOUR='"preload"' -o $@ $< -ldl
$(TEST_OUT)/cxx/cxx-linked: $(CXX_DEPS) $(TEST_LIBDIR)/libtidemalloc.so
	@mkdir -p $(@D)
	@echo "  CXX     $@"
	@$(CXX) $(CXX_TEST_FLAGS) -DTIDE_CXX_FLAVOUR='"linked"' -o $@ $< -L$(TEST_LIBDIR) -ltidemalloc \
		-Wl,-rpath,$(abspath $(TEST_LIBDIR)) -ldl
$(TEST_OUT)/cxx/cxx-static: $(CXX_DEPS) $(TEST_LIBDIR)/libtidemalloc.a
	@mkdir -p $(@D)
	@echo "  CXX     $@"
	@$(CXX) $(CXX_TEST_FLAGS) -DTIDE_CXX_STATIC -DTIDE_CXX_FLAVOUR='"static"' -o $@ $< \
		$(TEST_LIBDIR)/libtidemalloc.a -ldl
$(TEST_OUT)/cxx/cxx-fullstatic: $(CXX_DEPS) $(TEST_LIBDIR)/libtidemalloc.a
	@mkdir -p $(@D)
	@echo "  CXX     $@"
	@$(CXX) $(CXX_TEST_FLAGS) -DTIDE_CXX_FULLSTATIC -DTIDE_CXX_FLAVOUR='"fullstatic"' -static -o $@ $< \
		$(TEST_LIBDIR)/libtidemalloc.a

.PHONY: test test-build
test: lib test-build
	@BUILD=$(BUILD) LIBDIR=$(TEST_LIBDIR) bash tests/run.sh

test-build: $(TEST_BINS)

$(TEST_OUT)/%-std: tests/%.c $(TEST_HDRS) $(TEST_LIBDIR)/libtidemalloc.a
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(TEST_CFLAGS) -DTIDE_TEST_STD=1 -o $@ $< $(TEST_LIBDIR)/libtidemalloc.a $(TEST_WRAP)

# Fully static, with the archive's pthread_create hook (--wrap).
$(TEST_OUT)/%-static: tests/%.c $(TEST_HDRS) $(TEST_LIBDIR)/libtidemalloc.a
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(TEST_CFLAGS) -DTIDE_TEST_STD=1 -static -o $@ $< $(TEST_LIBDIR)/libtidemalloc.a $(TEST_WRAP)

$(TEST_OUT)/%-fast: tests/%.c $(TEST_HDRS) $(TEST_LIBDIR)/libtidemalloc-prefixed.a
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(TEST_CFLAGS) -DTIDE_TEST_FAST=1 -o $@ $< $(TEST_LIBDIR)/libtidemalloc-prefixed.a $(TEST_WRAP)

$(TEST_OUT)/%-preload: tests/%.c $(TEST_HDRS)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(TEST_CFLAGS) -DTIDE_TEST_PRELOAD=1 -o $@ $< -ldl

$(TEST_OUT)/%-plain: tests/%.c $(TEST_HDRS)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(TEST_CFLAGS) -DTIDE_TEST_PLAIN=1 -o $@ $<

$(TEST_OUT)/%: tests/%.c $(TEST_HDRS) $(TEST_LIBDIR)/libtidemalloc-debug.a
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(TEST_CFLAGS) -o $@ $< $(TEST_LIBDIR)/libtidemalloc-debug.a $(TEST_WRAP)
