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
    NVCC_THREADS = "2";
  };

  # Each job is an nvcc with NVCC_THREADS threads: jobs x threads = the cores
  # Nix gives this build.
  preBuild = (old.preBuild or "") + nixLib.maxJobsFromBuildCores 2;

  meta = (old.meta or { }) // {
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };
})
