#!/usr/bin/env bash
# Real Redfish peers against powerstack (called by .ci/run after the other peer scripts, with the
# debug binaries the tests built; POWERSTACK_BIN and POWERSTACK_MOCK_BMC_BIN pick others).
#
# 1. DMTF's redfishtool (Debian's, installed when absent) against the mock BMC binary serving its
#    built-in legacy-Power and DMTF-Controls trees, with basic auth and with sessions, and the
#    DMTF public-rackmount1 mockup when ../shared/fixtures/redfish holds it: what redfishtool reads
#    (PowerConsumedWatts, LimitInWatts, capacity, SetPoint, PowerState) must be what `powerstack
#    bmc power|limits|state --format json` reports, before and after each tool writes a limit or
#    resets the system.
# 2. OpenStack's sushy-emulator (sushy-tools, pinned, in a virtual environment kept by
#    scripts/venv.sh) with its fake driver and six systems: `powerstack bmc state` must show each as
#    sushy does; each transition (a restart of a system that is Off too) must be confirmed only when
#    sushy's own view says so; PowerCycle (which sushy does not allow) must be refused with no POST
#    reaching sushy.
#
# Prints one line per comparison; exits non-zero on any mismatch. Everything lives in a temporary
# directory, removed on exit; the servers started here are stopped whatever happens.
# POWERSTACK_PEERS_KEEP=1 keeps the directory (logs) for a look afterwards.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PS=${POWERSTACK_BIN:-$ROOT/target/debug/powerstack}
MOCK=${POWERSTACK_MOCK_BMC_BIN:-$ROOT/target/debug/powerstack-mock-bmc}
FIXTURES=${POWERSTACK_REDFISH_FIXTURES:-$ROOT/../shared/fixtures/redfish}
SUSHY_VERSION=2.2.0
STARTED=$(date +%s)

say() { printf '== redfish-peers: %s\n' "$*"; }
die() {
    printf 'redfish-peers: FAIL: %s\n' "$*" >&2
    exit 1
}

# ---- what is needed ----
if ! command -v redfishtool >/dev/null 2>&1; then
    say "installing redfishtool (Debian)"
    [ "$(id -u)" = 0 ] || die "redfishtool is missing, and installing it needs root (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends redfishtool >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends redfishtool >/dev/null; } ||
        die "apt-get could not install redfishtool"
fi
# A virtual environment kept outside the checkout (scripts/venv.sh), or $SUSHY_VENV.
. "$ROOT/scripts/venv.sh"
SUSHY_VENV=$(ps_venv sushy ${SUSHY_VENV:+--at "$SUSHY_VENV"} "sushy-tools==$SUSHY_VERSION") ||
    die "could not install sushy-tools $SUSHY_VERSION"
if [ ! -x "$PS" ]; then
    say "building powerstack (debug)"
    (cd "$ROOT" && cargo build -q -p powerstack --locked)
fi
# Built by `cargo test --workspace` too (crates/powerstack-mock-bmc/tests/binary.rs); .ci/run
# names that one, so that it is not built again here with another feature set.
if [ -z "${POWERSTACK_MOCK_BMC_BIN:-}" ]; then
    (cd "$ROOT" && cargo build -q -p powerstack-mock-bmc --locked)
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/powerstack-peers.XXXXXX")
PIDS=()
cleanup() {
    local rc=$? pid
    trap - EXIT
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ $rc -ne 0 ] && [ -f "$W/sushy.log" ]; then
        printf -- '--- last lines of the sushy-emulator log\n' >&2
        tail -n 15 "$W/sushy.log" >&2 || true
    fi
    if [ -n "${POWERSTACK_PEERS_KEEP:-}" ]; then
        echo "redfish-peers: kept $W" >&2
    else
        rm -rf "$W"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- comparisons ----
