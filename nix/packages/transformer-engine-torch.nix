# Transformer Engine's torch extension 2.10.0 (slime's Dockerfile version).
# PyPI has it as an sdist only; the core library (transformer-engine-cu12) is a
# wheel from uv.lock. Required by both Megatron recipes: slime's Qwen3-Next
# spec calls get_gpt_decoder_block_spec(use_transformer_engine=True), and
# --use-precision-aware-optimizer / --moe-permute-fusion need TE (docs/nix.md).
{
  lib,
  base,
  ninja,
  which,
  cudaHome,
  cudnnPath,
  autoAddDriverRunpath,
  resolveBuildSystem,
  nixLib,
  pins,
}:
base.overrideAttrs (old: {
  nativeBuildInputs =
    (old.nativeBuildInputs or [ ])
    ++ [
      ninja
      which
      autoAddDriverRunpath
    ]
    ++ resolveBuildSystem {
      setuptools = [ ];
      wheel = [ ];
      pip = [ ];
      pybind11 = [ ];
      torch = [ ];
      transformer-engine-cu12 = [ ];
    };

  env = (old.env or { }) // {
    NVTE_FRAMEWORK = "pytorch";
    # Build here; never look for a prebuilt wheel.
    NVTE_PYTORCH_FORCE_BUILD = "TRUE";
    NVTE_RELEASE_BUILD = "0";
    NVTE_CUDA_ARCHS = nixLib.digitArchList pins.cuda.capabilities;
    CUDA_HOME = "${cudaHome}";
    # cuDNN headers and library of the nvidia-cudnn-cu12 wheel (9.16): the
    # one torch loads at run time; CUDA_HOME has none.
    CUDNN_PATH = cudnnPath;
  };

  preBuild = (old.preBuild or "") + nixLib.maxJobsFromBuildCores 1;

  meta = (old.meta or { }) // {
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };
})
