#!/usr/bin/env bash
# Where the time of a training step goes (issue 7): augmentation, forward, re-forward (gradient caching), backward,
# optimiser, serialisation, transfer and idle per replica, and the coordinator's preparation, loss and gradient sum.
# Every run writes these (time_* in its metrics.jsonl "step" records); this runs the same small pre-training
# single-process and with 2 CPU worker processes (`simclr launch`), then prints each run's table with
# `simclr bench breakdown`. Usage: bash bench/breakdown.sh [--quick]
source "$(dirname "$0")/common.sh"
# the default: a width-0.25 ResNet-18 with a 256-64 head, batch 128 (2 x 128 views), 60 steps, the first 30 left out
# (warm-up: .NET's tiered JIT recompiles hot methods for the first ~30 s of each process, and with workers three
# processes do so on the same cores); --quick: width 0.125, batch 64, 4 steps, the first left out (under 2 minutes on
# 2 busy cores; warm-up included, so the workers' share of the step reads higher)
width=0.25 batch=128 steps=60 skip=30
if [[ "${1:-}" == "--quick" ]]; then width=0.125 batch=64 steps=4 skip=1; fi
common=(--set stage=pretrain --set data.name=synthetic-shapes --set data.syntheticTrain=$((steps * batch)) --set data.syntheticTest=64
  --set model.width=$width --set model.projectionHidden=256 --set model.projectionDim=64 --set epochs=1 --set batchSize=$batch
  --set knnEveryEpochs=0 --set warmupEpochs=0 --set checkpointEverySteps=0 --set logEverySteps=1 --set runsFolder="$runs")
cores=$(nproc)
echo "== single process ($cores torch threads), batch $batch, width $width, $steps steps"
"$simclr" pretrain --plain "${common[@]}" --set runName=single --set threads="$cores" >/dev/null
"$simclr" bench breakdown --skip $skip "$runs"/single*
echo
echo "== simclr launch: 2 CPU worker processes (cores / 2 torch threads each), same run, the ring in 0.25 MB buckets"
"$simclr" launch --workers 2 --devices cpu "${common[@]}" --set runName=workers --set threads=1 --set reduction.bucketMegabytes=0.25 >/dev/null
"$simclr" bench breakdown --skip $skip "$runs"/workers*
