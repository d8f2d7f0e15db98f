#!/usr/bin/env bash
# ResGD against LibTorch 2.x on a machine without a GPU: Debian 13 ("trixie") ships
# LibTorch 2.6 (CPU) and GCC 14, so a debootstrap chroot of it runs the README's own test
# command there, `./scripts/setup.sh && ctest --preset release`, from a fresh build. The
# flagship then runs in the chroot and here (Debian 12's LibTorch 1.13), and the two
# summaries are compared run by run. One table last; logs in OUT_DIR. Exit 0 only if every
# check passed. The CUDA paths need a GPU: scripts/gpu_check.sh.
#
#   scripts/torch2_check.sh [OUT_DIR]          # default: build/torch2-check
#
# Needs root (debootstrap, chroot and mounts), the debootstrap package, Debian's package
# mirror, about 2.5 GB of disk, and this checkout built (./scripts/setup.sh) for the
# comparison. A first call took 12 minutes on two cores (2 to bootstrap and install, 4-6
# to build, 3-5 to test); the chroot is kept, so a later call skips the bootstrap.
#
# Environment (all optional):
#   RESGD_TORCH2_ROOT   the chroot (default build/torch2-root)
#   RESGD_TORCH2_SUITE  the Debian suite (default trixie)
#   RESGD_MIRROR        the Debian mirror (default http://deb.debian.org/debian)
#   RESGD_REL_TOL       flagship tolerance, LibTorch 2.x against 1.13 (default 1e-6)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
out="${1:-build/torch2-check}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
root="${RESGD_TORCH2_ROOT:-build/torch2-root}"
mkdir -p "$root"
root="$(cd "$root" && pwd)"
suite="${RESGD_TORCH2_SUITE:-trixie}"
mirror="${RESGD_MIRROR:-http://deb.debian.org/debian}"
rel_tol="${RESGD_REL_TOL:-1e-6}"
host_resgd="$repo/build/release/app/resgd"
exec > >(tee "$out/torch2_check.log") 2>&1

check_name=torch2_check
source "$repo/scripts/check_common.sh"  # say, die, record, print_results

[ "$(id -u)" -eq 0 ] || die "debootstrap and chroot need root: run it as root (or with sudo)"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
[ -x "$host_resgd" ] || die "$host_resgd is missing: build this checkout first (./scripts/setup.sh)"

# --- 1. The chroot --------------------------------------------------------------------------
if [ ! -x "$root/usr/bin/apt-get" ]; then
  say "debootstrap $suite into $root (log: $out/debootstrap.log)"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror" \
    >"$out/debootstrap.log" 2>&1 || { tail -n 20 "$out/debootstrap.log"; die "debootstrap failed"; }
fi
mounts=()  # what this call mounted, unmounted again on exit
unmount_all() {
  local m
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}
trap unmount_all EXIT
mount_once() {  # mount_once DIR MOUNT-ARGS...
  mountpoint -q "$root/$1" && return
  mount "${@:2}" "$root/$1"
  mounts+=("$root/$1")
}
mount_once proc -t proc proc
mount_once sys -t sysfs sysfs  # LibTorch and OpenBLAS read the CPU's features there
mount_once dev --bind /dev
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 bash -c "$1"; }

# --- 2. This checkout's files, as git sees them (uncommitted edits included) -----------------
say "copying the checkout's tracked files to $root/src"
rm -rf "$root/src"
mkdir -p "$root/src"
# (--ignore-failed-read: a tracked file deleted in the work tree is left out)
git ls-files -z --cached --others --exclude-standard |
  tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$root/src"

# --- 3. The README's test command, in the chroot ---------------------------------------------
say "in $suite: ./scripts/setup.sh && ctest --preset release (logs: $out/setup.log, $out/ctest.log)"
start=$SECONDS
if in_root 'cd /src && ./scripts/setup.sh' >"$out/setup.log" 2>&1; then
  torch_version="$(in_root "dpkg-query -W -f='\${Version}' libtorch-dev")"
  compiler="$(in_root 'g++ --version | head -n 1')"
  warnings="$(grep -c 'warning:' "$out/setup.log" || true)"
  deprecated="$(grep -c -i 'deprecated' "$out/setup.log" || true)"
  echo "built in $((SECONDS - start)) s against LibTorch $torch_version with $compiler: $warnings warning(s)"
  grep -A 3 'warning:' "$out/setup.log" | head -n 40 || true
  if [ "$warnings" = 0 ]; then
    record build ok "LibTorch $torch_version, $compiler: no warnings"
  else
    record build FAIL "LibTorch $torch_version: $warnings warning(s), $deprecated mentioning 'deprecated' (setup.log)"
  fi
else
  tail -n 30 "$out/setup.log"
  record build FAIL "./scripts/setup.sh failed in $suite (setup.log)"
fi
if [ -n "${result[build]:-}" ] && [ -x "$root/src/build/release/tests/resgd_tests" ]; then
  start=$SECONDS
  status=0
  in_root 'cd /src && ctest --preset release' >"$out/ctest.log" 2>&1 || status=$?
  summary_line="$(grep -E 'tests passed|tests failed' "$out/ctest.log" | tail -n 1)"
  skipped="$(grep -c '(Skipped)' "$out/ctest.log" || true)"
  echo "$summary_line ($skipped skipped) in $((SECONDS - start)) s"
  if [ "$status" = 0 ]; then
    record tests ok "$summary_line; $skipped skipped (no GPU)"
  else
    grep -E '\*\*\*Failed|Failed  ' "$out/ctest.log" | head -n 20 || true
    record tests FAIL "$summary_line (ctest.log)"
  fi
fi

# --- 4. The flagship under LibTorch 2.x and here, compared -----------------------------------
if [ -x "$root/src/build/release/app/resgd" ]; then
  say "flagship under LibTorch 2.x (chroot) and 1.13 (here), with the sharpness"
  flagship=(run --set diagnostics.sharpness=true --force)
  in_root "cd /src && build/release/app/resgd ${flagship[*]} --out /flagship-torch2" >"$out/flagship-torch2.log" 2>&1 &&
    rm -rf "$out/flagship-torch2" && cp -r "$root/flagship-torch2" "$out/flagship-torch2" ||
    record flagship FAIL "the flagship failed in the chroot (flagship-torch2.log)"
  "$host_resgd" "${flagship[@]}" --out "$out/flagship-torch1" >"$out/flagship-torch1.log" 2>&1 ||
    record flagship FAIL "the flagship failed here (flagship-torch1.log)"
  if [ -z "${result[flagship]:-}" ]; then
    if compare="$(python3 "$repo/scripts/compare_summaries.py" "$out/flagship-torch2" "$out/flagship-torch1" \
        "$rel_tol" --labels torch2,torch1)"; then
      record flagship ok "LibTorch 2.x = 1.13: ${compare##*SUMMARY }"
    else
      record flagship FAIL "LibTorch 2.x != 1.13: ${compare##*SUMMARY }"
    fi
    echo "$compare"
  fi
fi

# --- 5. The table ----------------------------------------------------------------------------
for check in build tests flagship; do
  [ -n "${result[$check]:-}" ] || record "$check" FAIL "not reached"
done
print_results "Debian $suite in $root; logs in $out" build tests flagship | tee "$out/summary.txt"
exit "$failed"
