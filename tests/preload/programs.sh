#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Real programs under LD_PRELOAD=libtidemalloc.so, each compared with the
# same run on glibc's malloc:
#   python3  builds and sorts a large dict and list, json round trips
#   sqlite3  creates, fills, indexes and queries a database
#   sort     sorts a large generated file (big buffers; --parallel threads)
#   xz       compresses it with 4 threads and back
#   gcc      compiles and links a small C program (driver, cc1, as, ld)
#   git      makes a repository with many commits, log, gc, fsck
# Output must be byte-identical.  Then the proof that tidemalloc's
# functions were the ones bound (LD_DEBUG=bindings), and the
# TIDEMALLOC_STATS=1 line.  Python and sqlite3 also run under the debug .so,
# and in debug mode (TIDEMALLOC_CONF=debug=1).
#
# Prints harness-style lines and "# preload/programs: N checks, N failed".
# usage: programs.sh LIBDIR
set -u
LIBDIR=$(cd "${1:-build}" && pwd)
LIB=$LIBDIR/libtidemalloc.so
DLIB=$LIBDIR/libtidemalloc-debug.so
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/tide-preload.XXXXXX)
export W # the shell functions below run in child shells too
trap 'rm -rf "$W"' EXIT

. "$(cd "$(dirname "$0")" && pwd)/../harness.sh" # check, show

# need PROGRAM PACKAGE: the program, installed with apt-get if missing
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "#   $1 missing: installing $2"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") \
      >"$W/apt.log" 2>&1
  fi
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "#   skip $1: could not install $2 ($(tail -n 1 "$W/apt.log" 2>/dev/null))"
  return 1
}

# limit COMMAND...: run a command or shell function for at most 60 s (a
# hang under a broken library must not stall the suite)
limit() {
  if [ "$(type -t "$1")" = function ]; then
    export -f "$1"
    timeout -k 5 60 bash -c '"$@"' limit "$@"
  else
    timeout -k 5 60 "$@"
  fi
}

# same NAME LIBRARY COMMAND...: run the command in $W/NAME.ref on glibc and
# in $W/NAME.tm with the library preloaded; outputs and status must agree.
same() {
  local name=$1 lib=$2
  shift 2
  local label
  label="$name under $(basename "$lib")"
  mkdir -p "$W/$name.ref" "$W/$name.tm"
  (cd "$W/$name.ref" && limit "$@") >"$W/$name.ref.out" 2>"$W/$name.ref.err"
  local rc_ref=$?
  (cd "$W/$name.tm" && LD_PRELOAD=$lib limit "$@") >"$W/$name.tm.out" 2>"$W/$name.tm.err"
  local rc_tm=$?
  check "$label: exits $rc_tm (glibc run: $rc_ref)" test "$rc_ref" = 0 -a "$rc_tm" = 0
  if [ "$rc_tm" != 0 ]; then
    head -n 5 "$W/$name.tm.err" | sed 's/^/  | /'
  fi
  check "$label: output identical to the glibc run ($(wc -c <"$W/$name.ref.out") bytes)" \
    cmp -s "$W/$name.ref.out" "$W/$name.tm.out"
  check "$label: $(wc -l <"$W/$name.ref.out") lines of output, not empty" \
    test -s "$W/$name.ref.out"
}

echo "# preload/programs: $LIB"
check "libtidemalloc.so exists" test -f "$LIB"
check "libtidemalloc-debug.so exists" test -f "$DLIB"

# ---- python3 ----
if need python3 python3; then
  PY=$(python3 -c 'import sys; print(sys.executable)')
  same python "$LIB" "$PY" "$HERE/work.py" 200000
  same python-debug "$DLIB" "$PY" "$HERE/work.py" 40000
  # debug mode (redzones, quarantine, leak report at exit)
  same python-debugmode "$LIB" env TIDEMALLOC_CONF=debug=1 "$PY" "$HERE/work.py" 20000
  check "python-debugmode: the leak report at exit" grep -q '^tidemalloc: leak report: ' "$W/python-debugmode.tm.err"
fi

# ---- sqlite3 ----
if need sqlite3 sqlite3; then
  cat >"$W/fill.sql" <<'EOF'
CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, price REAL, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120000)
INSERT INTO item SELECT i, 'item-' || (i * 7919 % 100003), i % 97, (i * 31 % 1000) / 10.0,
  substr(hex(randomblob(0)) || printf('%0*d', 20 + i % 200, i), 1, 300) FROM n;
CREATE INDEX item_grp ON item(grp, price);
CREATE TABLE grp(id INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 96)
INSERT INTO grp SELECT i, 'group ' || i FROM n;
UPDATE item SET price = price * 1.5 WHERE grp % 3 = 0;
DELETE FROM item WHERE id % 11 = 0;
VACUUM;
EOF
  cat >"$W/query.sql" <<'EOF'
SELECT count(*), sum(price), min(name), max(name) FROM item;
SELECT g.label, count(*), round(avg(i.price), 3), max(length(i.note))
  FROM item i JOIN grp g ON g.id = i.grp GROUP BY g.id ORDER BY 2 DESC, 1 LIMIT 20;
SELECT name, price FROM item WHERE grp = 42 ORDER BY price DESC, name LIMIT 15;
SELECT group_concat(name, ',') FROM (SELECT name FROM item ORDER BY name LIMIT 500);
SELECT count(DISTINCT name) FROM item;
PRAGMA integrity_check;
EOF
  sq() { sqlite3 db.sqlite <"$W/fill.sql" && sqlite3 db.sqlite <"$W/query.sql"; }
  same sqlite "$LIB" sq
  same sqlite-debug "$DLIB" sq
  sqd() { TIDEMALLOC_CONF=debug=1 sq; }
  export -f sq
  same sqlite-debugmode "$LIB" sqd
  check "sqlite-debugmode: the leak report at exit" grep -q '^tidemalloc: leak report: ' "$W/sqlite-debugmode.tm.err"
