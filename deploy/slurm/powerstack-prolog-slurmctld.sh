#!/bin/bash
# powerstack PrologSlurmctld: records a Slurm job at the powerstack site service
# (`powerstack job begin --site`) and marks it on the agents of its nodes.
#
#   slurm.conf:  PrologSlurmctld=/etc/slurm/powerstack-prolog-slurmctld.sh
#
# slurmctld runs it when the job is allocated, with SLURM_JOB_ID, SLURM_JOB_NODELIST,
# SLURM_JOB_USER, SLURM_JOB_ACCOUNT and SLURM_JOB_NAME set. Settings come from
# /etc/powerstack/site.env (another file with POWERSTACK_ENV_FILE); see docs/site.md.
#
# A job that does not hold its nodes exclusively (OverSubscribe other than NO) is given what it
# holds of each node, from `scontrol show job -d` (per-node lines `Nodes=... CPU_IDs=...
# GRES=gpu:2(IDX:0-1)`), as `--alloc`, so that the site splits a shared node's energy between
# its jobs (docs/site.md, "Shared nodes").
#
# For the site's power bound (docs/site.md, "What the power bound reads"), the job's priority
# (`Priority=` of `scontrol show job`, at most 2147483647) is given as `--priority`, and the power
# it asks for as `--power-watts` from a `power_watts=W` token in its comment:
#
#   sbatch --comment=power_watts=4000 job.sh
#
# (the token may stand among other words of the comment, separated by a space, comma or
# semicolon; a value that is not a number of watts above 0 is ignored, logged).
#
# It never holds up or fails a job: powerstack runs under a bounded timeout, what goes wrong is
# logged to syslog (tag powerstack-slurm) and stderr, and the script always exits 0.

set -u
TAG=powerstack-slurm

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

main() {
    read_settings
    local site=${POWERSTACK_SITE:-} id=${SLURM_JOB_ID:-} nodes=${SLURM_JOB_NODELIST:-}
    [ -n "$site" ] || { log "POWERSTACK_SITE is not set; job ${id:-?} not recorded"; return; }
    [ -n "$id" ] || { log "SLURM_JOB_ID is not set; nothing recorded"; return; }
    [ -n "$nodes" ] || { log "SLURM_JOB_NODELIST is empty; job $id not recorded"; return; }
    local args=(job begin "--site=$site" "--nodes=$nodes" "--port=${POWERSTACK_AGENT_PORT:-9464}"
        "--timeout=${POWERSTACK_REQUEST_TIMEOUT:-3s}")
    [ -n "${SLURM_JOB_USER:-}" ] && args+=("--user=$SLURM_JOB_USER")
    [ -n "${SLURM_JOB_ACCOUNT:-}" ] && args+=("--account=$SLURM_JOB_ACCOUNT")
    [ -n "${SLURM_JOB_NAME:-}" ] && args+=("--app=$SLURM_JOB_NAME")
    [ -n "${POWERSTACK_SITE_TOKEN_FILE:-}" ] && args+=("--site-token-file=$POWERSTACK_SITE_TOKEN_FILE")
    [ -n "${POWERSTACK_SITE_CA:-}" ] && args+=("--site-ca=$POWERSTACK_SITE_CA")
    [ -n "${POWERSTACK_TOKEN_FILE:-}" ] && args+=("--token-file=$POWERSTACK_TOKEN_FILE")
    [ "${POWERSTACK_MARK_AGENTS:-yes}" = no ] && args+=(--no-agents)
    local text='' arg
    text=$(timeout --kill-after=2 "${POWERSTACK_HOOK_TIMEOUT:-10}" scontrol show job -d "$id" 2>/dev/null) ||
        log "scontrol show job -d $id failed; job $id recorded as holding its nodes whole, without priority or power request"
    while IFS= read -r arg; do
        [ -n "$arg" ] && args+=("$arg")
    done < <(allocations "$text"; requests "$id" "$text")
    args+=(-- "$id")
    run_bounded "job begin $id" "${args[@]}"
}

# The count of the CPUs of a Slurm CPU list (`0-15,32-47`).
count_ids() {
    local n=0 part
    local IFS=,
    for part in $1; do
        case $part in
            *-*) n=$((n + ${part#*-} - ${part%-*} + 1)) ;;
            '') ;;
            *) n=$((n + 1)) ;;
        esac
    done
    echo "$n"
}

# A Slurm index list (`0-1,3`) written out (`0,1,3`).
expand_ids() {
    local out=() part i
    local IFS=,
    for part in $1; do
        case $part in
            *-*) for ((i = ${part%-*}; i <= ${part#*-}; i++)); do out+=("$i"); done ;;
            '') ;;
            *) out+=("$part") ;;
        esac
    done
    echo "${out[*]}"
}

# What the job holds of each node, one `--alloc=HOSTLIST:cpus=N[:gpus=I,J]` a line, from the
# text of `scontrol show job -d`; nothing for a job that holds its nodes exclusively, or when
# scontrol did not answer.
allocations() {
    local text=$1 line word nodes cpus gpus idx
    [ -n "$text" ] || return
    [[ $text =~ (^|[[:space:]])OverSubscribe=NO([[:space:]]|$) ]] && return
    while IFS= read -r line; do
        [[ $line =~ ^[[:space:]]*Nodes= ]] || continue
        nodes="" cpus="" gpus=""
        for word in $line; do
            case $word in
                Nodes=*) nodes=${word#Nodes=} ;;
                CPU_IDs=*) cpus=$(count_ids "${word#CPU_IDs=}") ;;
                GRES=*)
                    idx=""
                    [[ $word =~ gpu[^,\(]*\(IDX:([0-9,-]*)\) ]] && idx=${BASH_REMATCH[1]}
                    [ -n "$idx" ] && gpus=$(expand_ids "$idx")
                    ;;
            esac
        done
        [ -n "$nodes" ] || continue
        line=$nodes
        [ -n "$cpus" ] && [ "$cpus" != 0 ] && line+=":cpus=$cpus"
        line+=":gpus=${gpus// /,}"
        echo "--alloc=${line%:gpus=}"
    done <<<"$text"
}

# What job ID asks of the site's power bound, one argument a line, from the text of
# `scontrol show job`: `--priority=N` from `Priority=` (at most 2147483647), `--power-watts=W`
# from a `power_watts=W` token of `Comment=` (above 0, at most 12 digits before the point).
requests() {
    local id=$1 text=$2 line comment p w
    if [[ $text =~ (^|[[:space:]])Priority=([0-9]+)([[:space:]]|$) ]]; then
        p=${BASH_REMATCH[2]}
        p=${p#"${p%%[!0]*}"}
        if [ "${#p}" -gt 10 ] || [ "${p:-0}" -gt 2147483647 ]; then p=2147483647; fi
        echo "--priority=${p:-0}"
    fi
    while IFS= read -r line; do
        [[ $line =~ (^|[[:space:]])Comment=(.*)$ ]] || continue
        comment=${BASH_REMATCH[2]}
        [[ $comment =~ (^|[[:space:],;])power_watts=([^[:space:],;]*) ]] || return
        w=${BASH_REMATCH[2]}
        if [[ $w =~ ^[0-9]{1,12}(\.[0-9]+)?$ && $w =~ [1-9] ]]; then
            echo "--power-watts=$w"
        else
            log "job $id: power_watts=$w in its comment is not a number of watts above 0; ignored"
        fi
        return
    done <<<"$text"
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
