#!/usr/bin/env bash
# Packs ResGD's non-Torch dependencies from this machine's Debian 12 packages into one
# self-contained prefix, to carry to an offline GPU machine (scripts/gpu_check.sh reads it
# through RESGD_DEPS_PREFIX). Nothing is downloaded.
#
#   scripts/pack_deps.sh [DEST]            # default DEST: build/deps (git-ignored; carry it to
#                                          # the GPU machine); prints its size at the end
#   RESGD_YAML_CPP_SRC=~/yaml-cpp-0.7.0 scripts/pack_deps.sh DEST   # also carry yaml-cpp's sources
#
# What goes in, and why it works whatever the GPU machine's compiler and C++ ABI:
#   include/   fmt, yaml-cpp, CLI (CLI11), nlohmann (json), zlib.h/zconf.h   (headers)
#   src/googletest   GoogleTest's sources (Debian's libgtest-dev ships them): gpu_check.sh
#                    compiles them there with the compiler and ABI of the torch it links
#   src/yaml-cpp     only if RESGD_YAML_CPP_SRC is given: likewise compiled there
#   lib/libyaml-cpp.a, lib/libz.a   Debian's static builds (C++11 ABI = 1, GCC 12)
#   lib/cmake/<pkg>/<pkg>Config.cmake    small hand-written package configs (below), so the
#                    prefix is relocatable and never points back into /usr:
#     fmt::fmt       header-only (FMT_HEADER_ONLY): compiled with whatever ABI torch uses
#     CLI11, nlohmann_json   header-only anyway
#     yaml-cpp       lib/yaml-cpp-build/ (installed) when gpu_check.sh built it from src/,
#                    else Debian's lib/libyaml-cpp.a, which needs torch's C++11 ABI = 1 (pip
#                    wheels from torch 2.6/2.7 on, every official cxx11-abi LibTorch zip)
#     GTest          lib/gtest-build/ (installed) as built by gpu_check.sh from src/googletest
# zlib is a C library (no C++ ABI); CMake's FindZLIB finds include/zlib.h and lib/libz.a.
set -euo pipefail

dest="${1:-build/deps}"
multiarch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
libdir="/usr/lib/${multiarch}"

need() {  # need FILE PACKAGE
  [ -e "$1" ] || { echo "pack_deps: $1 is missing; install the Debian package $2 (scripts/setup.sh does)" >&2; exit 1; }
}
need /usr/include/fmt/format.h libfmt-dev
need /usr/include/yaml-cpp/yaml.h libyaml-cpp-dev
need "$libdir/libyaml-cpp.a" libyaml-cpp-dev
need /usr/include/CLI/CLI.hpp libcli11-dev
need /usr/include/nlohmann/json.hpp nlohmann-json3-dev
need /usr/src/googletest/CMakeLists.txt libgtest-dev
need /usr/include/zlib.h zlib1g-dev
need "$libdir/libz.a" zlib1g-dev

rm -rf "$dest"
mkdir -p "$dest/include" "$dest/lib/cmake" "$dest/src"
cp -a /usr/include/fmt /usr/include/yaml-cpp /usr/include/CLI /usr/include/nlohmann "$dest/include/"
cp -a /usr/include/zlib.h /usr/include/zconf.h "$dest/include/"
cp -a "$libdir/libyaml-cpp.a" "$libdir/libz.a" "$dest/lib/"
cp -a /usr/src/googletest "$dest/src/googletest"
if [ -n "${RESGD_YAML_CPP_SRC:-}" ]; then
  need "$RESGD_YAML_CPP_SRC/CMakeLists.txt" "(RESGD_YAML_CPP_SRC: a yaml-cpp 0.7 source tree)"
  cp -a "$RESGD_YAML_CPP_SRC" "$dest/src/yaml-cpp"
  rm -rf "$dest/src/yaml-cpp/.git"
fi

version_of() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
config() {  # config NAME: writes lib/cmake/NAME/NAMEConfig.cmake (find_package's name) from stdin
  mkdir -p "$dest/lib/cmake/$1"
  cat >"$dest/lib/cmake/$1/$1Config.cmake"
}
# Every config computes the prefix from its own location: <prefix>/lib/cmake/<name>/.
# shellcheck disable=SC2016  # CMake's ${...}, not the shell's
prefix_line='get_filename_component(_resgd_deps "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)'

