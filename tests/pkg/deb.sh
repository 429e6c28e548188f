#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian package (issue 14): `make deb`, its fields and contents, then
# dpkg installs it into a scratch root (dpkg --root, with the host's libc6
# entry copied into the scratch database so the dependency is checked for
# real), a client built with `pkg-config --cflags --libs tidemalloc` from
# that root runs on it, so do the tidemalloc command and the man pages,
# and dpkg --purge leaves no file of it behind.
#
# Prints harness-style lines and "# pkg/deb: N checks, N failed".
# usage: deb.sh BUILD
set -u
cd "$(dirname "$0")/../.."
BUILD=$(cd "${1:-build}" && pwd)
. tests/pkg/need.sh
W=$(mktemp -d /tmp/tide-deb.XXXXXX)
trap 'rm -rf "$W"' EXIT
VERSION=$(sed -n 's/^#define TIDEMALLOC_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' include/tidemalloc.h | paste -sd.)
MAJOR=${VERSION%%.*}
CC=${CC:-cc}
PY=$(python3 -c 'import sys; print(sys.executable)')

. tests/harness.sh # check, show (from the top of the tree)
contains() { grep -qF -- "$2" <<<"$1" || { echo "  | got: $1" | head -n 5; return 1; }; }

need dpkg-deb dpkg
need pkg-config pkg-config
make -s --no-print-directory BUILD="$BUILD" deb >"$W/deb.log" 2>&1
rc=$?
ARCH=$(dpkg --print-architecture)
DEB=$BUILD/tidemalloc_${VERSION}_$ARCH.deb
check "make deb (exit $rc) builds $(basename "$DEB")" test $rc = 0 -a -f "$DEB" || show "$W/deb.log"
check "Package: tidemalloc, Version: $VERSION" \
  test "$(dpkg-deb -f "$DEB" Package)" = tidemalloc -a "$(dpkg-deb -f "$DEB" Version)" = "$VERSION"
check "Depends: $(dpkg-deb -f "$DEB" Depends)" contains "$(dpkg-deb -f "$DEB" Depends)" "libc6 (>= 2."
contents=$(dpkg-deb -c "$DEB")
MA=$($CC -print-multiarch 2>/dev/null)
LIBDIR=/usr/lib${MA:+/$MA}
for f in usr/bin/tidemalloc "${LIBDIR#/}/libtidemalloc.so.$VERSION" "${LIBDIR#/}/libtidemalloc.so.$MAJOR" \
  "${LIBDIR#/}/libtidemalloc.so" "${LIBDIR#/}/libtidemalloc.a" "${LIBDIR#/}/libtidemalloc-prefixed.a" \
  usr/include/tidemalloc.h "${LIBDIR#/}/pkgconfig/tidemalloc.pc" "${LIBDIR#/}/cmake/tidemalloc/tidemallocConfig.cmake" \
  usr/share/man/man1/tidemalloc.1.gz usr/share/man/man3/tidemalloc.3.gz usr/share/man/man7/tidemalloc.7.gz \
  usr/share/doc/tidemalloc/copyright; do
  check "the package holds /$f" grep -qE " \./$f( |$)" <<<"$contents"
done
check "every file is owned by root" bash -c "! grep -vE '^[-dl][rwx-]{9} root/root ' <<<'$contents' | grep -q ."

# ---- dpkg --root: install ----
R=$W/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
dpkg-query -s libc6 >"$R/var/lib/dpkg/status" 2>/dev/null || : >"$R/var/lib/dpkg/status"
# (Docker images may exclude /usr/share/man and doc from dpkg installs)
INC=(--path-include='/usr/share/man/*' --path-include='/usr/share/doc/tidemalloc/*')
dpkg --root="$R" "${INC[@]}" -i "$DEB" >"$W/dpkg-i.log" 2>&1
rc=$?
check "dpkg --root=<scratch> -i: installed (exit $rc)" test $rc = 0 || show "$W/dpkg-i.log"
check "dpkg -s: install ok installed" contains "$(dpkg --root="$R" -s tidemalloc 2>&1)" "Status: install ok installed"
L=$R$LIBDIR
check "the library is in $LIBDIR" test -f "$L/libtidemalloc.so.$VERSION"

export PKG_CONFIG_SYSROOT_DIR=$R PKG_CONFIG_LIBDIR=$L/pkgconfig
flags=$(pkg-config --cflags --libs tidemalloc | sed 's/ *$//')
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
check "pkg-config --cflags --libs tidemalloc: $flags" test "$flags" = "-I$R/usr/include -L$L -ltidemalloc"
$CC tests/pkg/client.c $flags -ldl -o "$W/client" >"$W/cc.log" 2>&1
rc=$?
check "a client builds with it (exit $rc)" test $rc = 0 || show "$W/cc.log"
out=$(LD_LIBRARY_PATH=$L "$W/client" 2>&1)
rc=$?
echo "#   client: $out"
check "and runs on the packaged library" bash -c "[ $rc = 0 ] && grep -q '$L/libtidemalloc.so.$MAJOR.*: ok$' <<<'$out'"
out=$("$R/usr/bin/tidemalloc" run -- "$PY" -c 'print([l.split()[-1] for l in open("/proc/self/maps") if "libtidemalloc" in l][0])' 2>&1)
check "the packaged tidemalloc run -- python3 uses the packaged library" test "$out" = "$L/libtidemalloc.so.$VERSION"
check "the packaged tidemalloc --version" contains "$("$R/usr/bin/tidemalloc" --version)" "tidemalloc $VERSION"
if need man man-db; then
  MANWIDTH=80 man --warnings -l "$R/usr/share/man/man7/tidemalloc.7.gz" >"$W/man.txt" 2>"$W/man.err"
  check "man -l of the packaged tidemalloc.7.gz renders without warnings" \
    bash -c "grep -q '^SETTINGS' '$W/man.txt' && test ! -s '$W/man.err'"
fi

# ---- dpkg --purge ----
dpkg --root="$R" --purge tidemalloc >"$W/dpkg-r.log" 2>&1
rc=$?
check "dpkg --purge (exit $rc)" test $rc = 0 || show "$W/dpkg-r.log"
left=$(cd "$R" && find . \( -type f -o -type l \) ! -path './var/lib/dpkg/*')
check "no file of the package is left (${left:-none})" test -z "$left"
check "dpkg no longer knows it" bash -c "! dpkg --root='$R' -s tidemalloc >/dev/null 2>&1"

echo "# pkg/deb: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
