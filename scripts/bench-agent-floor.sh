#!/usr/bin/env bash
# CPU use of `powerstack agent` at 1000 Hz on the simulated intel-2s node, side by side with the
# floor: a C loop waking to the same absolute deadlines (clock_nanosleep, TIMER_ABSTIME) and doing
# nothing else. Agent and floor run at the same time for the same wall time, so they see the same
# machine; the simulator animating the root runs in its own process and is not counted.
#
#   scripts/bench-agent-floor.sh [ROUNDS] [SECONDS] [RATE_HZ]      (defaults: 7 rounds of 20 s, 1000 Hz)
#
# Each round has two phases of SECONDS, each with a fresh floor process (so its timer phase
# against the agent's changes from phase to phase):
#   empty  the agent beside the empty loop: the ratio agent/empty is the measure;
#   reads  the agent beside the loop that also does what the agent cannot avoid, one pread of each
#          of the agent's five kept-open energy_uj files per wake-up (opened with O_NOATIME, as the
#          agent opens them): the ratio agent/reads is the agent's own work beyond that.
# A third loop in the same phase would make every wake-up cheaper (vCPUs idle less): one floor
# per phase keeps the conditions of the agent's measurement.
#
# CPU is each process's threads' run time from /proc/PID/task/*/schedstat (ns; utime and stime
# are 10 ms ticks), as % of one core over the phase's wall time; µs/wake is run time per time
# slice (one per wake-up for a sleeping loop). Busy % is all CPUs over the phase, from /proc/stat
# (other work on the machine). Then the medians, and the agent's threads over the whole run.
# The root lives under $TMPDIR (or /tmp); its file system is printed, because tmpfs and disk
# differ. POWERSTACK=path picks the binary (default target/release/powerstack, built if absent).
set -euo pipefail
rounds=${1:-7}
secs=${2:-20}
rate=${3:-1000}
bin=${POWERSTACK:-target/release/powerstack}
[ -x "$bin" ] || cargo build --release --locked -q -p powerstack
command -v gcc >/dev/null || { echo "gcc is needed for the floor loop" >&2; exit 1; }
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

cat >"$work/floor.c" <<'C'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
/* floor HZ [FILE...]: wake at HZ to absolute deadlines; read each FILE once per wake-up. */
int main(int argc, char **argv) {
    long period = 1000000000L / atol(argv[1]);
    int n = argc - 2 < 16 ? argc - 2 : 16, fd[16];
    for (int i = 0; i < n; i++) {
        fd[i] = open(argv[i + 2], O_RDONLY | O_NOATIME);
        if (fd[i] < 0) fd[i] = open(argv[i + 2], O_RDONLY);
        if (fd[i] < 0) return 1;
    }
    char buf[64];
    volatile unsigned long long sum = 0;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    for (;;) {
        t.tv_nsec += period;
        if (t.tv_nsec >= 1000000000L) { t.tv_nsec -= 1000000000L; t.tv_sec++; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
        for (int i = 0; i < n; i++) {
            ssize_t k = pread(fd[i], buf, sizeof buf - 1, 0);
            if (k > 0) { buf[k] = 0; sum += strtoull(buf, NULL, 10); }
        }
    }
}
C
gcc -O2 -o "$work/floor" "$work/floor.c"

root="$work/root"
"$bin" sim create --profile intel-2s "$root" >/dev/null
"$bin" sim run "$root" >/dev/null 2>&1 &
pids+=($!)
"$bin" agent --root "$root" --rate-hz "$rate" --buffer-samples 100000 --socket "" \
  --listen 127.0.0.1:0 --state-dir "$work/state" 2>"$work/agent.log" &
pids+=($!)
agent=$!
for _ in $(seq 100); do grep -q "API http://" "$work/agent.log" && break; sleep 0.1; done
grep -q "API http://" "$work/agent.log" || { cat "$work/agent.log" >&2; exit 1; }
# The five files the agent reads on intel-2s: package-0, dram-0, package-1, dram-1, psys.
pc="$root/sys/class/powercap"
files=("$pc/intel-rapl:0/energy_uj" "$pc/intel-rapl:0:0/energy_uj" "$pc/intel-rapl:1/energy_uj"
  "$pc/intel-rapl:1:0/energy_uj" "$pc/intel-rapl:2/energy_uj")

# Run time (ns) and time slices, summed over a process's threads.
runtime() { cat /proc/"$1"/task/*/schedstat | awk '{ns += $1; n += $3} END {print ns, n}'; }
busy() { awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
threads() {
  for t in /proc/"$1"/task/*; do
    printf '%s/%s %s\n' "$(tr ' ' _ <"$t/comm")" "${t##*/}" "$(cut -d' ' -f1,3 "$t/schedstat")"
  done | sort
}

