#!/usr/bin/env bash
# The GPU check of issue 8, for an offline CUDA machine with nvcc, CMake, a C++ compiler
# and a pip-installed torch: builds ResGD against that torch's LibTorch, runs the CUDA
# tests, the flagship on cuda and on cpu (compared), and `resgd bench --device cuda`, then
# prints one table last. Every log goes to OUT_DIR. Exit 0 only if every check passed.
#
#   scripts/gpu_check.sh [OUT_DIR]                       # default: $OUT, else ./gpu-check-out
#   RESGD_DEPS_PREFIX=build/deps scripts/gpu_check.sh "$OUT"   # deps packed by scripts/pack_deps.sh
#
# Environment (all optional):
#   RESGD_DEPS_PREFIX   prefix with fmt, yaml-cpp, CLI11, nlohmann_json, GTest, zlib
#                       (scripts/pack_deps.sh makes one from Debian's packages); unset: the
#                       system's packages
#   RESGD_TORCH_PREFIX  a LibTorch to use instead of the pip torch's (e.g. an unpacked zip)
#   RESGD_BUILD_DIR     default build/gpu-check (kept between calls: a rerun only relinks)
#   RESGD_STAGES        comma list of build,tests,flagship,bench (default: all four), so a
#                       short time limit can be split over calls on the same warm machine
#   RESGD_FULL_TESTS=1  also run the whole suite under ctest, not only the Cuda* tests
#   RESGD_REL_TOL       flagship cpu-vs-cuda tolerance on losses, rates and cond_g (1e-6)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

out="${1:-${OUT:-gpu-check-out}}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
build="${RESGD_BUILD_DIR:-build/gpu-check}"
stages=",${RESGD_STAGES:-build,tests,flagship,bench},"
rel_tol="${RESGD_REL_TOL:-1e-6}"
exec > >(tee -a "$out/gpu_check.log") 2>&1

check_name=gpu_check
source "$repo/scripts/check_common.sh"  # say, die, record, print_results
has_stage() { [[ "$stages" == *",$1,"* ]]; }

# --- 1. The machine -------------------------------------------------------------------------
say "machine"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || echo "nvidia-smi: not found"
command -v nvcc >/dev/null && nvcc --version | tail -n 2 || echo "nvcc: not found (LibTorch's CMake files need the CUDA toolkit)"
cmake --version | head -n 1
c++ --version | head -n 1
command -v python3 >/dev/null || die "python3 not found: it locates the pip torch and compares the summaries"

# --- 2. Torch: where its CMake files are, and its C++ ABI -----------------------------------
if [ -n "${RESGD_TORCH_PREFIX:-}" ]; then
  torch_cmake="$RESGD_TORCH_PREFIX"
  config_file="$(find "$torch_cmake" -name TorchConfig.cmake -print -quit)"
  [ -n "$config_file" ] || die "RESGD_TORCH_PREFIX=$torch_cmake holds no TorchConfig.cmake"
  abi="$(grep -o '_GLIBCXX_USE_CXX11_ABI=[01]' "$config_file" | head -n 1 | cut -d= -f2 || true)"
  abi="${abi:-1}"
  torch_desc="LibTorch at $torch_cmake"
else
  python3 -c 'import torch' 2>/dev/null || die "python3 cannot import torch; pip-install a CUDA torch or set RESGD_TORCH_PREFIX to a LibTorch"
  torch_cmake="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  abi="$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
  torch_desc="$(python3 -c 'import torch; print(f"pip torch {torch.__version__}, CUDA {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")')"
fi
say "torch: $torch_desc; CMake files in $torch_cmake; _GLIBCXX_USE_CXX11_ABI=$abi"
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ] && command -v nvidia-smi >/dev/null; then
  # Spares LibTorch's CMake its own GPU probing (which fails on some setups).
  TORCH_CUDA_ARCH_LIST="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d ' ')"
  export TORCH_CUDA_ARCH_LIST
fi

