#!/usr/bin/env bash
# Instructions per sample of the agent's sampler thread, counted by callgrind (repeatable, whatever
# else the machine is doing): an agent at 200 Hz on a simulated intel-2s node for 25 s under
# `valgrind --tool=callgrind --separate-threads=yes`; the sampler thread's total instructions
# divided by its calls to `Ring::push` (start-up included, the same for every binary compared).
# Usage: scripts/callgrind-sampler.sh [BIN] (default target/release/powerstack).
set -euo pipefail
BIN=$(realpath "${1:-target/release/powerstack}")
work=$(mktemp -d "${TMPDIR:-/tmp}/powerstack-cg.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$BIN" sim create --profile intel-2s "$work/node" >/dev/null
"$BIN" sim run --tick 5ms "$work/node" 2>/dev/null &
sim=$!
mkdir "$work/out"
(cd "$work/out" && exec valgrind --tool=callgrind --separate-threads=yes "$BIN" agent \
  --root "$work/node" --socket "" --listen 127.0.0.1:0 --rate-hz 200 --state-dir "$work/state" \
  2>/dev/null) &
agent=$!
sleep 25
kill -TERM "$agent"; wait "$agent" || true
kill "$sim"; wait "$sim" 2>/dev/null || true
python3 - "$work/out" <<'PY'
import glob, re, sys
for f in sorted(glob.glob(sys.argv[1] + "/callgrind.out.*")):
    text = open(f, errors="ignore").read()
    total = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    names, calls, lines = {}, 0, text.split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
        if not m:
            continue
        if m.group(2):
            names[m.group(1)] = m.group(2)
        name = names.get(m.group(1), "")
        if line.startswith("cfn=") and "Ring" in name and "::push" in name and i + 1 < len(lines):
            c = re.match(r"calls=(\d+)", lines[i + 1])
            calls += int(c.group(1)) if c else 0
    if calls and total:
        n = int(total.group(1))
        print(f"sampler thread: {n} instructions, {calls} samples, {n // calls} per sample")
PY
