# Sourced by the bench/*.sh scripts that run simclr: builds it once (Release), sets $simclr, and gives a temporary
# $runs folder removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dotnet build src/SimClr.Cli -c Release -v quiet -nologo >/dev/null
simclr=src/SimClr.Cli/bin/Release/net10.0/simclr
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
# step_rate metrics.jsonl warmup batch [metric ...] -> views/s between step `warmup` and the last step (2 views per
# image), then the mean of each named metric (e.g. time_ring_ms) over the steps after `warmup`
step_rate() {
  python3 - "$@" <<'PY'
import json, sys, datetime, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"step"' in l]
w, b = int(sys.argv[2]), int(sys.argv[3])
t = {r["step"]: datetime.datetime.fromisoformat(r["time"]) for r in rows}
last = max(t)
kept = [r for r in rows if r["step"] > w]
print(" ".join([f"{2 * b * (last - w) / (t[last] - t[w]).total_seconds():.1f}"] + [f"{statistics.mean(r[k] for r in kept):.1f}" for k in sys.argv[4:]]))
PY
}
