#!/usr/bin/env bash
# The GPU check (issue 16): on a machine with one CUDA GPU, in one go (under 8 minutes), then ONE summary table.
#   1 tests    Core's tests that take a device, on cuda (SIMCLR_TEST_DEVICES=cuda, filter DisplayName~device: "cuda")
#   2 step     one full-width pre-training step, batch 256 and 512 images (2 views each): views/s of `simclr bench step`
#              against bench/step_reference.py (PyTorch) on the same GPU with the same batch; ratio ours / PyTorch
#   2b bf16    the same step at the first batch with precision bf16: views/s against its fp32 and against PyTorch's
#              torch.autocast(dtype=torch.bfloat16) (bench/step_reference.py --precision bf16)
#   3 workers  2 workers sharing the GPU (`simclr launch --devices cuda:0,cuda:0`) for a few steps: the run fails when the
#              replicas' checksums diverge; its per-step losses against a single-process run (`simclr pretrain`) over the
#              same steps, with the same 2 BatchNorm groups (batching.groups=2): the same maths either way
#   4 augment  the tensor augmentation kernel's views/s on the GPU (`simclr bench augment --kernel tensor`)
#   5 loss     `simclr bench loss --device cuda --views 8192 --dim 128` (global NT-Xent + dL/dz; the dry run: 1024 views)
#   6 nccl     NCCL smoke test (`simclr bench nccl`): a 1-rank communicator all-reduces a known bucket on the GPU (checked
#              bit for bit) and times it; the dry run checks that the CPU is refused with what to install or set
#   7 nccl2    with 2 GPUs or more: the workers' run of step 3 on cuda:0,cuda:1 with reduction.method nccl, losses
#              against the single process's; with one GPU: n/a (NCCL puts one rank on a GPU); the dry run checks
#              that reduction.method nccl on CPU workers stops before the first step, naming what to install or set
# It stops at the first thing that does not work: non-zero exit and "FAILED at step <name>".
# Needs: the .NET SDK (tests; and the build unless $SIMCLR is given), an NVIDIA driver, python3 with torch and
# torchvision (pip install torch torchvision; or PYTHON=/path/to/python), and a simclr that can use the GPU: $SIMCLR
# (a published binary) or else this repository built with -p:TorchSharpPackage=TorchSharp-cuda-linux.
# Usage: bash bench/gpu.sh                      the check, on cuda
#        bash bench/gpu.sh --device cpu [--quick]   a dry run: every step on the CPU with tiny sizes (same code path)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
device=cuda; quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "bench/gpu.sh: unknown option $1 (--device cuda|cpu, --quick)" >&2; exit 2 ;;
  esac
done
case "$device" in cuda | cpu) ;; *) echo "bench/gpu.sh: --device is cuda or cpu (a dry run), not $device" >&2; exit 2 ;; esac
dry=0; [ "$device" = cpu ] && dry=1
if [ "$dry" = 1 ]; then # tiny sizes, the same commands
  step_batches="4 8"; step_args=(--quick --threads 2); launch_devices=cpu; launch_extra=(--threads-per-worker 1)
  run_width=0.125; run_batch=16; run_steps=3; loss_tolerance=1e-5; loss_views=1024; loss_args=(--repeats 2 --reference-views 1024)
  augment_args=(--batch 32 --views 256 --repeats 1); package=()
else
  step_batches="256 512"; step_args=(--warmup 3 --steps 10 --repeats 3 --threads 4); launch_devices=cuda:0,cuda:0; launch_extra=()
  run_width=0.25; run_batch=128; run_steps=5; loss_tolerance=1e-3 # cuDNN sums in no fixed order, TF32 convolutions
  loss_views=8192; loss_args=()
  augment_args=(--batch 256 --views 20000 --repeats 3); package=(-p:TorchSharpPackage=TorchSharp-cuda-linux)
fi
[ "$quick" = 1 ] && step_batches=${step_batches%% *}

