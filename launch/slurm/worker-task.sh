#!/usr/bin/env bash
# One Slurm task of launch/slurm/simclr.sbatch: one `simclr worker` on port SIMCLR_PORT_BASE + SLURM_LOCALID, listening
# on every interface, with the job's run token (SIMCLR_TOKEN, from the environment) and its own device:
#   SIMCLR_DEVICE=auto  one GPU per task: cuda:0 when Slurm gave the task one GPU (--gpus-per-task=1), cuda:<local id>
#                       when the task sees all of the node's GPUs; cpu when CUDA_VISIBLE_DEVICES is unset or empty
#   SIMCLR_DEVICE=cpu | cuda | cuda:N   as given
set -uo pipefail
die() { echo "worker-task.sh: $*" >&2; exit 2; }
: "${SIMCLR:?set by simclr.sbatch}" "${SIMCLR_PORT_BASE:?set by simclr.sbatch}" "${SIMCLR_TOKEN:?set by simclr.sbatch}"
local_id=${SLURM_LOCALID:?not a Slurm task}
device=${SIMCLR_DEVICE:-auto}
if [ "$device" = auto ]; then
  visible=${CUDA_VISIBLE_DEVICES:-}
  if [ -z "$visible" ] || [ "$visible" = NoDevFiles ]; then
    device=cpu
  else
    IFS=',' read -r -a gpus <<<"$visible"
    if [ ${#gpus[@]} -eq 1 ]; then
      device=cuda:0
    elif [ "$local_id" -lt ${#gpus[@]} ]; then
      device=cuda:$local_id
    else
      die "task $local_id on $(hostname -s) sees ${#gpus[@]} GPUs ($visible): ask for one GPU per task (--gpus-per-task=1) or as many tasks per node as GPUs"
    fi
  fi
fi
args=(worker --host 0.0.0.0 --port $((SIMCLR_PORT_BASE + local_id)) --device "$device" --threads "${SLURM_CPUS_PER_TASK:-0}")
if [ -n "${SIMCLR_TLS_CERT:-}" ]; then
  args+=(--tls-cert "$SIMCLR_TLS_CERT")
  [ -n "${SIMCLR_TLS_KEY:-}" ] && args+=(--tls-key "$SIMCLR_TLS_KEY")
fi
# simclr.sbatch stops the workers with SIGUSR1 to srun (SIGTERM to srun would cancel the step: every task killed).
# Slurm delivers it to every process of the step; the worker ignores it and this script passes it on as SIGTERM, on
# which a worker stops cleanly.
(trap '' USR1 && exec "$SIMCLR" "${args[@]}") &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null || true' USR1 TERM INT
while :; do
  wait "$worker" && code=0 || code=$?
  kill -0 "$worker" 2>/dev/null || exit "$code"
done