header_only() {  # header_only NAME TARGET DEBIAN_PACKAGE [PROPERTY VALUE]...: an INTERFACE target on include/
  local name=$1 target=$2 package=$3
  shift 3
  config "$name" <<EOF
# $name $(version_of "$package"), header-only.
$prefix_line
if(NOT TARGET $target)
  add_library($target INTERFACE IMPORTED)
  set_target_properties($target PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "\${_resgd_deps}/include"${*:+ $*})
endif()
set(${name}_FOUND TRUE)
EOF
}
# fmt as header-only (FMT_HEADER_ONLY): compiled with the including target's ABI.
header_only fmt fmt::fmt libfmt-dev INTERFACE_COMPILE_DEFINITIONS FMT_HEADER_ONLY=1
header_only CLI11 CLI11::CLI11 libcli11-dev
header_only nlohmann_json nlohmann_json::nlohmann_json nlohmann-json3-dev

config yaml-cpp <<EOF
# yaml-cpp $(version_of libyaml-cpp-dev): the copy gpu_check.sh compiled from src/yaml-cpp
# with torch's ABI if there is one, else Debian's static library (C++11 ABI = 1).
$prefix_line
set(_resgd_yaml "\${_resgd_deps}/lib/yaml-cpp-build/lib/libyaml-cpp.a")
set(_resgd_yaml_include "\${_resgd_deps}/lib/yaml-cpp-build/include")
if(NOT EXISTS "\${_resgd_yaml}")
  set(_resgd_yaml "\${_resgd_deps}/lib/libyaml-cpp.a")
  set(_resgd_yaml_include "\${_resgd_deps}/include")
endif()
if(NOT TARGET yaml-cpp)
  add_library(yaml-cpp STATIC IMPORTED)
  set_target_properties(yaml-cpp PROPERTIES
    IMPORTED_LOCATION "\${_resgd_yaml}"
    INTERFACE_INCLUDE_DIRECTORIES "\${_resgd_yaml_include}")
endif()
set(yaml-cpp_FOUND TRUE)
EOF

config GTest <<EOF
# GoogleTest $(version_of libgtest-dev), compiled by gpu_check.sh from src/googletest into
# lib/gtest-build/ with the compiler and C++ ABI of the torch it links.
$prefix_line
set(_resgd_gtest "\${_resgd_deps}/lib/gtest-build/lib")
if(NOT EXISTS "\${_resgd_gtest}/libgtest.a")
  set(GTest_FOUND FALSE)
  set(GTest_NOT_FOUND_MESSAGE "\${_resgd_gtest}/libgtest.a is missing: build src/googletest first (scripts/gpu_check.sh does)")
  return()
endif()
find_package(Threads REQUIRED)
if(NOT TARGET GTest::gtest)
  add_library(GTest::gtest STATIC IMPORTED)
  set_target_properties(GTest::gtest PROPERTIES
    IMPORTED_LOCATION "\${_resgd_gtest}/libgtest.a"
    INTERFACE_INCLUDE_DIRECTORIES "\${_resgd_deps}/lib/gtest-build/include"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
  add_library(GTest::gtest_main STATIC IMPORTED)
  set_target_properties(GTest::gtest_main PROPERTIES
    IMPORTED_LOCATION "\${_resgd_gtest}/libgtest_main.a"
    INTERFACE_LINK_LIBRARIES GTest::gtest)
endif()
set(GTest_FOUND TRUE)
EOF

cat >"$dest/MANIFEST" <<EOF
ResGD dependency prefix, packed $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/pack_deps.sh on $(grep -m 1 '^PRETTY_NAME=' /etc/os-release | cut -d= -f2- | tr -d '"')
fmt $(version_of libfmt-dev) (header-only), CLI11 $(version_of libcli11-dev), nlohmann_json $(version_of nlohmann-json3-dev)
yaml-cpp $(version_of libyaml-cpp-dev): lib/libyaml-cpp.a (C++11 ABI 1)$([ -d "$dest/src/yaml-cpp" ] && echo "; sources in src/yaml-cpp")
GoogleTest $(version_of libgtest-dev): sources in src/googletest
zlib $(version_of zlib1g-dev): lib/libz.a
Use: RESGD_DEPS_PREFIX=$dest scripts/gpu_check.sh OUT_DIR
EOF
echo "pack_deps: wrote $dest ($(du -sh "$dest" | cut -f1))"
[ -d "$dest/src/yaml-cpp" ] || echo "pack_deps: note: no yaml-cpp sources (RESGD_YAML_CPP_SRC unset): on the GPU machine this prefix serves only a torch built with the C++11 ABI (torch._C._GLIBCXX_USE_CXX11_ABI == True)"
