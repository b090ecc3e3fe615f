#!/usr/bin/env bash
# SimCLR on one GPU box: one worker process per visible GPU plus the coordinator, through `simclr launch`.
#
#   launch/gpu-box.sh --config configs/cifar10-simclr-b4096.json [--set key.path=value ...] [--resume runs/<run>]
#   CUDA_VISIBLE_DEVICES=0,1 launch/gpu-box.sh --config ...            # a subset of the GPUs
#   launch/gpu-box.sh --stage finetune --pretrained <checkpoint> --config configs/cifar10-finetune.json
#
# Builds against the CUDA libtorch (TorchSharp-cuda-linux), counts the GPUs this process may use, and passes every
# argument on to `simclr launch`. Ctrl-C stops the run cleanly: the coordinator writes a checkpoint, then every worker
# stops; `--resume <run directory>` continues it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
  IFS=',' read -r -a visible <<<"$CUDA_VISIBLE_DEVICES"
  gpus=${#visible[@]}
elif command -v nvidia-smi >/dev/null; then
  gpus=$(nvidia-smi -L | grep -c '^GPU ')
else
  echo "gpu-box.sh: no GPU found (no CUDA_VISIBLE_DEVICES, no nvidia-smi); for CPU use: simclr launch --devices cpu --workers 2 ..." >&2
  exit 2
fi
if (( gpus < 1 )); then echo "gpu-box.sh: no GPU visible" >&2; exit 2; fi

# cuda:0 .. cuda:N-1 are the visible GPUs in order (CUDA renumbers them under CUDA_VISIBLE_DEVICES)
devices=$(seq -s, -f 'cuda:%g' 0 $((gpus - 1)))
dotnet build src/SimClr.Cli -c Release -p:TorchSharpPackage=TorchSharp-cuda-linux -v quiet -nologo
echo "gpu-box.sh: $gpus GPU(s): $devices"
exec src/SimClr.Cli/bin/Release/net10.0/simclr launch --devices "$devices" "$@"
