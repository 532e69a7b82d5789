# Apps: thin wrappers around `python -P -m runner <subcommand>` with the pinned
# environment. Each passes its own arguments through ("$@"), so
# `nix run .#train-8gpu -- --dry-run` works. On a system without the stack
# (nixLib.stackSystems) only the runner's own apps exist (nixLib.runnerOnlyApps:
# plan, and the whole CLI for dry runs and runs/status/logs), with the
# runner alone and no CUDA.
{
  pkgs,
  lib,
  nixLib,
  runtime,
  # The training stack is here (nixLib.stackSystems), or the runner alone.
  withStack,
}:
let
  # Shared by every app and by the devShell (devshell.nix sources the same
  # text): store paths in, host libcuda found, nothing pinned to a driver.
  environment = if withStack then stackEnvironment else runnerEnvironment;

  # What every app exports, with the stack or without: the source trees, the pins and what run.json
  # records of the flake (runner/runs/provenance.py: its revision, empty when the tree had none, its
  # flake.lock and the env).
  commonEnvironment = ''
    export SLIME_DIR=${runtime.slime}
    export MEGATRON_DIR=${runtime.megatron}
    export SLIME_RUNNER_PINS=${runtime.pinsJson}
    export SLIME_RUNNER_ENV=nix
    export SLIME_RUNNER_REVISION=${runtime.revision}
    export SLIME_RUNNER_FLAKE_LOCK=${runtime.flakeLock}
    export SLIME_RUNNER_NIX_ENV=${runtime.env}
    export PYTHONPATH=${runtime.megatron}:${runtime.slime}''${PYTHONPATH:+:$PYTHONPATH}
  '';

  stackEnvironment = commonEnvironment + ''
    # flashinfer and torch.utils.cpp_extension JIT-compile with the pinned
    # nvcc; Triton and flashinfer call the C/C++ compiler (CC, CXX).
    export CUDA_HOME=${runtime.cudaHome}
    # Transformer Engine looks for cuDNN here first: the wheel torch loads.
    export CUDNN_PATH=${runtime.cudnn}
    export CC=${runtime.cc}/bin/cc
    export CXX=${runtime.cc}/bin/c++
    export PATH=${runtime.env}/bin:${runtime.cudaHome}/bin:${runtime.cc}/bin:${runtime.coreutils}/bin''${PATH:+:$PATH}
    source ${runtime.findLibcuda}
  '';

  # The same environment as a file in the store: the batch script of
  # `train --slurm` (runner/launch/cluster/sbatch.py) sources it on the node Slurm
  # starts it on, where libcuda is looked for again.
  environmentScript = pkgs.writeTextFile {
    name = "slime-environment.sh";
    text = environment;
  };

  # The runner alone: what plan, dry runs and reading runs need (the source
  # trees for the paths a dry run prints), no CUDA and no driver.
  runnerEnvironment = commonEnvironment + ''
    export PATH=${runtime.env}/bin:${runtime.coreutils}/bin''${PATH:+:$PATH}
  '';

  # -P: the current directory is not put first on sys.path, so an app
  # started from a checkout (its root holds ./runner) runs the flake's
  # runner, the code SLIME_RUNNER_REVISION names. A flag, not
  # PYTHONSAFEPATH: processes it starts (slime's train.py) keep their
  # usual sys.path. The devShell runs the checkout's runner on purpose.
  mkWrapper =
    name: args:
    pkgs.writeShellScriptBin "slime-${name}" ''
      set -euo pipefail
      ${environment}
      export SLIME_RUNNER_ENV_SCRIPT=${environmentScript}
      exec ${runtime.env}/bin/python -P -m runner ${lib.escapeShellArgs args} "$@"
    '';

  appArgs =
    if withStack then
      nixLib.appRunnerArgs
    else
      lib.getAttrs nixLib.runnerOnlyApps nixLib.appRunnerArgs;
  defaultApp = if withStack then nixLib.defaultApp else nixLib.runnerOnlyDefaultApp;

  wrappers = lib.mapAttrs (name: args: mkWrapper name args) appArgs;

  mkApp = name: drv: {
    type = "app";
    program = "${drv}/bin/slime-${name}";
    meta.description =
      nixLib.appDescriptions.${name}
        or (throw "app ${name}: no description in nix/lib.nix appDescriptions (nix flake check needs one)");
  };
in
{
  wrappers = lib.mapAttrs' (name: drv: lib.nameValuePair "slime-${name}" drv) wrappers;
  apps = lib.mapAttrs mkApp wrappers // {
    default = mkApp defaultApp wrappers.${defaultApp};
  };
  inherit environment environmentScript;
}
