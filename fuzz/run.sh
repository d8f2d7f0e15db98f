#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 300) at low priority, one after the other,
# on the corpora fuzz/build.sh made; new inputs go to the corpus, crashes to OUT_DIR/crashes.
#   fuzz/run.sh [SECONDS] [OUT_DIR]
# Leak detection is off: LibTorch keeps allocations alive until exit by design.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
out=${2:-build/fuzz}
mkdir -p "$out/crashes"
for target in config_fuzz tensors_fuzz; do
  echo "== $target, ${seconds}s"
  nice -n 19 "$out/$target" -max_total_time="$seconds" -detect_leaks=0 -timeout=30 -rss_limit_mb=4096 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$out/crashes/$target-" "$out/corpus/${target%_fuzz}"
done
