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
    local alloc
    while IFS= read -r alloc; do
        [ -n "$alloc" ] && args+=("--alloc=$alloc")
    done < <(allocations "$id")
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

# What job ID holds of each node, one `HOSTLIST:cpus=N[:gpus=I,J]` a line, from
# `scontrol show job -d ID`; nothing for a job that holds its nodes exclusively, or when scontrol
# does not answer.
allocations() {
    local text line word nodes cpus gpus idx
    text=$(timeout --kill-after=2 "${POWERSTACK_HOOK_TIMEOUT:-10}" scontrol show job -d "$1" 2>/dev/null) || {
        log "scontrol show job -d $1 failed; job $1 recorded as holding its nodes whole"
        return
    }
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
        echo "${line%:gpus=}"
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
