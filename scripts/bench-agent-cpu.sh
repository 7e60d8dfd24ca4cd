#!/usr/bin/env bash
# CPU use of `powerstack agent` sampling the simulated intel-2s node at 1000 Hz.
#
# The simulator animates the root in its own process, so only the agent's own CPU time is counted:
# utime + stime of the agent process from /proc/PID/stat over SECONDS of wall time.
#   scripts/bench-agent-cpu.sh [SECONDS] [RATE_HZ]
set -euo pipefail
secs=${1:-30}
rate=${2:-1000}
bin=${POWERSTACK:-target/release/powerstack}
[ -x "$bin" ] || cargo build --release -q -p powerstack
work=$(mktemp -d)
trap 'kill $sim $agent 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" sim create --profile intel-2s "$work/root" >/dev/null
"$bin" sim run "$work/root" 2>/dev/null & sim=$!
"$bin" agent --root "$work/root" --rate-hz "$rate" --buffer-samples 100000 \
  --socket "" --listen 127.0.0.1:0 --state-dir "$work/state" 2>"$work/agent.log" & agent=$!
sleep 2
ticks=$(getconf CLK_TCK)
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$agent/stat)
sleep "$secs"
read -r u1 s1 < <(awk '{print $14, $15}' /proc/$agent/stat)
cpu=$(( (u1 - u0) + (s1 - s0) ))
awk -v c="$cpu" -v t="$ticks" -v s="$secs" -v r="$rate" 'BEGIN {
  printf "agent at %s Hz on intel-2s: %.3f s CPU over %d s = %.2f%% of one core\n", r, c/t, s, 100*c/t/s }'
