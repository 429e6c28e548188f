#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tidemalloc view (issue 15): heap dumps drawn to scale.
#
#   - the fixtures (hand-written to docs/json.md, schema 1): small.json has
#     every state, bins, a run, mmapped chunks; future.json fields and a
#     state this viewer does not know, escapes, CRLF; stats.json a
#     statistics document (no chunks).  Each SVG must parse, have one
#     entry cell per chunk entry with its state's colour and hover text,
#     boxes exactly to scale at their addresses, run outlines, the legend.
#   - errors: bad JSON (with its line and column), another schema, ...
#   - a real browser: headless Chromium (installed by chromium.sh when
#     missing; without it these checks FAIL) renders the HTML and the SVG
#     to PNG; the PNG has the size asked for and, at the middle of every
#     box the viewer says it drew (--layout), the box's colour.
#   - tidemalloc run --view: a stand-in command that writes the dump where
#     stats_file says, the command's status passed on, temporaries removed.
#
# usage: view.sh BUILD [LIBDIR]
set -u
cd "$(dirname "$0")/../.."
. tests/harness.sh
BUILD=${1:-build}
LIBDIR=${2:-$BUILD}
TM=$BUILD/tidemalloc
F=tests/view
W=$(mktemp -d /tmp/tide-view.XXXXXX)
trap 'rm -rf "$W"' EXIT
ck() { python3 tests/view/check.py "$@"; }
rc_is() { [ "$1" = "$2" ]; }
has() { grep -qF -- "$2" "$1"; }

# ---- the fixtures, as SVG ----
for fx in small future stats; do
  "$TM" view --layout "$W/$fx.layout" "$F/$fx.json" >"$W/$fx.svg" 2>"$W/$fx.err"
  rc=$?
  check "view $fx.json: exit 0 and no message" bash -c "[ $rc = 0 ] && [ ! -s '$W/$fx.err' ]" || show "$W/$fx.err"
  check "  one entry cell per chunk entry, its state's colour and hover text" \
    ck entries "$W/$fx.svg" "$F/$fx.json"
  check "  every entry to scale: one power-of-two scale per region, exact widths, at its address" \
    ck scale "$W/$fx.svg" "$F/$fx.json" "$W/$fx.layout"
done
check "small.json: each run outlined over its run_bytes" ck runs "$W/small.svg" "$F/small.json" "$W/small.layout"
check "small.json: every mapping drawn, in the used colour, at one scale" \
  ck mmapped "$W/small.svg" "$F/small.json" "$W/small.layout"
check "the legend has every colour, named" ck legend "$W/small.svg"
check "small.json: totals (exact bytes on the cards), bins, fast bins, remote stacks, this thread's cache" \
  ck text "$W/small.svg" "live: 1553104 B" "cached: 4560 B" "in use: 1557664 B" "from the OS: 1843200 B" \
  "resident: 3145728 B" "unsorted 1" ">= 32" "large 72" "20480-24575" "fast bins: 3 chunks, 192 B" \
  "remote stacks: 2 chunks, 192 B" "this thread's cache: 35 chunks, 1680 B" "1 px = 64 B" "48 B x35"
check "small.json: hover text of a run's header and of a block in a run" \
  ck text "$W/small.svg" "run header: a run of 64.0 KiB, blocks of 48 B, room for 1339" "in a run"
check "small.json: every thread's caches, heaps, a bin's smallest and largest chunk, mapping sizes, unlisted" \
  ck text "$W/small.svg" "all threads' caches: 41 blocks, 4176 B" "arena 1, 1 thread, 1 heap" \
  "unsorted bin 1: chunks of >= 32 B; 1 chunks, 41024 B; in it 41024-41024 B" "in a mapping of 266240 B" \
  "3 cached chunks did not fit the dump's table"
check "future.json: unknown fields ignored, escapes decoded, an unknown state named" \
  ck text "$W/future.svg" "tidemalloc 0.1.0+future é😀 heap of pid 77" 'state "quarantine": not known' \
  "heap 0x7f31b4000000 .. 0x7f31b4010000, 64.0 KiB, 0 entries"
