#!/usr/bin/env bash
# Distributed efficiency on one box (issue 7 row 4): throughput of 2 worker processes x 1 torch thread (simclr launch)
# against 1 process x 2 threads (simclr pretrain), same config, same global batch, same total cores. Alternates the two
# REPEATS times; throughput is measured from metrics.jsonl timestamps after WARMUP steps. The warm-up is long (30
# steps, ~20 s) because .NET's tiered JIT keeps recompiling hot methods for the first ~30 s of a process, and a
# launched run has three processes doing so on the same 2 cores (seen: 6-12% of a core per worker 15-25 s in, under
# 0.5% after 35 s); with 4 warm-up steps this row read 0.69-0.76, mostly start-up. QUICK=1: 2 rounds of 36 steps
# after 12. Config: the quickstart's pre-training (width 0.25, batch 128).
# Also measured in each round: 2 independent processes x 1 thread, each training on half the batch at the same time
# with no communication at all: what this machine's 2 cores give two single-threaded processes, the ceiling for
# 2 workers here (the rest of the gap to 1 process x 2 threads is the hardware, not distribution).
source "$(dirname "$0")/common.sh"
repeats=${REPEATS:-3}; steps=${STEPS:-80}; warmup=${WARMUP:-30}
if [ "${QUICK:-0}" = 1 ]; then repeats=2; steps=36; warmup=12; fi
batch=${BATCH:-128}
# BUCKET_MB: the workers' reduction.bucketMegabytes (the ring's overlap with backward; 0 turns it off)
extra=(); if [ -n "${BUCKET_MB:-}" ]; then extra=(--set reduction.bucketMegabytes="$BUCKET_MB"); fi
common=(--config configs/quickstart-pretrain.json --set data.syntheticTrain=$((batch * steps)) --set epochs=1 --set batchSize="$batch"
  --set knnEveryEpochs=0 --set checkpointEverySteps=0 --set logEverySteps=1 --set warmupEpochs=0 --set runsFolder="$runs")
rate() { step_rate "$1" "$warmup" "${2:-$batch}"; } # metrics.jsonl [batch] -> views/s after the warm-up
single=(); launched=(); apart=()
for r in $(seq 1 "$repeats"); do
  "$simclr" pretrain --plain "${common[@]}" --set threads=2 --set runName="single-$r" >/dev/null
  s=$(rate "$runs/single-$r/metrics.jsonl")
  "$simclr" launch --workers 2 --threads-per-worker 1 "${common[@]}" "${extra[@]}" --set runName="launched-$r" >/dev/null
  l=$(rate "$runs/launched-$r/metrics.jsonl")
  half=(--set data.syntheticTrain=$((batch / 2 * steps)) --set batchSize=$((batch / 2)) --set threads=1)
  "$simclr" pretrain --plain "${common[@]}" "${half[@]}" --set runName="apart-$r-a" >/dev/null &
  "$simclr" pretrain --plain "${common[@]}" "${half[@]}" --set runName="apart-$r-b" >/dev/null
  wait
  ra=$(rate "$runs/apart-$r-a/metrics.jsonl" $((batch / 2))); rb=$(rate "$runs/apart-$r-b/metrics.jsonl" $((batch / 2)))
  a=$(python3 -c "print(f'{$ra + $rb:.1f}')")
  echo "round $r: 1 process x 2 threads $s views/s; 2 workers x 1 thread $l views/s; efficiency $(python3 -c "print(f'{$l / $s:.2f}')");" \
    "2 independent 1-thread processes, half the batch each: $a views/s together ($(python3 -c "print(f'{$a / $s:.2f}')") of 1 x 2 threads; workers reach $(python3 -c "print(f'{$l / $a:.2f}')") of it)"
  single+=("$s"); launched+=("$l"); apart+=("$a")
done
python3 - "${single[*]}" "${launched[*]}" "${apart[*]}" <<'PY'
import statistics, sys
s = [float(x) for x in sys.argv[1].split()]; l = [float(x) for x in sys.argv[2].split()]; a = [float(x) for x in sys.argv[3].split()]
e = [b / a for a, b in zip(s, l)]
c = [y / x for x, y in zip(s, a)]; w = [y / x for x, y in zip(a, l)]
print(f"2 independent 1-thread processes together: median {statistics.median(a):.1f} views/s ({min(a):.1f}-{max(a):.1f}), "
      f"{statistics.median(c):.2f} ({min(c):.2f}-{max(c):.2f}) of 1 process x 2 threads: the most 2 workers can reach here; "
      f"the workers reach {statistics.median(w):.2f} ({min(w):.2f}-{max(w):.2f}) of it")
print(f"median views/s: 1 process x 2 threads {statistics.median(s):.1f} ({min(s):.1f}-{max(s):.1f}); "
      f"2 workers x 1 thread {statistics.median(l):.1f} ({min(l):.1f}-{max(l):.1f}); "
      f"efficiency median {statistics.median(e):.2f} ({min(e):.2f}-{max(e):.2f}), target >= 0.9")
PY
