#!/usr/bin/env bash
# One SimCLR training step, ours (`simclr bench step`) vs PyTorch 1.13 (bench/step_reference.py): full-width CIFAR-stem
# ResNet-18 + 512-2048-128 head, 2 x 64 pre-augmented views, fp32, NT-Xent, LARS, the same thread count.
# Each round runs every (allocator variant, peer) pair once, alternately, each in a fresh process; the figures are the
# medians over the rounds, with min-max, and the ratios ours / PyTorch measured in the same rounds.
# Allocator variants (VARIANTS, space separated):
#   glibc        glibc's defaults (ours with SIMCLR_MALLOC=system, the opt-out; PyTorch as it comes)
#   default      what `simclr` does by itself: glibc tuned by mallopt at start-up (src/SimClr.Cli/Processes/Allocator.cs:
#                mmap threshold 256 MiB, trim threshold 1 GiB, top pad 64 MiB); ours only, compared with PyTorch-glibc
#                (its paired ratio is with PyTorch-glibc of the same round)
#   jemalloc     LD_PRELOAD of Debian's libjemalloc2
#   jemalloc-nodecay  the same with MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 (freed pages are kept, not purged)
#   tcmalloc     LD_PRELOAD of Debian's libtcmalloc-minimal4
#   glibc-tuned  glibc with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4 GiB MALLOC_TOP_PAD_=256 MiB: large blocks from
#                the heap, never returned, so a step reuses the previous step's pages instead of faulting in new ones
#   thp          THP_MEM_ALLOC_ENABLE=1: libtorch >= 2.2 aligns blocks of >= 2 MiB to 2 MiB and madvises huge pages
#                (PyTorch 1.13 has no such switch: only ours runs in this variant)
# Needs: apt-get install python3-torch python3-torchvision libjemalloc2 libtcmalloc-minimal4
# QUICK=1: 2 rounds of `--quick` (1 warm-up step + 2 timed steps), glibc and default only.
# Peak RSS: VmHWM of ours, ru_maxrss of PyTorch (the whole process, warm-up included).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-2}
if [ "${QUICK:-0}" = 1 ]; then
  rounds=${REPEATS:-2}
  step_args=(--quick)
  variants=${VARIANTS:-"glibc default"}
else
  rounds=${REPEATS:-5}
  step_args=(--warmup "${WARMUP:-1}" --steps "${STEPS:-2}" --repeats 1)
  variants=${VARIANTS:-"glibc default tcmalloc jemalloc jemalloc-nodecay glibc-tuned thp"}
fi
library() { ldconfig -p | awk -v name="$1" '$1 == name && !found { print $NF; found = 1 }'; } # no early exit: ldconfig would get SIGPIPE
jemalloc=$(library libjemalloc.so.2)
tcmalloc=$(library libtcmalloc_minimal.so.4)
environment() { # variant -> env assignments
  case "$1" in
    glibc) echo "SIMCLR_MALLOC=system" ;;
    default) echo "SIMCLR_BENCH_ALLOCATOR=default" ;;
    jemalloc) [ -n "$jemalloc" ] && echo "LD_PRELOAD=$jemalloc" ;;
    jemalloc-nodecay) [ -n "$jemalloc" ] && echo "LD_PRELOAD=$jemalloc MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1" ;;
    tcmalloc) [ -n "$tcmalloc" ] && echo "LD_PRELOAD=$tcmalloc" ;;
    glibc-tuned) echo "MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456" ;;
    thp) echo "THP_MEM_ALLOC_ENABLE=1 SIMCLR_MALLOC=system" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}
available=""
for v in $variants; do
  if [ -n "$(environment "$v")" ]; then available="$available $v"; else echo "skipping $v: library not installed" >&2; fi
done
variants=$available

