#!/bin/bash
# Tests of the Slurm hooks (deploy/slurm): a fake `powerstack` first in PATH records the
# arguments each hook gives it for a set of SLURM_* variables; a failing or hanging powerstack
# still lets the hook exit 0. Run: bash deploy/tests/test-slurm-hooks.sh

# CASE names each case for the failures lib.sh prints; the odd job names are literal.
# shellcheck disable=SC2034,SC2016
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
unset SLURM_JOB_ID SLURM_JOB_NODELIST SLURM_JOB_USER SLURM_JOB_ACCOUNT SLURM_JOB_NAME
unset POWERSTACK_SITE POWERSTACK_SITE_TOKEN_FILE POWERSTACK_SITE_CA POWERSTACK_TOKEN_FILE
PROLOG=slurm/powerstack-prolog-slurmctld.sh
# The fake scontrol: prints the file FAKE_SCONTROL (captured `scontrol show job -d` text), or
# fails when none is given.
cat >"$BIN/scontrol" <<'FAKE'
#!/bin/bash
[ -n "${FAKE_SCONTROL:-}" ] || exit 1
cat "$FAKE_SCONTROL"
FAKE
chmod +x "$BIN/scontrol"
# `scontrol show job -d` of a job sharing its nodes (Slurm 23.11, two GPUs on node[01-02], one
# CPU range on node03, no GPU there).
cat >"$SCRATCH/shared.txt" <<'TEXT'
JobId=4300 JobName=train
   UserId=alice(1000) GroupId=alice(1000) MCS_label=N/A
   JobState=RUNNING Reason=None Dependency=(null)
   NodeList=node[01-03]
   NumNodes=3 NumCPUs=40 NumTasks=3 CPUs/Task=16 ReqB:S:C:T=0:0:*:*
   ReqTRES=cpu=40,mem=0,node=3,billing=40,gres/gpu=4
   JOB_GRES=gpu:4
     Nodes=node[01-02] CPU_IDs=0-15 Mem=0 GRES=gpu:a100:2(IDX:0-1)
     Nodes=node03 CPU_IDs=0-3,8-11 Mem=0 GRES=
   MinCPUsNode=16 MinMemoryNode=0 MinTmpDiskNode=0
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
TEXT
# The same job holding its nodes exclusively.
sed 's/OverSubscribe=OK/OverSubscribe=NO/' "$SCRATCH/shared.txt" >"$SCRATCH/exclusive.txt"
# One node, GPUs 1 and 3 of four.
cat >"$SCRATCH/gpus.txt" <<'TEXT'
JobId=4302 JobName=infer
   NodeList=gpu7
     Nodes=gpu7 CPU_IDs=4 Mem=1024 GRES=gpu:2(IDX:1,3)
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
TEXT
# An exclusive job with a priority and a power request among other words of its comment.
cat >"$SCRATCH/request.txt" <<'TEXT'
JobId=4310 JobName=big
   UserId=alice(1000) GroupId=alice(1000) MCS_label=N/A
   Priority=4294901759 Nice=0 Account=proj1 QOS=normal
   JobState=RUNNING Reason=None Dependency=(null)
   OverSubscribe=NO Contiguous=0 Licenses=(null) Network=(null)
   Comment=campaign x, power_watts=4000;other
   AdminComment=power_watts=9
TEXT
# A shared job with a priority and a power request that is not one.
sed -e 's/OverSubscribe=OK/OverSubscribe=OK Priority=0042/' \
    -e '$a\   Comment=power_watts=0' "$SCRATCH/gpus.txt" >"$SCRATCH/bad-request.txt"
EPILOG=slurm/powerstack-epilog-slurmctld.sh
SITE=https://site.example:9465

settings "# the site" "POWERSTACK_SITE=$SITE" "POWERSTACK_SITE_TOKEN_FILE=\"/etc/powerstack/site token\"" \
    "POWERSTACK_SITE_CA=/etc/powerstack/site-ca.pem" \
    "POWERSTACK_TOKEN_FILE='/etc/powerstack/agent.token'" "  POWERSTACK_AGENT_PORT = 9500" ""

