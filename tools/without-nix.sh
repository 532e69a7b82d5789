#!/usr/bin/env bash
# Without Nix: what `uv sync --frozen --extra stack` leaves out (README,
# "Without Nix"): the git-pinned sources at nix/pins.json's revisions, slime's
# Megatron and sglang patches, our fla patch, and the CUDA builds.
#
#   tools/without-nix.sh SRC_DIR [STEP...]
#
# Steps, run in this order whatever order they are given in (default:
# sources patch install; `env` alone only prints the exports):
#   sources  fetch slime, Megatron-LM, fla, causal-conv1d, mbridge and
#            torch_memory_saver at their pinned revisions into SRC_DIR/NAME
#   patch    patches/slime/ into slime (the resume fix); slime's
#            megatron.patch into Megatron-LM; patches/ into fla;
#            slime's sglang.patch into the environment's installed sglang
#   install  the pure-Python pins into the environment (fla, mbridge; no deps:
#            the lock has them)
#   cuda     the CUDA builds (nvcc 12.8, CUDA_HOME, a GPU machine's toolchain;
#            hours for flash-attn): causal-conv1d, torch_memory_saver from
#            git (PyPI's 0.0.9 is older code under the same version),
#            flash-attn and Transformer Engine from the lock's sdists
#   env      nothing; every run ends by printing the exports for the runner
#            (SLIME_DIR, MEGATRON_DIR, PYTHONPATH) on stdout:
#            eval "$(tools/without-nix.sh SRC_DIR env)"
#
# Environment: PYTHON, the stack's interpreter (default: python on PATH, so
# activate the venv or set it); GIT_URL, where sources come from, {owner} and
# {repo} replaced (default https://github.com/{owner}/{repo}.git);
# SLIME_UPSTREAM_SOURCES, a folder of `git archive` tarballs named
# OWNER+REPO-REV.tar.gz (machines without GitHub: a source whose tarball is
# there is extracted instead of fetched); ONLY, a subset of the source names;
# MAX_JOBS for the CUDA builds.
set -euo pipefail

repo_root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 1 ] || [ -z "$1" ]; then
  echo "usage: tools/without-nix.sh SRC_DIR [sources] [patch] [install] [cuda] [env]" >&2
  exit 2
fi
src=$(realpath -m -- "$1") # the printed exports must not depend on the cwd
shift
steps=${*:-sources patch install}
for s in $steps; do
  case "$s" in
    sources | patch | install | cuda | env) ;;
    *)
      echo "error: unknown step '$s': use sources, patch, install, cuda or env" >&2
      exit 2
      ;;
  esac
done
python=${PYTHON:-python}
default_git_url='https://github.com/{owner}/{repo}.git'
git_url=${GIT_URL:-$default_git_url}
pins="$repo_root/nix/pins.json"
names=${ONLY:-slime megatron-lm flash-linear-attention causal-conv1d mbridge torch-memory-saver}

