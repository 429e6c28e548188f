#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/run.sh — tidemalloc against glibc, jemalloc, tcmalloc and mimalloc.
#
# Called by `make bench` (after `make lib bench-build`).  Environment:
#   QUICK=1          reduced sizes (whole run < 4 min); default: full (< 30 min)
#   BENCH_REPS=N     runs per workload and allocator (default 5; 3 with QUICK=1)
#   BENCH_ONLY="a b" run only these workloads (names as in the table below)
#   BENCH_ALLOCS="x y" run only these allocators
#   BENCH_NO_INSTALL=1  never call apt-get
#   BENCH_OUT=dir    where the results go (default build/bench)
#   BENCH_NOHARD=1   also build/nohard/libtidemalloc.so (make bench-nohard)
#   BENCH_PROF=1     also tidemalloc with heap profiling on, prof=1 (make bench-prof)
#
# Every workload runs once per allocator in turn (A B C D E, A B C D E, ...)
# under build/bench/bin/runner, which measures wall time, user+sys CPU and
# peak RSS (wait4) and kills a run that exceeds its timeout, so a crash or a
# hang is recorded as a failure rather than stopping the suite.
#
# Output in build/bench/: raw.tsv (one line per run), out/ (each run's
# stdout), fastpath.tsv, machine.txt, results.md, results.svg.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/build/bench}
BIN=$ROOT/build/bench/bin
RUNNER=$BIN/runner
QUICK=${QUICK:-}
case $QUICK in "" | 0 | no | false) QUICK= ;; *) QUICK=1 ;; esac
REPS=${BENCH_REPS:-$([ -n "$QUICK" ] && echo 3 || echo 5)}
mkdir -p "$OUT/out"

say() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for p in runner churn symbolic larson xmalloc falseshare realloc large rotation fastpath spin \
  bulk sliding prodcons espresso barnes randsmall aligned; do
  [ -x "$BIN/$p" ] || die "$BIN/$p missing: run 'make bench-build' (or 'make bench')"
done

# ---- tools and peer allocators -------------------------------------------------

# Find a shared library by soname through the dynamic linker cache.
find_lib() { ldconfig -p 2>/dev/null | awk -v n="$1" '$1 == n { print $NF; exit }'; }

APT_UPDATED=
apt_install() { # apt_install PACKAGE: best effort; returns apt-get's status
  [ -n "${BENCH_NO_INSTALL:-}" ] && return 1
  command -v apt-get >/dev/null 2>&1 || return 1
  local sudo=
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 1
    sudo="sudo -n"
  fi
  if [ -z "$APT_UPDATED" ]; then
    say "bench: apt-get update"
    $sudo apt-get update -qq >/dev/null 2>&1
    APT_UPDATED=1
  fi
  say "bench: apt-get install $1"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >/dev/null 2>&1
}

# name  soname                    Debian package
PEERS="jemalloc libjemalloc.so.2 libjemalloc2
tcmalloc libtcmalloc_minimal.so.4 libtcmalloc-minimal4
mimalloc libmimalloc.so.2 libmimalloc2.0"

ALLOCS=()
declare -A LIB
TIDE=$ROOT/build/libtidemalloc.so
if [ -f "$TIDE" ] && nm -D --defined-only "$TIDE" 2>/dev/null | grep -qw malloc; then
  ALLOCS+=(tidemalloc)
  LIB[tidemalloc]=$TIDE
else
  say "bench: SKIP tidemalloc: $TIDE missing or exports no malloc (build it with 'make lib')"
fi
# make bench-nohard: the same library with the fast-path hardening
# compiled out (-DTIDE_HARDEN=0), to measure what the checks cost.
NOHARD=$ROOT/build/nohard/libtidemalloc.so
if [ -n "${BENCH_NOHARD:-}" ] && [ -f "$NOHARD" ]; then
  ALLOCS+=(tidemalloc-nohard)
  LIB[tidemalloc-nohard]=$NOHARD
fi
# make bench-prof: the same library with sampled heap profiling on at
# its default rate, to measure what profiling costs.
declare -A CONF
if [ -n "${BENCH_PROF:-}" ] && [ -f "$TIDE" ]; then
  ALLOCS+=(tidemalloc-prof)
  LIB[tidemalloc-prof]=$TIDE
  mkdir -p "$OUT/prof"
  CONF[tidemalloc-prof]="prof=1,prof_file=$OUT/prof/run.%p"
