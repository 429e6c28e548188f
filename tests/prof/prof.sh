#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Heap profiling (TIDEMALLOC_CONF=prof=1) on a plain program under
# LD_PRELOAD=libtidemalloc.so: tests/prof/sites.c allocates known amounts
# from known functions (site_a ... site_i); its profiles, named by
# `tidemalloc symbolize` (addr2line), must attribute to each function
# what it allocated (the allocation profile) and what it still holds
# (the live heap), within 15 % (4 to 7 standard deviations of the
# sampling at prof_rate=8192).  Also: blocks freed by another thread
# leave the live heap; the profile at exit goes to prof_file with the
# pid; `tidemalloc flame` draws an SVG that python3's xml.etree parses,
# with site_a widest; prof off writes nothing and tide_prof_dump says
# ENOTSUP; debug mode turns profiling off with a warning.
#
# Prints harness-style lines and "# prof/profile: N checks, N failed".
# usage: prof.sh LIBDIR SITES TIDEMALLOC-COMMAND
set -u
LIBDIR=$(cd "${1:-build}" && pwd)
LIB=$LIBDIR/libtidemalloc.so
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
SITES=$(abs "$2")
TOOL=$(abs "$3")
W=$(mktemp -d /tmp/tide-prof.XXXXXX)
trap 'rm -rf "$W"' EXIT
[ -n "${KEEP_W:-}" ] && trap - EXIT

. "$(cd "$(dirname "$0")" && pwd)/../harness.sh" # check, show
MiB=1048576

echo "# prof/profile: $SITES under $LIB"
command -v addr2line >/dev/null || echo "#   no addr2line: the frames cannot be named"

mkdir -p "$W/on" "$W/off" "$W/debug"
(cd "$W/on" && timeout -k 5 120 env TIDEMALLOC_CONF=prof=1,prof_rate=8192,prof_file="$W/on/exit.%p" \
  LD_PRELOAD="$LIB" "$SITES" sites "$W/on/dump") >"$W/on.out" 2>"$W/on.err"
rc=$?
check "sites: exits 0 ($rc)" test "$rc" = 0
check "sites: tide_prof_dump returned 0 twice, calloc's blocks were zero (sampled ones too)" \
  bash -c "grep -qx 'dump1 0' '$W/on.out' && grep -qx 'dump2 0' '$W/on.out' && grep -qx 'calloc zero 1' '$W/on.out'"
check "sites: nothing on stderr" test ! -s "$W/on.err"
[ -s "$W/on.err" ] && show "$W/on.err"

# per-function sums of a profile: "function bytes" lines, by the leaf
# frame (the call of malloc) as `tidemalloc symbolize` names it
sums() {
  "$TOOL" symbolize <"$1" >"$1.sym"
  python3 - "$1.sym" >"$1.sums" <<'EOF'
import re, sys
sums = {}
for line in open(sys.argv[1]):
    if line.startswith('#') or not line.strip():
        continue
    stack, value = line.rstrip('\n').rsplit(' ', 1)
    leaf = stack.split(';')[-1]
    m = re.search(r'\((\S+) at ', leaf)
    name = m.group(1) if m else leaf
    sums[name] = sums.get(name, 0) + int(value)
for k, v in sums.items():
    print(k, v)
EOF
}
val() { awk -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' "$1.sums"; }
# near GOT WANT [PERCENT]: |got - want| <= percent of want
near() { awk -v g="$1" -v w="$2" -v p="${3:-15}" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= w * p / 100) }'; }
mib() { awk -v v="$1" 'BEGIN { printf "%.2f MiB", v / 1048576 }'; }

for f in dump.1.heap dump.1.alloc dump.2.heap dump.2.alloc; do
  [ -s "$W/on/$f" ] && sums "$W/on/$f"
done
check "dump.1.heap and .alloc written, each a '#' line then 'frames bytes' lines" \
  python3 -c "
import re, sys
for f in ['$W/on/dump.1.heap', '$W/on/dump.1.alloc']:
    lines = open(f).read().splitlines()
    assert lines[0].startswith('# tidemalloc') and 'prof_rate 8192' in lines[0], lines[0]
    assert len(lines) > 5
    for l in lines[1:]:
        assert re.fullmatch(r'\S+( [0-9]+)', l), l
"

# the live heap at the first dump, and everything allocated until then
live=$W/on/dump.1.heap
alloc=$W/on/dump.1.alloc
for s in "site_a 64" "site_c 4" "site_e 16" "site_g 16" "site_h 8" "site_i 8" "site_j 8"; do
  set -- $s
  got=$(val "$live" "$1")
  check "live heap: $1 holds $2 MiB +-15% (estimated $(mib "$got"))" near "$got" $(($2 * MiB))
