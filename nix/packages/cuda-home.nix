# One directory that looks like /usr/local/cuda for the pinned CUDA: the layout
# setup.py scripts (causal-conv1d, flash-attn, TE, torch_memory_saver) and
# run-time JIT (flashinfer, torch.utils.cpp_extension) expect from CUDA_HOME.
# nixpkgs splits the toolkit into redistributables with several outputs each;
# they are joined here.
{
  lib,
  symlinkJoin,
  cudaPackages,
}:
let
  parts = with cudaPackages; [
    cuda_nvcc
    cuda_cudart
    cuda_cccl
    cuda_nvrtc
    cuda_nvtx
    cuda_profiler_api
    libcublas
    libcurand
    libcusparse
    libcusolver
    cudnn
    nccl
  ];
in
symlinkJoin {
  name = "cuda-home-${cudaPackages.cudaMajorMinorVersion}";
  # Every output (bin, dev headers, lib, static, stubs) of every part.
  paths = lib.concatMap (p: map (o: p.${o}) (p.outputs or [ "out" ])) parts;
  # Build scripts look in lib64 (torch_memory_saver also in lib64/stubs).
  postBuild = ''
    [ -e $out/lib64 ] || ln -s lib $out/lib64
  '';
  passthru = {
    inherit (cudaPackages) cudaMajorMinorVersion;
  };
}