dotnet build src/SimClr.Cli -c Release -v quiet -nologo >/dev/null
simclr=(dotnet src/SimClr.Cli/bin/Release/net10.0/simclr.dll bench step --threads "$threads" "${step_args[@]}")
pytorch=(/usr/bin/python3 bench/step_reference.py --threads "$threads" "${step_args[@]}")
results=$(mktemp)
trap 'rm -f "$results"' EXIT

run() { # variant peer command...
  local variant=$1 peer=$2 out
  shift 2
  # shellcheck disable=SC2046 # the variant's assignments are words by design
  out=$(env $(environment "$variant") "$@" 2>&1) || { echo "$out" | tail -20; exit 1; }
  summary=$(echo "$out" | tail -1)
  printf "%-16s %-7s %s\n" "$variant" "$peer" "$summary"
  echo "$summary" | sed -E "s/.*median ([0-9.]+) ms.*user ([0-9.]+) s.*sys ([0-9.]+) s.*minor faults ([0-9]+).*peak RSS ([0-9]+) MiB.*/$variant $peer \1 \2 \3 \4 $r \5/" >>"$results"
}

for ((r = 1; r <= rounds; r++)); do
  echo "== round $r of $rounds"
  for v in $variants; do
    run "$v" ours "${simclr[@]}"
    [ "$v" = thp ] || [ "$v" = default ] || run "$v" pytorch "${pytorch[@]}"
  done
done

echo
echo "medians over $rounds rounds (min-max of ms/step); ratios ours / PyTorch with the same allocator: of the medians (wall, sys),"
echo "and the median of each round's ratio (paired: the two ran back to back; PyTorch-glibc's for variants without a peer);"
echo "last column: ours / PyTorch with glibc; peak RSS: median MiB"
awk -v variants="$variants" -v rounds="$rounds" '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function lo(list,   n, a, i, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
  function hi(list,   n, a, i, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
  { k = $1 " " $2; at[k, $7] = $3; ms[k] = ms[k] " " $3; user[k] = user[k] " " $4; sys[k] = sys[k] " " $5; faults[k] = faults[k] " " $6; rss[k] = rss[k] " " $8 }
  END {
    printf "%-16s %-7s %10s %19s %8s %8s %13s %9s %11s %11s %11s %13s\n", "allocator", "peer", "ms/step", "min-max", "user s", "sys s", "minflt/step", "RSS MiB", "wall ratio", "sys ratio", "paired wall", "wall vs glibc"
    n = split(variants, v, " ")
    for (i = 1; i <= n; i++) for (p = 1; p <= 2; p++) {
      peer = p == 1 ? "pytorch" : "ours"; k = v[i] " " peer
      if (!(k in ms)) continue
      line = sprintf("%-16s %-7s %10.1f %9.1f-%-9.1f %8.3f %8.3f %13.0f %9.0f", v[i], peer, median(ms[k]), lo(ms[k]), hi(ms[k]), median(user[k]), median(sys[k]), median(faults[k]), median(rss[k]))
      peerk = v[i] " pytorch"; basek = "glibc pytorch"
      if (peer == "ours" && (peerk in ms)) {
        paired = ""
        for (r = 1; r <= rounds; r++) if (((k, r) in at) && ((peerk, r) in at)) paired = paired " " at[k, r] / at[peerk, r]
        line = line sprintf(" %10.3fx %10.3fx %10.3fx", median(ms[k]) / median(ms[peerk]), median(sys[k]) / median(sys[peerk]), median(paired))
      }
      else if (peer == "ours" && (basek in ms)) {
        paired = ""
        for (r = 1; r <= rounds; r++) if (((k, r) in at) && ((basek, r) in at)) paired = paired " " at[k, r] / at[basek, r]
        line = line sprintf(" %11s %11s %10.3fx", "-", "-", median(paired))
      }
      else if (peer == "ours") line = line sprintf(" %11s %11s %11s", "-", "-", "-")
      if (peer == "ours" && (basek in ms)) line = line sprintf(" %12.3fx", median(ms[k]) / median(ms[basek]))
      print line
    }
  }' "$results"
