#!/usr/bin/env bash
# Two builds of simclr, the same 2-worker launched pre-training, interleaved: did a change make the distributed CPU
# step slower? (issue 16: row 4's step before and after). Each round runs A then B (the quickstart's model, batch 128,
# 48 steps, 1 thread per worker) and prints views/s after WARMUP steps and the mean time_* of the kept steps.
# Usage: bash bench/ab-launch.sh <repository A> <repository B>   (each already built: dotnet build src/SimClr.Cli -c Release)
# ROUNDS (3), STEPS (48), WARMUP (12), BATCH (128); MODE=single: one process x 2 threads (simclr pretrain) instead.
set -euo pipefail
source "$(dirname "$0")/common.sh"
a=${1:?repository A}; b=${2:?repository B}
rounds=${ROUNDS:-3}; steps=${STEPS:-48}; warmup=${WARMUP:-12}; batch=${BATCH:-128}
keys=(time_step_ms time_forward_ms time_backward_ms time_optimizer_ms time_serialize_ms time_transfer_ms time_loss_ms)
echo "variant round views/s ${keys[*]}"
for r in $(seq 1 "$rounds"); do
  for v in A B; do
    dir=$a; [ "$v" = B ] && dir=$b
    how=(launch --workers 2 --threads-per-worker 1); [ "${MODE:-}" = single ] && how=(pretrain --plain --set threads=2)
    (cd "$dir" && src/SimClr.Cli/bin/Release/net10.0/simclr "${how[@]}" --config configs/quickstart-pretrain.json \
      --set data.syntheticTrain=$((batch * steps)) --set epochs=1 --set batchSize="$batch" --set knnEveryEpochs=0 --set checkpointEverySteps=0 \
      --set logEverySteps=1 --set warmupEpochs=0 --set runsFolder="$runs" --set runName="$v-$r" >/dev/null 2>&1)
    echo "$v $r $(step_rate "$runs/$v-$r/metrics.jsonl" "$warmup" "$batch" "${keys[@]}")"
  done
done
