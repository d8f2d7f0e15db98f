#!/usr/bin/env bash
# ResGD's GD step against the natural Python PyTorch loop (bench/baseline.py), same machine,
# same LibTorch and BLAS, one after the other in one go. Prints both tables and the ratios.
#   bench/compare.sh [small,medium,large] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${1:-small,medium}"
repeats="${2:-5}"
resgd="${RESGD:-build/release/app/resgd}"
python="${PYTHON:-/usr/bin/python3}"   # Debian's python3-torch: the same LibTorch as resgd
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$resgd" bench --sizes "$sizes" --repeats "$repeats" | tee "$out/resgd.txt"
echo
"$python" bench/baseline.py --sizes "$sizes" --repeats "$repeats" | tee "$out/python.txt"
echo
echo "size      resgd ms/step (best source, diag off)  python ms/step  ratio"
for size in ${sizes//,/ }; do
  ours=$(awk -v s="$size" '$1 == s && $4 == "off" {print $5}' "$out/resgd.txt" | sort -g | head -1)
  theirs=$(awk -v s="$size" '$1 == s {print $2}' "$out/python.txt")
  awk -v s="$size" -v a="$ours" -v b="$theirs" 'BEGIN {printf "%-9s %38.3f %15.3f %6.2f\n", s, a, b, a / b}'
done
