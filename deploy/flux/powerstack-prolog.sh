#!/bin/bash
# powerstack job-manager prolog for Flux: records a Flux job at the powerstack site service
# (`powerstack job begin --site`) and marks it on the agents of its nodes.
#
#   /etc/flux/system/conf.d/powerstack.toml:
#     [job-manager]
#     plugins = [ { load = "perilog.so" } ]
#     [job-manager.prolog]
#     command = [ "/etc/flux/system/powerstack-prolog.sh" ]
#
# The perilog plugin runs it once (on rank 0, as the instance owner) when the job enters RUN,
# with FLUX_JOB_ID (F58, `ƒ...`) and FLUX_JOB_USERID set. The nodes come from the job's R
# (`flux job info ID R | flux R decode --nodelist`), the name from `flux jobs`, the account from
# the jobspec's `attributes.system.bank` (flux-accounting). The job id is recorded in its plain
# F58 form (`f...`). The power the job asks for, for the site's power bound, comes from the
# jobspec's `attributes.system.power_watts` (`flux run --setattr=system.power_watts=4000 ...`)
# as `--power-watts` (a number above 0; anything else is ignored, logged). Settings come from
# /etc/powerstack/site.env (another file with POWERSTACK_ENV_FILE); see docs/site.md.
#
# A failing prolog would fail the job: this one never does. powerstack and flux run under
# bounded timeouts, what goes wrong is logged to syslog (tag powerstack-flux) and stderr (Flux
# keeps a prolog's stderr in `flux dmesg`), and the script always exits 0.

set -u
TAG=powerstack-flux

log() {
    printf '%s: %s\n' "$TAG" "$*" >&2
    logger -t "$TAG" -p daemon.warning -- "$*" 2>/dev/null || true
}

# Reads KEY=VALUE lines of the settings file (comments, blank lines and quotes allowed); only
# the keys below are taken, nothing in the file is run.
read_settings() {
    local file=${POWERSTACK_ENV_FILE:-/etc/powerstack/site.env} line key value
    [ -r "$file" ] || { log "settings file $file not readable; using defaults"; return; }
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%$'\r'}
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
            '' | '#'*) continue ;;
            *=*) ;;
            *) log "ignoring a line without = in $file"; continue ;;
        esac
        key=${line%%=*} value=${line#*=}
        key=${key//[[:space:]]/} key=${key#export}
        value=${value#"${value%%[![:space:]]*}"}
        value=${value%"${value##*[![:space:]]}"}
        case $value in \"*\") value=${value:1:-1} ;; \'*\') value=${value:1:-1} ;; esac
        case $key in
            POWERSTACK_SITE | POWERSTACK_SITE_TOKEN_FILE | POWERSTACK_SITE_CA | POWERSTACK_AGENT_PORT | \
                POWERSTACK_TOKEN_FILE | POWERSTACK_MARK_AGENTS | POWERSTACK_HOOK_TIMEOUT | \
                POWERSTACK_REQUEST_TIMEOUT | POWERSTACK_BIN)
                printf -v "$key" '%s' "$value" ;;
            *) log "ignoring unknown setting $key in $file" ;;
        esac
    done <"$file"
}

# Runs a flux command under a bounded timeout.
fx() {
    timeout --kill-after=2 "${POWERSTACK_FLUX_TIMEOUT:-5}" flux "$@" 2>/dev/null
}

# The job's nodes as a hostlist, from its resource set R.
job_nodes() {
    fx job info "$1" R | fx R decode --nodelist
}

main() {
    read_settings
    local site=${POWERSTACK_SITE:-} jobid=${FLUX_JOB_ID:-} uid=${FLUX_JOB_USERID:-}
    [ -n "$site" ] || { log "POWERSTACK_SITE is not set; job ${jobid:-?} not recorded"; return; }
    [ -n "$jobid" ] || { log "FLUX_JOB_ID is not set; nothing recorded"; return; }
    local id=${jobid/#ƒ/f} nodes user='' name account='' jobspec power=''
    nodes=$(job_nodes "$jobid")
    [ -n "$nodes" ] || { log "job $id: flux gave no nodes for it; not recorded"; return; }
    case $uid in '' | *[!0-9]*) ;; *) user=$(getent passwd "$uid" | cut -d: -f1); user=${user:-$uid} ;; esac
    name=$(fx jobs -no '{name}' "$jobid")
    jobspec=$(fx job info "$jobid" jobspec)
    if [[ $jobspec =~ \"bank\"[[:space:]]*:[[:space:]]*\"([^\"\\]*)\" ]]; then
        account=${BASH_REMATCH[1]}
    fi
    if [[ $jobspec =~ \"power_watts\"[[:space:]]*:[[:space:]]*([^],}[:space:]]*) ]]; then
        power=${BASH_REMATCH[1]//\"/}
        if ! [[ $power =~ ^[0-9]{1,12}(\.[0-9]+)?$ && $power =~ [1-9] ]]; then
            log "job $id: power_watts $power in its jobspec is not a number of watts above 0; ignored"
            power=''
        fi
    fi
    local args=(job begin "--site=$site" "--nodes=$nodes" "--port=${POWERSTACK_AGENT_PORT:-9464}"
        "--timeout=${POWERSTACK_REQUEST_TIMEOUT:-3s}")
    [ -n "$user" ] && args+=("--user=$user")
    [ -n "$account" ] && args+=("--account=$account")
    [ -n "$name" ] && args+=("--app=$name")
    [ -n "$power" ] && args+=("--power-watts=$power")
    [ -n "${POWERSTACK_SITE_TOKEN_FILE:-}" ] && args+=("--site-token-file=$POWERSTACK_SITE_TOKEN_FILE")
    [ -n "${POWERSTACK_SITE_CA:-}" ] && args+=("--site-ca=$POWERSTACK_SITE_CA")
    [ -n "${POWERSTACK_TOKEN_FILE:-}" ] && args+=("--token-file=$POWERSTACK_TOKEN_FILE")
    [ "${POWERSTACK_MARK_AGENTS:-yes}" = no ] && args+=(--no-agents)
    args+=(-- "$id")
    run_bounded "job begin $id" "${args[@]}"
}

# Runs powerstack with ARGS under the hook's timeout; logs its complaints and failure.
run_bounded() {
    local what=$1 out rc limit=${POWERSTACK_HOOK_TIMEOUT:-10}
    shift
    out=$(timeout --kill-after=2 "$limit" "${POWERSTACK_BIN:-powerstack}" "$@" 2>&1 >/dev/null)
    rc=$?
    if [ -n "$out" ]; then
        while IFS= read -r line; do log "$what: $line"; done <<<"$out"
    fi
    case $rc in
        0) ;;
        124 | 137) log "$what: no answer within ${limit}s; the job runs without its record" ;;
        *) log "$what: powerstack failed (exit $rc); the job runs without its record" ;;
    esac
}

main
exit 0
