# SPDX-License-Identifier: MIT
# Sourced by the test scripts: need COMMAND PACKAGE installs PACKAGE with
# apt-get when COMMAND is missing (as root, on Debian), so that `make test`
# works on a fresh machine.  Returns 1 if the command is still missing.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "#   $1 missing: installing $2 with apt-get"
    local log
    log=$(mktemp /tmp/tide-apt.XXXXXX)
    # (the package lists may be missing or stale on a fresh image)
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >"$log" 2>&1; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2"; } \
        >"$log" 2>&1
    fi
    command -v "$1" >/dev/null 2>&1 || echo "#   could not install $2: $(tail -n 1 "$log")"
    rm -f "$log"
  fi
  command -v "$1" >/dev/null 2>&1
}
