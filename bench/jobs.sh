#!/usr/bin/env bash
# A sweep of 8 runs at the bench's small size, trained with --jobs 1 and then --jobs K
# (default 2), one after the other; prints both wall times and their ratio.
#   bench/jobs.sh [K] [iterations per run, default 1000] [diagnostics.every, default 10]
# A single run already puts its diagnoses on a second core (training.cpp), so how much
# --jobs adds depends on how much of that core the diagnoses leave idle: compare cadences.
set -euo pipefail
shopt -s inherit_errexit  # a failed run inside $(...) stops the script
cd "$(dirname "$0")/.."
jobs="${1:-2}"
iters="${2:-1000}"
every="${3:-10}"
resgd="${RESGD:-build/release/app/resgd}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cat >"$out/sweep.yaml" <<YAML
name: jobs-bench
device: cpu
data: {num_samples: 32, seq_len: 8, dim: 16, target_dim: 16}
model: {ffn_width: 256}
train: {lr: 0.001, max_iters: $iters, rel_tolerance: 0.0}
diagnostics: {every: $every}
sweep:
  seeds: [0, 1, 2, 3, 4, 5, 6, 7]
YAML
seconds() {  # wall seconds of one sweep with --jobs $1
  local start end
  start=$(date +%s.%N)
  "$resgd" run "$out/sweep.yaml" --out "$out/jobs-$1" --jobs "$1" >/dev/null
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN {print b - a}'
}
one=$(seconds 1)
many=$(seconds "$jobs")
printf "8 small runs x %s iterations, diagnostics every %s: --jobs 1 %.2f s, --jobs %s %.2f s, ratio %.2f\n" \
  "$iters" "$every" "$one" "$jobs" "$many" "$(awk -v a="$many" -v b="$one" 'BEGIN {print a / b}')"
