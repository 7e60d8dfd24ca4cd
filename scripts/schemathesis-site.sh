#!/usr/bin/env bash
# Property-based API test of the site service against its own OpenAPI document: starts
# `powerstack site serve` on a fresh SQLite store with a tokens file (an administrator, and a user
# and an agent token), runs schemathesis over every operation with the administrator's token, a
# fixed seed and a bounded example count (stateful links included: jobs begun, then read), then
# runs the operations again without a token (each must be 401 as documented) and the reads as a
# user (403/404 for others' jobs, as documented), and stops the service. Exit status: 0 when
# schemathesis found nothing (no server error, no response off the schema, no schema-valid request
# refused beyond what scripts/schemathesis-site.toml allows, ...).
#
# Schemathesis is installed (pinned) into a virtual environment kept by scripts/venv.sh (or
# $ST_VENV), as in scripts/schemathesis.sh. Environment: POWERSTACK_BIN (default target/debug/powerstack, built
# when absent), ST_SEED, ST_MAX_EXAMPLES.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/schemathesis-env.sh
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-100}

work=$(mktemp -d "${TMPDIR:-/tmp}/powerstack-st-site.XXXXXX")
site_pid=""
stop() {
  if [ -n "$site_pid" ]; then kill -TERM "$site_pid" 2>/dev/null || true; wait "$site_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap stop EXIT
chmod 700 "$work"

token() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
admin=$(token)
user=$(token)
(umask 077 && cat >"$work/tokens.toml" <<TOML
[[token]]
token = "$admin"
role = "admin"

[[token]]
token = "$user"
role = "user"
user = "alice"
TOML
)
port=$(free_port)
base="http://127.0.0.1:$port"
"$BIN" site serve --listen "127.0.0.1:$port" --database "sqlite:$work/site.db" \
  --tokens "$work/tokens.toml" 2>"$work/site.log" &
site_pid=$!

ready=""
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/v1/health', timeout=2)" "$base" 2>/dev/null; then
    ready=1; break
  fi
  if ! kill -0 "$site_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "schemathesis-site.sh: the site did not come up:" >&2
  cat "$work/site.log" >&2
  exit 1
fi

run() {
  local what=$1; shift
  echo "== st run ($what) $base/v1/openapi.json --seed $SEED"
  "$VENV/bin/st" --config-file scripts/schemathesis-site.toml run "$base/v1/openapi.json" \
    --url "$base" \
    --checks all \
    --seed "$SEED" \
    --workers 1 \
    --request-timeout 10 \
    --no-color \
    "$@"
}

status=0
run "administrator" -H "Authorization: Bearer $admin" --max-examples "$MAX_EXAMPLES" \
  --report-dir "$work/report" || status=$?
run "no token" --max-examples "$((MAX_EXAMPLES / 4))" --report-dir "$work/report-none" || status=$?
run "user alice, reads" -H "Authorization: Bearer $user" --include-method GET \
  --max-examples "$((MAX_EXAMPLES / 4))" --report-dir "$work/report-user" || status=$?

if [ "$status" -ne 0 ]; then
  echo "schemathesis-site.sh: FAILED (site log follows)" >&2
  tail -20 "$work/site.log" >&2
fi
exit "$status"