# --- 3. The other dependencies ---------------------------------------------------------------
# Official pip wheels before torch 2.6/2.7 (and the pre-cxx11 LibTorch zips) use the old
# C++ ABI (0); every distribution's fmt, yaml-cpp and GTest binaries use the new one (1).
# Mixing them fails at link time on std::string symbols. What we do about it:
#   fmt, CLI11, nlohmann_json: header-only in the packed prefix, so any ABI works;
#   GTest: compiled here from the sources in the prefix, with torch's ABI;
#   yaml-cpp: compiled here from src/yaml-cpp if the prefix carries it; otherwise only
#     Debian's static library (ABI 1) exists, and an ABI-0 torch cannot use it.
build_from_source() {  # build_from_source NAME SRC_DIR INSTALL_DIR [cmake args...]
  local name="$1" src="$2" dest="$3"
  shift 3
  local stamp
  stamp="abi=$abi compiler=$(c++ --version | head -n 1)"
  if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$stamp" ]; then
    echo "$name: already built ($stamp)"
    return
  fi
  echo "$name: building from $src with _GLIBCXX_USE_CXX11_ABI=$abi (log: $out/deps-$name.log)"
  rm -rf "$dest" "$dest.tmp"
  if ! { cmake -S "$src" -B "$dest.tmp" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$dest" \
           -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
           -DCMAKE_CXX_FLAGS="-D_GLIBCXX_USE_CXX11_ABI=$abi" "$@" &&
         cmake --build "$dest.tmp" -j "$(nproc)" && cmake --install "$dest.tmp"; } >"$out/deps-$name.log" 2>&1; then
    tail -n 20 "$out/deps-$name.log"
    die "$name failed to build from $src; see $out/deps-$name.log"
  fi
  rm -rf "$dest.tmp"
  echo "$stamp" >"$dest/.stamp"
}

prefix_path="$torch_cmake"
if [ -n "${RESGD_DEPS_PREFIX:-}" ]; then
  deps="$(cd "$RESGD_DEPS_PREFIX" 2>/dev/null && pwd)" || die "RESGD_DEPS_PREFIX=$RESGD_DEPS_PREFIX does not exist"
  [ -f "$deps/MANIFEST" ] || die "$deps is not a prefix written by scripts/pack_deps.sh (no MANIFEST)"
  [ -w "$deps/lib" ] || die "$deps/lib is not writable: GTest (and yaml-cpp) are compiled into it; copy the prefix somewhere writable"
  say "dependencies from $deps"
  cat "$deps/MANIFEST"
  has_stage build && build_from_source googletest "$deps/src/googletest" "$deps/lib/gtest-build" -DBUILD_GMOCK=OFF -DINSTALL_GTEST=ON
  if [ -d "$deps/src/yaml-cpp" ]; then
    has_stage build && build_from_source yaml-cpp "$deps/src/yaml-cpp" "$deps/lib/yaml-cpp-build" \
      -DYAML_CPP_BUILD_TESTS=OFF -DYAML_CPP_BUILD_TOOLS=OFF -DYAML_BUILD_SHARED_LIBS=OFF
  elif [ "$abi" = 0 ]; then
    die "this torch uses the old C++ ABI (_GLIBCXX_USE_CXX11_ABI=0), and $deps carries yaml-cpp only as
  Debian's binary, built with ABI 1: linking them fails. Either
  - use a torch built with the C++11 ABI (pip torch >= 2.7, or a 'cxx11-abi' LibTorch zip via RESGD_TORCH_PREFIX), or
  - carry yaml-cpp 0.7's sources: on a machine with internet, get them (apt-get source yaml-cpp, or the
    yaml-cpp-0.7.0 tag from github.com/jbeder/yaml-cpp) and repack: RESGD_YAML_CPP_SRC=DIR scripts/pack_deps.sh
  fmt, CLI11, nlohmann_json (header-only) and GoogleTest (compiled here) need nothing more."
  fi
  prefix_path="$deps;$torch_cmake"
