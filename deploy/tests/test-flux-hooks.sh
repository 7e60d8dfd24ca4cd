#!/bin/bash
# Tests of the Flux job-manager hooks (deploy/flux): a fake `flux` answers `job info ID R`,
# `R decode --nodelist`, `jobs -no {name}` and `job info ID jobspec`, and a fake `powerstack`
# records the arguments each hook gives it; a failing powerstack or flux still lets the hook
# exit 0. Run: bash deploy/tests/test-flux-hooks.sh

# CASE names each case for the failures lib.sh prints; the odd job names are literal.
# shellcheck disable=SC2034,SC2016
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
unset FLUX_JOB_ID FLUX_JOB_USERID POWERSTACK_SITE POWERSTACK_SITE_TOKEN_FILE POWERSTACK_SITE_CA POWERSTACK_TOKEN_FILE
PROLOG=flux/powerstack-prolog.sh
EPILOG=flux/powerstack-epilog.sh
SITE=http://site.example:9465

# The fake flux: its calls in $SCRATCH/flux.calls; the job's nodes FAKE_NODELIST, its name
# FAKE_NAME, its bank FAKE_BANK, its power request FAKE_POWER (JSON); FAKE_FLUX_EXIT makes every
# call fail.
cat >"$BIN/flux" <<'FAKE'
#!/bin/bash
printf '%s\n' "$*" >>"$SCRATCH/flux.calls"
[ -n "${FAKE_FLUX_EXIT:-}" ] && exit "$FAKE_FLUX_EXIT"
case "$1 $2 ${4:-}" in
    "job info R") echo '{"version": 1, "execution": {"R_lite": [], "nodelist": ["x"]}}' ;;
    "job info jobspec")
        if [ -n "${FAKE_BANK:-}" ]; then bank=", \"bank\": \"$FAKE_BANK\""; else bank=; fi
        [ -n "${FAKE_POWER:-}" ] && bank+=", \"power_watts\": $FAKE_POWER"
        printf '{"attributes": {"system": {"duration": 0, "job": {"name": "%s"}%s}}}\n' \
            "${FAKE_NAME:-}" "$bank" ;;
    "R decode "*) cat >/dev/null; printf '%s\n' "${FAKE_NODELIST:-}" ;;
    "jobs -no "*) printf '%s\n' "${FAKE_NAME:-}" ;;
    *) echo "fake flux: unexpected call: $*" >&2; exit 1 ;;
esac
FAKE
chmod +x "$BIN/flux"

# The flux command was called with this line (its arguments joined by spaces).
expect_flux_call() {
    if grep -qxF -- "$1" "$SCRATCH/flux.calls" 2>/dev/null; then pass; else
        fail "flux not called as: $1 (calls: $(tr '\n' ';' <"$SCRATCH/flux.calls" 2>/dev/null))"
    fi
}

settings "POWERSTACK_SITE=$SITE" "POWERSTACK_TOKEN_FILE=/etc/powerstack/agent.token"
user0=$(getent passwd 0 | cut -d: -f1)

CASE="prolog: a job with a name and a bank"
rm -f "$SCRATCH/flux.calls"
run_hook "$PROLOG" FLUX_JOB_ID=ƒ2Xy3Zq FLUX_JOB_USERID=0 FAKE_NODELIST='node[1-2,7]' \
    FAKE_NAME=lammps FAKE_BANK=physics
expect_status_0
expect_args job begin "--site=$SITE" '--nodes=node[1-2,7]' --port=9464 --timeout=3s \
    "--user=$user0" --account=physics --app=lammps --token-file=/etc/powerstack/agent.token \
    -- f2Xy3Zq
expect_flux_call "job info ƒ2Xy3Zq R"
expect_flux_call "R decode --nodelist"
expect_flux_call "jobs -no {name} ƒ2Xy3Zq"
expect_flux_call "job info ƒ2Xy3Zq jobspec"

CASE="prolog: a job asking for power"
run_hook "$PROLOG" FLUX_JOB_ID=ƒ5 FLUX_JOB_USERID=0 FAKE_NODELIST=n1 FAKE_POWER=4000.5
expect_status_0
expect_args job begin "--site=$SITE" --nodes=n1 --port=9464 --timeout=3s "--user=$user0" \
    --power-watts=4000.5 --token-file=/etc/powerstack/agent.token -- f5

