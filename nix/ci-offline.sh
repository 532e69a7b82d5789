#!/usr/bin/env bash
# Offline Nix checks for CI (no network to GitHub or Nix caches; PyPI is
# reachable). Called by .ci/run as `bash nix/ci-offline.sh`.
#   1. installs Debian's nix-bin if Nix is missing;
#   2. every .nix file parses (nix-instantiate --parse);
#   3. nix/lib.nix (pure) evaluates, and the flake's pins come out as expected;
#   4. `uv lock --check`: uv.lock is up to date with pyproject.toml (PyPI);
# tests/nix (pure-Nix evaluation, pin consistency, libcuda finder, patches
# where snapshots exist) run with the rest of the suite: `python -m pytest -q`.
# What needs nixpkgs or a build (nix flake check, nix build) cannot run here.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nix-instantiate >/dev/null 2>&1; then
  echo "== installing nix-bin (Debian)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nix-bin >/dev/null
fi
nix-instantiate --version

# Nix 2.8 wants a writable state dir even for evaluation without a daemon.
export NIX_STATE_DIR="${NIX_STATE_DIR:-${TMPDIR:-/tmp}/nix-state}"
mkdir -p "$NIX_STATE_DIR"

echo "== parse every .nix file"
find . -name '*.nix' -not -path './.git/*' -not -path './result*' -print0 |
  xargs -0 -n1 nix-instantiate --parse >/dev/null

echo "== evaluate nix/lib.nix"
nix-instantiate --eval --strict --json --expr \
  'let l = import ./nix/lib.nix; in { cuda = l.pins.cuda.version; attr = l.cudaPackagesAttr l.pins.cuda.version; gencode = l.gencodeFlags l.pins.cuda.capabilities; apps = builtins.attrNames l.appRunnerArgs; }'
echo

echo "== uv lock --check"
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install -q uv
fi
UV_PYTHON_DOWNLOADS=never uv lock --check