done
got=$(val "$live" site_b)
check "live heap: site_b, whose blocks were all freed, holds nothing (estimated $got bytes)" test "$got" = 0
for s in "site_a 67108864" "site_b 16777200" "site_c 4194304" "site_e 16777216" "site_g 17039360" \
  "site_h 8388608" "site_i 8388608" "site_j 8388608"; do
  set -- $s
  got=$(val "$alloc" "$1")
  check "allocated: $1 allocated $(mib "$2") +-15% (estimated $(mib "$got"))" near "$got" "$2"
done
got=$(val "$live" site_c)
check "live heap: site_c's 1 MiB blocks, always sampled, count exactly 4 MiB ($got)" test "$got" = 4194304

# threads: D allocated in a thread and freed by main, F the other way round
live2=$W/on/dump.2.heap
alloc2=$W/on/dump.2.alloc
for s in site_d site_f; do
  got=$(val "$live2" $s)
  check "threads: $s's blocks, freed by another thread, left the live heap ($got bytes)" test "$got" = 0
done
got=$(val "$alloc2" site_d)
check "threads: the allocation profile has site_d's 16 MiB +-15% ($(mib "$got"))" near "$got" $((16 * MiB))
check "threads: site_d's stack, walked in its own thread, goes on to allocating_thread" \
  bash -c "grep '(site_d at ' '$alloc2.sym' | grep -q '(allocating_thread at '"
got=$(val "$alloc2" site_f)
check "threads: the allocation profile has site_f's 8 MiB +-15% ($(mib "$got"))" near "$got" 8388000
got=$(val "$live2" site_a)
check "threads: the live heap still has site_a's 64 MiB +-15% ($(mib "$got"))" near "$got" $((64 * MiB))

# at exit: to prof_file, %p the pid
pid=$(sed -n 's/.*; pid \([0-9]*\),.*/\1/p' "$W/on/dump.1.heap" | head -n 1)
check "at exit: exit.$pid.heap and exit.$pid.alloc written (prof_file=.../exit.%p)" \
  test -s "$W/on/exit.$pid.heap" -a -s "$W/on/exit.$pid.alloc"
if [ -s "$W/on/exit.$pid.heap" ]; then
  sums "$W/on/exit.$pid.heap"
  got=$(val "$W/on/exit.$pid.heap" site_e)
  check "at exit: the live heap has site_e's 16 MiB +-15% ($(mib "$got"))" near "$got" $((16 * MiB))
fi
check "at exit: no profile under the default name (prof_file was set)" \
  bash -c "! ls '$W/on' | grep -q '^tidemalloc-prof'"

# the flame graph, from the raw profile (the tool names the frames)
"$TOOL" flame "$live" >"$W/flame.svg" 2>"$W/flame.err"
rc=$?
check "flame: exits 0 ($rc)" test "$rc" = 0
check "flame: python3's xml.etree parses the SVG; the widest frame below 'all' is site_a's, 64/124 of the width +-15%" \
  python3 - "$W/flame.svg" <<'EOF'
import sys, xml.etree.ElementTree as ET
ns = '{http://www.w3.org/2000/svg}'
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == ns + 'svg'
frames = []
for g in root.iter(ns + 'g'):
    t, r = g.find(ns + 'title'), g.find(ns + 'rect')
    if t is not None and r is not None:
        frames.append((t.text.split(' ')[0], float(r.get('width')), float(r.get('y'))))
names = {n for n, _, _ in frames}
assert 'all' in names and 'main' in names, names
all_w = max(w for n, w, _ in frames if n == 'all')
sites = sorted((w, n) for n, w, _ in frames if n.startswith('site_'))
assert sites[-1][1] == 'site_a', sites
ratio = sites[-1][0] / all_w
assert abs(ratio - 64 / 124) <= 0.15 * 64 / 124, ratio
texts = [t.text for t in root.iter(ns + 'text')]
assert 'site_a' in texts, 'site_a has no label'
EOF
"$TOOL" symbolize <"$live" | "$TOOL" flame --title "symbolized" >"$W/flame2.svg" 2>/dev/null
check "flame: the same from 'tidemalloc symbolize' output, labelled by function" \
  python3 -c "
