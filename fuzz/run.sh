#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 300) at low priority, one after the other,
# on the corpora fuzz/build.sh made; new inputs go to the corpus, findings to OUT_DIR/crashes.
#   fuzz/run.sh [SECONDS] [OUT_DIR] [TARGET...]     (targets: config tensors pickle; default all)
# Leak detection is off: LibTorch keeps allocations alive until exit by design.
# The .pt and pickle targets run in fork mode and goes on after a finding, so that one run collects
# them all. LibTorch 1.13 allocates whatever length a zip entry or a pickle declares before
# reading it; resgd checks those lengths first (lib/resgd/pt_format.h), so an out-of-memory
# or a timeout here is a finding like a crash. `OUT_DIR/tensors_fuzz -detect_leaks=0 FILE`
# replays one.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
out=${2:-build/fuzz}
targets=("${@:3}")
((${#targets[@]})) || targets=(config tensors pickle)
wanted() { [[ " ${targets[*]} " == *" $1 "* ]]; }
mkdir -p "$out/crashes"
common=(-max_total_time="$seconds" -detect_leaks=0 -timeout=30 -rss_limit_mb=4096 -max_len=65536
        -print_final_stats=1)
if wanted config; then
echo "== config_fuzz, ${seconds}s"
nice -n 19 "$out/config_fuzz" "${common[@]}" -artifact_prefix="$out/crashes/config_fuzz-" "$out/corpus/config"
fi
if wanted tensors; then
echo "== tensors_fuzz, ${seconds}s (fork mode)"
ASAN_OPTIONS=detect_leaks=0 nice -n 19 "$out/tensors_fuzz" "${common[@]}" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
  -artifact_prefix="$out/crashes/tensors_fuzz-" "$out/corpus/tensors"
fi
if wanted pickle; then
echo "== pickle_fuzz, ${seconds}s (fork mode; the pickle itself mutated: nesting, sizes, memo)"
ASAN_OPTIONS=detect_leaks=0 nice -n 19 "$out/pickle_fuzz" "${common[@]}" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
  -artifact_prefix="$out/crashes/pickle_fuzz-" "$out/corpus/pickle"
fi
