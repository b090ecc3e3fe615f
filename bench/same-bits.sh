#!/usr/bin/env bash
# The regression check for changes that must not move a single bit (refactors of the step, the replica, the ring):
# a fixed run of 2 worker processes + coordinator (configs/quickstart-pretrain.json, 2 epochs = 78 steps, ring all-reduce
# in 0.25 MB buckets, no kNN), then the SHA-256 of the final checkpoint's tensor bytes (parameters, BatchNorm
# statistics, momentum buffers; not the header, which holds the run's config and paths).
# Run it before and after the change, on the same machine: the two hashes must be equal. A different CPU runs other
# SIMD kernels and gives another hash (README, "Same seed, same bits").
# Usage: bench/same-bits.sh [output folder]   (builds Release first; about 2 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d -t simclr-same-bits-XXXXXX)}
dotnet build src/SimClr.Cli -c Release -v quiet -nologo > /dev/null
mkdir -p "$out" && rm -rf "$out/fixed"
src/SimClr.Cli/bin/Release/net10.0/simclr launch --config configs/quickstart-pretrain.json --workers 2 --devices cpu \
  --set epochs=2 --set knnEveryEpochs=0 --set runsFolder="$out" --set runName=fixed > "$out/log.txt" 2>&1 \
  || { echo "the run failed; its log: $out/log.txt" >&2; exit 1; }
checkpoint=$(ls "$out"/fixed/checkpoints/*.safetensors | sort | tail -1)
python3 - "$checkpoint" <<'PY'
import hashlib, json, struct, sys
data = open(sys.argv[1], 'rb').read()
header = struct.unpack('<Q', data[:8])[0]
meta = json.loads(data[8:8 + header])
print(f"{sys.argv[1]}: step {meta['__metadata__']['step']}, {len(meta) - 1} tensors")
print('sha256 of the tensor bytes:', hashlib.sha256(data[8 + header:]).hexdigest())
PY
