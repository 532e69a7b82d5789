# cudaPackages_12_8 of the stand-in: the members this flake uses, each with
# the outputs and licence nixpkgs' pkgs/development/cuda-modules/packages/
# gives it (buildRedist: outputs as each package file lists them; licence
# nvidiaCudaRedist for CUDA redistributables, cuDNN's own EULA for cudnn;
# nccl is built from source under bsd3). docs/nix.md cites the files.
{
  lib,
  pkgs,
  leaf,
  config,
  cudaMajorMinorVersion,
}:
lib.makeScope pkgs.newScope (
  final:
  let
    cudaNamePrefix = "cuda${cudaMajorMinorVersion}";
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
    redist =
      pname:
      {
        outputs,
        license ? lib.licenses.nvidiaCudaRedist,
      }:
      final.backendStdenv.mkDerivation (finalAttrs: {
        inherit pname outputs;
        version = "${cudaMajorMinorVersion}-stand-in";
        name = "${cudaNamePrefix}-${finalAttrs.pname}-${finalAttrs.version}";
        meta = {
          inherit license platforms;
          broken = !config.cudaSupport;
        };
      });
    all = [
      "out"
      "dev"
      "include"
      "lib"
      "static"
      "stubs"
    ];
  in
  {
    inherit cudaMajorMinorVersion cudaNamePrefix;
    cudaMajorVersion = lib.versions.major cudaMajorMinorVersion;

    # pkgs/development/cuda-modules/packages/backendStdenv.nix: a stdenv whose
    # cc is a gcc that this nvcc accepts (gcc 14 for CUDA 12.8).
    backendStdenv = pkgs.stdenv // {
      cc = pkgs.gcc;
      inherit (config) cudaCapabilities;
    };

    cuda_nvcc = redist "cuda_nvcc" { outputs = [ "out" ]; };
    cuda_cccl = redist "cuda_cccl" { outputs = [ "out" ]; };
    cuda_cudart = redist "cuda_cudart" { outputs = all; };
    cuda_nvrtc = redist "cuda_nvrtc" { outputs = all; };
    cuda_nvtx = redist "cuda_nvtx" {
      outputs = [
        "out"
        "dev"
        "include"
        "lib"
      ];
    };
    cuda_profiler_api = redist "cuda_profiler_api" {
      outputs = [
        "out"
        "dev"
        "include"
      ];
    };
    libcublas = redist "libcublas" { outputs = all; };
    libcurand = redist "libcurand" { outputs = all; };
    libcusparse = redist "libcusparse" { outputs = all; };
    libcusolver = redist "libcusolver" { outputs = all; };
    cudnn = redist "cudnn" {
      outputs = [
        "out"
        "dev"
        "include"
        "lib"
        "static"
      ];
      license = {
        shortName = "cuDNN EULA";
        fullName = "cuDNN Supplement to Software License Agreement (SLA)";
        free = false;
      };
    };
    nccl = redist "nccl" {
      outputs = [
        "out"
        "dev"
        "static"
      ];
      license = lib.licenses.bsd3;
    };
  }
)
