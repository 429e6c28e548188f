#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Statistics you can read (issue 15): the JSON statistics and heap dump,
# malloc_info's XML, the live-bytes counter, the dump at exit
# (stats_file) and on demand (signal, `tidemalloc stats PID`).
#
#   stats.sh SCRIPTED TIDEMALLOC
#     SCRIPTED    tests/stats/scripted-std (built by tests.mk: linked with
#                 the drop-in archive, so it takes TIDEMALLOC_CONF itself)
#     TIDEMALLOC  the tidemalloc command
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
SCRIPTED=$1 TOOL=$2
CHECK="python3 tests/stats/check.py"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
bash tests/stats/need.sh >"$W/need.log" 2>&1 || { echo "  FAIL installing xmllint"; show "$W/need.log"; }

echo "# a scripted heap: JSON, XML and counters agree"
mkdir -p "$W/d"
check "scripted heap dumped" "$SCRIPTED" dump "$W/d"
for f in heap.json stats.json facts.json; do
  check "$f parses (python3 -m json.tool)" python3 -m json.tool "$W/d/$f" /dev/null
done
check "info.xml parses (xmllint)" xmllint --noout "$W/d/info.xml"
for c in schema tiling known_chunks walk_vs_lists inuse_walk xml_shape xml_figures totals; do
  check "$c" $CHECK $c "$W/d"
done

echo "# other threads' caches count as cached, not live"
mkdir -p "$W/t"
check "4 threads with cached blocks" "$SCRIPTED" threads "$W/t"
check "threads" $CHECK threads "$W/t"

echo "# stats_file: the heap dump at exit"
mkdir -p "$W/x"
# With stderr closed, as coreutils programs do at exit: the file still comes.
check "program exits" env TIDEMALLOC_CONF="stats_file=$W/x/s.%p.json" \
  sh -c 'echo $$ >"$0/pid"; exec "$1" idle 0 >/dev/null 2>&-' "$W/x" "$SCRIPTED"
check "exitfile" $CHECK exitfile "$W/x"
check "no .tmp left behind" test -z "$(ls "$W/x" | grep '\.tmp$')"

echo "# on demand: signal=12 and tidemalloc stats PID"
for mode in "idle:background thread" "busy:no background thread, the next slow path"; do
  m=${mode%%:*}
  conf="signal=12,stats_file=$W/o/od.%p.json"
  [ "$m" = busy ] && conf="$conf,background_thread=0"
  rm -rf "$W/o"
  mkdir -p "$W/o"
  # (the library is linked in: the settings come from the environment)
  TIDEMALLOC_CONF=$conf "$SCRIPTED" "$m" 4000 >"$W/o/pid" 2>"$W/o/err" &
  pid=$!
  for _ in $(seq 100); do [ -s "$W/o/pid" ] && break; sleep 0.02; done
  check "$m ($mode): first answer" sh -c "'$TOOL' stats --timeout 3 $pid >'$W/o/answer1.json'"
  check "$m: second answer" sh -c "'$TOOL' stats --timeout 3 $pid >'$W/o/answer2.json'"
  check "$m: both are its heap dump" $CHECK ondemand "$W/o"
  check "$m: the process keeps running" kill -0 $pid
  kill $pid 2>/dev/null
  wait $pid 2>/dev/null
done
check "stats refuses a process without the signal" sh -c "! '$TOOL' stats $$ 2>'$W/no.err'"
check "... and says how to start it" grep -q "signal=12" "$W/no.err"
# A process with the setting in its environment that does not catch the
# signal (no tidemalloc in it; or the setting refused) is not sent it.
env TIDEMALLOC_CONF=signal=12 sleep 5 &
pid=$!
sleep 0.2
check "stats does not signal a process without tidemalloc" sh -c "! '$TOOL' stats --timeout 1 $pid 2>'$W/nt.err'"
check "... which keeps running" kill -0 $pid
kill $pid 2>/dev/null
wait $pid 2>/dev/null
TIDEMALLOC_CONF="signal=9,stats_file=$W/n9.json" "$SCRIPTED" idle 5000 >/dev/null 2>&1 &
pid=$!
sleep 0.3
check "stats does not send a signal the library refused (9)" sh -c "! '$TOOL' stats --timeout 1 $pid 2>/dev/null"
check "... and the process keeps running" kill -0 $pid
kill $pid 2>/dev/null
wait $pid 2>/dev/null

echo "# requests that overlap: every file published is whole"
mkdir -p "$W/s"
# (it runs out by itself, after the signals: a process killed while it
# writes a dump leaves the temporary file)
TIDEMALLOC_CONF="signal=12,stats_file=$W/s/od.json" "$SCRIPTED" storm 9000 >"$W/s/pid" 2>"$W/s/err" &
pid=$!
for _ in $(seq 200); do [ -s "$W/s/pid" ] && break; sleep 0.05; done
for i in $(seq 40); do
  kill -12 $pid
  sleep 0.002
  kill -12 $pid
  sleep 0.15
  cp "$W/s/od.json" "$W/s/copy.$i" 2>/dev/null
done
wait $pid 2>/dev/null
check "40 pairs of signals: every copy of the file parses" python3 -c '
import glob, json, sys
files = sorted(glob.glob(sys.argv[1] + "/copy.*"))
bad = []
for f in files:
    try:
        json.load(open(f))
    except ValueError as e:
        bad.append(f"{f}: {e}")
print("  why: %d copies, %d bad %s" % (len(files), len(bad), bad[:2]))
sys.exit(1 if bad or len(files) < 30 else 0)' "$W/s"
check "the file is the owner's alone (mode 0600)" test "$(stat -c %a "$W/s/od.json")" = 600
check "no temporary file left" test -z "$(ls "$W/s" | grep '\.tmp$')"

echo "# bad settings warn and keep the default"
out=$(env TIDEMALLOC_CONF=signal=abc "$SCRIPTED" idle 0 2>&1 >/dev/null)
check "signal=abc: one warning" test "$out" = "tidemalloc: warning: signal: not a number; using 0"
out=$(env TIDEMALLOC_CONF=signal=9 "$SCRIPTED" idle 0 2>&1 >/dev/null)
check "signal=9 (cannot be caught): one warning" test "$out" = "tidemalloc: warning: signal: cannot be caught; using 0"
long=$(printf 'x%.0s' $(seq 300))
out=$(env TIDEMALLOC_CONF="stats_file=/tmp/$long" "$SCRIPTED" idle 0 2>&1 >/dev/null)
check "stats_file of 300 bytes: one warning" test "$out" = "tidemalloc: warning: stats_file: too long; using -"
echo "# stats: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
