#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installing and using tidemalloc as a user would (issue 14):
#   make install DESTDIR=<scratch> PREFIX=/usr DEBUG_INFO=1, then
#   - the files, the soname links, stripped binaries with their debug info
#     found by gdb through the debuglink
#   - clients built with pkg-config (shared, rpath), statically, against
#     the prefixed archive, in C++, and with CMake's find_package; run
#   - the installed tidemalloc command: --version, run, config
#   - the man pages render with man -l, without warnings, and document
#     every setting; so does the README
#   - make uninstall leaves nothing behind
# and the tidemalloc command from the build tree.
#
# Prints harness-style lines and "# pkg/install: N checks, N failed".
# usage: install.sh BUILD
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=$(cd "${1:-build}" && pwd)
. tests/pkg/need.sh
W=$(mktemp -d /tmp/tide-install.XXXXXX)
trap 'rm -rf "$W"' EXIT
D=$W/root
VERSION=$(sed -n 's/^#define TIDEMALLOC_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' include/tidemalloc.h | paste -sd.)
MAJOR=${VERSION%%.*}
CC=${CC:-cc}
CXX=${CXX:-g++}
PY=$(python3 -c 'import sys; print(sys.executable)') # the interpreter itself, not a pyenv shim

. tests/harness.sh # check, show (from the top of the tree)
same() { [ "$1" = "$2" ] || { echo "  | got: $1"; echo "  | want: $2"; return 1; }; }
contains() { grep -qF -- "$2" <<<"$1" || { echo "  | got: $1" | head -n 5; return 1; }; }

# ---- make install ----
make -s --no-print-directory BUILD="$BUILD" install DESTDIR="$D" PREFIX=/usr DEBUG_INFO=1 >"$W/install.log" 2>&1
rc=$?
check "make install DESTDIR=... PREFIX=/usr DEBUG_INFO=1 (exit $rc)" test $rc = 0 || show "$W/install.log"
L=$D/usr/lib
for f in usr/bin/tidemalloc usr/lib/libtidemalloc.so.$VERSION usr/lib/libtidemalloc.a usr/lib/libtidemalloc-prefixed.a \
  usr/include/tidemalloc.h usr/lib/pkgconfig/tidemalloc.pc usr/lib/cmake/tidemalloc/tidemallocConfig.cmake \
  usr/lib/cmake/tidemalloc/tidemallocConfigVersion.cmake usr/share/man/man1/tidemalloc.1 \
  usr/share/man/man3/tidemalloc.3 usr/share/man/man7/tidemalloc.7 usr/share/doc/tidemalloc/README.md \
  usr/share/doc/tidemalloc/LICENSE usr/lib/.debug/libtidemalloc.so.$VERSION.debug; do
  check "installed: /$f" test -f "$D/$f"
done
check "libtidemalloc.so.$MAJOR -> libtidemalloc.so.$VERSION" same "$(readlink "$L/libtidemalloc.so.$MAJOR")" \
  "libtidemalloc.so.$VERSION"
check "libtidemalloc.so -> libtidemalloc.so.$MAJOR" same "$(readlink "$L/libtidemalloc.so")" "libtidemalloc.so.$MAJOR"
check "soname libtidemalloc.so.$MAJOR" \
  contains "$(readelf -dW "$L/libtidemalloc.so.$VERSION" | grep SONAME)" "[libtidemalloc.so.$MAJOR]"
sections=$(readelf -SW "$L/libtidemalloc.so.$VERSION")
check "the installed library is stripped (no .symtab, no .debug_info)" \
  bash -c "! grep -qE '\.symtab|\.debug_info' <<<'$sections'"
check "and names its debug info (.gnu_debuglink)" contains "$sections" ".gnu_debuglink"
check "the debug file has the debug info" \
  contains "$(readelf -SW "$L/.debug/libtidemalloc.so.$VERSION.debug")" ".debug_info"
check "the installed archives keep their symbols (malloc in libtidemalloc.a)" \
  contains "$(nm "$L/libtidemalloc.a" 2>/dev/null | grep ' T malloc$')" "T malloc"
check "and lose their debug info" bash -c "! readelf -SW '$L/libtidemalloc.a' | grep -q '\.debug_info'"
if command -v gdb >/dev/null; then
  line=$(gdb -nx -batch -ex 'info line tide_free' "$L/libtidemalloc.so.$VERSION" 2>&1)
  check "gdb finds tide_free's source line through the debuglink" contains "$line" 'of "src/api.c"'
else
  echo "#   gdb missing: debuglink not checked with gdb"
fi

# ---- clients ----
export PKG_CONFIG_SYSROOT_DIR=$D PKG_CONFIG_LIBDIR=$L/pkgconfig
check "pkg-config --modversion tidemalloc = $VERSION" same "$(pkg-config --modversion tidemalloc)" "$VERSION"
flags=$(pkg-config --cflags --libs tidemalloc | sed 's/ *$//')
check "pkg-config --cflags --libs: $flags" same "$flags" "-I$D/usr/include -L$L -ltidemalloc"
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR

