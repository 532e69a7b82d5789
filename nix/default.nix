# Everything for one system; flake.nix only maps this over the systems.
{
  inputs,
  system,
  nixLib,
}:
let
  inherit (nixLib) pins;

  pkgs = import inputs.nixpkgs {
    inherit system;
    config = nixLib.nixpkgsConfig;
    overlays = [
      # The pinned CUDA is the default CUDA for everything taken from nixpkgs,
      # so no package mixes two toolkits.
      (final: _prev: { cudaPackages = final.${nixLib.cudaPackagesAttr pins.cuda.version}; })
    ];
  };
  inherit (pkgs) lib;
  cudaPackages = pkgs.${nixLib.cudaPackagesAttr pins.cuda.version};

  # The training stack builds on x86_64 only; elsewhere the flake gives the
  # runner alone (nix/lib.nix stackSystems).
  withStack = builtins.elem system nixLib.stackSystems;

  python = import ./python.nix {
    inherit (inputs) uv2nix pyproject-nix pyproject-build-systems;
    inherit
      pkgs
      lib
      nixLib
      cudaPackages
      ;
  };

  # What the apps and the devShell export (see nix/apps.nix).
  runtime = {
    inherit (python) cudaHome megatron;
    env = if withStack then python.env else python.runnerEnv;
    cudnn = python.cudnnPath;
    # Triton compiles a C launcher on first use and flashinfer's JIT calls
    # c++: the compiler nvcc 12.8 accepts (gcc 14), the one nixpkgs builds
    # CUDA code with.
    cc = cudaPackages.backendStdenv.cc;
    slime = python.slimeSrc;
    pinsJson = ./pins.json;
    findLibcuda = ./find-libcuda.sh;
    # find-libcuda.sh's ln, mv -T, mktemp, sha256sum, readlink, uname: from
    # the closure, not the host.
    coreutils = pkgs.coreutils;
    # Provenance for run.json (runner/runs/provenance.py): the runner the env
    # installs has no .git and no flake.lock beside it. `inputs` is the
    # flake's whole argument set (flake.nix's `@inputs`), so it holds `self`:
    # a clean git tree has self.rev, a dirty one self.dirtyRev (Nix >= 2.17:
    # "<rev>-dirty"), a path: flake neither.
    revision = inputs.self.rev or inputs.self.dirtyRev or "";
    flakeLock = ../flake.lock;
  };

  apps = import ./apps.nix {
    inherit
      pkgs
      lib
      nixLib
      runtime
      withStack
      ;
  };
in
{
  packages = {
    runner-env = python.runnerEnv;
    inherit (python) megatron;
    slime = python.slimeSrc;
  }
  // (
    if withStack then
      {
        default = python.env;
        env = python.env;
        inherit (python) cudaHome;
        inherit (python.pythonSet)
          torch
          sglang
          flash-linear-attention
          causal-conv1d
          mbridge
          torch-memory-saver
          flash-attn
          transformer-engine-torch
          ;
      }
    else
      { default = python.runnerEnv; }
  )
  // apps.wrappers;

  inherit (apps) apps;

  # `nix build .#pythonSet.<name>` builds one package of the Python set;
  # tools/nix-deep-eval forces all of them.
  legacyPackages = {
    inherit (python) pythonSet;
    # Names of the set that uv.lock does not list (tools/nix-deep-eval).
    pythonSetExtraNames = python.notInLock;
  };

  # `nix develop` is the stack's shell: none where the stack is not.
  devShells = lib.optionalAttrs withStack {
    default = import ./devshell.nix {
      inherit
        pkgs
        lib
        nixLib
        runtime
        ;
      inherit (python) editableEnv;
      inherit (apps) environmentScript;
    };
  };

  checks = import ./checks.nix {
    inherit
      pkgs
      lib
      nixLib
      runtime
      python
      withStack
      ;
    src = ../.;
  };

  # nixfmt 1.x in nixos-25.11 is the RFC 166 style (`nixfmt-rfc-style` is
  # now an alias of it).
  formatter = pkgs.nixfmt;
}