fi
# Tuning experiments: BENCH_VARIANTS="t16=tcache_count=16 r32=/tmp/r32/lib.so"
# adds tidemalloc-t16, tidemalloc-r32, ...: this library under those
# settings (TIDEMALLOC_CONF), or another build of it (a path), in the same
# interleaved runs.
for v in ${BENCH_VARIANTS:-}; do
  name=tidemalloc-${v%%=*} spec=${v#*=}
  ALLOCS+=("$name")
  if [ "${spec#/}" != "$spec" ]; then
    LIB[$name]=$spec
  else
    LIB[$name]=$TIDE
    CONF[$name]=$spec
  fi
done
ALLOCS+=(glibc)
LIB[glibc]=
while read -r name soname pkg; do
  path=$(find_lib "$soname")
  if [ -z "$path" ]; then
    apt_install "$pkg"
    path=$(find_lib "$soname")
  fi
  if [ -n "$path" ]; then
    ALLOCS+=("$name")
    LIB[$name]=$path
  else
    say "bench: SKIP $name: $soname not found and package $pkg could not be installed"
  fi
done <<<"$PEERS"

# Check that each preload really lands in a process (and does not crash it).
keep=()
for a in "${ALLOCS[@]}"; do
  lib=${LIB[$a]}
  if [ -z "$lib" ] || env LD_PRELOAD="$lib" timeout 20 cat /proc/self/maps 2>/dev/null | grep -qF "$(basename "$lib")"; then
    keep+=("$a")
  else
    say "bench: SKIP $a: LD_PRELOAD=$lib does not load into a process (or crashes it)"
  fi
done
ALLOCS=("${keep[@]}")

if [ -n "${BENCH_ALLOCS:-}" ]; then
  keep=()
  for a in "${ALLOCS[@]}"; do [[ " $BENCH_ALLOCS " == *" $a "* ]] && keep+=("$a"); done
  ALLOCS=("${keep[@]}")
fi

command -v python3 >/dev/null 2>&1 || apt_install python3
command -v python3 >/dev/null 2>&1 || die "python3 is needed for the report"
command -v gnuplot >/dev/null 2>&1 || apt_install gnuplot-nox
command -v gnuplot >/dev/null 2>&1 || say "bench: no gnuplot: results.svg will not be drawn"

# ---- the machine ------------------------------------------------------------------
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) x $(nproc) (usable by this process)"
  echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "glibc: $(ldd --version 2>/dev/null | head -1 | awk '{ print $NF }')"
  for pkg in libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0; do
    v=$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null) && echo "$pkg: $v"
  done
  echo "tidemalloc: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "mode: $([ -n "$QUICK" ] && echo 'QUICK=1 (reduced sizes)' || echo full), $REPS runs per workload and allocator"
  echo "allocators: ${ALLOCS[*]}"
} >"$OUT/machine.txt"

# ---- workloads ----------------------------------------------------------------------
# name | program and arguments (full) | (quick) | timeout in s (full) | (quick)
WORKLOADS="churn|churn iters=40000000 slots=10000|churn iters=8000000 slots=10000|120|40
symbolic|symbolic steps=8000000|symbolic steps=2500000|120|40
larson-1t|larson threads=1 ops=20000000|larson threads=1 ops=5000000|120|40
larson-2t|larson threads=2 ops=20000000|larson threads=2 ops=5000000|120|40
xmalloc|xmalloc blocks=20000000 pairs=1|xmalloc blocks=5000000 pairs=1|120|40
cache-thrash|falseshare mode=0 threads=2 iters=50000 writes=2000|falseshare mode=0 threads=2 iters=20000 writes=1000|120|40
cache-scratch|falseshare mode=1 threads=2 iters=50000 writes=2000|falseshare mode=1 threads=2 iters=20000 writes=1000|120|40
realloc|realloc rounds=800000|realloc rounds=150000|120|40
large|large steps=2000|large steps=400|120|40
rotation|rotation days=6 day_mib=256 settle_ms=1000|rotation days=2 day_mib=96 settle_ms=1000|180|60
bulk|bulk threads=4 rounds=60|bulk threads=4 rounds=15|120|40
bulk-xthread|bulk threads=4 rounds=60 xthread=1|bulk threads=4 rounds=15 xthread=1|120|40
sliding|sliding threads=4 steps=4000000 window=4000 handoff=8|sliding threads=4 steps=1000000 window=4000 handoff=8|120|40
prodcons|prodcons msgs=10000000 depth=65536 burst=4096|prodcons msgs=3000000 depth=65536 burst=4096|120|40
larson-sized|larson threads=2 ops=20000000 sized=1|larson threads=2 ops=5000000 sized=1|120|40
espresso|espresso problems=5000|espresso problems=1500|120|40
barnes|barnes bodies=4000 steps=150|barnes bodies=4000 steps=40|120|40
randsmall|randsmall steps=30000000 slots=5000|randsmall steps=8000000 slots=5000|120|40
aligned|aligned threads=2 steps=3000000 slots=20000 burst=256|aligned threads=2 steps=800000 slots=20000 burst=256|120|40
tables-1t|spin threads=1 tables=5000 ops=60000000|spin threads=1 tables=5000 ops=15000000|120|40
tables-2t|spin threads=2 tables=5000 ops=60000000|spin threads=2 tables=5000 ops=15000000|120|40"
# tables-1t/2t are larson without its malloc and free (bench/workloads/spin.c),
# three times as many operations (its loop is about 3 x cheaper, so its runs
# last about as long): the scaling this machine gives larson's own memory
# work, measured beside larson in the same runs.  They run whenever larson does, and are not
# workloads of the tables (report.py).

