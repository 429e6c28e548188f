# SPDX-License-Identifier: MIT
# tidemalloc build.
#
#   make            the libraries (three flavours, see below), the tidemalloc
#                   command (build/tidemalloc) and its man pages
#   make test       build and run every test; ends with "N passed, N failed"
#   make demo       the daily-rotation service, then python3 and sqlite3, with and
#                   without tidemalloc, side by side (tools/demo.sh)
#   make bench      tidemalloc against glibc, jemalloc, tcmalloc, mimalloc
#   make install    PREFIX=/usr/local DESTDIR= (see packaging/install.mk);
#                   make uninstall with the same variables
#   make deb        a Debian package, build/tidemalloc_<version>_<arch>.deb
#
# Flavours (one object directory each):
#   build/libtidemalloc.so, build/libtidemalloc.a
#       the drop-in: standard names (malloc, free, ...) and tide_* names
#   build/libtidemalloc-prefixed.a
#       tide_* names only, to run beside glibc's malloc or under sanitizers
#   build/libtidemalloc-debug.a, build/libtidemalloc-debug.so
#       like prefixed (the .so: drop-in) with TIDE_DEBUG=1: the heap checker
#       runs from inside the allocator and every internal assertion is live

# The version is written once, in include/tidemalloc.h.
version_part = $(shell sed -n 's/^\#define TIDEMALLOC_VERSION_$(1) \([0-9][0-9]*\)$$/\1/p' include/tidemalloc.h)
VERSION_MAJOR := $(call version_part,MAJOR)
VERSION := $(VERSION_MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)
SONAME := libtidemalloc.so.$(VERSION_MAJOR)

CC ?= gcc
ifeq ($(origin CC),default)
CC := gcc
endif
AR ?= ar
BUILD := build

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS := -std=gnu11 -g -fPIC -fvisibility=hidden -ftls-model=initial-exec \
	-fno-strict-aliasing -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc \
	-fno-builtin-realloc -pthread -Iinclude $(WARN)
OPT ?= -O2
CFLAGS ?=
ALL_CFLAGS := $(BASE_CFLAGS) $(OPT) $(CFLAGS)

# The hooks on thread creation: src/threadhook.c (pthread_create and
# thrd_create, interposed) goes into the shared libraries only, src/wrap.c
# (__wrap_pthread_create, for -Wl,--wrap) into the archives only.
SRCS := $(filter-out src/threadhook.c src/wrap.c,$(wildcard src/*.c))
HDRS := $(wildcard src/*.h) include/tidemalloc.h

STD_OBJS := $(SRCS:src/%.c=$(BUILD)/std/%.o)
PFX_OBJS := $(SRCS:src/%.c=$(BUILD)/prefixed/%.o)
DBG_OBJS := $(SRCS:src/%.c=$(BUILD)/debug/%.o)
DBGSTD_OBJS := $(SRCS:src/%.c=$(BUILD)/debugstd/%.o)

# The shared drop-in: the file is libtidemalloc.so.0.1.0, its soname
# libtidemalloc.so.0 (what programs record and ld.so looks for), and
# libtidemalloc.so the name -ltidemalloc finds; the last two are links.
SHLIB := $(BUILD)/libtidemalloc.so.$(VERSION)
SHLIB_LINKS := $(BUILD)/$(SONAME) $(BUILD)/libtidemalloc.so
# -z nodelete: a dlclose() must not unmap code that the purge thread and
# the thread-exit destructors still run; -z now: no lazy binding later.
SO_LDFLAGS := -shared -pthread -Wl,-z,now -Wl,-z,nodelete -Wl,--build-id

LIBS := $(SHLIB) $(SHLIB_LINKS) $(BUILD)/libtidemalloc.a \
	$(BUILD)/libtidemalloc-prefixed.a $(BUILD)/libtidemalloc-debug.a \
	$(BUILD)/libtidemalloc-debug.so

.PHONY: all lib clean test demo bench format
all: lib
lib: $(LIBS)

# C++'s operators (src/cxx.c) call the new_handler, which may throw:
# the exception unwinds through their frames.
$(BUILD)/%/cxx.o: ALL_CFLAGS += -fexceptions

$(BUILD)/std/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DTIDE_STD_NAMES=1 -DTIDE_DEBUG=0 -c $< -o $@
$(BUILD)/prefixed/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DTIDE_STD_NAMES=0 -DTIDE_DEBUG=0 -c $< -o $@
$(BUILD)/debug/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DTIDE_STD_NAMES=0 -DTIDE_DEBUG=1 -c $< -o $@
$(BUILD)/debugstd/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DTIDE_STD_NAMES=1 -DTIDE_DEBUG=1 -c $< -o $@

$(SHLIB): $(STD_OBJS) $(BUILD)/std/threadhook.o
	$(CC) $(SO_LDFLAGS) -Wl,-soname,$(SONAME) -o $@ $^
$(SHLIB_LINKS): $(SHLIB)
	ln -sf $(<F) $@
$(BUILD)/libtidemalloc.a: $(STD_OBJS) $(BUILD)/std/wrap.o
	rm -f $@; $(AR) rcs $@ $^
$(BUILD)/libtidemalloc-prefixed.a: $(PFX_OBJS) $(BUILD)/prefixed/wrap.o
	rm -f $@; $(AR) rcs $@ $^
$(BUILD)/libtidemalloc-debug.a: $(DBG_OBJS) $(BUILD)/debug/wrap.o
	rm -f $@; $(AR) rcs $@ $^
$(BUILD)/libtidemalloc-debug.so: $(DBGSTD_OBJS) $(BUILD)/debugstd/threadhook.o
	$(CC) $(SO_LDFLAGS) -Wl,-soname,libtidemalloc-debug.so -o $@ $^

# Tests, benchmarks, the command and packaging keep their rules beside
# their code.
include tests/tests.mk
include bench/bench.mk
include packaging/install.mk

demo: lib
	@bash tools/demo.sh

clean:
	rm -rf $(BUILD)
