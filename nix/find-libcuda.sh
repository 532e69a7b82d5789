# shellcheck shell=bash
# Sourced by the app wrappers (under `set -euo pipefail`) and the devShell:
# find the host's libcuda.so.1 without pinning a driver version, and make the
# driver's libraries, and only those, loadable.
#
# Where libcuda is looked for, in order: an explicit SLIME_RUNNER_LIBCUDA_DIR;
# NixOS's /run/opengl-driver/lib; the host's dynamic linker cache
# (`ldconfig -p`); the usual driver directories of Debian/Ubuntu, RHEL/Fedora,
# containers (NVIDIA container toolkit) and WSL.
#
# That directory is NOT put on LD_LIBRARY_PATH: on most distributions and in
# NVIDIA's containers it is /usr/lib/x86_64-linux-gnu or /usr/lib64, where the
# host's libc.so.6 and libstdc++.so.6 would shadow the Nix closure's. Instead
# the driver's own libraries are symlinked into a private directory (the
# nix-gl-host approach, without copying or patchelf: the driver's libraries
# need nothing but glibc, which the process has already loaded), and that
# directory goes on LD_LIBRARY_PATH and into TRITON_LIBCUDA_PATH (Triton links
# its launcher with -lcuda from there; without it Triton runs /sbin/ldconfig,
# which NixOS lacks, and fla then silently picks device 'cpu').
#
# Exports SLIME_RUNNER_LIBCUDA_DIR (the host directory; empty when not found),
# SLIME_RUNNER_LIBCUDA_SOURCE (how it was found, for `runner doctor`) and
# SLIME_RUNNER_DRIVER_LIBS (the private directory).

# The driver's libraries: libcuda and what it dlopens (ptxjitcompiler, nvvm,
# gpucomp, pkcs11, fatbinaryloader on old drivers), NVML, the debugger
# library, the video decoder, and WSL's libdxcore. Nothing else of the host.
slime_driver_lib_globs=(libcuda.so\* libcudadebugger.so\* libnvidia-\*.so\* libnvcuvid.so\* libdxcore.so\*)

# Print the first libcuda.so.1 of this machine's architecture in the host's
# linker cache. Parsed by bash itself: the wrappers' PATH has nixpkgs'
# coreutils and nothing else of the host's tools (a minimal container has
# /sbin/ldconfig but no awk). Never fails and never lets ldconfig die of
# SIGPIPE: the loop reads the whole listing (stopping at the first match
# makes ldconfig get SIGPIPE, and a wrapper under `set -o pipefail` then
# exits 141 silently).
slime_libcuda_from_ldconfig() {
  local ldconfig="$1" arch hit="" path
  local -a fields
  case "$(uname -m 2>/dev/null || true)" in
    x86_64) arch="x86-64" ;;
    aarch64) arch="AArch64" ;;
    *) arch="" ;;
  esac
  # "libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1";
  # skip the 32-bit "(libc6)" entry that hosts with i386 driver packages list.
  { "$ldconfig" -p 2>/dev/null || true; } | {
    while read -r -a fields; do
      if [ -n "$hit" ] || [ "${#fields[@]}" -lt 2 ] || [ "${fields[0]}" != "libcuda.so.1" ]; then
        continue # read on to the end: no SIGPIPE for ldconfig
      fi
      path="${fields[${#fields[@]} - 1]}"
      if [ "${path:0:1}" = "/" ] && [[ "${fields[1]}" == *"$arch"* ]]; then
        hit="$path"
      fi
    done
    if [ -n "$hit" ]; then
      printf '%s\n' "$hit"
    fi
  }
}

# Fill directory $1 with symlinks to the driver libraries named $3... in host
# directory $2, plus the unversioned libcuda.so that `-lcuda` needs (driver
# installs and container mounts often have only libcuda.so.1). Fails unless
# the result's libcuda.so.1 resolves (a relative $2 would leave links that
# dangle, since a link's relative target is read from its own directory).
slime_fill_driver_dir() {
  local dest="$1" host="$2" name
  shift 2
  for name in "$@"; do
    ln -s "$host/$name" "$dest/$name" || return 1
  done
  if [ ! -e "$dest/libcuda.so" ]; then
    ln -s "$host/libcuda.so.1" "$dest/libcuda.so" || return 1
  fi
  [ -e "$dest/libcuda.so.1" ]
}

