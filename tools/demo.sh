#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tools/demo.sh — `make demo`: what tidemalloc is for, then real programs
# doing real work, each on glibc's malloc and on tidemalloc
# (LD_PRELOAD=build/libtidemalloc.so), side by side.
#
#   1. the daily-rotation service tidemalloc was written for
#      (tools/rotation_demo.c): two threads load a day of records, a third
#      frees the day before, the service idles; its RSS, read every 20 ms
#      from outside, against the bytes it holds, as a chart in the terminal
#      and in $WORK/rotation.svg, a table of each day's end and a verdict
#      line (tools/rotation_chart.py; every figure from this run).
#   2. python3: builds a 200,000-entry dict of small records, sorts it, and
#      round-trips 120,000 of them through JSON (PYTHONMALLOC=malloc, so every
#      Python object goes through malloc/free rather than pymalloc).
#   3. sqlite3: fills an in-memory database with 400,000 rows, builds two
#      indexes and runs grouping, join and sort queries.
#
# For 2 and 3, each program runs without and with the preload; the outputs
# must be equal.  Prints wall time and peak RSS for both, and what tidemalloc
# did (from its TIDEMALLOC_STATS=1 line).  Exits non-zero if an output
# differs or a run fails.
#
#   tools/demo.sh [--short] [--rotation-only]
#     --short          a shorter rotation (3 days of 64 MiB), for the tests
#     --rotation-only  part 1 only
#   DEMO_LIB   the library (default build/libtidemalloc.so)
#   DEMO_WORK  where the files go (default build/demo)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIB=${DEMO_LIB:-$ROOT/build/libtidemalloc.so}
WORK=${DEMO_WORK:-$ROOT/build/demo}
RUNNER=$WORK/runner
ROTATION=$WORK/rotation_demo
SHORT=
ONLY_ROTATION=
for arg in "$@"; do
  case $arg in
    --short) SHORT=1 ;;
    --rotation-only) ONLY_ROTATION=1 ;;
    *) echo "usage: tools/demo.sh [--short] [--rotation-only]" >&2; exit 2 ;;
  esac
done
mkdir -p "$WORK"

[ -f "$LIB" ] || { echo "demo: $LIB missing: run 'make lib' first" >&2; exit 1; }
# rotation_demo calls the libc malloc (-fno-builtin-*: every call stays).
if [ ! -x "$ROTATION" ] || [ "$ROOT/tools/rotation_demo.c" -nt "$ROTATION" ] ||
  [ "$ROOT/bench/workloads/common.h" -nt "$ROTATION" ] || [ "$ROOT/bench/workloads/records.h" -nt "$ROTATION" ]; then
  "${CC:-cc}" -std=gnu11 -O2 -g -pthread -Wall -Wextra -Werror -fno-builtin-malloc -fno-builtin-free \
    -fno-builtin-calloc -fno-builtin-realloc -o "$ROTATION" "$ROOT/tools/rotation_demo.c" || exit 1
fi
if [ ! -x "$RUNNER" ] || [ "$ROOT/bench/runner.c" -nt "$RUNNER" ]; then
  "${CC:-cc}" -O2 -std=gnu11 -o "$RUNNER" "$ROOT/bench/runner.c" || exit 1
fi

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
[ -n "$PY" ] || { echo "demo: python3 is needed" >&2; exit 1; }
# pyenv and similar put a shell script first in PATH: run the interpreter itself.
PY=$("$PY" -c 'import sys; print(sys.executable)')

SQLITE=$(command -v sqlite3)
if [ -z "$SQLITE" ] && [ -z "$ONLY_ROTATION" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "demo: installing sqlite3 with apt-get"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3) >/dev/null 2>&1
  SQLITE=$(command -v sqlite3)
fi

# ---- the jobs ------------------------------------------------------------------
cat >"$WORK/job.py" <<'EOF'
import hashlib, json, random
rng = random.Random(2026)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 12)))
         for _ in range(50000)]
d = {}
for i in range(200000):
    d[f"{rng.choice(words)}-{i}"] = {"id": i, "tags": [rng.choice(words) for _ in range(rng.randint(0, 4))],
                                     "score": rng.random()}
items = sorted(d.items(), key=lambda kv: (kv[1]["score"], kv[0]))
text = json.dumps(items[:120000])
back = json.loads(text)
assert back == [list(x) for x in items[:120000]]
print("entries", len(d), "first", items[0][0], "last", items[-1][0])
print("json bytes", len(text), "sha256", hashlib.sha256(text.encode()).hexdigest())
EOF

cat >"$WORK/job.sql" <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL, pad TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400000)
INSERT INTO t SELECT x, 'name-' || (x * 7919 % 100003), x % 97, (x * 31337 % 1000) / 10.0,
                     printf('%.*c', x % 200, 'x') FROM c;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_grp ON t(grp, val);
SELECT grp, count(*), round(sum(val), 1), max(length(pad)) FROM t GROUP BY grp ORDER BY grp LIMIT 5;
SELECT count(DISTINCT name) FROM t;
SELECT name, count(*) AS n FROM t GROUP BY name ORDER BY n DESC, name LIMIT 3;
SELECT a.grp, count(*) FROM t a JOIN t b ON a.name = b.name AND a.id < b.id
  WHERE a.grp < 10 GROUP BY a.grp ORDER BY a.grp LIMIT 3;
SELECT length(group_concat(name)) FROM (SELECT name FROM t ORDER BY val DESC, id LIMIT 50000);
EOF

