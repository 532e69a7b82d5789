# One directory that looks like /usr/local/cuda for the pinned CUDA, holding
# only what compiling against CUDA needs: setup.py builds (causal-conv1d,
# flash-attn, TE, torch_memory_saver) and run-time JIT (flashinfer,
# torch.utils.cpp_extension). nixpkgs splits each redistributable into
# outputs (pkgs/development/cuda-modules/packages/*.nix); this joins the ones
# listed below, by name, so a missing output fails the evaluation.
#
# Left out on purpose:
# - every library the process loads at run time: torch, TE and flashinfer
#   load cuBLAS, cuRAND, NVRTC, cuDNN and NCCL from the pip nvidia-* wheels
#   of uv.lock. A second copy under CUDA_HOME is found first by Transformer
#   Engine 2.10 (transformer_engine/common/__init__.py globs CUDA_HOME for
#   libcudnn, libnvrtc, libcurand before the wheels), so two versions load:
#   nixpkgs' cuDNN 9.13 next to slime's 9.16 wheel. So: no cudnn and no
#   nccl here, and cuBLAS/cuRAND/NVRTC only as link-time stubs (TE skips
#   paths containing "stub");
# - static archives (nothing links them) and pkg-config/CMake files (`dev`).
{
  lib,
  symlinkJoin,
  cudaPackages,
}:
let
  parts = with cudaPackages; [
    # nvcc, nvvm, crt/ headers: one output in nixpkgs.
    {
      pkg = cuda_nvcc;
      outputs = [ "out" ];
    }
    # cub, thrust, libcu++ (header-only, one output).
    {
      pkg = cuda_cccl;
      outputs = [ "out" ];
    }
    # cuda_runtime.h; libcudart.so (-lcudart); stubs: libcuda.so for -lcuda
    # (flashinfer's JIT, torch_memory_saver).
    {
      pkg = cuda_cudart;
      outputs = [
        "include"
        "lib"
        "stubs"
      ];
    }
    # -lnvrtc (flashinfer's fused MoE JIT) links the stub; the library is the
    # wheel's at run time.
    {
      pkg = cuda_nvrtc;
      outputs = [
        "include"
        "stubs"
      ];
    }
    # -lcublas -lcublasLt (flashinfer's GEMM JIT), curand_kernel.h
    # (flashinfer's sampling kernels).
    {
      pkg = libcublas;
      outputs = [
        "include"
        "stubs"
      ];
    }
    {
      pkg = libcurand;
      outputs = [
        "include"
        "stubs"
      ];
    }
    # Headers torch's ATen/cuda includes (CUDAContextLight.h: cusparse.h,
    # cusolverDn.h), and NVTX/profiler headers.
    {
      pkg = libcusparse;
      outputs = [ "include" ];
    }
    {
      pkg = libcusolver;
      outputs = [ "include" ];
    }
    {
      pkg = cuda_nvtx;
      outputs = [ "include" ];
    }
    {
      pkg = cuda_profiler_api;
      outputs = [ "include" ];
    }
  ];
in
symlinkJoin {
  name = "cuda-home-${cudaPackages.cudaMajorMinorVersion}";
  paths = lib.concatMap ({ pkg, outputs }: map (o: pkg.${o}) outputs) parts;
  # Build scripts look in lib64 (torch_memory_saver also in lib64/stubs).
  #
  # No libcuda in lib/: cuda_cudart's `stubs` output links its libcuda.so
  # stub, and a libcuda.so.1 made for it, into $stubs/lib too (for
  # autoPatchelf, which does not look in subdirectories;
  # pkgs/development/cuda-modules/packages/cuda_cudart.nix). Joined here,
  # that puts a stub libcuda.so.1 in CUDA_HOME/lib, which is on the RUNPATH
  # of what links against CUDA_HOME/lib (torch_memory_saver): where no host
  # driver is found, a process would load the stub ("CUDA driver is a stub
  # library") instead of failing clearly. Linking is unchanged: -lcuda
  # finds lib/stubs/libcuda.so (flashinfer's JIT and torch_memory_saver pass
  # -L$CUDA_HOME/lib64/stubs).
  postBuild = ''
    [ -e $out/lib64 ] || ln -s lib $out/lib64
    rm -f $out/lib/libcuda.so $out/lib/libcuda.so.*
  '';
  passthru = {
    inherit (cudaPackages) cudaMajorMinorVersion;
  };
}
