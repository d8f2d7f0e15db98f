#!/usr/bin/env bash
# Reruns every experiment's claims in full (resgd reproduce, about 5 minutes on 2 cores) and
# writes docs/results.md and docs/results/ from its results.md and figures, and README.md's
# two generated tables from docs/results.md (scripts/readme_tables.sh):
#   scripts/update_results.sh [path/to/resgd]
# The run directories stay in a temporary folder: results.md's links to each experiment's
# own report are dropped from the copy.
set -euo pipefail
cd "$(dirname "$0")/.."
resgd="${1:-build/release/app/resgd}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
"$resgd" reproduce --out "$out/reproduce" || status=$?  # 1: a claim not shown, still written down
[ -f "$out/reproduce/results.md" ] || exit 1
mkdir -p docs/results
cp "$out"/reproduce/results/*.png docs/results/
grep -v '^The whole report: ' "$out/reproduce/results.md" | cat -s >docs/results.md
scripts/readme_tables.sh docs/results.md README.md >"$out/README.md" && cp "$out/README.md" README.md
for image in docs/results/*.png; do  # figures no page shows any more
  grep -qF "$(basename "$image")" README.md docs/*.md || rm -f "$image"
done
echo "wrote docs/results.md, README.md's tables and $(ls "$out"/reproduce/results/*.png | wc -l) figures in docs/results/"
exit "$status"
