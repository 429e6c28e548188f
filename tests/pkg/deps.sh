#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What the tests need beyond gcc, make, cmake and python3, installed if
# missing (root on Debian; see need.sh): a C++ compiler with libstdc++
# (tests/cxx), pkg-config and man (tests/pkg).  Run by `make test` before
# it builds the tests; prints nothing when all is there.
# usage: deps.sh [CXX]
set -u
. "$(dirname "$0")/need.sh"
status=0
cxx=${1:-g++}
# clang++ uses g++'s libstdc++ headers and libraries: g++ brings them.
need g++ g++ || status=1
command -v "$cxx" >/dev/null 2>&1 || { echo "deps: $cxx missing"; status=1; }
need pkg-config pkg-config || status=1
need man man-db || status=1
need dpkg-deb dpkg || status=1
exit $status
