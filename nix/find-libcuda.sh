# shellcheck shell=bash
# Sourced by the app wrappers and the devShell: find the host's libcuda.so.1
# without pinning a driver version, and make it loadable.
#
# Order: an explicit SLIME_RUNNER_LIBCUDA_DIR; NixOS's /run/opengl-driver/lib;
# the dynamic linker cache of the host (ldconfig -p); the usual driver
# directories of Debian/Ubuntu, RHEL/Fedora, containers (NVIDIA container
# toolkit) and WSL. Exports SLIME_RUNNER_LIBCUDA_DIR (empty when not found) and
# SLIME_RUNNER_LIBCUDA_SOURCE so `runner doctor` can say which one was used.
# Only that directory is added to LD_LIBRARY_PATH, not the whole host lib dir,
# so host libraries other than the driver's cannot shadow the Nix closure.

slime_find_libcuda() {
  local root="${SLIME_RUNNER_LIBCUDA_ROOT:-}" # tests point this at a fake tree
  local dir source=""
  if [ -n "${SLIME_RUNNER_LIBCUDA_DIR:-}" ]; then
    if [ -e "${SLIME_RUNNER_LIBCUDA_DIR}/libcuda.so.1" ]; then
      source="environment"
      dir="$SLIME_RUNNER_LIBCUDA_DIR"
    else
      echo "warning: SLIME_RUNNER_LIBCUDA_DIR=$SLIME_RUNNER_LIBCUDA_DIR has no libcuda.so.1; searching" >&2
    fi
  fi
  if [ -z "$source" ] && [ -e "$root/run/opengl-driver/lib/libcuda.so.1" ]; then
    source="nixos"
    dir="$root/run/opengl-driver/lib"
  fi
  if [ -z "$source" ] && [ -z "$root" ]; then
    local ldconfig
    for ldconfig in /sbin/ldconfig /usr/sbin/ldconfig /sbin/ldconfig.real; do
      [ -x "$ldconfig" ] || continue
      # "libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"
      local hit
      hit=$("$ldconfig" -p 2>/dev/null | awk '$1 == "libcuda.so.1" && $NF ~ /^\// { print $NF; exit }')
      if [ -n "$hit" ] && [ -e "$hit" ]; then
        source="ldconfig"
        dir=$(dirname "$(readlink -f "$hit")")
        break
      fi
    done
  fi
  if [ -z "$source" ]; then
    local d
    for d in \
      /usr/lib/x86_64-linux-gnu \
      /usr/lib/aarch64-linux-gnu \
      /usr/lib64 \
      /usr/lib \
      /usr/local/nvidia/lib64 \
      /usr/local/nvidia/lib \
      /usr/lib/wsl/lib \
      /usr/lib/x86_64-linux-gnu/nvidia/current \
      /usr/lib/aarch64-linux-gnu/nvidia/current; do
      if [ -e "$root$d/libcuda.so.1" ]; then
        source="search"
        dir="$root$d"
        break
      fi
    done
  fi
  if [ -n "$source" ]; then
    export SLIME_RUNNER_LIBCUDA_DIR="$dir"
    export SLIME_RUNNER_LIBCUDA_SOURCE="$source"
    # NixOS binaries already have /run/opengl-driver/lib in RUNPATH.
    if [ "$source" != "nixos" ]; then
      export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
  else
    export SLIME_RUNNER_LIBCUDA_DIR=""
    export SLIME_RUNNER_LIBCUDA_SOURCE="none"
  fi
}

slime_find_libcuda