build() { # build NAME COMPILER ARGS...: compile into $W/NAME, log in $W/NAME.log
  local name=$1
  shift
  "$@" -o "$W/$name" >"$W/$name.log" 2>&1 || { show "$W/$name.log"; return 1; }
}
runs() { # runs NAME [env...]: run $W/NAME; it must print "ok" and exit 0
  local name=$1
  shift
  local out
  out=$(env "$@" "$W/$name" 2>&1)
  local rc=$?
  echo "#   $name: $out"
  [ $rc = 0 ] && grep -q ': ok$' <<<"$out"
}
check "C client built with pkg-config" build client "$CC" tests/pkg/client.c $flags -ldl
check "it runs on the installed library (LD_LIBRARY_PATH=<root>/usr/lib)" runs client LD_LIBRARY_PATH="$L"
check "it loads <root>/usr/lib/libtidemalloc.so.$MAJOR" \
  contains "$(LD_LIBRARY_PATH=$L ldd "$W/client")" "$L/libtidemalloc.so.$MAJOR"
check "C client with pkg-config and -Wl,-rpath,<libdir>" build client-rpath "$CC" tests/pkg/client.c $flags \
  -Wl,-rpath,"$L" -ldl
check "it runs with no LD_LIBRARY_PATH" runs client-rpath
check "C client linked with libtidemalloc.a" build client-static "$CC" tests/pkg/client.c -I"$D/usr/include" \
  "$L/libtidemalloc.a" -pthread -ldl
check "it runs, with tidemalloc as its malloc" runs client-static
check "and needs no libtidemalloc.so" bash -c "! ldd '$W/client-static' | grep -q libtidemalloc"
check "C client with libtidemalloc-prefixed.a" build client-prefixed "$CC" -DCLIENT_PREFIXED tests/pkg/client.c \
  -I"$D/usr/include" "$L/libtidemalloc-prefixed.a" -pthread
check "it runs tide_malloc beside glibc's malloc" runs client-prefixed
if need "$CXX" g++; then
  check "C++ client built with pkg-config" build client-cxx "$CXX" tests/pkg/client.cc \
    $(PKG_CONFIG_SYSROOT_DIR=$D PKG_CONFIG_LIBDIR=$L/pkgconfig pkg-config --cflags --libs tidemalloc) -ldl
  check "its operator new is tidemalloc's" runs client-cxx LD_LIBRARY_PATH="$L"
fi
if command -v cmake >/dev/null; then
  cm=$W/cmake
  cmake -S tests/pkg/cmake -B "$cm" -DCMAKE_PREFIX_PATH="$D/usr" -DCMAKE_C_COMPILER="$(command -v "$CC")" \
    -DWANT_VERSION="$VERSION" >"$W/cmake.log" 2>&1 && cmake --build "$cm" >>"$W/cmake.log" 2>&1
  rc=$?
  check "CMake: find_package(tidemalloc $VERSION) and the three targets build (exit $rc)" test $rc = 0 ||
    show "$W/cmake.log" 10
  check "CMake found it under the scratch root" grep -q "found tidemalloc $VERSION in $D/usr/include" "$W/cmake.log"
  for t in client_shared client_static client_prefixed; do
    cp "$cm/$t" "$W/$t" 2>/dev/null
    check "CMake's $t runs" runs "$t"
  done
  cmake -S tests/pkg/cmake -B "$W/cmake2" -DCMAKE_PREFIX_PATH="$D/usr" -DWANT_VERSION=$((MAJOR + 1)).0 \
    >"$W/cmake2.log" 2>&1
  rc=$?
  check "CMake: find_package(tidemalloc $((MAJOR + 1)).0) is refused (exit $rc)" test $rc != 0
else
  echo "#   cmake missing: find_package not checked"
fi

# memcheck puts its own malloc in place of tidemalloc's (README, Valgrind).
# (On a copy of the installed library without its debuglink: valgrind
# 3.19 gives up on the DWARF 5 of clang 14.)
if command -v valgrind >/dev/null; then
  mkdir -p "$W/vg"
  objcopy --remove-section=.gnu_debuglink "$L/libtidemalloc.so.$VERSION" "$W/vg/libtidemalloc.so.$MAJOR"
  out=$(LD_LIBRARY_PATH=$W/vg valgrind -q "$W/client" 2>/dev/null)
  check "under valgrind memcheck, tidemalloc is bypassed (the client counts 0 mallocs)" \
    contains "$out" " 0 mallocs counted: not tidemalloc"
  out=$(LD_LIBRARY_PATH=$W/vg valgrind -q --soname-synonyms=somalloc=nouserintercepts "$W/client" 2>/dev/null)
  check "with --soname-synonyms=somalloc=nouserintercepts it is not" contains "$out" "mallocs counted: ok"
else
  echo "#   valgrind missing: not checked"
fi

