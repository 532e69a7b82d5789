# `nix develop`: the same environment as the apps, the runner editable from
# the checkout, nvcc on PATH, and a banner with the pins.
{
  pkgs,
  lib,
  nixLib,
  runtime,
  editableEnv,
  environmentScript,
}:
let
  inherit (nixLib) pins;
  src = pins.sources;
  short = name: builtins.substring 0 8 src.${name}.rev;
in
pkgs.mkShell {
  packages = [
    editableEnv
    runtime.cudaHome
    runtime.cc
    runtime.coreutils
    pkgs.uv
    pkgs.git
  ];

  env = {
    # uv must not replace the Nix environment (uv2nix's recommended setup).
    UV_NO_SYNC = "1";
    UV_PYTHON = "${editableEnv}/bin/python";
    UV_PYTHON_DOWNLOADS = "never";
  };

  shellHook = ''
    unset PYTHONPATH
    export REPO_ROOT=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
    export SLIME_DIR=${runtime.slime}
    export MEGATRON_DIR=${runtime.megatron}
    export SLIME_RUNNER_PINS=${runtime.pinsJson}
    export SLIME_RUNNER_ENV=nix-develop
    # run.json (runner/runs/provenance.py): the lock this shell's environment
    # was built from. The runner's revision comes from the checkout's git
    # (it is editable here), so none is exported.
    export SLIME_RUNNER_FLAKE_LOCK=${runtime.flakeLock}
    export SLIME_RUNNER_NIX_ENV=${editableEnv}
    export CUDA_HOME=${runtime.cudaHome}
    export CUDNN_PATH=${runtime.cudnn}
    export CC=${runtime.cc}/bin/cc
    export CXX=${runtime.cc}/bin/c++
    export PYTHONPATH=${runtime.megatron}:${runtime.slime}
    source ${runtime.findLibcuda}
    # What a `train --slurm` batch script sources on its node (nix/apps.nix).
    export SLIME_RUNNER_ENV_SCRIPT=${environmentScript}
    cat <<BANNER
    slime Qwen3-Next stack (nix develop)
      python ${pins.python.version}, CUDA ${pins.cuda.version} (capabilities ${lib.concatStringsSep " " pins.cuda.capabilities})
      torch ${pins.python_packages.torch}, sglang ${pins.python_packages.sglang} + slime patch, transformers ${pins.python_packages.transformers}
      slime ${short "slime"}, Megatron-LM ${short "megatron-lm"} + slime patch, fla ${short "flash-linear-attention"} + Blackwell patch
      causal-conv1d ${pins.sources.causal-conv1d.tag}, TE ${pins.python_packages.transformer-engine-torch}, flash-attn ${pins.python_packages.flash-attn}
      libcuda: ''${SLIME_RUNNER_LIBCUDA_DIR:-not found} (''${SLIME_RUNNER_LIBCUDA_SOURCE})
      python -m runner doctor   # what is missing for a recipe
    BANNER
  '';
}