# jget EXPR: the value of a Python expression over the JSON document `d` on stdin: numbers the
# same whether integer or float (344 and 344.0 are both 344), booleans and null as in JSON, a
# tuple as its values separated by spaces; pick(LIST, key=value...) is the first match.
jget() {
    python3 -c '
import json, sys
def pick(items, **want):
    return next(x for x in items if all(x.get(k) == v for k, v in want.items()))
def text(v):
    if isinstance(v, tuple):
        return " ".join(text(x) for x in v)
    if isinstance(v, bool) or v is None or isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, (int, float)):
        return f"{v:g}"
    return str(v)
print(text(eval(sys.argv[1], {"d": json.load(sys.stdin), "pick": pick})))' "$1"
}
FAILED=0
ROWS=0
printf '%-20s %-50s %-22s %-22s\n' PEER WHAT "PEER SAYS" "POWERSTACK SAYS"
# check PEER WHAT PEER_VALUE POWERSTACK_VALUE
check() {
    local verdict=ok
    if [ "$3" != "$4" ]; then
        verdict=MISMATCH
        FAILED=$((FAILED + 1))
    fi
    ROWS=$((ROWS + 1))
    printf '%-20s %-50s %-22s %-22s %s\n' "$1" "$2" "$3" "$4" "$verdict"
}
note() { printf '%-20s note: %s\n' "$1" "$2"; }

# ---- 1. redfishtool against the mock BMC ----
PASSWORD=$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
(umask 077 && printf '%s\n' "$PASSWORD" >"$W/password")

# start_mock NAME ARGS...: the mock BMC binary; sets URL and HOST.
start_mock() {
    local name=$1
    shift
    "$MOCK" "$@" >"$W/mock-$name.url" 2>"$W/mock-$name.log" &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        [ -s "$W/mock-$name.url" ] && break
        sleep 0.05
    done
    URL=$(head -n 1 "$W/mock-$name.url")
    [ -n "$URL" ] || die "the mock BMC ($*) printed no URL: $(cat "$W/mock-$name.log")"
    HOST=${URL#http://}
}

# AUTH is basic, session or none: rt runs redfishtool, ps `powerstack bmc`, with it.
rt() {
    case $AUTH in
    none) redfishtool -r "$HOST" -S Never -A None "$@" ;;
    basic) redfishtool -r "$HOST" -S Never -A Basic -u admin -p "$PASSWORD" "$@" ;;
    session) redfishtool -r "$HOST" -S Never -A Session -u admin -p "$PASSWORD" "$@" ;;
    esac
}
ps_bmc() {
    case $AUTH in
    none) "$PS" bmc --url "$URL" --format json "$@" ;;
    basic) "$PS" bmc --url "$URL" --user admin --password-file "$W/password" --format json "$@" ;;
    session) "$PS" bmc --url "$URL" --user admin --password-file "$W/password" --session --format json "$@" ;;
    esac
}

LEGACY='pick(d["limits"], dialect="LegacyLimitInWatts")'
# legacy_checks PEER CHASSIS: PowerControl[0] through redfishtool's Chassis commands.
legacy_checks() {
    local peer=$1 chassis=$2 reading limits
    reading=$(rt Chassis -I "$chassis" getPowerReading)
    limits=$(ps_bmc limits)
    check "$peer" "PowerConsumedWatts" "$(jget 'd["PowerConsumedWatts"]' <<<"$reading")" \
        "$(ps_bmc power | jget 'pick(d["chassis"][0]["power"], source={"uri": "/redfish/v1/Chassis/'"$chassis"'/Power", "property": "PowerControl/0/PowerConsumedWatts"})["watts"]')"
    check "$peer" "LimitInWatts" "$(jget 'd["PowerLimit"]["LimitInWatts"]' <<<"$reading")" \
        "$(jget "$LEGACY[\"set_point_watts\"]" <<<"$limits")"
    check "$peer" "PowerCapacityWatts (the limit's maximum)" \
        "$(jget 'd["PowerCapacityWatts"]' <<<"$reading")" "$(jget "$LEGACY[\"max_watts\"]" <<<"$limits")"
    ps_bmc cap 400 --chassis "$chassis" --control PowerControl/0 >/dev/null
    check "$peer" "powerstack cap 400, redfishtool reads" \
        "$(rt Chassis -I "$chassis" getPowerReading | jget 'd["PowerLimit"]["LimitInWatts"]')" 400
    rt Chassis -I "$chassis" setPowerLimit 450 >/dev/null
    check "$peer" "redfishtool setPowerLimit 450, powerstack reads" 450 \
        "$(ps_bmc limits | jget "$LEGACY[\"set_point_watts\"]")"
    rt Chassis -I "$chassis" setPowerLimit null >/dev/null
    check "$peer" "redfishtool setPowerLimit null: enforced" false \
        "$(ps_bmc limits | jget "$LEGACY[\"enforced\"]")"
}

