# SPDX-License-Identifier: MIT
# Benchmarks: see bench/run.sh.  (Included from the Makefile.)
#
#   make bench            full suite (< 30 min on 2 cores)
#   make bench QUICK=1    reduced suite (< 4 min)
#   make bench-build      only build the workloads into build/bench/bin
#
# Workloads are plain C11 + pthreads linked against libc only; the allocator
# under test is chosen at run time with LD_PRELOAD.  -fno-builtin-malloc
# keeps the compiler from removing malloc/free pairs.

BENCH_BIN := $(BUILD)/bench/bin
BENCH_WORKLOADS := churn symbolic larson xmalloc falseshare realloc large rotation fastpath spin \
	bulk sliding prodcons espresso barnes randsmall aligned
BENCH_PROGS := $(BENCH_WORKLOADS:%=$(BENCH_BIN)/%) $(BENCH_BIN)/runner
BENCH_CFLAGS := -std=gnu11 -O2 -g -pthread -Wall -Wextra -Werror -fno-builtin-malloc \
	-fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc

.PHONY: bench bench-build bench-nohard bench-prof
bench: lib bench-build
	@QUICK="$(QUICK)" bash bench/run.sh

# What the always-on fast-path checks cost: tidemalloc against itself
# built with -DTIDE_HARDEN=0 (README, "Hardening").
bench-nohard: lib bench-build
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/nohard CFLAGS=-DTIDE_HARDEN=0 $(BUILD)/nohard/libtidemalloc.so
	@QUICK="$(QUICK)" BENCH_NOHARD=1 BENCH_ALLOCS="tidemalloc tidemalloc-nohard" BENCH_OUT=$(BUILD)/bench-nohard bash bench/run.sh
# What sampled heap profiling costs: tidemalloc with prof=1 against itself.
bench-prof: lib bench-build
	@QUICK="$(QUICK)" BENCH_PROF=1 BENCH_ALLOCS="tidemalloc tidemalloc-prof" BENCH_OUT=$(BUILD)/bench-prof bash bench/run.sh

bench-build: $(BENCH_PROGS)

$(BENCH_BIN)/runner: bench/runner.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $< -o $@

$(BENCH_BIN)/%: bench/workloads/%.c $(wildcard bench/workloads/*.h)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $< -o $@
