#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The rotation part of `make demo` (tools/demo.sh --short --rotation-only:
# 3 days of 64 MiB), into a scratch directory, and what it must show:
#   - it runs, and prints the terminal chart with its legend and axes;
#   - build/demo/rotation.svg's stand-in parses as XML and holds three
#     polylines (glibc RSS, tidemalloc RSS, live bytes) with every point
#     inside the plot box;
#   - the verdict's figures are the runs' own (the programs' last day lines);
#   - both runs hold the same live bytes at each day's end, and the sampler
#     saw the RSS the program itself read at its end;
#   - tidemalloc's RSS at the end is below glibc's (by 10 % or more): the
#     product's promise.
#
# Prints harness-style lines and "# preload/demo: N checks, N failed".
# usage: demo.sh LIBDIR
set -u
LIBDIR=$(cd "${1:-build}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/tide-demo.XXXXXX)
trap 'rm -rf "$W"' EXIT

. "$ROOT/tests/harness.sh" # check, show

echo "# preload/demo: $LIBDIR/libtidemalloc.so, files in $W"
DEMO_LIB=$LIBDIR/libtidemalloc.so DEMO_WORK=$W bash "$ROOT/tools/demo.sh" --short --rotation-only >"$W/demo.txt" 2>&1
rc=$?
check "tools/demo.sh --short --rotation-only exits 0 (got $rc)" test "$rc" = 0
[ "$rc" = 0 ] || show "$W/demo.txt" 10
sed 's/^/#   /' "$W/demo.txt"

# ---- the terminal chart ----
check "the chart's legend names the three lines" \
  grep -q '# glibc RSS   o tidemalloc RSS   \. live bytes' "$W/demo.txt"
check "the chart has a MiB axis with 10 or more rows" \
  test "$(grep -cE '^ +[0-9.]* \|' "$W/demo.txt")" -ge 10
check "the chart has a seconds axis" grep -qE '^ +0 .* s$' "$W/demo.txt"
rows=$(grep -E '^ +[0-9.]* \|' "$W/demo.txt" | cut -d'|' -f2-)
for mark in '#' o .; do
  check "the chart draws '$mark'" grep -qF -- "$mark" <<<"$rows"
done

# ---- the SVG ----
python3 - "$W/rotation.svg" >"$W/svg.txt" 2>&1 <<'EOF'
import sys
import xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
print("root", root.tag)
plot = root.find(".//s:rect[@id='plot']", ns)
x0, y0 = float(plot.get("x")), float(plot.get("y"))
x1, y1 = x0 + float(plot.get("width")), y0 + float(plot.get("height"))
lines = root.findall(".//s:polyline", ns)
print("polylines", len(lines))
for pl in lines:
    pts = [tuple(map(float, p.split(","))) for p in pl.get("points").split()]
    inside = all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in pts)
    print("line", pl.get("data-label").replace(" ", "_"), len(pts), "inside" if inside else "outside")
texts = " | ".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
print("texts", texts)
EOF
svg_rc=$?
check "rotation.svg parses as XML (xml.etree)" test "$svg_rc" = 0 -a "$(head -c 4 "$W/svg.txt")" = root
[ "$svg_rc" = 0 ] || show "$W/svg.txt"
check "rotation.svg has three polylines" grep -qx 'polylines 3' "$W/svg.txt"
for label in glibc_RSS tidemalloc_RSS live_bytes; do
  check "rotation.svg: $label has 20 or more points, all inside the plot box" \
    awk -v l="$label" '$1 == "line" && $2 == l && $3 >= 20 && $4 == "inside" { f = 1 } END { exit !f }' "$W/svg.txt"
done
check "rotation.svg has the legend, the axis labels and the verdict" \
  grep -qE '^texts .*glibc RSS.*tidemalloc RSS.*live bytes' "$W/svg.txt"
check "rotation.svg names its axes (MiB, seconds)" grep -qE '^texts .*seconds.*MiB' "$W/svg.txt"

# ---- the figures ----
# last_day RUN FIELD: FIELD of the last "day" line of a run
last_day() { sed -n "s/^day .* $2=\([0-9]*\).*/\1/p" "$W/rotation.$1.out" | tail -n 1; }
g_rss=$(last_day glibc rss)
t_rss=$(last_day tidemalloc rss)
live=$(last_day glibc live)
echo "# at the end: glibc RSS $g_rss, tidemalloc RSS $t_rss, live $live (bytes)"
check "both runs wrote 3 day lines" \
  test "$(grep -c '^day ' "$W/rotation.glibc.out")" = 3 -a "$(grep -c '^day ' "$W/rotation.tidemalloc.out")" = 3
check "both runs hold the same live bytes at each day's end" \
  cmp -s <(sed -n 's/^day n=\([0-9]*\) .* live=\([0-9]*\) .*/\1 \2/p' "$W/rotation.glibc.out") \
  <(sed -n 's/^day n=\([0-9]*\) .* live=\([0-9]*\) .*/\1 \2/p' "$W/rotation.tidemalloc.out")
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
verdict="after day 3: glibc holds $(mib "$g_rss") MiB, tidemalloc $(mib "$t_rss") MiB, live $(mib "$live") MiB"
check "the verdict gives the runs' own figures: $verdict" grep -qF "verdict: $verdict" "$W/demo.txt"
# near RUN: the sampler's last RSS is within 10 % of the program's own last reading
near() {
  local own sampled
  own=$(last_day "$1" rss)
  sampled=$(tail -n 1 "$W/rotation.$1.rss" | cut -f2)
  awk -v a="$own" -v b="$sampled" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= a / 10) }'
}
for run in glibc tidemalloc; do
  check "$run: the sampler's last RSS ($(tail -n 1 "$W/rotation.$run.rss" | cut -f2)) is the program's own ($(last_day $run rss)) within 10 %" near $run
done
check "tidemalloc's final RSS ($(mib "$t_rss") MiB) is below glibc's ($(mib "$g_rss") MiB), by 10 % or more" \
  test "${t_rss:-0}" -gt 0 -a "$((${t_rss:-0} * 10))" -lt "$((${g_rss:-0} * 9))"

echo "# preload/demo: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