# controls_checks PEER CHASSIS: the DMTF Control and EnvironmentMetrics, through redfishtool's raw
# GET and PATCH (its Chassis commands read only the legacy Power resource).
controls_checks() {
    local peer=$1 chassis=$2 control limits control_uri
    control_uri=/redfish/v1/Chassis/$chassis/Controls/PowerLimit
    local dmtf='pick(d["limits"], dialect="DmtfControls")'
    control=$(rt raw GET "$control_uri")
    limits=$(ps_bmc limits)
    check "$peer" "EnvironmentMetrics PowerWatts" \
        "$(rt raw GET "/redfish/v1/Chassis/$chassis/EnvironmentMetrics" | jget 'd["PowerWatts"]["Reading"]')" \
        "$(ps_bmc power | jget 'd["chassis"][0]["power_watts"]')"
    check "$peer" "Control SetPoint" "$(jget 'd["SetPoint"]' <<<"$control")" \
        "$(jget "$dmtf[\"set_point_watts\"]" <<<"$limits")"
    check "$peer" "Control AllowableMin..Max" \
        "$(jget 'd["AllowableMin"], d["AllowableMax"]' <<<"$control")" \
        "$(jget "$dmtf[\"min_watts\"], $dmtf[\"max_watts\"]" <<<"$limits")"
    ps_bmc cap 400 --chassis "$chassis" --control PowerLimit >/dev/null
    check "$peer" "powerstack cap 400, redfishtool reads" \
        "$(rt raw GET "$control_uri" | jget 'd["SetPoint"], d["ControlMode"]')" "400 Automatic"
    rt raw PATCH "$control_uri" -d '{"SetPoint": 450}' >/dev/null
    check "$peer" "redfishtool PATCH SetPoint 450, powerstack" 450 \
        "$(ps_bmc limits | jget "$dmtf[\"set_point_watts\"]")"
    rt raw PATCH "$control_uri" -d '{"ControlMode": "Disabled"}' >/dev/null
    check "$peer" "redfishtool PATCH Disabled: mode, enforced" "Disabled false" \
        "$(ps_bmc limits | jget "$dmtf[\"mode\"], $dmtf[\"enforced\"]")"
}

# reset_checks PEER SYSTEM: resets through redfishtool, the state through powerstack.
reset_checks() {
    local peer=$1 system=$2 reset
    check "$peer" "PowerState" "$(rt Systems -I "$system" get | jget 'd["PowerState"]')" \
        "$(ps_bmc state | jget 'd["systems"][0]["power_state"]')"
    for reset in ForceOff On; do
        rt Systems -I "$system" reset "$reset" >/dev/null
        check "$peer" "redfishtool reset $reset, PowerState" "${reset/Force/}" \
            "$(ps_bmc state | jget 'd["systems"][0]["power_state"]')"
    done
}

say "redfishtool $(dpkg-query -W -f '${Version}' redfishtool 2>/dev/null || echo '?') against the mock BMC"
for AUTH in basic session; do
    start_mock "legacy-$AUTH" --builtin legacy-power admin "$PASSWORD"
    legacy_checks "legacy-power/$AUTH" 1
    reset_checks "legacy-power/$AUTH" 1
    start_mock "controls-$AUTH" --builtin dmtf-controls admin "$PASSWORD"
    if rt Chassis -I 1 getPowerReading >"$W/rt-controls.out" 2>&1; then
        note "dmtf-ctl/$AUTH" "redfishtool's getPowerReading reads a Controls-only chassis"
    else
        note "dmtf-ctl/$AUTH" "redfishtool's getPowerReading cannot read a chassis without a Power resource (exit $?); raw GET/PATCH used"
    fi
    controls_checks "dmtf-ctl/$AUTH" 1
    reset_checks "dmtf-ctl/$AUTH" 1
