#!/usr/bin/env bash
# The ring's overlap with backward (issue 7 row 3): the same 2-worker pre-training (`simclr launch`, 1 torch thread
# each) with reduction.bucketMegabytes=0 (one ring after the whole backward) and with buckets (BUCKETS_MB), alternated
# REPEATS times. Prints views/s and the ring's time per step that backward did not hide (time_ring_ms), after WARMUP
# steps. Default: the quickstart's width-0.25 model (a 3.3 MB gradient) with 0.25 MB buckets (about a residual block
# each). WIDTH=1: the full ResNet-18 with the seed's 2048-128 head (a 50 MB gradient), batch 32 (BATCH), 25 MB
# buckets (the default cap). QUICK=1: 2 rounds of 8 steps.
source "$(dirname "$0")/common.sh"
width=${WIDTH:-0.25}
if [ "$width" = 1 ]; then batch=${BATCH:-32}; hidden=2048; buckets=${BUCKETS_MB:-25}; else batch=${BATCH:-128}; hidden=512; buckets=${BUCKETS_MB:-0.25}; fi
repeats=${REPEATS:-3}; steps=${STEPS:-20}; warmup=${WARMUP:-3}
if [ "${QUICK:-0}" = 1 ]; then repeats=2; steps=8; warmup=2; fi
common=(--config configs/quickstart-pretrain.json --set model.width="$width" --set model.projectionHidden=$hidden
  --set data.syntheticTrain=$((batch * steps)) --set epochs=1 --set batchSize="$batch"
  --set knnEveryEpochs=0 --set checkpointEverySteps=0 --set logEverySteps=1 --set warmupEpochs=0 --set runsFolder="$runs")
measure() { step_rate "$1" "$warmup" "$batch" time_ring_ms time_backward_ms; } # metrics.jsonl -> "views/s ring_ms backward_ms"
off=(); on=()
for r in $(seq 1 "$repeats"); do
  for mb in 0 "$buckets"; do
    "$simclr" launch --workers 2 --threads-per-worker 1 "${common[@]}" --set reduction.bucketMegabytes="$mb" --set runName="mb$mb-$r" >/dev/null
    read -r rate ring backward <<<"$(measure "$runs/mb$mb-$r/metrics.jsonl")"
    echo "round $r, bucketMegabytes $mb: $rate views/s, ring not hidden $ring ms/step, backward $backward ms/step"
    if [ "$mb" = 0 ]; then off+=("$rate/$ring"); else on+=("$rate/$ring"); fi
  done
done
python3 - "${off[*]}" "${on[*]}" "$buckets" <<'PY'
import statistics, sys
off = [tuple(map(float, x.split("/"))) for x in sys.argv[1].split()]
on = [tuple(map(float, x.split("/"))) for x in sys.argv[2].split()]
ratio = [b[0] / a[0] for a, b in zip(off, on)]
def med(xs): return f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"
print(f"one ring after backward: {med([x[0] for x in off])} views/s, ring not hidden {med([x[1] for x in off])} ms/step")
print(f"buckets of {sys.argv[3]} MB: {med([x[0] for x in on])} views/s, ring not hidden {med([x[1] for x in on])} ms/step")
print(f"throughput with buckets / without: median {statistics.median(ratio):.3f} ({min(ratio):.3f}-{max(ratio):.3f})")
PY
