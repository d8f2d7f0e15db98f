#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (the `asan`
# preset of CMakePresets.json): configure, build, test. Run it before merging changes to
# I/O or memory handling; it takes 10+ minutes on two cores, so CI leaves it to this script.
#   scripts/asan_check.sh [extra ctest arguments, e.g. -R Hostile]
# LibTorch itself is not instrumented; leak detection is off (the test preset sets
# ASAN_OPTIONS=detect_leaks=0) because LibTorch keeps allocations until exit by design.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset asan
cmake --build --preset asan
ctest --preset asan "$@"