fi

# ---- sort ----
if need sort coreutils; then
  "${PY:-python3}" -c '
import random
random.seed(7)
with open("'"$W"'/lines.txt", "w") as f:
    for i in range(400000):
        f.write("%d %s\n" % (random.randrange(10**9), "x" * random.randrange(0, 60)))
'
  srt() {
    sort -k2,2 -k1,1n "$W/lines.txt" | sha256sum && sort -u -r "$W/lines.txt" | wc -l &&
      sort --parallel=4 -S 20M -n "$W/lines.txt" | sha256sum # threads, temporary files
  }
  same sort "$LIB" srt
fi

# ---- xz, multithreaded ----
if need xz xz-utils; then
  xzwork() { xz -T4 -6 -c "$W/lines.txt" | tee "$W/lines.xz.$$" | sha256sum && xz -d -c "$W/lines.xz.$$" | sha256sum; }
  same xz "$LIB" xzwork
fi

# ---- gcc ----
if need gcc gcc; then
  cat >"$W/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; char name[24]; int v; };
static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
int main(void) {
  int a[1000];
  for (int i = 0; i < 1000; i++) a[i] = (i * 7919) % 1009;
  qsort(a, 1000, sizeof a[0], cmp);
  struct node *head = NULL;
  for (int i = 0; i < 100; i++) {
    struct node *n = malloc(sizeof *n);
    snprintf(n->name, sizeof n->name, "node%d", i);
    n->v = a[i * 10];
    n->next = head;
    head = n;
  }
  long sum = 0;
  for (struct node *n = head; n; n = n->next) sum += n->v + (long)strlen(n->name);
  printf("%d %d %ld\n", a[0], a[999], sum);
  return 0;
}
EOF
  cc_run() { gcc -O2 -Wall -o prog "$W/prog.c" && ./prog && gcc -O0 -g -S -o - "$W/prog.c" | grep -c 'call'; }
  same gcc "$LIB" cc_run
fi

# ---- git ----
if need git git; then
  gitwork() {
    export HOME=$PWD GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org
    export GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org
    export GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z'
    git init -q -b main repo && cd repo || return 1
    for i in $(seq 1 60); do
      seq "$i" 3 4000 >"f$((i % 9)).txt"
      git add -A && git commit -q -m "commit $i" || return 1
    done
    git log --stat --format='%H %s' | sha256sum
    git gc -q && git fsck --no-progress 2>&1 && git count-objects -v | grep -v size
  }
  same git "$LIB" gitwork
fi

# ---- which malloc was bound ----
bind_log=$W/bindings.txt
LD_PRELOAD=$LIB LD_DEBUG=bindings "${PY:-python3}" -c 'x = sorted(str(i) for i in range(10000))' \
  2>"$bind_log" >/dev/null
for sym in malloc free calloc realloc; do
  check "LD_DEBUG=bindings: $sym is bound to $(basename "$LIB")" \
    grep -qE "binding file .* to ${LIB//./\\.} \[[0-9]+\]: normal symbol \`$sym'" "$bind_log"
done
check "LD_DEBUG=bindings: libc.so.6's own malloc calls bind to tidemalloc" \
  grep -qE "binding file [^ ]*libc\.so\.6 \[[0-9]+\] to ${LIB//./\\.} \[[0-9]+\]: normal symbol \`malloc'" \
  "$bind_log"
check "LD_DEBUG=bindings: no malloc bound to glibc's libc.so.6" \
  bash -c "! grep -qE \"to [^ ]*libc\\.so\\.6 \\[[0-9]+\\]: normal symbol \\\`malloc'\" '$bind_log'"
grep -m 2 -E "normal symbol \`malloc'" "$bind_log" | sed 's/^ */#   /'

# ---- TIDEMALLOC_STATS ----
stats_re='^tidemalloc stats: malloc_calls=([0-9]+) free_calls=[0-9]+ realloc_calls=[0-9]+ bytes_requested=[0-9]+ peak_in_use=[0-9]+ peak_os=[0-9]+ arenas=[0-9]+ purged=[0-9]+$'
if command -v sqlite3 >/dev/null; then
  TIDEMALLOC_STATS=1 LD_PRELOAD=$LIB sqlite3 :memory: \
    'create table t(x); insert into t values (1),(2); select sum(x) from t;' \
    >"$W/stats.out" 2>"$W/stats.err"
  check "TIDEMALLOC_STATS=1: the program's output is unchanged" \
    grep -qx 3 "$W/stats.out"
  check "TIDEMALLOC_STATS=1: exactly one stats line on stderr, in the documented format" \
    [ "$(grep -cE "$stats_re" "$W/stats.err")" = 1 ]
  calls=$(grep -E "$stats_re" "$W/stats.err" | sed -E 's/.*malloc_calls=([0-9]+).*/\1/')
  check "TIDEMALLOC_STATS=1: malloc_calls > 0 (${calls:-none})" [ "${calls:-0}" -gt 0 ]
  sed 's/^/#   /' "$W/stats.err" | head -n 3
  LD_PRELOAD=$LIB sqlite3 :memory: 'select 1;' >/dev/null 2>"$W/nostats.err"
  check "without TIDEMALLOC_STATS nothing is printed" [ ! -s "$W/nostats.err" ]
fi

echo "# preload/programs: $checks checks, $failed failed"
[ "$failed" = 0 ]
