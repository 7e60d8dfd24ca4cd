# shellcheck shell=bash
# Helpers of the hook tests: a scratch directory with a fake `powerstack` (and `logger`) first
# in PATH, each recording how it was called, and assertions that count failures.
# Sourced by test-slurm-hooks.sh and test-flux-hooks.sh.

set -u
FAILED=0
PASSED=0
DEPLOY=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/powerstack-hooks.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
BIN=$SCRATCH/bin
mkdir -p "$BIN"

# The fake powerstack: writes its arguments NUL-separated to $SCRATCH/args, then prints
# FAKE_STDERR on stderr, sleeps FAKE_SLEEP seconds and exits FAKE_EXIT.
cat >"$BIN/powerstack" <<'FAKE'
#!/bin/bash
printf '%s\0' "$@" >"$SCRATCH/args"
echo '{"id":"recorded"}'
[ -n "${FAKE_STDERR:-}" ] && printf '%s\n' "$FAKE_STDERR" >&2
[ -n "${FAKE_SLEEP:-}" ] && sleep "$FAKE_SLEEP"
exit "${FAKE_EXIT:-0}"
FAKE
# The fake logger: one line per message in $SCRATCH/syslog.
cat >"$BIN/logger" <<'FAKE'
#!/bin/bash
printf '%s\n' "$*" >>"$SCRATCH/syslog"
FAKE
chmod +x "$BIN/powerstack" "$BIN/logger"
export SCRATCH
PATH=$BIN:$PATH

# A settings file with the given lines; its path in POWERSTACK_ENV_FILE.
settings() {
    printf '%s\n' "$@" >"$SCRATCH/site.env"
    export POWERSTACK_ENV_FILE=$SCRATCH/site.env
}

# Runs a hook (path under deploy/) with `env` assignments before it, afresh: no previous
# arguments or log. Its exit status is in HOOK_STATUS, its stderr in HOOK_STDERR.
run_hook() {
    local hook=$1
    shift
    rm -f "$SCRATCH/args" "$SCRATCH/syslog"
    HOOK_STDERR=$(env "$@" "$DEPLOY/$hook" 2>&1 >/dev/null)
    HOOK_STATUS=$?
}

pass() { PASSED=$((PASSED + 1)); }
fail() {
    FAILED=$((FAILED + 1))
    printf 'FAIL %s: %s\n' "$CASE" "$*" >&2
}

# The fake powerstack was called with exactly these arguments.
expect_args() {
    local want got
    want=$(printf '%s\0' "$@" | od -An -c)
    if [ ! -e "$SCRATCH/args" ]; then
        fail "powerstack was not run"
        return
    fi
    got=$(od -An -c <"$SCRATCH/args")
    if [ "$want" = "$got" ]; then pass; else fail "arguments differ:
want: $(printf '[%s] ' "$@")
got:  $(tr '\0' '\n' <"$SCRATCH/args" | sed 's/.*/[&]/' | tr '\n' ' ')"; fi
}

expect_not_run() {
    if [ -e "$SCRATCH/args" ]; then fail "powerstack was run"; else pass; fi
}

expect_status_0() {
    if [ "$HOOK_STATUS" = 0 ]; then pass; else fail "exit status $HOOK_STATUS"; fi
}

# The syslog (the fake logger's) has a line containing TEXT.
expect_logged() {
    if grep -qF -- "$1" "$SCRATCH/syslog" 2>/dev/null; then pass; else
        fail "not logged: $1 (log: $(cat "$SCRATCH/syslog" 2>/dev/null))"
    fi
}

# The hook's stderr has a line containing TEXT.
expect_stderr() {
    if grep -qF -- "$1" <<<"$HOOK_STDERR"; then pass; else fail "not on stderr: $1 ($HOOK_STDERR)"; fi
}

# The closing line, which the test runner reads.
finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
}