# How much parallelism does this machine give at all?  A pure-arithmetic
# loop on 1 and on 2 threads: 2 x t(1) / t(2) is what the cores give with
# no memory traffic (larson's own ceiling is measured beside it: tables-*).
calibrate() { # calibrate LABEL
  local t1=() t2=() m1 m2
  for _ in 1 2 3; do
    t1+=("$("$BIN/spin" threads=1 loops=150000000 | sed -n 's/.*secs=\([0-9.]*\).*/\1/p')")
    t2+=("$("$BIN/spin" threads=2 loops=150000000 | sed -n 's/.*secs=\([0-9.]*\).*/\1/p')")
  done
  m1=$(printf '%s\n' "${t1[@]}" | sort -g | sed -n 2p)
  m2=$(printf '%s\n' "${t2[@]}" | sort -g | sed -n 2p)
  awk -v l="$1" -v a="$m1" -v b="$m2" \
    'BEGIN { printf "cpu scaling %s: %.2f (pure arithmetic, 1 thread %.3f s, 2 threads %.3f s for twice the work)\n", l, 2 * a / b, a, b }'
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other processes on the machine skew wall times)" >>"$OUT/machine.txt"
calibrate before | tee -a "$OUT/machine.txt"

RAW=$OUT/raw.tsv
: >"$RAW"
say "bench: allocators: ${ALLOCS[*]}; $REPS runs each; $([ -n "$QUICK" ] && echo quick || echo full) sizes"
T0=$(date +%s)
# Workloads whose figures are divided by one another run interleaved, rep by
# rep (1t A B C D E, 2t A B C D E, 1t A B ...), so that both sides of the
# scaling ratio see the same machine: on a shared VM, phases of slower runs
# last longer than one workload's runs.
TOGETHER="larson-1t larson-2t tables-1t tables-2t"
declare -A CMD TMO
ORDER=()
while IFS='|' read -r name full quick tfull tquick; do
  only=" ${BENCH_ONLY:-} "
  [[ "$only" == *" larson-1t "* || "$only" == *" larson-2t "* ]] && only+="tables-1t tables-2t "
  if [ -n "${BENCH_ONLY:-}" ] && [[ "$only" != *" $name "* ]]; then continue; fi
  if [ -n "$QUICK" ]; then CMD[$name]=$quick; TMO[$name]=$tquick; else CMD[$name]=$full; TMO[$name]=$tfull; fi
  ORDER+=("$name")
done <<<"$WORKLOADS"