import xml.etree.ElementTree as ET
ns = '{http://www.w3.org/2000/svg}'
titles = [g.find(ns + 'title').text for g in ET.parse('$W/flame2.svg').getroot().iter(ns + 'g')]
assert any(t.startswith('site_a ') for t in titles), titles[:5]
"
"$TOOL" flame --raw "$live" >"$W/flame3.svg" 2>/dev/null
check "flame --raw: frames keep their file+offset names" \
  bash -c "grep -q '<title>sites+0x' '$W/flame3.svg' && ! grep -q '<title>site_a ' '$W/flame3.svg'"

# off: nothing written, tide_prof_dump fails
(cd "$W/off" && timeout -k 5 60 env -u TIDEMALLOC_CONF LD_PRELOAD="$LIB" "$SITES" off) >"$W/off.out" 2>&1
rc=$?
check "off: tide_prof_dump(NULL) returns -1 with errno ENOTSUP ($(head -n 1 "$W/off.out"))" \
  bash -c "test $rc = 0 && grep -Eqx 'dump -1 (ENOTSUP|EOPNOTSUPP)' '$W/off.out'"
check "off: no profile written" test -z "$(ls -A "$W/off")"

# every block a sample: freed ones are kept for the next samples, and a
# second free of one is caught
mkdir -p "$W/reuse"
(cd "$W/reuse" && timeout -k 5 60 env TIDEMALLOC_CONF=prof=1,prof_rate=1 LD_PRELOAD="$LIB" "$SITES" reuse "$W/reuse/r") \
  >"$W/reuse.out" 2>&1
rc=$?
check "prof_rate=1: 200 rounds of 64 blocks, every one a sample, freed and reused, keep their contents apart ($rc)" \
  test "$rc" = 0
check "prof_rate=1: 12,800 samples allocated (and libc's few), at most 2 still live" \
  python3 -c "
import re
n = lambda f: int(re.search(r', ([0-9]+) samples', open(f).readline()).group(1))
assert 12800 <= n('$W/reuse/r.alloc') <= 12810 and n('$W/reuse/r.heap') <= 2
"
# samples below a lowered mmap threshold are arena chunks at page offset
# 0 or 16: freed, each leaves the live heap (at offset 16 they were once
# cached past the profiler)
(cd "$W/reuse" && timeout -k 5 60 env TIDEMALLOC_CONF=prof=1,prof_rate=8192,mmap_threshold=8192,trim_threshold=1000000000 \
  LD_PRELOAD="$LIB" "$SITES" medium "$W/reuse/m") >"$W/medium.out" 2>&1
rc=$?
check "mmap_threshold=8192: 8,000 blocks of 10 KiB cut from the arena, all freed: no sample of the program's stays in the live heap ($rc)" \
  python3 -c "
import re
n = lambda f: int(re.search(r', ([0-9]+) samples', open(f).readline()).group(1))
live = [l for l in open('$W/reuse/m.heap') if not l.startswith('#') and 'sites+' in l]
assert $rc == 0 and n('$W/reuse/m.alloc') >= 7000 and not live, (n('$W/reuse/m.alloc'), live)
"
# freed samples of chunk sizes between the classes: no later request
# takes them, so they are not kept (they stayed, 220 KiB, 8 x 55 sizes)
grew=$(cd "$W/reuse" && timeout -k 5 60 env TIDEMALLOC_CONF=prof=1,prof_rate=1 LD_PRELOAD="$LIB" "$SITES" pool \
  2>/dev/null | sed -n 's/^pool grew //p')
check "prof_rate=1: aligned samples between the size classes, freed, are not kept (in use grew by ${grew:-?} B, under 64 KiB)" \
  test -n "$grew" -a "${grew:-999999}" -lt 65536
{ (cd "$W/reuse" && timeout -k 5 60 env TIDEMALLOC_CONF=prof=1,prof_rate=1 LD_PRELOAD="$LIB" "$SITES" double) \
  >"$W/double.out" 2>&1; } 2>/dev/null
rc=$?
check "prof_rate=1: a sample freed twice aborts ($rc): \"tidemalloc: free(): double free detected\"" \
  bash -c "test $rc = 134 && grep -q '^tidemalloc: free(): double free detected' '$W/double.out'"

# debug mode: the profiler stays off, and says so
(cd "$W/debug" && timeout -k 5 60 env TIDEMALLOC_CONF=debug=1,prof=1 LD_PRELOAD="$LIB" "$SITES" off) >"$W/debug.out" 2>&1
rc=$?
check "debug=1,prof=1: warns 'heap profiling is off in debug mode', writes no profile ($rc)" \
  bash -c "test $rc = 0 && grep -q 'prof: heap profiling is off in debug mode' '$W/debug.out' && ! ls '$W/debug' | grep -q prof"

echo "# prof/profile: $checks checks, $failed failed"
[ "$failed" = 0 ]