work=$(mktemp -d)
current=setup
rows=()     # "step|result|detail|seconds"
started=$SECONDS
table() {
  echo
  echo "bench/gpu.sh --device $device$([ "$dry" = 1 ] && echo ' (dry run on the CPU: tiny sizes, figures mean nothing)'), $((SECONDS - started)) s"
  { echo "step|result|detail|s"; printf '%s\n' "${rows[@]}"; } | column -t -s '|'
}
on_error() {
  [ "$BASHPID" = "$$" ] || return 0 # report once, from the script itself, not from a $(...)
  rows+=("$current|FAILED|exit $1; output above|")
  table
  echo "bench/gpu.sh: FAILED at step $current (exit $1)" >&2
  exit "$1"
}
trap 'on_error $?' ERR
trap 'rm -rf "$work"' EXIT
step() { current=$1; step_start=$SECONDS; echo "== $1: $2" >&2; }
row() { rows+=("$current|$1|$2|$((SECONDS - step_start))"); }
fail() { echo "bench/gpu.sh: $current: $*" >&2; false; }

step check "the machine, python3 with torch, simclr"
python=${PYTHON:-python3}
"$python" -c 'import torch, torchvision' 2>/dev/null || { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null && python=/usr/bin/python3; } \
  || fail "no python3 with torch and torchvision (pip install torch torchvision, or PYTHON=...)"
if [ "$dry" = 0 ]; then
  nvidia-smi -L || fail "nvidia-smi found no GPU"
  "$python" -c 'import torch; assert torch.cuda.is_available(), "torch.cuda.is_available() is false"' || fail "PyTorch sees no GPU"
fi
if [ -n "${SIMCLR:-}" ]; then
  simclr=$SIMCLR
else
  dotnet build src/SimClr.Cli -c Release -v quiet -nologo "${package[@]}" >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "build failed"; }
  simclr=src/SimClr.Cli/bin/Release/net10.0/simclr
fi
"$simclr" --help >/dev/null || fail "$simclr does not run"
row ok "$("$python" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'); simclr: $simclr"

step tests "Core's tests that take a device, on $device"
SIMCLR_TEST_DEVICES=$device dotnet test tests/SimClr.Core.Tests -c Release -nologo "${package[@]}" --filter "DisplayName~device: \"$device\"" \
  >"$work/tests.log" 2>&1 || { grep -E "\[FAIL\]|Error Message|^ +[A-Z].*Exception" -A2 "$work/tests.log" | head -60 || true; fail "tests failed ($work/tests.log)"; }
summary=$(grep -E "^(Passed|Failed)!" "$work/tests.log" | tail -1)
total=$(sed -E 's/.*Total: +([0-9]+).*/\1/' <<<"$summary")
[ "${total:-0}" -gt 0 ] || fail "no test ran on $device: $summary"
row ok "$(sed -E 's/ - SimClr.*//; s/ +/ /g' <<<"$summary")"

views_per_s() { sed -nE 's/.*median [0-9.]+ ms\/step \(([0-9.]+) views\/s\).*/\1/p' <<<"$1" | tail -1; }
step step "one full-width pre-training step, batch $step_batches images: simclr vs PyTorch"
details=()
declare -A fp32_ours fp32_theirs
for batch in $step_batches; do
  ours=$("$simclr" bench step --device "$device" --batch "$batch" "${step_args[@]}" 2>&1) || { echo "$ours" | tail -20; fail "simclr bench step --batch $batch failed"; }
  theirs=$("$python" bench/step_reference.py --device "$device" --batch "$batch" "${step_args[@]}" 2>&1) || { echo "$theirs" | tail -20; fail "step_reference.py --batch $batch failed"; }
  a=$(views_per_s "$(tail -1 <<<"$ours")"); b=$(views_per_s "$(tail -1 <<<"$theirs")")
  [ -n "$a" ] && [ -n "$b" ] || fail "no views/s in: $(tail -1 <<<"$ours") / $(tail -1 <<<"$theirs")"
  echo "batch $batch: simclr $a views/s, pytorch $b views/s" >&2
  details+=("B=$batch: $a vs $b views/s ($(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }'))")
  fp32_ours[$batch]=$a; fp32_theirs[$batch]=$b