check "future.json: the broken header marked" bash -c "grep -c 'class=\"mark\" ' '$W/future.svg' | grep -qx 1"
check "stats.json: drawn, and says it has no chunks" ck text "$W/stats.svg" '"stats" document: no regions'

# the checks themselves must catch a wrong picture
sed 's/class="entry" \(.*\)fill="#f28e2b"/class="entry" \1fill="#f28e2c"/' "$W/small.svg" >"$W/wrong.svg"
check "(a cell given another colour is caught)" bash -c "! python3 tests/view/check.py entries '$W/wrong.svg' '$F/small.json' >/dev/null"
awk '$1 == "seg" && $4 == 5 { $8 = $8 + 2 } { print }' "$W/small.layout" >"$W/wrong.layout"
check "(a box 2 px too wide is caught)" \
  bash -c "! python3 tests/view/check.py scale '$W/small.svg' '$F/small.json' '$W/wrong.layout' >/dev/null"

# other widths and rows
"$TM" view --width 500 --rows 40 --layout "$W/narrow.layout" "$F/small.json" >"$W/narrow.svg"
check "--width 500 --rows 40: still to scale (finer, in more rows)" \
  ck scale "$W/narrow.svg" "$F/small.json" "$W/narrow.layout" 500 40
check "  1 px = 16 B now" ck text "$W/narrow.svg" "1 px = 16 B, a row = 8000 B"

# ---- HTML, and how the format is chosen ----
"$TM" view --html "$F/small.json" >"$W/small.html"
check "--html: an HTML page with the SVG inline and the hover script" ck html "$W/small.html"
check "  the same entries and colours" ck entries "$W/small.html" "$F/small.json"
"$TM" view -o "$W/named.html" "$F/small.json"
check "-o x.html writes HTML" cmp -s "$W/named.html" "$W/small.html"
"$TM" view -o "$W/named.svg" "$F/small.json"
check "-o x.svg writes SVG, the same as to stdout" cmp -s "$W/named.svg" "$W/small.svg"
"$TM" view --svg -o "$W/forced.html" "$F/small.json"
check "--svg -o x.html: the flag wins" cmp -s "$W/forced.html" "$W/small.svg"
"$TM" view - <"$F/small.json" >"$W/stdin.svg"
check "'-' reads stdin" cmp -s "$W/stdin.svg" "$W/small.svg"

# ---- errors ----
printf '{"tidemalloc": {"schema": 1,\n  "kind": "heap"\n  "pid": 1}}\n' >"$W/bad.json"
"$TM" view "$W/bad.json" >/dev/null 2>"$W/bad.err"
rc=$?
check "bad JSON: exit 1, the line and column said" \
  bash -c "[ $rc = 1 ] && grep -qF 'line 3, column 3: '\"',' or '}' expected\" '$W/bad.err'" || show "$W/bad.err"
printf '{"tidemalloc": {"schema": 2, "kind": "heap"}, "arenas": []}' >"$W/schema2.json"
"$TM" view "$W/schema2.json" >/dev/null 2>"$W/schema2.err"
rc=$?
check "schema 2: refused (exit 1, says so)" bash -c "[ $rc = 1 ] && grep -q 'schema 2: this viewer reads schema 1' '$W/schema2.err'"
printf '[1, 2, 3]' >"$W/other.json"
"$TM" view "$W/other.json" >/dev/null 2>"$W/other.err"
rc=$?
check "not a tidemalloc document: exit 1" bash -c "[ $rc = 1 ] && grep -q 'not a tidemalloc dump' '$W/other.err'"
sed 's/"addr": "0x55d463760000", //' "$F/small.json" >"$W/noaddr.json"
"$TM" view "$W/noaddr.json" >/dev/null 2>"$W/noaddr.err"
rc=$?
check "an entry without addr: exit 1, which one said" \
  bash -c "[ $rc = 1 ] && grep -qF 'arenas[0].regions[0].chunks[0]: needs \"addr\"' '$W/noaddr.err'"
for doc in $'{"a": "\x01"}' '{"a": "\x"}' '{"a": 01}' '{"a": "\ud800"}' '{"a": [1,]}' '{"a": 1} x' '"open' \
  "$(printf '%.0s[' {1..70})"; do
  printf '%s' "$doc" >"$W/j.json"
  "$TM" view "$W/j.json" >/dev/null 2>"$W/j.err"
  rc=$?
  check "not JSON, refused: $(printf '%.24s' "$doc" | cat -v)" bash -c "[ $rc = 1 ] && grep -q 'not JSON: line 1' '$W/j.err'" ||
    show "$W/j.err"
