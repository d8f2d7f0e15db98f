#!/usr/bin/env bash
# Prints docs/reference.md from what the binary says about itself:
#   scripts/reference.sh [path/to/resgd] > docs/reference.md
# tests/reference_test.cpp fails when docs/reference.md differs from this output.
set -euo pipefail
resgd="${1:-build/release/app/resgd}"
cat <<'HEADER'
# Reference

Every experiment key and every column ResGD writes, as the binary describes them: generated
by `scripts/reference.sh` from `resgd config --explain` and `resgd metrics --explain`, and
checked against them by a test, so it cannot drift. `resgd config --explain KEY` and
`resgd metrics --explain NAME` print one entry. The equations behind them are in
[design.md](design.md).

## Experiment keys

Each key: its type; its default (`null`: computed from others, as the meaning says); the
values allowed where the type does not say; what it means. An experiment file sets any of
them, nested or dotted; `--set KEY=VALUE` overrides one.

```text
HEADER
"$resgd" config --explain
cat <<'MIDDLE'
```

## Columns of metrics.csv, summary.json and sweep.csv

Each column: the files it appears in; what it is, with its formula. `<l>` is the block,
1 to L. sweep.csv also has a column for each swept key, holding that run's value.

```text
MIDDLE
"$resgd" metrics --explain
echo '```'