done
row ok "$(IFS=';'; echo "${details[*]}" | sed 's/;/; /g')"

batch=${step_batches%% *}
step bf16 "the same step with precision bf16 (batch $batch): simclr against its fp32 and against PyTorch's autocast"
ours=$("$simclr" bench step --precision bf16 --device "$device" --batch "$batch" "${step_args[@]}" 2>&1) || { echo "$ours" | tail -20; fail "simclr bench step --precision bf16 failed"; }
theirs=$("$python" bench/step_reference.py --precision bf16 --device "$device" --batch "$batch" "${step_args[@]}" 2>&1) || { echo "$theirs" | tail -20; fail "step_reference.py --precision bf16 failed"; }
a=$(views_per_s "$(tail -1 <<<"$ours")"); b=$(views_per_s "$(tail -1 <<<"$theirs")")
[ -n "$a" ] && [ -n "$b" ] || fail "no views/s in: $(tail -1 <<<"$ours") / $(tail -1 <<<"$theirs")"
row ok "B=$batch: simclr bf16 $a views/s ($(awk -v a="$a" -v f="${fp32_ours[$batch]}" 'BEGIN { printf "%.2fx", a / f }') its fp32); PyTorch autocast $b ($(awk -v a="$b" -v f="${fp32_theirs[$batch]}" 'BEGIN { printf "%.2fx", a / f }') its fp32); simclr/PyTorch $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }')"

step workers "2 workers sharing one $device (launch --devices $launch_devices) vs 1 process, $run_steps steps"
common=(--config configs/quickstart-pretrain.json --set device="$device" --set model.width="$run_width" --set batchSize="$run_batch"
  --set data.syntheticTrain=$((run_batch * run_steps)) --set epochs=1 --set warmupEpochs=0 --set knnEveryEpochs=0
  --set checkpointEverySteps=0 --set logEverySteps=1 --set batching.groups=2 --set runsFolder="$work/runs")
"$simclr" pretrain --plain "${common[@]}" --set runName=single >"$work/single.log" 2>&1 || { tail -20 "$work/single.log"; fail "single-process run failed"; }
"$simclr" launch --workers 2 --devices "$launch_devices" "${launch_extra[@]}" "${common[@]}" --set runName=launched >"$work/launched.log" 2>&1 \
  || { tail -30 "$work/launched.log"; fail "2-worker run failed (a checksum divergence stops it)"; }