done
"$TM" view "$W/missing.json" >/dev/null 2>&1
check "a missing file: exit 1" rc_is $? 1
"$TM" view >/dev/null 2>&1
check "no file: usage, exit 2" rc_is $? 2
"$TM" view --bogus "$F/small.json" >/dev/null 2>&1
check "an unknown option: exit 2" rc_is $? 2
"$TM" view --width 10 "$F/small.json" >/dev/null 2>&1
check "--width 10: out of range, exit 2" rc_is $? 2

# ---- a real browser ----
CHROMIUM=$(bash tests/view/chromium.sh 2>"$W/chromium.err")
check "chromium is there (tests/view/chromium.sh installs it)" test -n "$CHROMIUM" || show "$W/chromium.err"
# shot FILE PNG WIDTH HEIGHT: FILE rendered by headless Chromium
shot() {
  [ -n "$CHROMIUM" ] || return 1
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --force-color-profile=srgb --user-data-dir="$W/chromium-profile" --screenshot="$2" --window-size="$3,$4" \
    "file://$(readlink -f "$1")" >"$W/shot.log" 2>&1
  [ -s "$2" ]
}
"$TM" view --html --layout "$W/small-html.layout" "$F/small.json" >"$W/small.html"
shot "$W/small.html" "$W/small-html.png" 1400 1100
check "chromium renders small.html to a PNG" test -s "$W/small-html.png" || show "$W/shot.log"
check "  1400 x 1100, as asked" ck png-size "$W/small-html.png" 1400 1100
check "  every box in view has its colour: to-scale boxes, entry cells, mappings, legend" \
  ck pixels "$W/small-html.png" "$W/small-html.layout" seg cell mmap legend
check "  the 64 KiB used chunk of arena 0 in the used colour" \
  ck pixel "$W/small-html.png" "$W/small-html.layout" "seg 0 0 5 " used
check "  the 20 KiB free chunk in the large bin, resident" \
  ck pixel "$W/small-html.png" "$W/small-html.layout" "seg 0 0 8 " free-large
check "  the 1 MiB mapping in the used colour" ck pixel "$W/small-html.png" "$W/small-html.layout" "mmap 0 " used
shot "$W/small.svg" "$W/small-svg.png" 1000 700
check "chromium renders small.svg itself, 1000 x 700" ck png-size "$W/small-svg.png" 1000 700
check "  the boxes in view in their colours" ck pixels "$W/small-svg.png" "$W/small.layout" seg cell legend

# ---- tidemalloc run --view, with a stand-in command ----
# It writes the fixture where stats_file says (for its own pid), having
# first exec'd itself without LD_PRELOAD (same pid, so the library loaded
# into the first image writes nothing over it); a child of it writes a dump
# of its own, which must not be drawn; it exits with status $2.
cat >"$W/fake.sh" <<'EOF'
if [ -n "${LD_PRELOAD:-}" ]; then
  printf '%s\n' "$LD_PRELOAD" >"$FAKE_SEEN"
  exec env -u LD_PRELOAD sh "$0" "$@"
fi
path=$(printf '%s\n' "$TIDEMALLOC_CONF" | tr ',' '\n' | sed -n 's/^stats_file=//p' | tail -n 1)
cp "$1" "$(printf '%s' "$path" | sed "s/%p/$$/")"
sh -c 'cp "$1" "$(printf "%s" "$2" | sed "s/%p/$$/")"' child "$1" "$path"
exit "$2"
EOF
mkdir -p "$W/tmp"
TMPDIR=$W/tmp FAKE_SEEN=$W/seen "$TM" run --view "$W/run.html" -- sh "$W/fake.sh" "$F/small.json" 3 \
  >"$W/run.out" 2>"$W/run.err"