# Set SLIME_RUNNER_DRIVER_LIBS to a directory of links to host directory $1's
# driver libraries.
#
# Where: per user, under $XDG_CACHE_HOME (default ~/.cache)/slime-runner/
# driver-libs/KEY, where KEY hashes the host directory and the sorted names of
# the libraries linked. The links point at host file NAMES, so a directory is
# correct exactly as long as those names are; a driver update brings new
# versioned names (libcuda.so.<version>), hence a new KEY and a new directory,
# and an existing directory is never modified. Starting many processes at
# once is safe without a lock: each builds its own temporary directory and
# renames it into place (rename(2) is atomic); a loser of the race removes its
# copy and uses the winner's, which has the same content. Nodes sharing a home
# directory share a directory only when their driver file names are equal, and
# the links resolve on each node to its own files. When the cache cannot be
# written (no HOME, read-only home), a private mktemp directory (mode 0700)
# of this process is used instead, never a predictable shared /tmp path that
# another user could plant libraries in.
slime_link_driver_libs() {
  local host="$1" pattern file key cache final tmp
  local -a names=()
  for pattern in "${slime_driver_lib_globs[@]}"; do
    for file in "$host"/$pattern; do # globbed as a whole path, not in the cwd
      # An unmatched pattern stays literal; a dangling host link is skipped.
      if [ -e "$file" ]; then
        names+=("${file##*/}")
      fi
    done
  done
  SLIME_RUNNER_DRIVER_LIBS=""
  cache="${XDG_CACHE_HOME:-}"
  if [ -z "$cache" ] && [ -n "${HOME:-}" ] && [ "$HOME" != "/" ]; then
    cache="$HOME/.cache"
  fi
  key=$({ printf '%s\n' "driver-libs-v1" "$host" "${names[@]}" | sha256sum; } 2>/dev/null) || key=""
  key="${key:0:16}"
  if [ -n "$cache" ] && [ -n "$key" ]; then
    final="$cache/slime-runner/driver-libs/$key"
    if [ ! -e "$final/libcuda.so.1" ] &&
      mkdir -p "${final%/*}" 2>/dev/null &&
      tmp=$(mktemp -d "${final%/*}/.new.XXXXXX" 2>/dev/null); then
      if ! slime_fill_driver_dir "$tmp" "$host" "${names[@]}" 2>/dev/null ||
        ! mv -T "$tmp" "$final" 2>/dev/null; then
        rm -rf -- "$tmp" # ours: a failed fill, or another process won the race
      fi
    fi
    if [ -e "$final/libcuda.so.1" ]; then
      SLIME_RUNNER_DRIVER_LIBS="$final"
    fi
  fi
  if [ -z "$SLIME_RUNNER_DRIVER_LIBS" ] &&
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/slime-runner-driver-libs.XXXXXX" 2>/dev/null); then
    if slime_fill_driver_dir "$tmp" "$host" "${names[@]}" 2>/dev/null; then
      SLIME_RUNNER_DRIVER_LIBS="$tmp"
    else
      rm -rf -- "$tmp" # ours, and of no use: the caller warns
    fi
  fi
}

slime_find_libcuda() {
  local root="${SLIME_RUNNER_LIBCUDA_ROOT:-}" # tests point this at a fake tree
  local dir="" source="" ldconfig hit d
  if [ -n "${SLIME_RUNNER_LIBCUDA_DIR:-}" ]; then
    # Made absolute: the links and the exported directory must not depend
    # on the directory the wrapper was started from.
    if [ -e "${SLIME_RUNNER_LIBCUDA_DIR}/libcuda.so.1" ] &&
      dir=$(CDPATH="" cd -- "$SLIME_RUNNER_LIBCUDA_DIR" && pwd -P); then
      source="environment"
    else
      dir=""
      echo "warning: SLIME_RUNNER_LIBCUDA_DIR=$SLIME_RUNNER_LIBCUDA_DIR has no libcuda.so.1; searching" >&2
    fi
  fi
  if [ -z "$source" ] && [ -e "$root/run/opengl-driver/lib/libcuda.so.1" ]; then
    source="nixos"
    dir="$root/run/opengl-driver/lib"
  fi
  if [ -z "$source" ]; then
    # The host's ldconfig by absolute path: an ldconfig on PATH may be Nix
    # glibc's, which reads another cache. SLIME_RUNNER_LDCONFIG: tests.
    local -a ldconfigs=(/sbin/ldconfig /usr/sbin/ldconfig /sbin/ldconfig.real)
    if [ -n "${SLIME_RUNNER_LDCONFIG:-}" ]; then
      ldconfigs=("$SLIME_RUNNER_LDCONFIG")
    elif [ -n "$root" ]; then
      ldconfigs=()
    fi
    for ldconfig in ${ldconfigs[@]+"${ldconfigs[@]}"}; do
      if [ ! -x "$ldconfig" ]; then
        continue
      fi
      hit=$(slime_libcuda_from_ldconfig "$ldconfig")
      if [ -n "$hit" ] && [ -e "$hit" ]; then
        source="ldconfig"
        dir=$(dirname "$(readlink -f "$hit")") || dir="${hit%/*}"
        break
      fi
    done
  fi
  if [ -z "$source" ]; then
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
  export SLIME_RUNNER_LIBCUDA_DIR="$dir"
  export SLIME_RUNNER_LIBCUDA_SOURCE="${source:-none}"
  export SLIME_RUNNER_DRIVER_LIBS=""
  if [ -n "$source" ]; then
    slime_link_driver_libs "$dir"
  fi
  if [ -n "$SLIME_RUNNER_DRIVER_LIBS" ]; then
    # Also on NixOS: the PyPI wheels' RUNPATHs do not name /run/opengl-driver.
    case ":${LD_LIBRARY_PATH:-}:" in
      *":$SLIME_RUNNER_DRIVER_LIBS:"*) ;; # sourced twice (an app run from `nix develop`)
      *) export LD_LIBRARY_PATH="$SLIME_RUNNER_DRIVER_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    esac
    export TRITON_LIBCUDA_PATH="$SLIME_RUNNER_DRIVER_LIBS"
  elif [ -n "$source" ]; then
    echo "warning: could not create a directory of links to the driver libraries in $dir; CUDA may not load" >&2
  fi
}

slime_find_libcuda