done

if [ -d "$FIXTURES/public-rackmount1" ]; then
    AUTH=none
    start_mock rackmount "$FIXTURES/public-rackmount1"
    legacy_checks rackmount1 1U
    check rackmount1 "PowerSubsystem CapacityWatts" \
        "$(rt raw GET /redfish/v1/Chassis/1U/PowerSubsystem | jget 'd["CapacityWatts"]')" \
        "$(ps_bmc power | jget 'd["chassis"][0]["capacity_watts"]')"
    controls_checks rackmount1 1U
    reset_checks rackmount1 437XR1138R2
else
    note rackmount1 "skipped: no DMTF public-rackmount1 mockup in $FIXTURES"
fi

# ---- 2. sushy-emulator (fake driver) takes powerstack's transitions ----
say "sushy-emulator $SUSHY_VERSION (fake driver) takes powerstack's transitions"
SYSTEMS=(on:Off force-off:On graceful-shutdown:On graceful-restart:On force-restart:On restart-off:Off)
uuid_of() { printf '0000beef-0000-4000-8000-%012d' "$1"; }
{
    echo "SUSHY_EMULATOR_STATE_DIR = '$W/sushy-state'"
    echo "SUSHY_EMULATOR_FAKE_SYSTEMS = ["
    for i in "${!SYSTEMS[@]}"; do
        echo "    {'uuid': '$(uuid_of "$i")', 'name': 'peer-${SYSTEMS[$i]%%:*}',"
        echo "     'power_state': '${SYSTEMS[$i]#*:}', 'external_notifier': False, 'nics': []},"
    done
    echo "]"
} >"$W/sushy.conf"
SUSHY_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SUSHY=http://127.0.0.1:$SUSHY_PORT
"$SUSHY_VENV/bin/sushy-emulator" --config "$W/sushy.conf" --fake -i 127.0.0.1 -p "$SUSHY_PORT" \
    >"$W/sushy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    curl -sf "$SUSHY/redfish/v1/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "$SUSHY/redfish/v1/" >/dev/null || die "sushy-emulator did not answer on $SUSHY"
sushy_system() { curl -sf "$SUSHY/redfish/v1/Systems/$1"; }
posts() { grep -c 'POST /redfish/v1/Systems/.*/Actions/ComputerSystem.Reset' "$W/sushy.log" || true; }

"$PS" bmc --url "$SUSHY" --format json state >"$W/state.json"
check sushy "systems" "${#SYSTEMS[@]}" "$(jget 'len(d["systems"])' <"$W/state.json")"
for i in "${!SYSTEMS[@]}"; do
    id=$(uuid_of "$i")
    doc=$(sushy_system "$id")
    check sushy "peer-${SYSTEMS[$i]%%:*} PowerState" "$(jget 'd["PowerState"]' <<<"$doc")" \
        "$(jget "pick(d['systems'], id='$id')['power_state']" <"$W/state.json")"
    check sushy "peer-${SYSTEMS[$i]%%:*} allowed resets" \
        "$(jget '",".join(d["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"])' <<<"$doc")" \
        "$(jget "','.join(pick(d['systems'], id='$id')['allowed_resets'])" <"$W/state.json")"
done

# sushy's chassis links no Power, PowerSubsystem, EnvironmentMetrics, Sensors or Controls.
check sushy "chassis power (sushy serves none)" "null []" \
    "$("$PS" bmc --url "$SUSHY" --format json power | jget 'd["chassis"][0]["power_watts"], d["chassis"][0]["power"]')"

# PowerCycle is not among sushy's reset types: refused before anything is sent.
before=$(posts)
rc=0
"$PS" bmc --url "$SUSHY" --format json transition PowerCycle --system "$(uuid_of 1)" \
    >"$W/powercycle.out" 2>"$W/powercycle.err" || rc=$?
