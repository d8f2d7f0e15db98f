#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang and fills their seed corpora.
#   fuzz/build.sh [OUT_DIR]        (default: build/fuzz)
# Then: fuzz/run.sh [SECONDS]. Needs clang (apt install clang) and the packages of
# scripts/setup.sh. The config target links only yaml-cpp and fmt; the .pt target LibTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/fuzz}
mkdir -p "$out/corpus/config" "$out/corpus/tensors" "$out/corpus/pickle"
cxx=${CXX_FUZZ:-clang++}
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -Ilib -Itests)
sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
torch_includes=(-isystem /usr/include/torch/csrc/api/include)
torch_libs=(-ltorch -ltorch_cpu -lc10)
jobs=()

# The config loader: config_*.cpp (and the plain-file reader it uses) with the fuzz target,
# no LibTorch.
"$cxx" "${flags[@]}" "${sanitize[@]}" -fsanitize=fuzzer fuzz/config_fuzz.cpp lib/resgd/core/config_*.cpp \
  lib/resgd/core/files.cpp -lyaml-cpp -lfmt -o "$out/config_fuzz" &
jobs+=($!)

# The .pt reader: tensor_io.cpp and files.cpp once, linked into the fuzz target and the seed writer.
for source in science/tensor_io core/files core/pt_format core/pt_pickle; do
  "$cxx" "${flags[@]}" "${torch_includes[@]}" "${sanitize[@]}" -fsanitize=fuzzer-no-link -c "lib/resgd/$source.cpp" \
    -o "$out/$(basename "$source").o"
done
"$cxx" "${flags[@]}" "${torch_includes[@]}" "${sanitize[@]}" -fsanitize=fuzzer fuzz/tensors_fuzz.cpp "$out/tensor_io.o" \
  "$out/files.o" "$out/pt_format.o" "$out/pt_pickle.o" "${torch_libs[@]}" -lfmt -o "$out/tensors_fuzz" &
jobs+=($!)
"$cxx" "${flags[@]}" "${torch_includes[@]}" "${sanitize[@]}" -fsanitize=fuzzer fuzz/pickle_fuzz.cpp "$out/tensor_io.o" \
  "$out/files.o" "$out/pt_format.o" "$out/pt_pickle.o" "${torch_libs[@]}" -lfmt -o "$out/pickle_fuzz" &
jobs+=($!)
"$cxx" "${flags[@]}" "${torch_includes[@]}" "${sanitize[@]}" fuzz/make_tensor_seeds.cpp "$out/tensor_io.o" "$out/files.o" \
  "$out/pt_format.o" "$out/pt_pickle.o" \
  "${torch_libs[@]}" -lfmt -o "$out/make_tensor_seeds"
for job in "${jobs[@]}"; do wait "$job"; done

# Seed corpora: the experiment files (as they are, and with a --set after a NUL byte),
# and the tensor files the seed writer leaves (valid ones, and the hand-forged ones of
# tests/forged_tensor_files.h).
cp experiments/*.yaml "$out/corpus/config/"
for file in experiments/*.yaml; do
  { cat "$file"; printf '\0train.lr=0.5\0sweep.seeds=[1,2]'; } >"$out/corpus/config/set-$(basename "$file")"
done
ASAN_OPTIONS=detect_leaks=0 "$out/make_tensor_seeds" "$out/corpus/tensors" "$out/corpus/pickle"
# Inputs that once crashed a target or made it allocate what they declared (fuzz/regressions/,
# fixed since) stay in the corpora.
cp fuzz/regressions/config-* "$out/corpus/config/"
cp fuzz/regressions/tensors-* "$out/corpus/tensors/"
cp fuzz/regressions/pickle-* "$out/corpus/pickle/"
echo "fuzz targets in $out: config_fuzz, tensors_fuzz, pickle_fuzz"
