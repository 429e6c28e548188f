#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Debug mode (TIDEMALLOC_CONF=debug=1) on a plain program under
# LD_PRELOAD=libtidemalloc.so: tests/debug/victim.c makes one known
# mistake per mode at a line marked SITE:<name>; each must be reported
# with that line once `tidemalloc symbolize` (addr2line) names the frames.
# Also: a correct run is quiet about its own blocks; debug=2 writes the
# leak report as JSON that python3 parses.
#
# Prints harness-style lines and "# debug/mode: N checks, N failed".
# usage: debug.sh LIBDIR VICTIM TIDEMALLOC-COMMAND
set -u
LIBDIR=$(cd "${1:-build}" && pwd)
LIB=$LIBDIR/libtidemalloc.so
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
VICTIM=$(abs "$2")
TOOL=$(abs "$3")
SRC=$(cd "$(dirname "$0")" && pwd)/victim.c
W=$(mktemp -d /tmp/tide-debug.XXXXXX)
trap 'rm -rf "$W"' EXIT
[ -n "${KEEP_W:-}" ] && trap - EXIT

. "$(cd "$(dirname "$0")" && pwd)/../harness.sh" # check, show
line_of() { grep -n "SITE:$1\b" "$SRC" | head -n 1 | cut -d: -f1; }
# run MODE [CONF]: the victim in debug mode; stderr symbolized in $W/MODE.txt
run() {
  { (cd "$W" && timeout -k 5 60 env TIDEMALLOC_CONF="${2:-debug=1}" LD_PRELOAD="$LIB" "$VICTIM" "$1") \
    >"$W/$1.out" 2>"$W/$1.err"; } 2>/dev/null # (no "Aborted" from bash)
  echo $? >"$W/$1.rc"
  "$TOOL" symbolize <"$W/$1.err" >"$W/$1.txt"
}
rc() { cat "$W/$1.rc"; }
has() { grep -q -- "$2" "$W/$1.txt"; }

echo "# debug/mode: $VICTIM under $LIB"
command -v addr2line >/dev/null || echo "#   no addr2line: file and line cannot be checked"

run ok
check "ok: correct use of every entry point exits 0 ($(rc ok))" test "$(rc ok)" = 0
check "ok: the report at exit names no site in the program" \
  bash -c "! grep 'victim.c' '$W/ok.txt' && grep -q 'tidemalloc: leak report' '$W/ok.txt'"

run leak
small=$(line_of leak_small)
big=$(line_of leak_big)
check "leak: exits 0 ($(rc leak))" test "$(rc leak)" = 0
check "leak: 3000 bytes in 3 blocks at victim.c:$small" \
  bash -c "grep '3000 bytes in 3 blocks' '$W/leak.txt' | grep -q 'victim.c:$small'"
check "leak: 5000 bytes in 1 blocks at victim.c:$big, listed first" \
  bash -c "grep -A1 'largest first' '$W/leak.txt' | tail -n 1 | grep '5000 bytes in 1 blocks' | grep -q 'victim.c:$big'"
check "leak: the freed block is not reported" bash -c "! grep -q ' 77 bytes' '$W/leak.txt'"

run overflow
check "overflow: aborts ($(rc overflow))" test "$(rc overflow)" = 134
check "overflow: \"tidemalloc: free(): heap buffer overflow\", byte 100 of a 100-byte block" \
  bash -c "head -n 1 '$W/overflow.txt' | grep -q '^tidemalloc: free(): heap buffer overflow.*byte 100 of a 100-byte block'"
check "overflow: allocated at victim.c:$(line_of overflow)" \
  bash -c "grep 'allocated at' '$W/overflow.txt' | grep -q 'victim.c:$(line_of overflow)'"

run uaf
check "write after free: aborts ($(rc uaf))" test "$(rc uaf)" = 134
check "write after free: \"tidemalloc: free(): write after free\", byte 10 of a 64-byte block" \
  bash -c "head -n 1 '$W/uaf.txt' | grep -q '^tidemalloc: free(): write after free.*byte 10 of a 64-byte block'"
check "write after free: allocated at victim.c:$(line_of uaf), and where it was freed" \
  bash -c "grep 'allocated at' '$W/uaf.txt' | grep -q 'victim.c:$(line_of uaf)' && grep -q 'freed at: .*victim.c' '$W/uaf.txt'"

run double
check "double free: aborts ($(rc double))" test "$(rc double)" = 134
check "double free: \"tidemalloc: free(): double free\", allocated at victim.c:$(line_of double)" \
  bash -c "head -n 1 '$W/double.txt' | grep -q '^tidemalloc: free(): double free' && grep 'allocated at' '$W/double.txt' | grep -q 'victim.c:$(line_of double)'"

run deep
check "deep: a block allocated 1 MB down the stack keeps its call stack (deep_alloc <- recurse)" \
  bash -c "grep '7777 bytes in 1 blocks' '$W/deep.txt' | grep -q 'victim.c:$(line_of deep)).* <- .*recurse'"

run sized
check "sized: free_sized(p, 120) of a 100-byte block aborts ($(rc sized)): \"tidemalloc: free_sized(): size larger\"" \
  bash -c "test '$(rc sized)' = 134 && head -n 1 '$W/sized.txt' | grep -q '^tidemalloc: free_sized(): size larger than the block'"

run leak debug=2
json=$(ls "$W"/tidemalloc-leaks.*.json 2>/dev/null | head -n 1)
check "debug=2: the leak report as JSON (${json##*/})" test -n "$json"
check "debug=2: python3 -m json.tool parses it" bash -c "python3 -m json.tool '$json' >/dev/null"
check "debug=2: 8000 bytes or more live, a site of 3000 bytes in 3 blocks" \
  python3 -c "
import json, sys
d = json.load(open('$json'))
ok = d['live_bytes'] >= 8000 and any(s['bytes'] == 3000 and s['blocks'] == 3 for s in d['sites'])
sys.exit(0 if ok else 1)"

echo "# debug/mode: $checks checks, $failed failed"
[ "$failed" = 0 ]
