#!/usr/bin/env bash
# ResGD's GD step against the natural Python PyTorch loop (bench/baseline.py): same machine,
# same LibTorch and BLAS, in turns. Prints every table and, last, the medians over rounds.
#   bench/compare.sh [sizes, default small,medium] [repeats per round, default 5] [rounds, default 3]
# Each round runs `resgd bench`, then the Python loop as a user would run it, then the
# Python loop with OPENBLAS_CORETYPE set to the kernels resgd chose for itself (where it
# chose), so the table shows how much of the ratio is the kernel choice and how much the
# rest of ResGD. Taking turns puts a drift in the machine's speed on both sides alike.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${1:-small,medium}"
repeats="${2:-5}"
rounds="${3:-3}"
resgd="${RESGD:-build/release/app/resgd}"
python="${PYTHON:-/usr/bin/python3}"   # Debian's python3-torch: the same LibTorch as resgd
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for round in $(seq "$rounds"); do
  echo "== round $round of $rounds"
  "$resgd" bench --sizes "$sizes" --repeats "$repeats" | tee "$out/resgd.txt"
  "$python" bench/baseline.py --sizes "$sizes" --repeats "$repeats" | tee "$out/python.txt"
  kernels=$(sed -n 's/.*, \([A-Za-z0-9]*\) kernels (chosen by resgd.*/\1/p' "$out/resgd.txt")
  if [[ -n "$kernels" ]]; then
    echo "python baseline with OPENBLAS_CORETYPE=$kernels, the kernels resgd chose:"
    OPENBLAS_CORETYPE="$kernels" "$python" bench/baseline.py --sizes "$sizes" --repeats "$repeats" |
      tee "$out/python-kernels.txt"
  else
    cp "$out/python.txt" "$out/python-kernels.txt"
  fi
  for size in ${sizes//,/ }; do
    # resgd's best gradient source with diagnostics off (the bench prints both sources)
    ours=$(awk -v s="$size" '$1 == s && $4 == "off" {print $5}' "$out/resgd.txt" | sort -g | head -1)
    theirs=$(awk -v s="$size" '$1 == s {print $2}' "$out/python.txt")
    same=$(awk -v s="$size" '$1 == s {print $2}' "$out/python-kernels.txt")
    echo "$size $ours $theirs $same" >>"$out/rounds.txt"
  done
  echo
done

echo "medians over $rounds rounds (resgd: the faster gradient source, diagnostics off)"
printf "%-9s %14s %10s %7s %18s %7s\n" size "resgd ms/step" "python" ratio "python, same BLAS" ratio
for size in ${sizes//,/ }; do
  awk -v s="$size" '
    function median(v, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    $1 == s { n++; a[n] = $2; b[n] = $3; c[n] = $4; r[n] = $2 / $3; q[n] = $2 / $4 }
    END { printf "%-9s %14.3f %10.3f %7.2f %18.3f %7.2f\n", s, median(a, n), median(b, n), median(r, n), median(c, n), median(q, n) }
  ' "$out/rounds.txt"
done
