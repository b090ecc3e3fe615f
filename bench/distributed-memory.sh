#!/usr/bin/env bash
# Peak RSS of each worker as the global batch grows from 512 to 4096 images, 2 CPU workers, gradient caching with a
# fixed chunk of 256 views per forward pass (so activation memory should stay flat), and a control without chunks.
# Each run: `simclr launch` with 2 steps of a tiny net (width 0.125) on synthetic shapes; the workers print their peak
# RSS (VmHWM) when they stop. Every case runs with each allocator of ALLOCATORS (default: the two of the table):
#   system  SIMCLR_MALLOC=system: glibc's default malloc (fast; it keeps freed memory around, raising its mmap threshold
#           as large blocks are freed)
#   pinned  a fixed 128 KiB mmap threshold and 2 arenas (about half as fast here, but RSS then shows what the worker
#           actually needs; a MALLOC_* variable also keeps simclr from tuning malloc or preloading tcmalloc)
#   default what `simclr launch` does by itself: tcmalloc preloaded where installed, else glibc tuned by mallopt
#   glibc   SIMCLR_MALLOC=glibc: glibc tuned by mallopt at start-up, no tcmalloc
source "$(dirname "$0")/common.sh"
views_per_chunk=${VIEWS_PER_CHUNK:-256}
run() { # batch chunks
  local batch=$1 chunks=$2 start end
  start=$(date +%s)
  out=$(env $ALLOC "$simclr" launch --workers 2 --devices cpu --set stage=pretrain --set data.name=synthetic-shapes \
    --set data.syntheticTrain=$((2 * batch)) --set data.syntheticTest=64 --set model.width=0.125 \
    --set model.projectionHidden=64 --set model.projectionDim=32 --set epochs=1 --set batchSize="$batch" \
    --set batching.chunks="$chunks" --set knnEveryEpochs=0 --set warmupEpochs=0 --set checkpointEverySteps=0 \
    --set runsFolder="$runs" --set threads=1 2>&1) || { echo "$out" | tail -20; exit 1; }
  end=$(date +%s)
  rss=$(echo "$out" | grep -oE '\[worker[0-9]\] worker stopped; peak RSS [0-9]+ MiB' | sed -E 's/.*\[(worker[0-9])\].* ([0-9]+) MiB/\1 \2 MiB/' | tr '\n' ' ')
  printf "batch %5d  chunks %2d  views/forward pass %5d  peak RSS: %s (%d s for 2 steps incl. start-up)\n" \
    "$batch" "$chunks" "$((batch / chunks))" "$rss" "$((end - start))"
}
for allocator in ${ALLOCATORS:-system pinned}; do
  case "$allocator" in
    system) ALLOC="SIMCLR_MALLOC=system" ;;
    pinned) ALLOC="MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2" ;;
    default) ALLOC="SIMCLR_MALLOC=auto" ;;
    glibc) ALLOC="SIMCLR_MALLOC=glibc" ;;
    *) echo "unknown allocator $allocator" >&2; exit 2 ;;
  esac
  echo "== allocator: $allocator ($ALLOC)"
  for batch in 512 1024 2048 4096; do run "$batch" $((batch / views_per_chunk)); done
  run 512 1
  run 2048 1
done
