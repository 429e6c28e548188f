#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# LD_DEBUG=bindings: in a C++ program, operator new and delete -- the
# program's own calls and libstdc++'s -- bind to libtidemalloc.so, under
# LD_PRELOAD and when linked with -ltidemalloc.
# usage: bindings.sh LIBDIR TESTDIR
set -u
LIB=$(cd "$1" && pwd)/libtidemalloc.so
T=$2
checks=0
failed=0
check() {
  local what=$1
  shift
  checks=$((checks + 1))
  if "$@"; then echo "  ok   $what"; else failed=$((failed + 1)); echo "  FAIL $what"; fi
}
log=$(mktemp /tmp/tide-bindings.XXXXXX)
trap 'rm -f "$log"' EXIT

bound() { # bound FROM-REGEX TO-REGEX SYMBOL
  grep -qE "binding file $1 \[[0-9]+\] to $2 \[[0-9]+\]: normal symbol \`$3'" "$log"
}

LD_DEBUG=bindings LD_PRELOAD=$LIB "$T/cxx-preload" >/dev/null 2>"$log"
for sym in _Znwm _Znam _ZdlPvm _ZnwmSt11align_val_t _ZdlPvmSt11align_val_t _ZnwmRKSt9nothrow_t; do
  check "LD_PRELOAD: the program's $sym binds to libtidemalloc.so" bound "[^ ]*cxx-preload" "[^ ]*libtidemalloc\.so" "$sym"
done
check "LD_PRELOAD: libstdc++'s own operator new calls bind to libtidemalloc.so" \
  bound "[^ ]*libstdc\+\+\.so\.6" "[^ ]*libtidemalloc\.so" _Znwm
check "LD_PRELOAD: no operator new bound to libstdc++.so.6" \
  bash -c "! grep -qE \"to [^ ]*libstdc\\+\\+\\.so\\.6 \\[[0-9]+\\]: normal symbol \\\`_Znwm'\" '$log'"
grep -m 2 -E "normal symbol \`_Znwm'" "$log" | sed 's/^ */#   /'

LD_DEBUG=bindings "$T/cxx-linked" >/dev/null 2>"$log"
check "-ltidemalloc: the program's operator new binds to libtidemalloc.so.0" \
  bound "[^ ]*cxx-linked" "[^ ]*libtidemalloc\.so\.0" _Znwm
check "-ltidemalloc: libstdc++'s operator new calls bind to libtidemalloc.so.0" \
  bound "[^ ]*libstdc\+\+\.so\.6" "[^ ]*libtidemalloc\.so\.0" _Znwm
grep -m 1 -E "normal symbol \`_Znwm'" "$log" | sed 's/^ */#   /'

echo "# cxx/bindings: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
