#!/usr/bin/env bash
# The Slurm check (issue 19): a real one-node Slurm cluster on this machine (munged, slurmctld, slurmd; Debian's
# slurm-wlm and munge, installed when missing), and launch/slurm/simclr.sbatch submitted to it with 2 CPU workers of
# the quickstart config at tiny sizes. Each check is a job:
#   run      a run to its end: job exit 0, the final checkpoint in the run directory
#   tls      the same over TLS: a self-signed certificate for this node, given as SIMCLR_TLS_CERT / SIMCLR_TLS_KEY
#   stop     `scancel --batch --signal=TERM` mid-run: the coordinator writes a checkpoint, the job exits 130
#   resume   the same job submitted again: it resumes from that checkpoint and runs to the end
#   cancel   a plain `scancel` mid-run: the job ends and no process of it is left
# After every job: no process whose environment carries its SLURM_JOB_ID is left. One summary table at the end.
# The cluster uses its own config (ports 16817/16818, state under a temporary folder) and is stopped on exit, so it
# does not touch a Slurm already installed here. Needs root (packages, daemons) and the .NET SDK (unless $SIMCLR).
# Usage: sudo bash bench/slurm.sh [--keep]      (--keep: leave the temporary folder, with logs and runs)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
keep=0
case "${1:-}" in
  --keep) keep=1 ;;
  "") ;;
  -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
  *) echo "bench/slurm.sh: unknown option $1 (--keep)" >&2; exit 2 ;;