pin() { # pin NAME FIELD
  "$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["sources"][sys.argv[2]][sys.argv[3]])' \
    "$pins" "$1" "$2"
}
pin_list() { # pin_list NAME FIELD: one entry per line
  "$python" -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["sources"][sys.argv[2]].get(sys.argv[3], [])))' \
    "$pins" "$1" "$2"
}
step() { case " $steps " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
want() { case " $names " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
say() { echo "== $*" >&2; }
uv_pip() { uv pip install --python "$python" "$@"; }
apply_once() { # apply_once DIR STRIP PATCH LABEL: GNU patch, skipped when already applied
  if patch -s -f -R --dry-run -p"$2" -d "$1" <"$3" >/dev/null 2>&1; then
    say "$4: already applied"
  else
    say "$4"
    patch -s -p"$2" --forward --no-backup-if-mismatch -d "$1" <"$3"
  fi
}

if step sources; then
  mkdir -p "$src"
  for name in $names; do
    rev=$(pin "$name" rev)
    dir="$src/$name"
    # A git checkout at the pin, or a tree this script extracted from the
    # pinned archive (.pinned-rev; an archive has no .git).
    if [ "$(git -C "$dir" rev-parse HEAD 2>/dev/null || cat "$dir/.pinned-rev" 2>/dev/null || true)" = "$rev" ]; then
      say "$name: already at ${rev:0:8}"
      continue
    fi
    if [ -e "$dir" ]; then
      echo "error: $dir exists and is not at ${rev:0:8}: move it away or pick another SRC_DIR" >&2
      exit 2
    fi
    archive="${SLIME_UPSTREAM_SOURCES:-/nonexistent}/$(pin "$name" owner)+$(pin "$name" repo)-$rev.tar.gz"
    # Into a temporary directory first: a failed fetch leaves no half tree.
    partial=$(mktemp -d "$src/.fetch-$name.XXXXXX")
    if [ -f "$archive" ]; then
      say "$name: $archive"
      if ! tar -xzf "$archive" -C "$partial"; then
        rm -rf -- "$partial"
        echo "error: could not extract $archive" >&2
        exit 1
      fi
      echo "$rev" >"$partial/.pinned-rev"
    else
      url=${git_url//\{owner\}/$(pin "$name" owner)}
      url=${url//\{repo\}/$(pin "$name" repo)}
      say "$name: $url at ${rev:0:8}"
      git init -q "$partial"
      if ! git -C "$partial" fetch -q --depth 1 "$url" "$rev" ||
        ! git -C "$partial" -c advice.detachedHead=false checkout -q FETCH_HEAD; then
        rm -rf -- "$partial"
        echo "error: could not fetch $name ${rev:0:8} from $url" >&2
        exit 1
      fi
    fi
    mv -T "$partial" "$dir"
  done
fi

if step patch; then
  # GNU patch, not git apply: inside another work tree git apply can exit 0
  # having applied nothing (FACTS.md); a rejected hunk fails the step.
  if want slime; then
    for rel in $(pin_list slime patches); do
      apply_once "$src/slime" 1 "$repo_root/$rel" "slime <- $rel"
    done
  fi
  if want megatron-lm; then
    for rel in $(pin_list megatron-lm patches_from_slime); do
      apply_once "$src/megatron-lm" 1 "$src/slime/$rel" "Megatron-LM <- slime's $rel"
    done
  fi
  if want flash-linear-attention; then
    for rel in $(pin_list flash-linear-attention patches); do
      apply_once "$src/flash-linear-attention" 1 "$repo_root/$rel" "fla <- $rel"
    done
  fi
  # The lock installs sglang 0.5.6.post1's wheel; slime's patch (paths
  # python/sglang/...) applies to it with -p2 in site-packages (3 hunks with fuzz).
  site=$("$python" -c 'import pathlib, sglang; print(pathlib.Path(sglang.__file__).parents[1])')
  apply_once "$site" 2 "$src/slime/docker/patch/latest/sglang.patch" "sglang in $site <- slime's sglang.patch"
fi

if step install; then
  for name in flash-linear-attention mbridge; do
    if want "$name"; then
      say "install $name (no deps: the lock has them)"
      uv_pip --no-deps "$src/$name"
    fi
  done
fi

if step cuda; then
  : "${CUDA_HOME:?set CUDA_HOME to a CUDA 12.8 toolkit (nvcc)}"
  # Hopper and Blackwell, as the flake builds (nix/pins.json cuda.capabilities).
  export TORCH_CUDA_ARCH_LIST="9.0;10.0" FLASH_ATTN_CUDA_ARCHS="90;100" NVTE_CUDA_ARCHS="90;100"
  export MAX_JOBS=${MAX_JOBS:-8}
  # First the lock's two sdists: their setup.py imports torch, so they build
  # in the environment itself, which lacks two of their build tools (not in
  # the lock; unpinned, as in slime's image). --inexact keeps what this
  # script installed; the sync would still put PyPI's torch_memory_saver
  # back, hence the git build after it.
  say "build tools wheel, pybind11"
  uv_pip wheel pybind11
  say "build flash-attn and Transformer Engine from the lock's sdists (hash-checked)"
  (cd "$repo_root" && UV_PROJECT_ENVIRONMENT=${UV_PROJECT_ENVIRONMENT:-$("$python" -c 'import sys; print(sys.prefix)')} \
    FLASH_ATTENTION_FORCE_BUILD=TRUE NVTE_FRAMEWORK=pytorch \
    uv sync --frozen --inexact --extra stack \
    --no-build-isolation-package flash-attn --no-build-isolation-package transformer-engine-torch)
  if want causal-conv1d; then
    say "build causal-conv1d (its setup.py compiles its own fixed list of architectures)"
    CAUSAL_CONV1D_FORCE_BUILD=TRUE uv_pip --no-deps --no-build-isolation "$src/causal-conv1d"
  fi
  if want torch-memory-saver; then
    say "build torch_memory_saver from git (replaces PyPI's 0.0.9, older code under the same version)"
    uv_pip --no-deps --no-build-isolation --reinstall "$src/torch-memory-saver"
  fi
fi

printf 'export SLIME_DIR=%q MEGATRON_DIR=%q\n' "$src/slime" "$src/megatron-lm"
printf 'export PYTHONPATH=%q${PYTHONPATH:+:$PYTHONPATH}\n' "$src/megatron-lm:$src/slime"