CASE="prolog: a power request given as a string"
run_hook "$PROLOG" FLUX_JOB_ID=ƒ6 FLUX_JOB_USERID=0 FAKE_NODELIST=n1 'FAKE_POWER="300"'
expect_status_0
expect_args job begin "--site=$SITE" --nodes=n1 --port=9464 --timeout=3s "--user=$user0" \
    --power-watts=300 --token-file=/etc/powerstack/agent.token -- f6

CASE="prolog: a power request that is none is left out"
run_hook "$PROLOG" FLUX_JOB_ID=ƒ7 FLUX_JOB_USERID=0 FAKE_NODELIST=n1 FAKE_POWER=0
expect_status_0
expect_args job begin "--site=$SITE" --nodes=n1 --port=9464 --timeout=3s "--user=$user0" \
    --token-file=/etc/powerstack/agent.token -- f7
expect_logged "job f7: power_watts 0 in its jobspec is not a number of watts above 0; ignored"

CASE="prolog: no bank, an odd name, an unknown uid"
name='-n "x" $(id) `y` ;&'
run_hook "$PROLOG" FLUX_JOB_ID=ƒ4 FLUX_JOB_USERID=4242424 FAKE_NODELIST=n1 "FAKE_NAME=$name"
expect_status_0
expect_args job begin "--site=$SITE" --nodes=n1 --port=9464 --timeout=3s --user=4242424 \
    "--app=$name" --token-file=/etc/powerstack/agent.token -- f4

CASE="prolog: a decimal id and no user id"
settings "POWERSTACK_SITE=$SITE" "POWERSTACK_MARK_AGENTS=no"
run_hook "$PROLOG" FLUX_JOB_ID=123456789 FAKE_NODELIST=n1
expect_status_0
expect_args job begin "--site=$SITE" --nodes=n1 --port=9464 --timeout=3s --no-agents -- 123456789

CASE="prolog: powerstack fails"
run_hook "$PROLOG" FLUX_JOB_ID=ƒ5 FLUX_JOB_USERID=0 FAKE_NODELIST=n1 FAKE_EXIT=1 \
    "FAKE_STDERR=error: site $SITE answered 403: not allowed"
expect_status_0
expect_logged "job begin f5: error: site $SITE answered 403: not allowed"
expect_logged "job begin f5: powerstack failed (exit 1)"

CASE="prolog: flux fails"
run_hook "$PROLOG" FLUX_JOB_ID=ƒ6 FLUX_JOB_USERID=0 FAKE_FLUX_EXIT=1
expect_status_0
expect_not_run
expect_logged "job f6: flux gave no nodes for it; not recorded"

CASE="prolog: no site configured"
settings "# nothing"
run_hook "$PROLOG" FLUX_JOB_ID=ƒ7 FAKE_NODELIST=n1
expect_status_0
expect_not_run
expect_logged "POWERSTACK_SITE is not set"
expect_stderr "POWERSTACK_SITE is not set"

CASE="epilog: the end, with the nodes from R"
settings "POWERSTACK_SITE=$SITE" "POWERSTACK_SITE_TOKEN_FILE=/etc/powerstack/site.token" \
    "POWERSTACK_SITE_CA=/etc/powerstack/site-ca.pem"
run_hook "$EPILOG" FLUX_JOB_ID=ƒ2Xy3Zq FLUX_JOB_USERID=0 FAKE_NODELIST='node[1-2,7]'
expect_status_0
expect_args job end "--site=$SITE" --port=9464 --timeout=3s '--nodes=node[1-2,7]' \
    --site-token-file=/etc/powerstack/site.token --site-ca=/etc/powerstack/site-ca.pem -- f2Xy3Zq

CASE="epilog: flux fails: the site's record of the nodes is used"
run_hook "$EPILOG" FLUX_JOB_ID=ƒ8 FAKE_FLUX_EXIT=1
expect_status_0
expect_args job end "--site=$SITE" --port=9464 --timeout=3s \
    --site-token-file=/etc/powerstack/site.token --site-ca=/etc/powerstack/site-ca.pem -- f8

CASE="epilog: powerstack hangs"
settings "POWERSTACK_SITE=$SITE" "POWERSTACK_HOOK_TIMEOUT=1"
run_hook "$EPILOG" FLUX_JOB_ID=ƒ9 FAKE_NODELIST=n1 FAKE_SLEEP=60
expect_status_0
expect_logged "job end f9: no answer within 1s"

finish