CASE="prolog: a full job"
run_hook "$PROLOG" SLURM_JOB_ID=4242 SLURM_JOB_NODELIST='node[01-04,07]' SLURM_JOB_USER=alice \
    SLURM_JOB_ACCOUNT=proj1 SLURM_JOB_NAME=lammps
expect_status_0
expect_args job begin "--site=$SITE" '--nodes=node[01-04,07]' --port=9500 --timeout=3s \
    --user=alice --account=proj1 --app=lammps "--site-token-file=/etc/powerstack/site token" \
    --site-ca=/etc/powerstack/site-ca.pem \
    --token-file=/etc/powerstack/agent.token -- 4242

CASE="prolog: an empty account and an odd job name"
name=$'-x "quoted" $(touch /tmp/owned) ; `id` *\nsecond line'
run_hook "$PROLOG" SLURM_JOB_ID=17 SLURM_JOB_NODELIST=nid001 SLURM_JOB_USER=bob \
    SLURM_JOB_ACCOUNT= "SLURM_JOB_NAME=$name"
expect_status_0
expect_args job begin "--site=$SITE" --nodes=nid001 --port=9500 --timeout=3s --user=bob \
    "--app=$name" "--site-token-file=/etc/powerstack/site token" --site-ca=/etc/powerstack/site-ca.pem \
    --token-file=/etc/powerstack/agent.token -- 17

CASE="prolog: no name, no account, agents left alone"
settings "POWERSTACK_SITE=$SITE" "POWERSTACK_MARK_AGENTS=no" "POWERSTACK_REQUEST_TIMEOUT=1s" \
    "POWERSTACK_SITE=$SITE/extra=1" "NOT_A_SETTING=x"
run_hook "$PROLOG" SLURM_JOB_ID=18 SLURM_JOB_NODELIST='rack[1-2]-node[01-02]' SLURM_JOB_USER=carol
expect_status_0
expect_args job begin "--site=$SITE/extra=1" '--nodes=rack[1-2]-node[01-02]' --port=9464 \
    --timeout=1s --user=carol --no-agents -- 18
expect_logged "ignoring unknown setting NOT_A_SETTING"

CASE="prolog: powerstack fails"
settings "POWERSTACK_SITE=$SITE"
run_hook "$PROLOG" SLURM_JOB_ID=19 SLURM_JOB_NODELIST=n1 SLURM_JOB_USER=dave FAKE_EXIT=1 \
    "FAKE_STDERR=error: job begin 19: site $SITE unreachable: connection refused"
expect_status_0
expect_logged "job begin 19: error: job begin 19: site $SITE unreachable: connection refused"
expect_logged "job begin 19: powerstack failed (exit 1)"

CASE="prolog: powerstack hangs"
settings "POWERSTACK_SITE=$SITE" "POWERSTACK_HOOK_TIMEOUT=1"
run_hook "$PROLOG" SLURM_JOB_ID=20 SLURM_JOB_NODELIST=n1 FAKE_SLEEP=60
expect_status_0
expect_logged "job begin 20: no answer within 1s"

CASE="prolog: powerstack missing"
settings "POWERSTACK_SITE=$SITE" "POWERSTACK_BIN=$SCRATCH/nowhere/powerstack"
run_hook "$PROLOG" SLURM_JOB_ID=21 SLURM_JOB_NODELIST=n1
expect_status_0
expect_logged "job begin 21: powerstack failed (exit 127)"

CASE="prolog: no site configured"
rm -f "$SCRATCH/site.env"
run_hook "$PROLOG" SLURM_JOB_ID=22 SLURM_JOB_NODELIST=n1
expect_status_0
expect_not_run
expect_logged "POWERSTACK_SITE is not set; job 22 not recorded"
expect_stderr "POWERSTACK_SITE is not set; job 22 not recorded"