rc=$?
check "run --view: the command's exit status (3) passed on" rc_is $rc 3 || show "$W/run.err"
check "  the command ran with the library preloaded" grep -q "libtidemalloc.so" "$W/seen"
check "  out.html: the command's own dump drawn (HTML, every entry)" \
  bash -c "python3 tests/view/check.py html '$W/run.html' && python3 tests/view/check.py entries '$W/run.html' '$F/small.json'"
check "  the child's dump not drawn, and said so" has "$W/run.err" "the dumps of 1 other processes it started are not drawn"
check "  the temporary directory removed" bash -c "[ -z \"\$(ls -A '$W/tmp')\" ]"
TMPDIR=$W/tmp "$TM" run --view "$W/none.svg" -- sh -c 'kill -9 $$' 2>"$W/none.err"
rc=$?
check "run --view of a command killed before it could dump: 128 + 9, says why, no picture" \
  bash -c "[ $rc = 137 ] && grep -q 'wrote no heap dump (a signal ended it)' '$W/none.err' && [ ! -e '$W/none.svg' ]" ||
  show "$W/none.err"
check "  the temporary directory removed" bash -c "[ -z \"\$(ls -A '$W/tmp')\" ]"
"$TM" run --view "$W/x.svg" -- "$W/no-such-command" 2>/dev/null
check "run --view of a missing command: 127" rc_is $? 127

# ---- real heaps: the scripted pattern (pattern.c), with and without a
# second thread, and python3 ----
P=$BUILD/tests/view
# pixel_of JSON LAYOUT PNG WHAT...: the colour at the box `check.py find` names
pixel_of() {
  local js=$1 layout=$2 png=$3 found
  shift 3
  found=$(python3 tests/view/check.py find "$js" "$@") || return 1
  ck pixel "$png" "$layout" "${found%%$'\t'*}" "${found##*$'\t'}"
}
TIDEMALLOC_CONF=tcache_max=1032 "$P/pattern-std" "$W/pattern.json" 2>"$W/pattern.err"
check "pattern-std: tide_heap_dump_json wrote a JSON document" \
  bash -c "python3 -m json.tool '$W/pattern.json' >/dev/null" || show "$W/pattern.err"
check "  with the scripted blocks: 1 MiB mapped, 40 KiB free in a bin, 48 B chunks cached (list = regions)" \
  ck known "$W/pattern.json"
"$TM" view --html --layout "$W/pattern.layout" "$W/pattern.json" >"$W/pattern.html" 2>"$W/pattern.err"
check "view of it (HTML): exit 0" rc_is $? 0 || show "$W/pattern.err"
check "  one entry cell per chunk entry, colour and hover text" ck entries "$W/pattern.html" "$W/pattern.json"
check "  to scale" ck scale "$W/pattern.html" "$W/pattern.json" "$W/pattern.layout"
check "  runs outlined" ck runs "$W/pattern.html" "$W/pattern.json" "$W/pattern.layout"
check "  the mapping drawn" ck mmapped "$W/pattern.html" "$W/pattern.json" "$W/pattern.layout"
height=$(awk '$1 == "svg" { print $3 }' "$W/pattern.layout")
shot "$W/pattern.html" "$W/pattern.png" 1400 "$height"
check "chromium renders it whole: 1400 x $height" ck png-size "$W/pattern.png" 1400 "$height"
check "  every box in its colour" ck pixels "$W/pattern.png" "$W/pattern.layout" seg cell mmap legend
check "  the 1 MiB block: used, in the mmapped strip" pixel_of "$W/pattern.json" "$W/pattern.layout" \
  "$W/pattern.png" mmap 1048576
check "  the freed 40 KiB block: its bin's colour, to scale" pixel_of "$W/pattern.json" "$W/pattern.layout" \
  "$W/pattern.png" seg free 40976
check "  the cached 48 B blocks: this thread's cache, in the entries strip" pixel_of "$W/pattern.json" \
  "$W/pattern.layout" "$W/pattern.png" cell tcache 48

TIDEMALLOC_CONF=tcache_max=1032,arena_share=0 "$P/pattern-std" "$W/threads.json" threads 2>"$W/threads.err"
check "pattern-std threads: two arenas, another thread's cache, blocks given back to their run" \
  python3 -c "
