# Apps: thin wrappers around `python -m runner <subcommand>` with the pinned
# environment. Each passes its own arguments through ("$@"), so
# `nix run .#train-8gpu -- --dry-run` works.
{
  pkgs,
  lib,
  nixLib,
  runtime,
}:
let
  # Shared by every app and by the devShell (devshell.nix sources the same
  # text): store paths in, host libcuda found, nothing pinned to a driver.
  environment = ''
    export SLIME_DIR=${runtime.slime}
    export MEGATRON_DIR=${runtime.megatron}
    export SLIME_RUNNER_PINS=${runtime.pinsJson}
    export SLIME_RUNNER_ENV=nix
    # flashinfer and torch.utils.cpp_extension JIT-compile with the pinned nvcc.
    export CUDA_HOME=${runtime.cudaHome}
    export PATH=${runtime.env}/bin:${runtime.cudaHome}/bin''${PATH:+:$PATH}
    export PYTHONPATH=${runtime.megatron}:${runtime.slime}''${PYTHONPATH:+:$PYTHONPATH}
    source ${runtime.findLibcuda}
  '';

  mkWrapper =
    name: args:
    pkgs.writeShellScriptBin "slime-${name}" ''
      set -euo pipefail
      ${environment}
      exec ${runtime.env}/bin/python -m runner ${lib.escapeShellArgs args} "$@"
    '';

  wrappers = lib.mapAttrs (name: args: mkWrapper name args) nixLib.appRunnerArgs;

  descriptions = {
    train-8gpu = "Megatron, one node of 8 GPUs (6 train + 2 rollout)";
    train-multinode = "Megatron, 4 nodes x 8 GPUs over Ray";
    train-fsdp = "FSDP backend, one node";
    convert = "HF checkpoint -> Megatron torch_dist";
    doctor = "Is this machine ready for a recipe? What is missing?";
    smoke = "Train a tiny Qwen3-Next on this machine's GPUs with the pinned kernels";
    download = "Model weights and datasets into BASE_FOLDER (resumable)";
    plan = "Per-GPU memory estimate and topology check of a recipe";
  };

  mkApp = name: drv: {
    type = "app";
    program = "${drv}/bin/slime-${name}";
    meta.description = descriptions.${name};
  };
in
{
  wrappers = lib.mapAttrs' (name: drv: lib.nameValuePair "slime-${name}" drv) wrappers;
  apps = lib.mapAttrs mkApp wrappers // {
    default = mkApp nixLib.defaultApp wrappers.${nixLib.defaultApp};
  };
  inherit environment;
}
