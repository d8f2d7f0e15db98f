#!/usr/bin/env bash
# Installs what ResGD needs on Debian 12 (only the packages that are missing), then
# configures and builds the `release` preset: build/release/app/resgd and the tests.
#   ./scripts/setup.sh            # install + build
#   RESGD_PRESET=dev ./scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build
  libtorch-dev libfmt-dev libyaml-cpp-dev libgtest-dev libcli11-dev nlohmann-json3-dev
  zlib1g-dev            # reads the gzip-compressed digits data
  libopenblas0-pthread  # without it Debian's LibTorch multiplies with the slow reference BLAS
  gnuplot-nox           # plots
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

preset="${RESGD_PRESET:-release}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
echo "setup: built build/$preset/app/resgd"
