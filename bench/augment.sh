#!/usr/bin/env bash
# Augmentation throughput, ours vs the seed's PIL/torchvision pipeline, one thread each, measured back to back.
# Needs Debian's python3-torchvision for the peer (apt-get install python3-torchvision).
set -euo pipefail
cd "$(dirname "$0")/.."
views=${VIEWS:-20000}
repeats=${REPEATS:-5}
dotnet build src/SimClr.Cli -c Release -v quiet -nologo >/dev/null
seed=$(/usr/bin/python3 bench/seed_augment.py --views "$views" --repeats "$repeats")
ours=$(dotnet src/SimClr.Cli/bin/Release/net10.0/simclr.dll bench augment --threads 1 --views "$views" --repeats "$repeats")
tensor=$(dotnet src/SimClr.Cli/bin/Release/net10.0/simclr.dll bench augment --threads 1 --views "$views" --repeats "$repeats" --kernel tensor)
echo "$seed"; echo "$ours"; echo "$tensor"
median() { sed -E 's/.*median ([0-9]+) views.*/\1/'; }
s=$(echo "$seed" | median); o=$(echo "$ours" | median); t=$(echo "$tensor" | median)
awk -v s="$s" -v o="$o" -v t="$t" 'BEGIN { printf "ratio vs seed, per thread: fused CPU kernel %.1fx, tensor kernel %.1fx\n", o / s, t / s }'
