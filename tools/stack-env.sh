#!/usr/bin/env bash
# The locked training stack minus its CUDA source builds, for running slime's
# own code on a CPU machine (slime's argument parsers, its resume logic): the
# `uv sync` of README "Without Nix" (torch 2.9.1, sglang 0.5.6.post1,
# transformers 5.0.0rc0, ray ... exactly as uv.lock has them; flash-attn and
# Transformer Engine's torch extension left out), then slime's sglang.patch
# applied to the installed sglang as the flake does (tools/without-nix.sh's
# `patch` step, slime taken from SLIME_UPSTREAM_SOURCES or GitHub).
#
#   tools/stack-env.sh [DEST]     # prints: export SLIME_STACK_PYTHON=DEST/bin/python
#
# DEST defaults to $SLIME_STACK_ENV, else $XDG_CACHE_HOME/slime-qwen3-next/stack-env.
# About 11 GB; 40 s with a fast link to PyPI and a cold uv cache. Rebuilt only
# when uv.lock, nix/pins.json or this script change (a stamp in DEST).
set -euo pipefail

repo_root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-${SLIME_STACK_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/slime-qwen3-next/stack-env}}
dest=$(realpath -m -- "$dest")
say() { echo "== $*" >&2; }

if ! command -v uv >/dev/null 2>&1; then
  say "installing uv (PyPI)"
  python3 -m pip install -q uv >&2
fi

stamp=$(cat "$repo_root/uv.lock" "$repo_root/nix/pins.json" "$0" | sha256sum | cut -c1-16)
if [ "$(cat "$dest/.stack-env-stamp" 2>/dev/null || true)" = "$stamp" ]; then
  say "stack env at $dest is current"
else
  say "stack env: uv sync --frozen --extra stack (no CUDA source builds) into $dest"
  rm -rf -- "$dest"
  (cd "$repo_root" && UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT="$dest" uv sync -q --frozen \
    --extra stack --no-install-project --no-install-package flash-attn \
    --no-install-package transformer-engine-torch --no-install-package transformer-engine) >&2
  # slime's sglang.patch into the installed sglang (and the slime tree it
  # comes from, with this repo's slime patches, beside the env).
  PYTHON="$dest/bin/python" ONLY=slime bash "$repo_root/tools/without-nix.sh" "$dest/src" sources patch >/dev/null
  echo "$stamp" >"$dest/.stack-env-stamp"
fi
printf 'export SLIME_STACK_PYTHON=%q\n' "$dest/bin/python"
