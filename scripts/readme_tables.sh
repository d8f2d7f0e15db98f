#!/usr/bin/env bash
# Prints README.md with its two generated tables taken from a results.md (docs/results.md by
# default): the flagship's run table (the residual_vs_plain section's) and the experiments
# table (the overview's, its links pointed at docs/results.md). scripts/update_results.sh
# writes its output over README.md; the Readme tests check that README.md equals it.
#   scripts/readme_tables.sh [RESULTS.md] [README.md]
set -euo pipefail
cd "$(dirname "$0")/.."
results="${1:-docs/results.md}"
readme="${2:-README.md}"
flagship="$(awk '/^## residual_vs_plain$/ {in_section = 1; next}
                 /^## / {in_section = 0}
                 in_section && /^```text$/ {printing = 1}
                 printing {print}
                 printing && /^```$/ {exit}' "$results")"
overview="$(awk '/^\| experiment \| claims shown \|/ {printing = 1}
                 printing && /^$/ {exit}
                 printing {gsub(/\]\(#/, "](docs/results.md#"); print}' "$results")"
headline="$(sed -nE 's/^Every claim of the experiment files, rerun and checked by `resgd reproduce` on ([0-9-]+) with resgd [^ ]+ \(commit ([^)]+)\).*(\*\*[0-9]+ of [0-9]+ claims shown\*\*).* It took (.*)$/`resgd reproduce` on \1 (commit \2): \3. It took \4/p' "$results")"
[ -n "$headline" ] || { echo "$results: no headline of a full resgd reproduce" >&2; exit 1; }
[ -n "$flagship" ] || { echo "$results: no residual_vs_plain run table" >&2; exit 1; }
[ -n "$overview" ] || { echo "$results: no experiments overview" >&2; exit 1; }
overview="$headline"$'\n\n'"$overview"
FLAGSHIP="$flagship" OVERVIEW="$overview" awk '
  /^<!-- generated: flagship table/ {print; print ENVIRON["FLAGSHIP"]; skipping = 1; found++; next}
  /^<!-- generated: experiments table/ {print; print ENVIRON["OVERVIEW"]; skipping = 1; found++; next}
  /^<!-- end of generated table -->$/ {skipping = 0}
  !skipping {print}
  END {if (found != 2) {print "README: expected the two generated-table markers, found " found > "/dev/stderr"; exit 1}}
' "$readme"