import json, sys
d = json.load(open('$W/threads.json'))
states = {c['state'] for a in d['arenas'] for r in a['regions'] for c in r['chunks']}
sys.exit(0 if len(d['arenas']) >= 2 and {'tcache-other', 'run-free', 'tcache'} <= states else 1)" ||
  show "$W/threads.err"
"$TM" view --layout "$W/threads.layout" "$W/threads.json" >"$W/threads.svg"
check "  drawn: every entry, in its colour, to scale, runs outlined" bash -c "
  python3 tests/view/check.py entries '$W/threads.svg' '$W/threads.json' &&
  python3 tests/view/check.py scale '$W/threads.svg' '$W/threads.json' '$W/threads.layout' &&
  python3 tests/view/check.py runs '$W/threads.svg' '$W/threads.json' '$W/threads.layout'"

# a real program's heap: python3 under the library, dumped at exit (the
# interpreter itself: `python3` may be a wrapper script that starts others)
PY=$(python3 -c 'import sys; print(sys.executable)')
TIDEMALLOC_CONF=stats_file=$W/py.%p.json LD_PRELOAD=$(readlink -f "$LIBDIR/libtidemalloc.so") "$PY" -c '
d = {str(i) * 3: [i] * (i % 50) for i in range(60000)}
for k in list(d)[::2]:
    del d[k]
big = bytearray(3 << 20)
' 2>"$W/py.err"
py=$(ls "$W"/py.*.json 2>/dev/null | head -n 1)
check "python3 under LD_PRELOAD with stats_file: one dump, at exit" \
  bash -c "[ -n '$py' ] && [ \$(ls '$W'/py.*.json | wc -l) = 1 ]" || show "$W/py.err"
"$TM" view --layout "$W/py.layout" "${py:-/nonexistent}" >"$W/py.svg" 2>"$W/py.err"
check "  drawn ($(grep -c '^cell' "$W/py.layout" 2>/dev/null) entries): every entry, in its colour, to scale, mappings" bash -c "
  python3 tests/view/check.py entries '$W/py.svg' '$py' &&
  python3 tests/view/check.py scale '$W/py.svg' '$py' '$W/py.layout' &&
  python3 tests/view/check.py mmapped '$W/py.svg' '$py' '$W/py.layout'" || show "$W/py.err"

# a running process: tidemalloc stats PID (signal=N) piped into view
TIDEMALLOC_CONF=signal=12,stats_file=$W/live.%p.json LD_PRELOAD=$(readlink -f "$LIBDIR/libtidemalloc.so") "$PY" -c '
import sys, time
x = [bytes(100 + i % 300) for i in range(5000)]
print("ready", flush=True)
time.sleep(60)
' >"$W/live.out" 2>&1 &
live=$!
for _ in $(seq 100); do grep -q ready "$W/live.out" && break; sleep 0.1; done
"$TM" stats "$live" 2>"$W/live.err" | "$TM" view --html --layout "$W/live.layout" - >"$W/live.html" 2>>"$W/live.err"
rc=$?
kill "$live" 2>/dev/null
wait "$live" 2>/dev/null
live_json=$W/live.$live.json
check "tidemalloc stats PID | tidemalloc view --html -: a running process drawn" \
  bash -c "[ $rc = 0 ] && python3 tests/view/check.py html '$W/live.html' && [ -s '$live_json' ] &&
    python3 tests/view/check.py entries '$W/live.html' '$live_json' &&
    python3 tests/view/check.py scale '$W/live.html' '$live_json' '$W/live.layout'" || show "$W/live.err"

# run --view of the pattern: the library writes the dump at exit
TMPDIR=$W/tmp "$TM" run --conf tcache_max=1032 --view "$W/rv.html" -- "$P/pattern-plain" 2>"$W/rv.err"
check "run --view of pattern-plain: exit 0, a page" bash -c "[ $? = 0 ] && python3 tests/view/check.py html '$W/rv.html'" ||
  show "$W/rv.err"
check "  the scripted blocks in it: the 1 MiB mapping, the free 40 KiB chunk, cached 48 B chunks" \
  ck text "$W/rv.html" "1052672 B (1.0 MiB)" "40976 B"$'\n'"free in" "48 B x " "this thread's cache"
check "  its temporary directory removed" bash -c "[ -z \"\$(ls -A '$W/tmp')\" ]"

echo "# view: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