esac
die() { echo "bench/slurm.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root (sudo bash bench/slurm.sh): it installs packages and starts munged, slurmctld and slurmd"

work=$(mktemp -d /tmp/simclr-slurm.XXXXXX)
chmod 755 "$work"
rows=()
started=$SECONDS
current=setup
started_munge=0
table() {
  echo
  echo "bench/slurm.sh: a one-node Slurm cluster on $(hostname -s), $((SECONDS - started)) s"
  { echo "check|result|detail|s"; printf '%s\n' "${rows[@]}"; } | column -t -s '|'
}
cleanup() {
  export SLURM_CONF=$work/etc/slurm.conf
  if [ -f "$SLURM_CONF" ]; then scancel --full --quiet --partition=debug 2>/dev/null || true; fi
  for pidfile in "$work/slurmd.pid" "$work/slurmctld.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  [ "$started_munge" = 1 ] && [ -f /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "bench/slurm.sh: kept $work"; else rm -rf "$work"; fi
}
on_error() {
  [ "$BASHPID" = "$$" ] || return 0
  rows+=("$current|FAILED|exit $1; output above|")
  table
  echo "bench/slurm.sh: FAILED at $current (exit $1)" >&2
  exit "$1"
}
trap 'on_error $?' ERR
trap cleanup EXIT
check() { current=$1; check_start=$SECONDS; echo "== $1: $2" >&2; }
pass() { rows+=("$current|ok|$1|$((SECONDS - check_start))"); }
fail() { echo "bench/slurm.sh: $current: $*" >&2; false; }

check setup "Slurm and munge, the daemons, simclr"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$work/apt.log" 2>&1 ||
    { tail -20 "$work/apt.log"; die "apt-get install slurm-wlm munge failed (output above)"; }
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge && chown munge:munge /run/munge
  [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
  runuser -u munge -- munged
  started_munge=1
  munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
fi
node=$(hostname -s)
mkdir -p "$work/etc" "$work/state" "$work/spool" "$work/runs"
cat >"$work/etc/slurm.conf" <<EOF
ClusterName=simclr-check
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=20
NodeName=$node CPUs=$(nproc) RealMemory=$(($(free -m | awk '/^Mem:/ {print $2}') / 2)) State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$work/etc/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for ((i = 0; i < 60; i++)); do
  [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break
  sleep 0.5
done
[ "$(sinfo -h -o %t)" = idle ] || { tail -5 "$work/slurmctld.log" "$work/slurmd.log"; fail "the node did not come up idle"; }
if [ -z "${SIMCLR:-}" ]; then
  dotnet build src/SimClr.Cli -c Release -v quiet -nologo >"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; fail "build failed"; }
  export SIMCLR=$repo/src/SimClr.Cli/bin/Release/net10.0/simclr
fi
pass "$(sinfo -h -o '%P %D node(s) %c CPUs %t'), slurm $(sinfo -V | cut -d' ' -f2)"

# 2 workers of one CPU each, the quickstart's model on 512 images, batch 64: 8 steps an epoch
tiny=(--config configs/quickstart-pretrain.json --set data.syntheticTrain=512 --set data.syntheticTest=256 --set batchSize=64
  --set knnEveryEpochs=0)
submit() { # submit NAME RUN [sbatch options] -- [coordinator args]: prints the job id
  local name=$1 run=$2; shift 2
  local options=()
  while [ "$1" != -- ]; do options+=("$1"); shift; done
  shift
  SIMCLR_RUN=$run sbatch --parsable --job-name="$name" --ntasks=2 --cpus-per-task=1 --output="$work/%x-%j.out" \
    "${options[@]}" launch/slurm/simclr.sbatch "${tiny[@]}" "$@"
}
wait_gone() { # wait_gone JOB: until the controller no longer lists it as pending or running
  for ((i = 0; i < 600; i++)); do
    [ -z "$(squeue -h -j "$1" -o %T 2>/dev/null)" ] && return 0
    sleep 0.5
  done
  fail "job $1 still in the queue after 5 minutes"
}
wait_step() { # wait_step JOB OUT N: until the job's output shows pre-training step N
  for ((i = 0; i < 600; i++)); do
    grep -qE "pretrain step ([0-9]+)/" "$2" 2>/dev/null && [ "$(grep -oE 'pretrain step [0-9]+' "$2" | tail -1 | awk '{print $3}')" -ge "$3" ] && return 0
    [ -z "$(squeue -h -j "$1" -o %T 2>/dev/null)" ] && { cat "$2"; fail "job $1 ended before step $3"; }
    sleep 0.5
  done
  fail "job $1 did not reach step $3 in 5 minutes"
}
exit_code() { scontrol show job "$1" | grep -oE ' ExitCode=[0-9]+' | cut -d= -f2; }
left_over() { # left_over JOB: processes whose environment carries SLURM_JOB_ID=JOB
  local found=()
  for environ in /proc/[0-9]*/environ; do
    tr '\0' '\n' 2>/dev/null <"$environ" | grep -qx "SLURM_JOB_ID=$1" && found+=("$(basename "$(dirname "$environ")")")
  done
  echo "${found[@]}"
}
no_process_left() {
  sleep 1
  local pids
  pids=$(left_over "$1")
  [ -z "$pids" ] || { ps -o pid,args -p "${pids// /,}"; fail "job $1 left processes: $pids"; }
}
latest() { find "$1/checkpoints" -name 'step-*.safetensors' 2>/dev/null | sort | tail -1; }

check run "a 2-worker run to its end (16 steps)"
job=$(submit run "$work/runs/run" --wait -- --set epochs=2) || { cat "$work"/run-*.out; fail "the job failed"; }
out=$work/run-$job.out
grep -q "simclr.sbatch: the run finished" "$out" || { cat "$out"; fail "no 'the run finished' line"; }
[ "$(basename "$(latest "$work/runs/run")")" = step-00000016.safetensors ] || { cat "$out"; fail "no final checkpoint step-00000016"; }
[ "$(grep -c 'worker stopped' "$out")" = 2 ] || { cat "$out"; fail "the workers did not both stop cleanly"; }
no_process_left "$job"
pass "job $job exit $(exit_code "$job"); 2 workers; step-00000016; both workers stopped cleanly"

check tls "the same over TLS (a self-signed certificate for $node)"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=simclr-workers" -addext "subjectAltName=DNS:$node" \
  -keyout "$work/worker.key" -out "$work/worker.pem" 2>/dev/null
job=$(SIMCLR_TLS_CERT=$work/worker.pem SIMCLR_TLS_KEY=$work/worker.key submit tls "$work/runs/tls" --wait -- --set epochs=1) ||
  { cat "$work"/tls-*.out; fail "the job failed"; }
out=$work/tls-$job.out
grep -q "https://$node:" "$out" || { cat "$out"; fail "the workers were not addressed over https"; }
[ "$(basename "$(latest "$work/runs/tls")")" = step-00000008.safetensors ] || { cat "$out"; fail "no final checkpoint step-00000008"; }
no_process_left "$job"
pass "job $job exit $(exit_code "$job"); https workers; step-00000008"

check stop "scancel --batch --signal=TERM mid-run: a checkpoint, exit 130"
job=$(submit resume "$work/runs/resume" -- --set epochs=4 --set checkpointEverySteps=1000)
out=$work/resume-$job.out
wait_step "$job" "$out" 3
scancel --batch --signal=TERM "$job"
wait_gone "$job"
grep -q "stopped with a checkpoint" "$out" || { cat "$out"; fail "no 'stopped with a checkpoint' line"; }
[ "$(exit_code "$job")" = 130 ] || { cat "$out"; fail "exit code $(exit_code "$job"), not 130"; }
stopped_at=$(basename "$(latest "$work/runs/resume")" .safetensors)
[ -n "$stopped_at" ] && [ "$stopped_at" != step-00000032 ] || { cat "$out"; fail "no checkpoint before the end ($stopped_at)"; }
no_process_left "$job"
pass "job $job exit 130 with $stopped_at of 32"

check resume "the same job submitted again continues the run"
job=$(submit resume "$work/runs/resume" --wait -- --set epochs=4 --set checkpointEverySteps=1000) ||
  { cat "$work"/resume-*.out; fail "the job failed"; }
out=$work/resume-$job.out
grep -q "resumes $work/runs/resume" "$out" || { cat "$out"; fail "it did not resume"; }
from=$(grep -oE 'resuming pretrain at step [0-9]+' "$out" | awk '{print $5}')
[ "$from" = "$((10#${stopped_at#step-}))" ] || { cat "$out"; fail "resumed at step '$from', not at $stopped_at"; }
[ "$(basename "$(latest "$work/runs/resume")")" = step-00000032.safetensors ] || { cat "$out"; fail "no final checkpoint step-00000032"; }
no_process_left "$job"
pass "job $job exit $(exit_code "$job"): resumed at step $from, ran to step-00000032"

check cancel "a plain scancel mid-run: the job ends, no process is left"
job=$(submit cancel "$work/runs/cancel" -- --set epochs=4 --set checkpointEverySteps=1000)
out=$work/cancel-$job.out
wait_step "$job" "$out" 3
[ -n "$(left_over "$job")" ] || fail "no process of job $job found while it ran (the leftover check would see nothing)"
running=$(left_over "$job" | wc -w)
scancel "$job"
wait_gone "$job"
no_process_left "$job"
pass "job $job $(scontrol show job "$job" | grep -oE 'JobState=[A-Z]+'); $running processes while it ran, none after"

current=done
table
