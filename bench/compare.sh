#!/usr/bin/env bash
# ResGD's GD step against the natural Python PyTorch loop (bench/baseline.py), same machine,
# same LibTorch and BLAS, one after the other in one go. Prints both tables and the ratios.
#   bench/compare.sh [small,medium,large] [repeats]
# The Python loop runs twice: as a user would run it, and with OPENBLAS_CORETYPE set to the
# kernels resgd chose for itself (where resgd chose), so that the table shows how much of
# the ratio is the kernel choice and how much the rest of ResGD.
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
kernels=$(sed -n 's/.*, \([A-Za-z0-9]*\) kernels (chosen by resgd.*/\1/p' "$out/resgd.txt")
if [[ -n "$kernels" ]]; then
  echo
  echo "python baseline again with OPENBLAS_CORETYPE=$kernels, the kernels resgd chose:"
  OPENBLAS_CORETYPE="$kernels" "$python" bench/baseline.py --sizes "$sizes" --repeats "$repeats" | tee "$out/python-kernels.txt"
else
  cp "$out/python.txt" "$out/python-kernels.txt"
fi
echo
printf "%-9s %14s %10s %7s %18s %7s\n" size "resgd ms/step" "python" ratio "python, same BLAS" ratio
for size in ${sizes//,/ }; do
  # resgd's best gradient source with diagnostics off (the bench prints both sources)
  ours=$(awk -v s="$size" '$1 == s && $4 == "off" {print $5}' "$out/resgd.txt" | sort -g | head -1)
  theirs=$(awk -v s="$size" '$1 == s {print $2}' "$out/python.txt")
  same=$(awk -v s="$size" '$1 == s {print $2}' "$out/python-kernels.txt")
  awk -v s="$size" -v a="$ours" -v b="$theirs" -v c="$same" \
    'BEGIN {printf "%-9s %14.3f %10.3f %7.2f %18.3f %7.2f\n", s, a, b, a / b, c, a / c}'
done
