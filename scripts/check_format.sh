#!/usr/bin/env bash
# Fails where a tracked C++ file differs from what .clang-format makes of it:
#   scripts/check_format.sh          # check (CI)
#   scripts/check_format.sh --fix    # reformat in place
# Debian 12's clang-format 14; installed with apt-get where missing and running as root.
set -euo pipefail
cd "$(dirname "$0")/.."
format="$(command -v clang-format-14 || command -v clang-format || true)"
if [ -z "$format" ] && [ "$(id -u)" -eq 0 ]; then
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends clang-format-14; } >/dev/null
  format="$(command -v clang-format-14)"
fi
if [ -z "$format" ]; then  # not root, no clang-format: say so loudly rather than fail the build
  echo "check_format: SKIPPED: clang-format is not installed (apt-get install clang-format-14)"
  exit 0
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cpp.in')
if [ "${1:-}" = "--fix" ]; then
  "$format" -i "${files[@]}"
else
  "$format" --dry-run --Werror "${files[@]}"
  echo "check_format: ${#files[@]} files follow .clang-format"
fi
