#!/usr/bin/env bash
# Every benchmark behind BENCHMARKS.md, one after the other, with the total time. `bash bench/all.sh --quick` is the
# short version for CPU machines (issue 7: under 10 minutes on 2 cores); without it, the full runs (much longer).
# The peers need Debian's python3-torch and python3-torchvision (apt-get install python3-torchvision).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
dotnet build src/SimClr.Cli -c Release -v quiet -nologo >/dev/null
simclr=src/SimClr.Cli/bin/Release/net10.0/simclr
start=$(date +%s)
section() { echo; echo "=== $1 ($(( $(date +%s) - start )) s so far)"; }
if [ "$quick" = 1 ]; then
  section "1. compute per step vs PyTorch";      QUICK=1 bash bench/step.sh
  section "2. augmentation vs the seed";         VIEWS=4000 REPEATS=2 bash bench/augment.sh
  section "3. gradient reduction";               "$simclr" bench reduce --quick
  section "3b. the ring's overlap with backward"; QUICK=1 bash bench/overlap.sh
  section "4. 2 workers vs 1 process";           QUICK=1 bash bench/scaling.sh
  section "5. memory over a run";                "$simclr" bench memory --steps 120
  section "6. time per step, broken down";       bash bench/breakdown.sh --quick
else
  section "1. compute per step vs PyTorch";      bash bench/step.sh
  section "2. augmentation vs the seed";         bash bench/augment.sh
  section "3. gradient reduction";               "$simclr" bench reduce
  section "3b. the ring's overlap with backward"; bash bench/overlap.sh; WIDTH=1 bash bench/overlap.sh
  section "4. 2 workers vs 1 process";           bash bench/scaling.sh
  section "5. memory over a run";                "$simclr" bench memory
  section "5b. worker memory vs batch";          bash bench/distributed-memory.sh
  section "6. time per step, broken down";       bash bench/breakdown.sh
fi
echo; echo "all benchmarks: $(( $(date +%s) - start )) s"
