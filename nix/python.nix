# The Python set: PyPI wheels from uv.lock (uv2nix, wheels preferred) plus the
# git-pinned and patched packages of nix/packages/, and the virtual
# environment the apps and the devShell use.
{
  pkgs,
  lib,
  uv2nix,
  pyproject-nix,
  pyproject-build-systems,
  nixLib,
  cudaPackages,
}:
let
  inherit (nixLib) pins;

  workspace = uv2nix.lib.workspace.loadWorkspace { workspaceRoot = ../.; };

  lockOverlay = workspace.mkPyprojectOverlay { sourcePreference = "wheel"; };

  cudaHome = pkgs.callPackage ./packages/cuda-home.nix { inherit cudaPackages; };
  slimeSrc = pkgs.callPackage ./packages/slime.nix { inherit pins; };
  megatron = pkgs.callPackage ./packages/megatron-lm.nix { inherit pins slimeSrc; };

  wheelLibraries = import ./wheel-libraries.nix { inherit lib pkgs nixLib; };

  # cuDNN is the nvidia-cudnn-cu12 wheel (9.16, slime's pin), for the TE
  # build and at run time (CUDNN_PATH): CUDA_HOME has no cuDNN.
  cudnnPathOf = set: "${set.nvidia-cudnn-cu12}/${set.python.sitePackages}/nvidia/cudnn";
  # NCCL's header (nccl.h) for Transformer Engine's build: the
  # nvidia-nccl-cu12 wheel (2.27.5) that torch loads; CUDA_HOME has no NCCL.
  # The lock has that wheel for x86_64 only, the one system TE builds for
  # (its meta.platforms, nixLib.stackSystems).
  ncclPathOf = set: "${set.nvidia-nccl-cu12}/${set.python.sitePackages}/nvidia/nccl";

  # Packages that are not (or not as slime uses them) on PyPI, and the
  # source builds of sdist-only packages from the lock.
  pinnedOverlay =
    final: prev:
    let
      # Build tools come from nixpkgs by name: the Python set has Python
      # packages called ninja and patchelf that callPackage would pick first.
      tools = {
        inherit (pkgs)
          ninja
          which
          patchelf
          autoAddDriverRunpath
          fetchFromGitHub
          ;
      };
      callPy =
        path: args:
        final.callPackage path (
          builtins.intersectAttrs (lib.functionArgs (import path)) (tools // { inherit pins; } // args)
        );
      cudaArgs = { inherit cudaHome nixLib; };
    in
    {
      # The pure soundfile wheel (the one uv2nix picks) has no libsndfile of
      # its own and looks it up with ctypes.util.find_library, which finds
      # nothing in a Nix closure: point it at nixpkgs' libsndfile (what
      # nixpkgs' own python3Packages.soundfile does). --replace-fail: the
      # build fails if a new soundfile changes that line.
      soundfile = prev.soundfile.overrideAttrs (old: {
        postInstall = (old.postInstall or "") + ''
          substituteInPlace $out/${final.python.sitePackages}/soundfile.py \
            --replace-fail "_find_library('sndfile')" "'${pkgs.libsndfile.out}/lib/libsndfile.so'"
        '';
      });

      flash-linear-attention = callPy ./packages/fla.nix { };
      causal-conv1d = callPy ./packages/causal-conv1d.nix cudaArgs;
      mbridge = callPy ./packages/mbridge.nix { };
      torch-memory-saver = callPy ./packages/torch-memory-saver.nix cudaArgs;
      sglang = callPy ./packages/sglang.nix {
        base = prev.sglang;
        inherit slimeSrc;
      };
      flash-attn = callPy ./packages/flash-attn.nix (cudaArgs // { base = prev.flash-attn; });
      transformer-engine-torch = callPy ./packages/transformer-engine-torch.nix (
        cudaArgs
        // {
          base = prev.transformer-engine-torch;
          cudnnPath = cudnnPathOf final;
          ncclPath = ncclPathOf final;
        }
      );

      # The runner itself: only its own files, so editing tests or docs does
      # not rebuild the environment.
      slime-qwen3-next = prev.slime-qwen3-next.overrideAttrs (old: {
        src = lib.fileset.toSource {
          root = ../.;
          fileset = lib.fileset.unions [
            ../pyproject.toml
            ../runner
            (lib.fileset.maybeMissing ../README.md)
          ];
        };
        nativeBuildInputs =
          (old.nativeBuildInputs or [ ])
          ++ final.resolveBuildSystem {
            setuptools = [ ];
          };
      });
    };

  baseSet = pkgs.callPackage pyproject-nix.build.packages {
    python = pkgs.${pins.python.nixpkgs_attr};
  };

  pythonSet = baseSet.overrideScope (
    lib.composeManyExtensions [
      pyproject-build-systems.overlays.wheel
      lockOverlay
      wheelLibraries
      pinnedOverlay
    ]
  );

  # The git-pinned packages of pinnedOverlay that uv.lock cannot list.
  notInLock = [
    "flash-linear-attention"
    "causal-conv1d"
    "mbridge"
  ];

  # The runner with the training stack, and those.
  envSpec = {
    slime-qwen3-next = [ "stack" ];
  }
  // lib.genAttrs notInLock (_: [ ]);

  env = pythonSet.mkVirtualEnv "slime-qwen3-next-env" envSpec;

  # The runner alone (no dependencies of its own): what the systems without
  # the stack get (nixLib.stackSystems).
  runnerEnv = pythonSet.mkVirtualEnv "slime-qwen3-next-runner-env" { slime-qwen3-next = [ ]; };

  # What the runner's own tests import (the `test` extra, and torch for the
  # CPU smoke and convert tests): no source builds (flash-attn, TE, sglang
  # with slime's patch), which `nix flake check` would otherwise compile for
  # hours to run a CPU-only suite.
  testEnv = pythonSet.mkVirtualEnv "slime-qwen3-next-test-env" {
    slime-qwen3-next = [ "test" ];
    torch = [ ];
  };

  cudnnPath = cudnnPathOf pythonSet;

  # For the devShell: the runner editable from the checkout ($REPO_ROOT is
  # set by the shell hook).
  editableSet = pythonSet.overrideScope (
    lib.composeManyExtensions [
      (workspace.mkEditablePyprojectOverlay { root = "$REPO_ROOT"; })
      (final: prev: {
        slime-qwen3-next = prev.slime-qwen3-next.overrideAttrs (old: {
          nativeBuildInputs =
            (old.nativeBuildInputs or [ ])
            ++ final.resolveBuildSystem {
              setuptools = [ ];
              editables = [ ];
            };
        });
      })
    ]
  );
  editableEnv = editableSet.mkVirtualEnv "slime-qwen3-next-dev-env" envSpec;
in
{
  inherit
    workspace
    notInLock
    pythonSet
    env
    runnerEnv
    testEnv
    cudnnPath
    editableEnv
    cudaHome
    slimeSrc
    megatron
    ;
}
