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
  ncclPath,
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
    # The extension is a C++-only CppExtension: its include dirs are
    # $CUDA_HOME/include and TE's own (build_tools), and torch adds
    # CUDNN_PATH only for CUDAExtensions. Yet csrc/common.h includes
    # <cudnn.h> (also through ATen/cudnn/Handle.h) and common/util/logging.h
    # "nccl.h" (NVIDIA/TransformerEngine#2331): without these two dirs every
    # csrc/*.cpp fails to compile. g++ reads CPLUS_INCLUDE_PATH itself, as
    # -isystem dirs after the command line's -I dirs, so nothing of TE's
    # build changes. The headers are the wheels' that torch loads at run time.
    CPLUS_INCLUDE_PATH = lib.concatStringsSep ":" [
      "${cudnnPath}/include"
      "${ncclPath}/include"
    ];
  };

  # g++ jobs (a C++-only extension: no nvcc). Per-job peak: measured here,
  # every csrc/*.cpp compiled as the build audit recorded it (-O3, torch
  # 2.9.1's headers) with Debian's gcc 12: 1.5 to 2.2 GiB (extensions/pybind.cpp
  # the most); 3 GiB leaves room for gcc 14, which was not measured.
  preBuild =
    (old.preBuild or "")
    + nixLib.parallelJobs {
      threadsPerJob = 1;
      peakMiBPerJob = 3 * 1024;
    };

  meta = (old.meta or { }) // {
    platforms = nixLib.stackSystems;
  };
})