# One phase beside a fresh floor (args: the floor's files, if any): prints
# agent% agent-µs/wake floor% floor-µs/wake ratio busy%.
phase() {
  "$work/floor" "$rate" "$@" &
  local floor=$!
  pids+=("$floor")
  sleep 1
  local a0 an0 f0 fn0 b0 all0 a1 an1 f1 fn1 b1 all1 w0 w1
  read -r a0 an0 < <(runtime "$agent")
  read -r f0 fn0 < <(runtime "$floor")
  read -r b0 all0 < <(busy)
  w0=$(date +%s%N)
  sleep "$secs"
  read -r a1 an1 < <(runtime "$agent")
  read -r f1 fn1 < <(runtime "$floor")
  read -r b1 all1 < <(busy)
  w1=$(date +%s%N)
  kill "$floor"
  wait "$floor" 2>/dev/null || true
  awk -v a=$((a1 - a0)) -v an=$((an1 - an0)) -v f=$((f1 - f0)) -v fn=$((fn1 - fn0)) \
    -v w=$((w1 - w0)) -v b=$((b1 - b0)) -v all=$((all1 - all0)) 'BEGIN {
      printf "%6.3f %5.1f %6.3f %5.1f %5.2f %5.1f", 100*a/w, a/an/1e3, 100*f/w, f/fn/1e3, a/f, 100*b/all }'
}

echo "agent at $rate Hz on intel-2s: $(nproc) CPUs, root on $(stat -f -c %T "$root"), kernel $(uname -r)," \
  "clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "        |              beside the empty loop               |              beside the reads loop"
echo "round  | agent%  µs/wk  empty%  µs/wk  ratio  busy% | agent%  µs/wk  reads%  µs/wk  ratio  busy%"
threads "$agent" >"$work/t0"
t_start=$(date +%s%N)
for r in $(seq "$rounds"); do
  printf '%5d  | %s | %s\n' "$r" "$(phase)" "$(phase "${files[@]}")"
done | tee "$work/rounds"
t_end=$(date +%s%N)
threads "$agent" >"$work/t1"

awk -F'|' '
  function median(v, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
    return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
  }
  {
    split($2, p, " "); split($3, q, " ")
    for (k = 1; k <= 6; k++) { e[k, NR] = p[k]; s[k, NR] = q[k] }
  }
  END {
    printf "median |"
    for (k = 1; k <= 6; k++) { for (i = 1; i <= NR; i++) v[i] = e[k, i]; printf " %6s", sprintf(k == 5 ? "%.2f" : "%.3g", median(v, NR)) }
    printf " |"
    for (k = 1; k <= 6; k++) { for (i = 1; i <= NR; i++) v[i] = s[k, i]; printf " %6s", sprintf(k == 5 ? "%.2f" : "%.3g", median(v, NR)) }
    printf "\n"
  }' "$work/rounds"

echo "the agent's threads over the whole run: CPU %, wake-ups/s, µs per wake-up"
join "$work/t0" "$work/t1" | awk -v w=$((t_end - t_start)) '{
  ns = $4 - $2; n = $5 - $3
  printf "  %-24s %6.3f %7.1f %6.1f\n", $1, 100*ns/w, n*1e9/w, n ? ns/n/1e3 : 0 }'
