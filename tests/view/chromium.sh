#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Makes sure a headless browser is there for tests/view/view.sh: Debian's
# `chromium`, installed with apt-get when it is missing (as root, the
# pattern of tests/pkg/need.sh).  Prints the command's path and exits 0, or
# says why not and exits 1 (the test then fails: the picture is not
# checked without a browser).
set -u
. "$(dirname "$0")/../pkg/need.sh"
for c in chromium chromium-browser; do
  if command -v "$c" >/dev/null 2>&1; then
    command -v "$c"
    exit 0
  fi
done
need chromium chromium >&2 || { echo "chromium.sh: no chromium, and apt-get could not install it" >&2; exit 1; }
command -v chromium