compare_losses() { # run directory names under $work/runs: single, other
"$python" - "$work/runs/$1/metrics.jsonl" "$work/runs/$2/metrics.jsonl" "$run_steps" "$loss_tolerance" <<'PY'
import json, sys
def losses(path):
    return {r["step"]: r["loss"] for r in map(json.loads, open(path)) if r.get("kind") == "step"}
one, two, k, tol = losses(sys.argv[1]), losses(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
missing = [s for s in range(1, k + 1) if s not in one or s not in two]
if missing: sys.exit(f"steps {missing} missing from a metrics.jsonl")
worst = max(abs(one[s] - two[s]) / max(abs(one[s]), 1e-12) for s in range(1, k + 1))
print(f"loss steps 1-{k}: {one[1]:.5f}..{one[k]:.5f} (1 process) vs {two[1]:.5f}..{two[k]:.5f} (2 workers), max relative difference {worst:.1e} (bound {tol:g})")
sys.exit(0 if worst <= tol else 1)
PY
}
compare=$(compare_losses single launched) || { echo "$compare" >&2; fail "2 workers' losses differ from the single process's"; }
row ok "checksums agreed every step; $compare"

step augment "the tensor augmentation kernel on $device"
out=$("$simclr" bench augment --kernel tensor --device "$device" "${augment_args[@]}" 2>&1) || { echo "$out" | tail -20; fail "simclr bench augment failed"; }
rate=$(sed -nE 's/.*median ([0-9.]+) views\/s.*/\1/p' <<<"$out" | tail -1)
[ -n "$rate" ] || fail "no views/s in: $(tail -1 <<<"$out")"
row ok "$rate views/s (tensor kernel, ${augment_args[*]})"

step loss "simclr bench loss --device $device --views $loss_views --dim 128"
out=$("$simclr" bench loss --device "$device" --views "$loss_views" --dim 128 "${loss_args[@]}" 2>&1) || { echo "$out" | tail -20; fail "simclr bench loss failed"; }
median=$(grep -E '^ +(tiled|full) +median' <<<"$out" | sed -E 's/^ +//; s/ per loss.*//' | paste -sd';' -)
[ -n "$median" ] || fail "no median in: $(tail -1 <<<"$out")"
error=$(grep -E '^ +tiled float32:' <<<"$out" | sed -E 's/^ +tiled float32: //; s/[|]//g; s/ +/ /g')
row ok "$loss_views x 128: $median; tiled vs float64: ${error:-not reported}"

step nccl "NCCL: a 1-rank communicator on $device all-reduces a known bucket"
if [ "$dry" = 1 ]; then
  code=0; out=$("$simclr" bench nccl --device cpu 2>&1) || code=$?
  [ "$code" = 2 ] && grep -q "NCCL" <<<"$out" || { echo "$out" | tail -10; fail "bench nccl on the CPU: expected exit 2 naming NCCL, got exit $code"; }
  row ok "refused on the CPU as it should be: $(head -c 160 <<<"$out")..."
else
  out=$("$simclr" bench nccl --device "$device" 2>&1) || { echo "$out" | tail -20; fail "simclr bench nccl failed"; }
  grep -q "bit for bit" <<<"$out" || fail "no checked all-reduce in: $out"
  row ok "$(sed -n 1p <<<"$out" | sed -E 's/.*UTC: //'); $(grep -E '^ +median' <<<"$out" | sed -E 's/^ +//')"
fi

step nccl2 "reduction.method nccl between 2 workers on 2 GPUs, losses vs the single process"
if [ "$dry" = 1 ]; then
  code=0
  "$simclr" launch --workers 2 --devices cpu "${launch_extra[@]}" "${common[@]}" --set runName=nccl --set reduction.method=nccl >"$work/nccl.log" 2>&1 || code=$?
  [ "$code" = 2 ] && grep -q "cannot use NCCL" "$work/nccl.log" || { tail -20 "$work/nccl.log"; fail "nccl on CPU workers: expected exit 2 and 'cannot use NCCL', got exit $code"; }
  row ok "CPU workers refused before the first step: $(grep -o 'cannot use NCCL: .*' "$work/nccl.log" | head -1 | cut -c1-150)..."
elif [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  "$simclr" launch --workers 2 --devices cuda:0,cuda:1 "${common[@]}" --set runName=nccl --set reduction.method=nccl >"$work/nccl.log" 2>&1 \
    || { tail -30 "$work/nccl.log"; fail "2-worker nccl run failed"; }
  grep -q "gradients: NCCL all-reduce" "$work/nccl.log" || fail "the run did not sum by NCCL: $(grep 'gradients:' "$work/nccl.log")"
  compare=$(compare_losses single nccl) || { echo "$compare" >&2; fail "the nccl run's losses differ from the single process's"; }
  row ok "checksums agreed every step; $compare"
else
  row n/a "one GPU: NCCL puts one rank on a GPU, so 2 workers need 2 GPUs (step nccl checked the library)"
fi

current=done
table