# ---- the installed command ----
TM=$D/usr/bin/tidemalloc
v=$("$TM" --version 2>&1)
check "tidemalloc --version: tidemalloc $VERSION" same "$(head -n 1 <<<"$v")" "tidemalloc $VERSION"
check "it names the installed library" contains "$v" "library $L/libtidemalloc.so.$MAJOR ($VERSION)"
out=$("$TM" run -- "$PY" -c 'import sys, re
maps = open("/proc/self/maps").read()
libs = sorted(set(re.findall(r"\S*libtidemalloc\S*", maps)))
print(" ".join(libs), sum(len(str(i)) for i in range(100000)))' 2>&1)
check "tidemalloc run -- python3 -c ...: python runs on <root>/usr/lib's library" \
  same "$out" "$L/libtidemalloc.so.$VERSION 488890"
out=$("$TM" run --stats --conf decay_ms=20 -- "$PY" -c 'import os; print(os.environ["TIDEMALLOC_CONF"])' 2>&1)
check "tidemalloc run --stats --conf decay_ms=20: TIDEMALLOC_CONF=stats=1,decay_ms=20" \
  contains "$out" "stats=1,decay_ms=20"
check "and the statistics line at exit" contains "$out" "tidemalloc stats: malloc_calls="
out=$(LD_PRELOAD=/nonexistent/x.so "$TM" run -- sh -c 'echo "$LD_PRELOAD"' 2>/dev/null)
check "tidemalloc run keeps an earlier LD_PRELOAD after its own" same "$out" "$L/libtidemalloc.so.$MAJOR:/nonexistent/x.so"
"$TM" run -- /nonexistent/program 2>/dev/null
rc=$?
check "tidemalloc run of a missing program exits 127 (got $rc)" test $rc = 127
cfg=$("$TM" config --conf decay_ms=5 2>&1)
check "tidemalloc config --conf decay_ms=5: decay_ms 5 from TIDEMALLOC_CONF" \
  grep -qE '^decay_ms +5 +TIDEMALLOC_CONF ' <<<"$cfg"
check "and the others from default" grep -qE '^arena_max +auto +default ' <<<"$cfg"
cfg=$(MALLOC_ARENA_MAX=4 GLIBC_TUNABLES=glibc.malloc.tcache_count=9 "$TM" config 2>&1)
check "tidemalloc config shows MALLOC_ARENA_MAX and GLIBC_TUNABLES as sources" \
  bash -c "grep -qE '^arena_max +4 +MALLOC_ARENA_MAX ' <<<'$cfg' && grep -qE '^tcache_count +9 +GLIBC_TUNABLES ' <<<'$cfg'"
err=$("$TM" config --conf decay_ms=xyz 2>&1 >/dev/null)
check "tidemalloc config --conf decay_ms=xyz: the warning" \
  same "$err" "tidemalloc: warning: decay_ms: not a number; using 200"

# ---- the build tree's command ----
out=$("$BUILD/tidemalloc" run -- "$PY" -c 'print([l.split()[-1] for l in open("/proc/self/maps") if "libtidemalloc" in l][0])' 2>&1)
check "build/tidemalloc run uses the build tree's library" same "$out" "$(readlink -f "$BUILD/libtidemalloc.so.$MAJOR")"

# ---- man pages and documentation ----
if need man man-db; then
  for s in 1 3 7; do
    page=$D/usr/share/man/man$s/tidemalloc.$s
    MANWIDTH=80 man --warnings -E UTF-8 -l "$page" >"$W/man$s.txt" 2>"$W/man$s.err"
    check "man -l tidemalloc.$s renders ($(wc -l <"$W/man$s.txt") lines: NAME, the version)" \
      bash -c "grep -q '^NAME' '$W/man$s.txt' && grep -q 'tidemalloc $VERSION' '$W/man$s.txt'"
    check "  with no warnings" test ! -s "$W/man$s.err" || show "$W/man$s.err"
  done
fi
names=$("$TM" config | grep -v '^#' | awk '{print $1}')
missing_man="" missing_readme=""
for n in $names; do
  grep -qE "^\.BR $n " "$D/usr/share/man/man7/tidemalloc.7" || missing_man="$missing_man $n"
  grep -qF "\`$n\`" README.md || missing_readme="$missing_readme $n"
done
check "tidemalloc(7) documents all $(wc -w <<<"$names") settings (missing:${missing_man:- none})" test -z "$missing_man"
check "README.md names all of them (missing:${missing_readme:- none})" test -z "$missing_readme"

# ---- make uninstall ----
make -s --no-print-directory BUILD="$BUILD" uninstall DESTDIR="$D" PREFIX=/usr >"$W/uninstall.log" 2>&1
rc=$?
left=$(cd "$D" && find . -type f -o -type l)
check "make uninstall (exit $rc) leaves no file behind (${left:-none})" test $rc = 0 -a -z "$left"

# back to the default paths for the build tree's generated files
make -s --no-print-directory BUILD="$BUILD" tools >/dev/null 2>&1

echo "# pkg/install: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