# ---- running -------------------------------------------------------------------
FAILED=0
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<" $2"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
bytes_mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
group() { sed ':a; s/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/; ta' <<<"$1"; } # 1234567 -> 1,234,567
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%+.0f%%", (a / b - 1) * 100; else print "-" }'; }

# run_job NAME STDIN-FILE CMD...: runs CMD with glibc, then with tidemalloc.
run_job() {
  local name=$1 input=$2
  shift 2
  local g t
  g=$(env PYTHONMALLOC=malloc "$RUNNER" -t 120 -o "$WORK/$name.glibc.out" -- "$@" <"$input" 2>"$WORK/$name.glibc.err")
  t=$(env PYTHONMALLOC=malloc TIDEMALLOC_STATS=1 "$RUNNER" -p "$LIB" -t 120 -o "$WORK/$name.tide.out" -- "$@" \
    <"$input" 2>"$WORK/$name.tide.err")
  local gs ts same
  gs=$(field status "$g")
  ts=$(field status "$t")
  if cmp -s "$WORK/$name.glibc.out" "$WORK/$name.tide.out"; then same=identical; else same=DIFFERENT; fi
  [ "$gs" = ok ] && [ "$ts" = ok ] && [ "$same" = identical ] || FAILED=1

  local gw tw gr tr
  gw=$(field wall "$g")
  tw=$(field wall "$t")
  gr=$(field maxrss_kb "$g")
  tr=$(field maxrss_kb "$t")
  echo
  printf '%-22s %16s %16s %10s\n' "" "glibc" "tidemalloc" "change"
  printf '%-22s %16s %16s %10s\n' "run" "$gs" "$ts" ""
  printf '%-22s %14.2f s %14.2f s %10s\n' "wall time" "$gw" "$tw" "$(pct "$tw" "$gw")"
  printf '%-22s %16s %16s %10s\n' "peak RSS" "$(mib "$gr")" "$(mib "$tr")" "$(pct "$tr" "$gr")"
  printf '%-22s %s (%s lines, sha256 %.16s)\n' "output" "$same" "$(wc -l <"$WORK/$name.tide.out")" \
    "$(sha256sum "$WORK/$name.tide.out" | cut -c1-16)"
  [ "$same" = identical ] || diff "$WORK/$name.glibc.out" "$WORK/$name.tide.out" | head -5
  [ "$ts" = ok ] || { echo "tidemalloc run failed ($ts); its stderr:"; tail -5 "$WORK/$name.tide.err"; }

  local st
  st=$(grep -m1 '^tidemalloc stats:' "$WORK/$name.tide.err")
  if [ -n "$st" ]; then
    local mc fc rc br pu po ar pg
    mc=$(field malloc_calls "$st")
    fc=$(field free_calls "$st")
    rc=$(field realloc_calls "$st")
    br=$(field bytes_requested "$st")
    pu=$(field peak_in_use "$st")
    po=$(field peak_os "$st")
    ar=$(field arenas "$st")
    pg=$(field purged "$st")
    echo "what tidemalloc did:"
    printf '  %-20s %s malloc, %s free, %s realloc\n' "calls" "$(group "${mc:-0}")" "$(group "${fc:-0}")" \
      "$(group "${rc:-0}")"
    printf '  %-20s %s in all\n' "bytes requested" "$(bytes_mib "${br:-0}")"
    printf '  %-20s %s in use at most, %s taken from the OS at most\n' "memory" "$(bytes_mib "${pu:-0}")" \
      "$(bytes_mib "${po:-0}")"
    printf '  %-20s %s\n' "arenas" "${ar:-?}"
    printf '  %-20s %s handed back to the OS while running\n' "returned" "$(bytes_mib "${pg:-0}")"
  else
    echo "what tidemalloc did: (no 'tidemalloc stats:' line on stderr)"
  fi
}

echo "tidemalloc demo: the same programs on glibc's malloc and on tidemalloc"
echo "(LD_PRELOAD=$LIB; one run each, so expect a few % of noise;"
echo " load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "== 1. the daily-rotation service: RSS against the bytes it holds =="
if [ -n "$SHORT" ]; then
  ROTATION_ARGS=(days=3 day_mib=64 load_ms=200 idle_ms=1000)
else
  ROTATION_ARGS=(days=5 day_mib=128 load_ms=600 idle_ms=1000)
fi
"$PY" "$ROOT/tools/rotation_chart.py" --prog "$ROTATION" --lib "$LIB" --out "$WORK" -- "${ROTATION_ARGS[@]}" ||
  FAILED=1
[ -n "$ONLY_ROTATION" ] && exit "$FAILED"
echo
echo "== 2. python3: 200,000-entry dict, sort, JSON round trip (PYTHONMALLOC=malloc) =="
run_job python /dev/null "$PY" "$WORK/job.py"
if [ -n "$SQLITE" ]; then
  echo
  echo "== 3. sqlite3: 400,000 rows in memory, two indexes, group/join/sort queries =="
  run_job sqlite "$WORK/job.sql" "$SQLITE" :memory:
else
  echo
  echo "== 3. sqlite3: skipped (sqlite3 not installed and could not be installed) =="
fi
echo
if [ "$FAILED" = 0 ]; then
  echo "demo: outputs identical, all runs succeeded"
else
  echo "demo: FAILED (an output differed or a run failed; files in $WORK)"
fi
exit "$FAILED"
