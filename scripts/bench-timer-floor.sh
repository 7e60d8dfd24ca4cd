#!/usr/bin/env bash
# The CPU cost of waking up at a fixed rate and doing nothing else: the floor under the agent's
# CPU use on this machine (timer interrupts and wake-ups are expensive in virtual machines).
#   scripts/bench-timer-floor.sh [RATE_HZ]
set -euo pipefail
rate=${1:-1000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/tick.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
int main(int argc, char **argv) {
    int hz = argc > 1 ? atoi(argv[1]) : 1000, secs = 10;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long period = 1000000000L / hz;
    for (int i = 0; i < hz * secs; i++) {
        t.tv_nsec += period;
        if (t.tv_nsec >= 1000000000L) { t.tv_nsec -= 1000000000L; t.tv_sec++; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
    }
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    double cpu = r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
    printf("empty %d Hz absolute-deadline loop: %.3f s CPU over %d s = %.2f%% of one core\n", hz, cpu, secs, 100 * cpu / secs);
    return 0;
}
C
gcc -O2 -o "$work/tick" "$work/tick.c"
"$work/tick" "$rate"
