#!/usr/bin/env bash
# Property-based API test of the node agent against its own OpenAPI document: starts an agent on a
# fresh simulated node (animated by `sim run`) with a token file, runs schemathesis over TCP with
# the token, a fixed seed and a bounded example count, runs the reads again without the token (the
# coarse answers of unprivileged readers), then POSTs valid cap requests through the token and
# expects 200, and stops the agent (which restores the limits). Exit status: 0 when
# schemathesis found nothing (no server error, no response off the schema, ...) and every valid
# cap request reached 200.
#
# Schemathesis is installed (pinned) into a virtual environment kept outside the checkout by
# scripts/venv.sh (or $ST_VENV).
# Environment: POWERSTACK_BIN (default target/debug/powerstack, built when absent), ST_SEED,
# ST_MAX_EXAMPLES.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/schemathesis-env.sh
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-200}

work=$(mktemp -d "${TMPDIR:-/tmp}/powerstack-st.XXXXXX")
sim_pid=""
agent_pid=""
stop() {
  # The agent first (it restores the limits it set), then the animation.
  if [ -n "$agent_pid" ]; then kill -TERM "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
  if [ -n "$sim_pid" ]; then kill -TERM "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap stop EXIT

node="$work/node"
"$BIN" sim create --profile intel-2s "$node" >/dev/null
"$BIN" sim run --tick 5ms "$node" 2>/dev/null &
sim_pid=$!

chmod 700 "$work"
token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
(umask 077 && printf '%s\n' "$token" >"$work/token")
port=$(free_port)
base="http://127.0.0.1:$port"

"$BIN" agent --root "$node" --listen "127.0.0.1:$port" --socket "" --token-file "$work/token" \
  --rate-hz 20 2>"$work/agent.log" &
agent_pid=$!

# Ready once /healthz counts a few samples (a node cap needs some).
ready=""
for _ in $(seq 1 300); do
  if python3 - "$base" <<'EOF' 2>/dev/null; then ready=1; break; fi
import json, sys, urllib.request
v = json.load(urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=2))
sys.exit(0 if v.get("samples", 0) >= 10 else 1)
EOF
  if ! kill -0 "$agent_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "schemathesis.sh: the agent did not come up:" >&2
  cat "$work/agent.log" >&2
  exit 1
fi

status=0
echo "== st run $base/v1/openapi.json --seed $SEED --max-examples $MAX_EXAMPLES"
"$VENV/bin/st" --config-file scripts/schemathesis.toml run "$base/v1/openapi.json" \
  --url "$base" \
  -H "Authorization: Bearer $token" \
  --checks all \
  --seed "$SEED" \
  --max-examples "$MAX_EXAMPLES" \
  --workers 1 \
  --request-timeout 10 \
  --no-color \
  --report-dir "$work/report" || status=$?

# The reads again as a caller without the token: the coarse answers of unprivileged readers
# (whole seconds, whole watts and joules, labels hidden) must be on the schema too.
echo "== st run (reads, no token) --seed $SEED --max-examples $((MAX_EXAMPLES / 4))"
"$VENV/bin/st" --config-file scripts/schemathesis.toml run "$base/v1/openapi.json" \
  --url "$base" \
  --include-method GET \
  --checks all \
  --seed "$SEED" \
  --max-examples "$((MAX_EXAMPLES / 4))" \
  --workers 1 \
  --request-timeout 10 \
  --no-color \
  --report-dir "$work/report-reads" || status=$?

# Positive cap requests through the token: each form must reach 200 (a dry run, then real writes,
# then a reset).
echo "== valid cap requests through the token"
python3 - "$base" "$token" <<'EOF' || status=1
import json, sys, urllib.error, urllib.request
base, token = sys.argv[1], sys.argv[2]
def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST", headers={"Authorization": "Bearer " + token,
                                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
cases = [
    ("/v1/caps", {"domain": "package", "index": 0, "limit_watts": 120.0, "dry_run": True}),
    ("/v1/caps", {"domain": "package", "index": 0, "limit_watts": 120.0}),
    ("/v1/caps", {"domain": "memory", "limit_watts": 30.0, "clamp": True}),
    ("/v1/caps", {"node_watts": 300.0, "policy": "uniform"}),
    ("/v1/caps", {"node_watts": 350.0}),
    ("/v1/caps/reset", None),
]
failed = 0
for path, body in cases:
    status, text = post(path, body)
    ok = status == 200
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {status} POST {path} {json.dumps(body)}" + ("" if ok else f": {text[:300]}"))
sys.exit(1 if failed else 0)
EOF

if [ "$status" -ne 0 ]; then
  echo "schemathesis.sh: FAILED (agent log follows)" >&2
  tail -20 "$work/agent.log" >&2
fi
exit "$status"
