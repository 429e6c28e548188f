#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# xmllint (Debian's libxml2-utils) for tests/stats/stats.sh, installed
# with apt-get if missing (as root; the test fails without it).
set -eu
command -v xmllint >/dev/null && exit 0
[ "$(id -u)" = 0 ] || { echo "xmllint missing and not root: apt-get install libxml2-utils" >&2; exit 1; }
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxml2-utils
