# Sourced by the scripts that need Python packages from PyPI (python-test.sh, schemathesis-env.sh,
# redfish-peers.sh). `ps_venv NAME REQUIREMENT...` prints the directory of a virtual environment
# with exactly those pinned requirements installed, creating it when absent or when its
# requirements or Python changed. It is kept outside the checkout, in
# ${POWERSTACK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/powerstack}/venv-NAME, so that a later
# run or a fresh clone reuses it (as cargo reuses its registry); a lock lets scripts running at
# the same time share one. `ps_venv NAME --at DIR REQUIREMENT...` uses DIR instead (a caller's
# own environment: added to, never removed).
ps_venv() {
  local name=$1
  shift
  local at=""
  if [ "${1:-}" = "--at" ]; then
    at=$2
    shift 2
  fi
  local cache=${POWERSTACK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/powerstack}
  local dir=${at:-$cache/venv-$name}
  local want
  want="$(python3 --version 2>&1) $*"
  mkdir -p "$cache"
  (
    flock 9
    if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.powerstack-requirements" 2>/dev/null)" != "$want" ]; then
      echo "== installing $* into $dir" >&2
      [ -n "$at" ] || rm -rf "$dir"
      [ -x "$dir/bin/python" ] || python3 -m venv "$dir" >&2
      "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2
      printf '%s\n' "$want" >"$dir/.powerstack-requirements"
    fi
  ) 9>"$cache/venv-$name.lock" || return 1
  (cd "$dir" && pwd)
}
