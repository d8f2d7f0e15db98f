#!/usr/bin/env bash
# A sweep of 8 runs at the bench's small size, trained with --jobs 1 and then --jobs K
# (default 2), one after the other; prints both wall times, their ratio, and what bounds it:
#   - the CPU time (user + system) of each sweep. --jobs 1's divided by K and by its own
#     wall time is the least ratio any packing of the same work onto K cores could give
#     (a single run already computes its diagnoses on a second core: training.cpp);
#   - --jobs K's CPU time over --jobs 1's: the work is the same, so what grows is the
#     runs slowing each other down (shared caches and memory, or execution units where
#     two vCPUs are one physical core).
#   bench/jobs.sh [K] [iterations per run, default 1000] [diagnostics.every, default 10]
# How much --jobs adds depends on how much of the second core the diagnoses leave idle:
# compare cadences.
set -euo pipefail
shopt -s inherit_errexit  # a failed run inside $(...) stops the script
cd "$(dirname "$0")/.."
jobs="${1:-2}"
iters="${2:-1000}"
every="${3:-10}"
if ! [[ $jobs =~ ^[1-8]$ ]]; then
  echo "bench/jobs.sh: K must be 1 to 8 (8 runs to share), got '$jobs'" >&2
  exit 2
fi
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
measure() {  # sets wall and cpu: the seconds of one sweep with --jobs $1
  local TIMEFORMAT='%R %U %S' status=0
  { time "$resgd" run "$out/sweep.yaml" --out "$out/jobs-$1" --jobs "$1" >/dev/null 2>"$out/stderr"; } \
    2>"$out/time" || status=$?
  if ((status != 0)); then
    cat "$out/stderr" >&2
    exit "$status"
  fi
  read -r wall user system <"$out/time"
  cpu=$(awk -v u="$user" -v s="$system" 'BEGIN {print u + s}')
}
measure 1
one=$wall one_cpu=$cpu
measure "$jobs"
many=$wall many_cpu=$cpu
printf "8 small runs x %s iterations, diagnostics every %s: --jobs 1 %.2f s, --jobs %s %.2f s, ratio %s\n" \
  "$iters" "$every" "$one" "$jobs" "$many" "$(ratio "$many" "$one")"
printf "CPU time: --jobs 1 %.2f s, --jobs %s %.2f s (x%s); the least ratio %s cores allow --jobs 1's work: %s\n" \
  "$one_cpu" "$jobs" "$many_cpu" "$(ratio "$many_cpu" "$one_cpu")" "$jobs" \
  "$(awk -v c="$one_cpu" -v k="$jobs" -v w="$one" 'BEGIN {printf "%.2f", c / k / w}')"