CASE="prolog: no job id"
settings "POWERSTACK_SITE=$SITE"
run_hook "$PROLOG" SLURM_JOB_NODELIST=n1
expect_status_0
expect_not_run

CASE="prolog: a shared job gives what it holds of each node"
settings "POWERSTACK_SITE=$SITE"
run_hook "$PROLOG" SLURM_JOB_ID=4300 SLURM_JOB_NODELIST='node[01-03]' "FAKE_SCONTROL=$SCRATCH/shared.txt"
expect_status_0
expect_args job begin "--site=$SITE" '--nodes=node[01-03]' --port=9464 --timeout=3s \
    '--alloc=node[01-02]:cpus=16:gpus=0,1' --alloc=node03:cpus=8 -- 4300

CASE="prolog: an exclusive job holds its nodes whole"
run_hook "$PROLOG" SLURM_JOB_ID=4301 SLURM_JOB_NODELIST='node[01-03]' "FAKE_SCONTROL=$SCRATCH/exclusive.txt"
expect_status_0
expect_args job begin "--site=$SITE" '--nodes=node[01-03]' --port=9464 --timeout=3s -- 4301

CASE="prolog: GPU indices listed one by one"
run_hook "$PROLOG" SLURM_JOB_ID=4302 SLURM_JOB_NODELIST=gpu7 "FAKE_SCONTROL=$SCRATCH/gpus.txt"
expect_status_0
expect_args job begin "--site=$SITE" --nodes=gpu7 --port=9464 --timeout=3s \
    --alloc=gpu7:cpus=1:gpus=1,3 -- 4302

CASE="prolog: the priority (capped) and the power request of the comment"
run_hook "$PROLOG" SLURM_JOB_ID=4310 SLURM_JOB_NODELIST=node01 "FAKE_SCONTROL=$SCRATCH/request.txt"
expect_status_0
expect_args job begin "--site=$SITE" --nodes=node01 --port=9464 --timeout=3s \
    --priority=2147483647 --power-watts=4000 -- 4310

CASE="prolog: a power request that is none is left out, the allocation kept"
run_hook "$PROLOG" SLURM_JOB_ID=4311 SLURM_JOB_NODELIST=gpu7 "FAKE_SCONTROL=$SCRATCH/bad-request.txt"
expect_status_0
expect_args job begin "--site=$SITE" --nodes=gpu7 --port=9464 --timeout=3s \
    --alloc=gpu7:cpus=1:gpus=1,3 --priority=42 -- 4311
expect_logged "job 4311: power_watts=0 in its comment is not a number of watts above 0; ignored"

CASE="prolog: scontrol fails"
run_hook "$PROLOG" SLURM_JOB_ID=4303 SLURM_JOB_NODELIST=gpu7
expect_status_0
expect_args job begin "--site=$SITE" --nodes=gpu7 --port=9464 --timeout=3s -- 4303
expect_logged "scontrol show job -d 4303 failed"

CASE="epilog: the end, with the nodes for when the site is down"
settings "POWERSTACK_SITE=$SITE" "POWERSTACK_TOKEN_FILE=/etc/powerstack/agent.token"
run_hook "$EPILOG" SLURM_JOB_ID=4242 SLURM_JOB_NODELIST='node[01-04,07]' SLURM_JOB_USER=alice \
    SLURM_JOB_ACCOUNT= SLURM_JOB_NAME='x y'
expect_status_0
expect_args job end "--site=$SITE" --port=9464 --timeout=3s '--nodes=node[01-04,07]' \
    --token-file=/etc/powerstack/agent.token -- 4242

CASE="epilog: powerstack fails"
run_hook "$EPILOG" SLURM_JOB_ID=4243 SLURM_JOB_NODELIST=n1 FAKE_EXIT=3
expect_status_0
expect_logged "job end 4243: powerstack failed (exit 3)"

finish
