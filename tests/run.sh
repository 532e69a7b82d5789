#!/usr/bin/env bash
# The test command (README "Tests"; .ci/run calls it): install what the tests
# need into the current Python, then run the suite. Works on a fresh CPU-only
# machine with Python >= 3.10 and pip; arguments go to pytest.
#
# Optional system packages, which .ci/run installs (Debian names); without
# them the tests that need them skip, saying why:
#   iproute2 + openssh-server (and root): tests/test_multinode_ssh.py, a
#     second host in a network namespace joining over ssh from a hostfile;
#   slurmctld + slurmd + slurm-client + munge (and root): tests/test_slurm*.py,
#     a two-node Slurm cluster (tests/slurm_cluster.py), its second node in a
#     network namespace;
#   nix-bin: the Nix evaluation tests in tests/nix/ (every .nix file parses,
#     nix/lib.nix evaluates, the flake evaluated deeply with the real uv2nix);
#   chromium: tests/test_report_chromium.py, the HTML report in a headless
#     browser (no console error, every series drawn, a screenshot).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON="${PYTHON:-python3}"

# torch (CPU) for the smoke run, the torchrun/gloo convert test and the planner's
# transformers checks; the runner itself needs no dependency. The test extra
# adds pytest, ray[default], huggingface_hub, safetensors, numpy, transformers.
"$PYTHON" -m pip install -q torch==2.13.0
"$PYTHON" -m pip install -q -e '.[test]'

# -rfEs: the summary names failures, errors and every skipped test with its
# one-line reason; --durations=15: the slowest tests, so the CI log shows
# where its time goes.
exec "$PYTHON" -m pytest -q -rfEs --durations=15 "$@"
