# SPDX-License-Identifier: MIT
# The shell side of the test harness (tests/harness.h is the C side),
# sourced by the test scripts: check() prints "  ok   ..." or "  FAIL ..."
# and counts; show() prints a log's last lines under a failure.
checks=0
failed=0
check() { # check "description" command...
  local what=$1
  shift
  checks=$((checks + 1))
  if "$@"; then
    echo "  ok   $what"
  else
    failed=$((failed + 1))
    echo "  FAIL $what"
  fi
}
show() { tail -n "${2:-5}" "$1" | sed 's/^/  | /'; }