elif [ "$abi" = 0 ]; then
  die "this torch uses the old C++ ABI (_GLIBCXX_USE_CXX11_ABI=0); the system's fmt/yaml-cpp/GTest binaries
  use ABI 1 and will not link with it. Pack the dependencies (scripts/pack_deps.sh, with RESGD_YAML_CPP_SRC
  for yaml-cpp's sources), carry the folder here and set RESGD_DEPS_PREFIX, or use a torch with the C++11 ABI."
fi

# --- 4. Build --------------------------------------------------------------------------------
# Torch's CMake files up to 2.4 stop at "Failed to find nvToolsExt" where the CUDA toolkit
# no longer ships libnvToolsExt (CUDA >= 12.9; some 12.x installs lack it too). ResGD does
# not use NVTX, so it configures against a copy of those CMake files in which the missing
# library is an empty target; torch's own files are left as they are.
torch_without_nvtx() {  # prints the CMake prefix to use in place of $torch_cmake
  local cuda_cmake root mirror entry
  cuda_cmake="$(find "$torch_cmake" -path '*/Caffe2/public/cuda.cmake' -print -quit)"
  [ -n "$cuda_cmake" ] || die "no Caffe2/public/cuda.cmake under $torch_cmake to work around nvToolsExt"
  root="$(cd "$(dirname "$cuda_cmake")/../../../.." && pwd)"  # <root>/share/cmake/Caffe2/public
  mirror="$(mkdir -p "$build" && cd "$build" && pwd)/torch-without-nvtx"  # kept with the build
  rm -rf "$mirror"
  mkdir -p "$mirror/share"
  # TorchConfig.cmake finds lib/ and include/ relative to itself: link them, copy the CMake files
  for entry in "$root"/*; do [ "$(basename "$entry")" = share ] || ln -s "$entry" "$mirror/"; done
  for entry in "$root"/share/*; do [ "$(basename "$entry")" = cmake ] || ln -s "$entry" "$mirror/share/"; done
  cp -r "$root/share/cmake" "$mirror/share/cmake"
  sed -i 's|message(FATAL_ERROR "Failed to find nvToolsExt")|add_library(CUDA::nvToolsExt INTERFACE IMPORTED)  # gpu_check: no nvToolsExt in this toolkit|' \
    "$mirror/share/cmake/Caffe2/public/cuda.cmake"
  grep -q 'gpu_check: no nvToolsExt' "$mirror/share/cmake/Caffe2/public/cuda.cmake" ||
    die "could not patch the nvToolsExt check in the copy of $cuda_cmake"
  echo "$mirror/share/cmake"
}

resgd="$build/app/resgd"
tests_bin="$build/tests/resgd_tests"
if has_stage build; then
  say "configure and build in $build (logs: $out/configure.log, $out/build.log)"
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cuda_compiler=()
  command -v nvcc >/dev/null && cuda_compiler=(-DCMAKE_CUDA_COMPILER="$(command -v nvcc)")
  configure() {
    cmake -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DRESGD_BUILD_TESTS=ON \
      -DCMAKE_PREFIX_PATH="$prefix_path" "${cuda_compiler[@]}" >"$out/configure.log" 2>&1
  }
  configured=0
  configure && configured=1
  if [ "$configured" = 0 ] && grep -q 'Failed to find nvToolsExt' "$out/configure.log"; then
    echo "gpu_check: this CUDA toolkit has no libnvToolsExt, which this torch's CMake files require;"
    echo "gpu_check: configuring again against a copy of them without that check (ResGD does not use NVTX)"
    mv "$out/configure.log" "$out/configure-nvtx.log"
    nvtx_free="$(torch_without_nvtx)"
    prefix_path="${prefix_path/"$torch_cmake"/"$nvtx_free"}"
    rm -f "$build/CMakeCache.txt"
    configure && configured=1
  fi
  if [ "$configured" = 0 ]; then
    tail -n 30 "$out/configure.log"
    die "CMake configuration failed; see $out/configure.log (without RESGD_DEPS_PREFIX the system must provide fmt, yaml-cpp, CLI11, nlohmann_json, GTest and zlib)"
  fi
  start=$SECONDS
  if ! cmake --build "$build" -j "$(nproc)" >"$out/build.log" 2>&1; then
    grep -m 20 -E 'error|undefined reference' "$out/build.log" || tail -n 30 "$out/build.log"
    grep -q 'undefined reference.*__cxx11' "$out/build.log" &&
      echo "gpu_check: hint: undefined std::__cxx11 symbols mean a C++ ABI mismatch between torch (ABI $abi) and a dependency"
    die "build failed; see $out/build.log"
  fi
  deprecated="$(grep -c -i 'deprecated' "$out/build.log" || true)"
  warnings="$(grep -c 'warning:' "$out/build.log" || true)"
  echo "built in $((SECONDS - start)) s: $warnings warning(s), $deprecated mentioning 'deprecated'"
  if [ "$deprecated" = 0 ]; then
    record build ok "built against $torch_desc; $warnings warning(s), none deprecated"
  else
    grep -i -m 5 'deprecated' "$out/build.log"
    record build FAIL "$deprecated deprecation warning(s) (see build.log)"
  fi
fi
if [ ! -x "$resgd" ] || [ ! -x "$tests_bin" ]; then
  die "$resgd or $tests_bin is missing: run the build stage first"
fi

# --- 5. CUDA tests ---------------------------------------------------------------------------
if has_stage tests; then
  say "CUDA tests: resgd_tests --gtest_filter='Cuda*' (log: $out/cuda_tests.log)"
  status=0
  "$tests_bin" --gtest_filter='Cuda*' --gtest_output="xml:$out/cuda_tests.xml" >"$out/cuda_tests.log" 2>&1 || status=$?
  grep -E '^\[ +(OK|FAILED|SKIPPED) +\]' "$out/cuda_tests.log" || true
  count() { grep -oE "^\[ +$1 +\] [0-9]+ test" "$out/cuda_tests.log" | grep -oE '[0-9]+' | head -n 1 || true; }
  passed="$(count PASSED)"; skipped="$(count SKIPPED)"; failures="$(count FAILED)"
  passed="${passed:-0}"; skipped="${skipped:-0}"; failures="${failures:-0}"
  line="$passed passed, $failures failed, $skipped skipped"
  if [ "$status" -ne 0 ] || [ "$failures" -ne 0 ] || [ "$passed" -eq 0 ]; then
    record cuda_tests FAIL "$line (exit $status)"
  elif [ "$skipped" -ne 0 ]; then
    grep -m 1 'no CUDA device' "$out/cuda_tests.log" || true
    record cuda_tests FAIL "$line: skipped on a GPU machine, so this LibTorch sees no GPU"
  else
    record cuda_tests ok "$line"
  fi
  if [ "${RESGD_FULL_TESTS:-0}" = 1 ]; then
    say "whole suite under ctest (log: $out/ctest.log)"
    if (cd "$build" && ctest --output-on-failure -j "$(nproc)") >"$out/ctest.log" 2>&1; then
      record all_tests ok "$(grep -E 'tests passed' "$out/ctest.log" | tail -n 1)"
    else
      record all_tests FAIL "$(grep -E 'tests passed|tests failed' "$out/ctest.log" | tail -n 1)"
    fi
  fi
fi

# --- 6. Flagship on cuda and on cpu, compared -------------------------------------------------
if has_stage flagship; then
  for device in cuda cpu; do
    say "flagship on $device (log: $out/flagship-$device.log)"
    start=$SECONDS
    # With the sharpness (Lanczos on double-backward products) compared too.
    if ! "$resgd" run --device "$device" --set diagnostics.sharpness=true --out "$out/flagship-$device" --force \
        >"$out/flagship-$device.log" 2>&1; then
      tail -n 20 "$out/flagship-$device.log"
      record "flagship_$device" FAIL "resgd run --device $device failed; see flagship-$device.log"
    fi
    tail -n 8 "$out/flagship-$device.log"
    echo "$device: $((SECONDS - start)) s"
  done
  say "flagship summaries, cuda against cpu (relative tolerance $rel_tol)"
  if compare="$(python3 "$repo/scripts/compare_summaries.py" "$out/flagship-cuda" "$out/flagship-cpu" "$rel_tol" \
      --labels cuda,cpu --device-a cuda)"; then
    echo "$compare"
    record flagship ok "cuda = cpu: ${compare##*SUMMARY }"
  else
    echo "$compare"
    record flagship FAIL "cuda != cpu: ${compare##*SUMMARY }"
  fi
fi

# --- 7. Bench on the GPU ---------------------------------------------------------------------
if has_stage bench; then
  say "resgd bench --device cuda --sizes small,medium,large (log: $out/bench.log)"
  if "$resgd" bench --device cuda --sizes small,medium,large >"$out/bench.log" 2>&1; then
    cat "$out/bench.log"
    # Row: size dtype grads diag ms/step GFLOP/step GFLOP/s mm-GFLOP/s of-mm diag-cost; the
    # large size with diagnostics off, best of the two gradient methods.
    best="$(awk '$1 == "large" && $4 == "off" { pct = $9; sub("%", "", pct);
              if (pct + 0 > best + 0) { best = pct; line = sprintf("%s: %.1f of %.1f GFLOP/s = %s%% (target >= 40%%)", $3, $7, $8, pct) } }
            END { print line }' "$out/bench.log")"
    pct="$(sed -E 's/.*= ([0-9.]+)%.*/\1/' <<<"$best")"
    if [ -z "$best" ]; then
      record bench FAIL "no 'large' row in bench.log"
    elif awk -v p="$pct" 'BEGIN { exit !(p >= 40) }'; then
      record bench ok "large $best"
    else
      record bench FAIL "large $best"
    fi
  else
    tail -n 20 "$out/bench.log"
    record bench FAIL "resgd bench --device cuda failed; see bench.log"
  fi
fi

# --- 8. The table ----------------------------------------------------------------------------
print_results "$torch_desc; logs in $out" build cuda_tests all_tests flagship_cuda flagship_cpu flagship bench |
  tee "$out/summary.txt"
exit "$failed"
