# flash-attn 2.7.4.post1 (the version slime's Dockerfile builds; TE 2.10
# refuses newer FA2) from the PyPI sdist in uv.lock, compiled against the set's
# torch for our capabilities only. Needed by the FSDP recipe: slime's FSDP
# actor imports ring_flash_attn, which imports flash_attn, and defaults to
# attn_implementation="flash_attention_2" (docs/nix.md).
{
  lib,
  base,
  ninja,
  which,
  cudaHome,
  autoAddDriverRunpath,
  resolveBuildSystem,
  nixLib,
  pins,
}:
let
  # nvcc's --threads (setup.py's NVCC_THREADS): compilation steps of one
  # file run in parallel, one per architecture at most.
  nvccThreads = 2;
in
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
      packaging = [ ];
      psutil = [ ];
      torch = [ ];
      einops = [ ];
    };

  env = (old.env or { }) // {
    # Never download a prebuilt wheel from GitHub (setup.py does unless told).
    FLASH_ATTENTION_FORCE_BUILD = "TRUE";
    FLASH_ATTN_CUDA_ARCHS = nixLib.digitArchList pins.cuda.capabilities;
    CUDA_HOME = "${cudaHome}";
    NVCC_THREADS = toString nvccThreads;
  };

  # Each job is an nvcc with NVCC_THREADS threads. Setting MAX_JOBS turns
  # off setup.py's own guard (min(cores / 2, free GB / 9), applied only when
  # MAX_JOBS is unset), so the helper bounds by memory instead, with
  # upstream's newer figure: 5 GiB per nvcc thread at worst, measured with
  # torch 2.9 and CUDA 12.8 (flash-attention PR 2079; 2.7.4's setup.py
  # assumed 9 GB per 4-thread job).
  preBuild =
    (old.preBuild or "")
    + nixLib.parallelJobs {
      threadsPerJob = nvccThreads;
      peakMiBPerJob = nvccThreads * 5 * 1024;
    };

  meta = (old.meta or { }) // {
    platforms = nixLib.stackSystems;
  };
})
