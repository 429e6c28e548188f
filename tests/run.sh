#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every test (binaries built by tests/tests.mk, and the preload
# scripts), one after another, each under a time limit.
#
# Each test prints "  ok ..."/"  FAIL ..." lines and closes with
# "# <name>: N checks, N failed".  Here: the full output goes to
# $BUILD/tests/logs/<name>.log; the terminal gets every FAIL line, one
# summary line per test, and at the very end exactly one line
# "N passed, N failed".  A test that dies or times out before its summary
# counts its ok lines as passed and its FAIL lines plus one as failed.
#
# Environment:
#   BUILD        the build directory (default build)
#   LIBDIR       where the libraries are (default $BUILD)
#   TIDE_SEED    seed for the randomized tests (default: from the clock)
#   TIDE_ONLY    run only the tests whose name contains this string
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LIBDIR=${LIBDIR:-$BUILD}
T=$BUILD/tests
LOGS=$T/logs
mkdir -p "$LOGS"
SEED=${TIDE_SEED:-$(date +%s)}
ONLY=${TIDE_ONLY:-}

passed=0
failed=0
suite_start=$(date +%s)

# run NAME TIMEOUT_SECONDS COMMAND...
run() {
  local name=$1 limit=$2
  shift 2
  if [ -n "$ONLY" ] && [[ $name != *"$ONLY"* ]]; then
    return
  fi
  local log=$LOGS/${name//\//_}.log
  local start=$(date +%s)
  # (the braces keep bash's "Aborted ..." job report off the terminal)
  { timeout -k 5 "$limit" "$@" >"$log" 2>&1 </dev/null; } 2>/dev/null
  local rc=$?
  local secs=$(($(date +%s) - start))
  local summary checks fails note=""
  summary=$(grep -E '^# .+: [0-9]+ checks, [0-9]+ failed$' "$log" | tail -n 1)
  if [ -n "$summary" ]; then
    checks=$(sed -E 's/.*: ([0-9]+) checks, ([0-9]+) failed$/\1/' <<<"$summary")
    fails=$(sed -E 's/.*: ([0-9]+) checks, ([0-9]+) failed$/\2/' <<<"$summary")
    if [ "$rc" -ne 0 ] && [ "$fails" -eq 0 ]; then
      fails=1
      checks=$((checks + 1))
      note="  (exit status $rc with no failed check)"
    fi
  else
    local oks
    oks=$(grep -c '^  ok ' "$log")
    fails=$(($(grep -c '^  FAIL ' "$log") + 1))
    checks=$((oks + fails))
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      note="  (timed out after ${limit}s)"
    elif [ "$rc" -gt 128 ]; then
      note="  (killed by signal $((rc - 128)) before its summary)"
    else
      note="  (exit status $rc before its summary)"
    fi
  fi
  grep -E '^  FAIL ' "$log" | head -n 40
  if [ "$fails" -ne 0 ]; then
    tail -n 5 "$log" | grep -vE '^(  ok |  FAIL |# )' | sed 's/^/  | /'
  fi
  printf '%-36s %5d checks %4d failed %4ds%s\n' "$name" "$checks" "$fails" "$secs" "$note"
  passed=$((passed + checks - fails))
  failed=$((failed + fails))
}

echo "tests: seed $SEED (set TIDE_SEED to repeat), logs in $LOGS"

# unit: the chunk format and the heap checker, seen from the debug build
for t in "$T"/unit/*; do
  [ -x "$t" ] || continue
  run "unit/$(basename "$t")" 120 "$t"
done

# api: each source three times: tide_* on the debug build, the standard
# names on the static drop-in, and the standard names under LD_PRELOAD of
# the shared drop-in
PRELOAD_LIB=$(cd "$LIBDIR" && pwd)/libtidemalloc.so
for src in tests/api/*.c; do
  n=$(basename "$src" .c)
  run "api/$n" 120 "$T/api/$n"
  run "api/$n-std" 120 "$T/api/$n-std"
  run "api/$n-preload" 120 env LD_PRELOAD="$PRELOAD_LIB" "$T/api/$n-preload"
done

# misuse: every case must abort with the tidemalloc message
run "wrong/misuse" 120 "$T/wrong/misuse" "$LIBDIR" "$T/wrong/victim-plain"
run "wrong/misuse-fast" 120 "$T/wrong/misuse-fast"
# attack: heap-exploitation techniques must abort before they pay off
run "wrong/attack" 120 "$T/wrong/attack-fast"
# debug mode: each mistake reported with its call site
run "stats/json" 120 bash tests/stats/stats.sh "$T/stats/scripted-std" "$BUILD/tidemalloc"
run "debug/mode" 120 bash tests/debug/debug.sh "$LIBDIR" "$T/debug/victim" "$BUILD/tidemalloc"

# heap profiling (issue 15): known call sites' bytes in the profiles
run "prof/profile" 180 bash tests/prof/prof.sh "$LIBDIR" "$T/prof/sites" "$BUILD/tidemalloc"

# stress (issue 2: core allocator)
run "stress/startup" 60 env LD_PRELOAD="$PRELOAD_LIB" "$T/stress/startup-plain"
run "stress/startup-debug" 60 env LD_PRELOAD="${PRELOAD_LIB%.so}-debug.so" "$T/stress/startup-plain"
# issue 11: threads, fork, signals and cancellation as glibc's malloc survives them
run "stress/libc" 300 env LD_PRELOAD="$PRELOAD_LIB" "$T/stress/libc-plain" 2 thrd
run "stress/libc-debug" 300 env LD_PRELOAD="${PRELOAD_LIB%.so}-debug.so" "$T/stress/libc-plain" 1 thrd
run "stress/libc-std" 300 "$T/stress/libc-std"
run "stress/libc-static" 300 "$T/stress/libc-static"
run "stress/random_ops-fast" 120 "$T/stress/random_ops-fast" "$SEED" 5000000 20
run "stress/random_ops-debug" 120 "$T/stress/random_ops" "$((SEED + 1))" 3000000 15
# the same under extreme options (each path of the option table in use)
k=2
for opts in glibc.malloc.mmap_threshold=4096 glibc.malloc.tcache_count=0 \
  glibc.malloc.mxfast=0 glibc.malloc.trim_threshold=0:glibc.malloc.top_pad=0 \
  glibc.malloc.mmap_max=0 glibc.malloc.perturb=85; do
  run "stress/random_ops[${opts//glibc.malloc./}]" 60 env GLIBC_TUNABLES="$opts" \
    "$T/stress/random_ops-fast" "$((SEED + k))" 1000000 3
  k=$((k + 1))
done
run "stress/random_ops[decay_ms=0]" 60 env TIDEMALLOC_DECAY_MS=0 \
  "$T/stress/random_ops-fast" "$((SEED + k))" 1000000 3
run "stress/threads" 120 "$T/stress/threads" "$SEED"
run "stress/threads-std" 120 "$T/stress/threads-std" "$SEED"
run "stress/threads[arena_max=1]" 120 env GLIBC_TUNABLES=glibc.malloc.arena_max=1 \
  "$T/stress/threads-std" "$((SEED + 1))" 50000
run "stress/threads[tcache_count=0]" 120 env GLIBC_TUNABLES=glibc.malloc.tcache_count=0 \
  "$T/stress/threads-std" "$((SEED + 2))" 50000
run "stress/brk" 120 "$T/stress/brk"
run "stress/oom" 120 "$T/stress/oom"
run "stress/oom-std" 120 "$T/stress/oom-std"
run "stress/fork" 120 "$T/stress/fork"
run "stress/fork-std" 120 "$T/stress/fork-std"
# stress (issue 4: arenas per thread, thread caches, heaps)
run "stress/arenas" 120 "$T/stress/arenas"
run "stress/churn" 120 "$T/stress/churn"
run "stress/churn-std" 120 "$T/stress/churn-std"
run "stress/heaps" 120 "$T/stress/heaps"
run "stress/heaps-std" 120 "$T/stress/heaps-std"
# stress (issue 5: giving memory back)
run "stress/purge" 120 "$T/stress/purge"
run "stress/purge-std" 120 "$T/stress/purge-std"
run "stress/ownthread-std" 60 "$T/stress/ownthread-std"
# issue 12: the run tier
run "stress/runs" 120 "$T/stress/runs"
run "stress/runs-std" 120 "$T/stress/runs-std"
run "stress/bigblocks" 120 "$T/stress/bigblocks" "$SEED" 300
run "stress/bigblocks-std" 120 "$T/stress/bigblocks-std" "$((SEED + 1))" 400

# the background thread off, and made at start-up instead of at the
# program's first pthread_create (the whole suite passes both ways:
# TIDEMALLOC_PURGE_THREAD=0 make test; here the tests it changes most)
for mode in 0 2; do
  for t in stress/purge-std stress/bigblocks-std stress/threads-std stress/fork-std stress/churn-std stress/libc-std \
    stress/runs-std; do
    args=()
    [ "$t" = stress/bigblocks-std ] && args=("$((SEED + 7))" 300)
    [ "$t" = stress/threads-std ] && args=("$((SEED + 8))" 50000)
    run "$t[bg=$mode]" 300 env TIDEMALLOC_PURGE_THREAD=$mode "$T/$t" "${args[@]}"
  done
  run "unit/keep[bg=$mode]" 120 env TIDEMALLOC_PURGE_THREAD=$mode "$T/unit/keep"
done

# heap profiling on, sampling often (a block in 4 KiB on average), under
# tests that check every block: sampled blocks on every path (not the
# tests that look where particular blocks lie, as stress/runs does)
PROF_OUT=$T/prof-out
mkdir -p "$PROF_OUT"
for t in "stress/random_ops-fast $((SEED + 20)) 1000000 3" "stress/random_ops $((SEED + 23)) 1000000 3" \
  "stress/threads-std $((SEED + 21)) 50000" stress/fork-std "stress/bigblocks-std $((SEED + 22)) 300" \
  api/realloc-std api/align-std api/calloc-std stress/churn-std; do
  set -- $t
  name=$1
  shift
  run "$name[prof]" 300 env TIDEMALLOC_CONF="prof=1,prof_rate=4096,prof_file=$PROF_OUT/%p" "$T/$name" "$@"
done

# glibc's other names for the malloc family, under LD_PRELOAD (issue 14)
run "pkg/compat" 60 env LD_PRELOAD="$PRELOAD_LIB" "$T/pkg/compat-plain"
# loaded later with dlopen (issue 14): from C, from Python, as a plugin
run "pkg/dlopen-lib" 60 "$T/pkg/dlopen-plain" lib "$PRELOAD_LIB"
run "pkg/dlopen-plugin" 60 "$T/pkg/dlopen-plain" plugin "$(cd "$T/pkg" && pwd)/plugin.so"
run "pkg/ctypes" 60 python3 tests/pkg/ctypes_load.py "$PRELOAD_LIB" \
  "$(sed -n 's/^#define TIDEMALLOC_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' include/tidemalloc.h | paste -sd.)"

# C++ (issue 14): the operators from tidemalloc under LD_PRELOAD, linked
# with -ltidemalloc, from the archive, and fully static
run "cxx/preload" 120 env LD_PRELOAD="$PRELOAD_LIB" "$T/cxx/cxx-preload"
run "cxx/preload[debug=1]" 120 env TIDEMALLOC_CONF=debug=1 LD_PRELOAD="$PRELOAD_LIB" "$T/cxx/cxx-preload"
run "cxx/linked" 120 "$T/cxx/cxx-linked"
run "cxx/static" 120 "$T/cxx/cxx-static"
run "cxx/fullstatic" 120 "$T/cxx/cxx-fullstatic"
run "cxx/bindings" 60 bash tests/cxx/bindings.sh "$LIBDIR" "$T/cxx"

# installed as a user would (issue 14): make install, pkg-config, CMake,
# the tidemalloc command, the man pages, make uninstall; the .deb
run "pkg/install" 240 bash tests/pkg/install.sh "$BUILD"
run "pkg/deb" 120 bash tests/pkg/deb.sh "$BUILD"

# the heap picture (issue 15): tidemalloc view and run --view, drawn in a
# real browser (headless Chromium, installed by tests/view/chromium.sh)
run "view/view" 400 bash tests/view/view.sh "$BUILD" "$LIBDIR"

# real programs under LD_PRELOAD
run "preload/programs" 240 bash tests/preload/programs.sh "$LIBDIR"
# make demo's rotation part (issue 15): the charts, the verdict, and
# tidemalloc's RSS below glibc's once the service idles
run "preload/demo" 120 bash tests/preload/demo.sh "$LIBDIR"

echo "# suite: $(($(date +%s) - suite_start))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