run_workload() { # run_workload NAME REP: one run per allocator, one line of output
  local name=$1 rep=$2 prog args a o stats_env m res st w line
  read -r prog args <<<"${CMD[$name]}"
  line=$(printf '%-14s run %d:' "$name" "$rep")
  for a in "${ALLOCS[@]}"; do
    o=$OUT/out/$name.$a.$rep.txt
    # tidemalloc prints its counters at exit (one line on stderr) when asked.
    stats_env=
    [ "$a" = tidemalloc ] && stats_env=TIDEMALLOC_STATS=1
    [ -n "${CONF[$a]:-}" ] && stats_env="TIDEMALLOC_CONF=${CONF[$a]}"
    # shellcheck disable=SC2086  # $stats_env and $args are word lists on purpose
    m=$(env $stats_env "$RUNNER" -p "${LIB[$a]}" -t "${TMO[$name]}" -o "$o" -- "$BIN/$prog" $args 2>"$o.err")
    res=$(grep -m1 '^result ' "$o" 2>/dev/null | sed 's/^result //')
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$a" "$rep" "$m" "$res" >>"$RAW"
    st=${m%% *}
    st=${st#status=}
    w=$(sed -n 's/.*wall=\([0-9.]*\).*/\1/p' <<<"$m")
    if [ "$st" = ok ]; then line+=$(printf ' %s %.2fs' "$a" "$w"); else line+=" $a FAILED($st)"; fi
  done
  say "$line"
}

done_names=" "
for name in "${ORDER[@]}"; do
  [[ "$done_names" == *" $name "* ]] && continue
  unit=("$name")
  if [[ " $TOGETHER " == *" $name "* ]]; then
    unit=()
    for n in "${ORDER[@]}"; do [[ " $TOGETHER " == *" $n "* ]] && unit+=("$n"); done
  fi
  for rep in $(seq 1 "$REPS"); do
    for n in "${unit[@]}"; do run_workload "$n" "$rep"; done
  done
  done_names+="${unit[*]} "
done

# ---- fast path: instructions per malloc+free pair ------------------------------------
FP=$OUT/fastpath.tsv
: >"$FP"
METHOD=
if perf stat -x, -e instructions:u true 2>&1 | grep -q '^[0-9]'; then
  METHOD=perf
elif command -v valgrind >/dev/null 2>&1 || apt_install valgrind; then
  METHOD=callgrind
fi

count_instr() { # count_instr LIB SIZE ITERS [CONF] -> instructions of the whole run
  local lib=$1 size=$2 iters=$3 conf=${4:-}
  if [ "$METHOD" = perf ]; then
    perf stat -x, -e instructions:u -- env ${lib:+LD_PRELOAD=$lib} ${conf:+TIDEMALLOC_CONF=$conf} "$BIN/fastpath" size="$size" iters="$iters" 2>&1 >/dev/null |
      awk -F, '/instructions/ { print $1; exit }'
  else
    env ${lib:+LD_PRELOAD=$lib} ${conf:+TIDEMALLOC_CONF=$conf} timeout 120 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
      "$BIN/fastpath" size="$size" iters="$iters" 2>&1 >/dev/null |
      awk '/Collected :/ { print $NF; exit }'
  fi
}

if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" fastpath "* ]]; then
  METHOD=skipped
fi
echo "method: ${METHOD:-none}" >>"$OUT/machine.txt"
if [ "$METHOD" = perf ] || [ "$METHOD" = callgrind ]; then
  say "bench: fast path, instructions per malloc+free pair ($METHOD; runs of 100000 and 300000 pairs)"
  N1=100000
  N2=300000
  for a in "${ALLOCS[@]}"; do
    line=$(printf '%-14s' "$a")
    for size in 16 64 256 1024 8192; do
      # Instruction counts do not depend on timing: run the two counts at once.
      count_instr "${LIB[$a]}" "$size" "$N1" "${CONF[$a]:-}" >"$OUT/fp1.tmp" &
      count_instr "${LIB[$a]}" "$size" "$N2" "${CONF[$a]:-}" >"$OUT/fp2.tmp" &
      wait
      c1=$(cat "$OUT/fp1.tmp")
      c2=$(cat "$OUT/fp2.tmp")
      if [[ "$c1" =~ ^[0-9]+$ && "$c2" =~ ^[0-9]+$ ]]; then
        per=$(awk -v a="$c1" -v b="$c2" -v n="$((N2 - N1))" 'BEGIN { printf "%.1f", (b - a) / n }')
      else
        per=FAILED
      fi
      printf '%s\t%s\t%s\n' "$a" "$size" "$per" >>"$FP"
      line+=" ${size}B:$per"
    done
    say "$line"
  done
elif [ "$METHOD" != skipped ]; then
  say "bench: SKIP fast path: neither perf (instructions counter) nor valgrind is usable"
fi

rm -f "$OUT/fp1.tmp" "$OUT/fp2.tmp"
calibrate after | tee -a "$OUT/machine.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
T1=$(date +%s)
echo "duration: $((T1 - T0)) s" >>"$OUT/machine.txt"

# ---- report ---------------------------------------------------------------------------
python3 "$ROOT/bench/report.py" "$OUT" || die "report failed"
if command -v gnuplot >/dev/null 2>&1 && [ -f "$OUT/chart.gp" ]; then
  (cd "$OUT" && gnuplot chart.gp) || say "bench: gnuplot failed; no chart"
fi
say ""
cat "$OUT/summary.txt" 2>/dev/null
say ""
say "bench: done in $((T1 - T0)) s: $OUT/results.md$([ -f "$OUT/results.svg" ] && echo " and $OUT/results.svg")"