check sushy "PowerCycle: exit status, POSTs sushy got" "1 0" "$rc $(($(posts) - before))"
grep -q "nothing was sent" "$W/powercycle.err" ||
    { FAILED=$((FAILED + 1)); echo "redfish-peers: the PowerCycle refusal does not say nothing was sent: $(cat "$W/powercycle.err")" >&2; }

# The transitions, one per system, at once: sushy's fake driver applies each 1 to 11 s later
# (a restart goes Off at once, and On then); the last restarts a system that is Off.
TRANSITIONS=(On ForceOff GracefulShutdown GracefulRestart ForceRestart ForceRestart)
before=$(posts)
for i in "${!TRANSITIONS[@]}"; do
    (
        rc=0
        "$PS" bmc --url "$SUSHY" --format json transition "${TRANSITIONS[$i]}" --system "$(uuid_of "$i")" \
            --poll 50ms --deadline 30s >"$W/transition-$i.json" 2>"$W/transition-$i.err" || rc=$?
        echo "$rc" >"$W/transition-$i.rc"
    ) &
done
wait_transitions() { for i in "${!TRANSITIONS[@]}"; do [ -s "$W/transition-$i.rc" ] || return 1; done; }
for _ in $(seq 1 400); do wait_transitions && break; sleep 0.1; done
wait_transitions || die "the transitions did not end within 40 s"
check sushy "POSTs sushy got for ${#TRANSITIONS[@]} transitions" "${#TRANSITIONS[@]}" "$(($(posts) - before))"

for i in "${!TRANSITIONS[@]}"; do
    t=${TRANSITIONS[$i]}
    rc=$(cat "$W/transition-$i.rc")
    [ -s "$W/transition-$i.json" ] || die "powerstack bmc transition $t failed (exit $rc): $(cat "$W/transition-$i.err")"
    claim=$(jget 'd["confirmed"], d["final_state"]' <"$W/transition-$i.json")
    outcome=$(jget 'd["note"]' <"$W/transition-$i.json")
    sushy_state=$(sushy_system "$(uuid_of "$i")" | jget 'd["PowerState"]')
    note sushy "$t: exit $rc; $outcome"
    case $i:$t in
    5:*)
        # The system was Off: the restart is confirmed only once sushy says On, and says it was Off.
        if [ "$rc" = 0 ]; then
            check sushy "$t from Off: confirmed, final / sushy, says" "true On On true" \
                "$claim $sushy_state $(jget '"was Off before" in d["note"]' <"$W/transition-$i.json")"
        else
            check sushy "$t from Off: exit 3, sushy not On" "3 yes" \
                "$rc $([ "$sushy_state" != On ] && echo yes || echo no)"
        fi
        ;;
    *:On | *:ForceOff | *:GracefulShutdown)
        want=On
        [ "$t" = On ] || want=Off
        # Confirmed only when sushy says so; not confirmed (exit 3) is honest only while it does not.
        if [ "$rc" = 0 ]; then
            check sushy "$t: confirmed, final state / sushy's" "true $want $want" "$claim $sushy_state"
        else
            check sushy "$t: not confirmed (exit 3), sushy not $want" "3 yes" \
                "$rc $([ "$sushy_state" != "$want" ] && echo yes || echo no)"
        fi
        ;;
    *)
        # A restart is confirmed only once seen leaving On; else "not confirmable", exit 3.
        if [ "$rc" = 0 ]; then
            left=$(jget '" left On (seen: " in d["note"] and "Off" in d["note"].split("(seen: ")[1]' \
                <"$W/transition-$i.json")
            check sushy "$t: confirmed, seen Off, final / sushy" "true On true On" "$claim $left $sushy_state"
        else
            check sushy "$t: exit 3, says not confirmable" "3 true" \
                "$rc $(jget '"not confirmable" in d["note"]' <"$W/transition-$i.json")"
        fi
        ;;
    esac
done

say "$ROWS comparisons, $FAILED mismatches, in $(($(date +%s) - STARTED)) s"
[ "$FAILED" = 0 ] || die "$FAILED mismatches (above)"
