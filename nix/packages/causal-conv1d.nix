# causal-conv1d v1.5.4 built from source against the set's torch with the
# pinned nvcc. Not on PyPI; its release wheels are built for torch 2.8, while
# this stack has torch 2.9.1 (C++ ABI mismatch), so build it here.
{
  lib,
  stdenv,
  fetchFromGitHub,
  pyprojectHook,
  resolveBuildSystem,
  ninja,
  which,
  cudaHome,
  autoAddDriverRunpath,
  nixLib,
  pins,
}:
let
  pin = pins.sources.causal-conv1d;
  caps = pins.cuda.capabilities;
in
stdenv.mkDerivation {
  pname = "causal-conv1d";
  inherit (pin) version;

  src = fetchFromGitHub { inherit (pin) owner repo rev hash; };

  # setup.py hard-codes its -gencode list from the nvcc version (nine targets
  # for CUDA 12.8) and ignores TORCH_CUDA_ARCH_LIST. Replace the list with
  # exactly our capabilities on the line before the list is used (sharing it
  # with the comment already there); --replace-fail makes the build fail if
  # upstream changes that line.
  postPatch = ''
    substituteInPlace setup.py --replace-fail \
      '    # HACK: The compiler flag -D_GLIBCXX_USE_CXX11_ABI' \
      '    cc_flag = [f for f in cc_flag if f != "-gencode" and not f.startswith("arch=")] + ${nixLib.gencodePythonList caps}  # HACK: The compiler flag -D_GLIBCXX_USE_CXX11_ABI'
  '';

  nativeBuildInputs = [
    pyprojectHook
    ninja
    which
    autoAddDriverRunpath
  ]
  ++ resolveBuildSystem {
    setuptools = [ ];
    wheel = [ ];
    packaging = [ ];
    torch = [ ];
  };

  env = {
    # Never download the prebuilt release wheel (setup.py does unless told).
    CAUSAL_CONV1D_FORCE_BUILD = "TRUE";
    CUDA_HOME = "${cudaHome}";
    TORCH_CUDA_ARCH_LIST = nixLib.torchArchList caps;
  };

  # torch.utils.cpp_extension runs MAX_JOBS compiler jobs. setup.py passes
  # `--threads 4` to every nvcc. Per-job peak: not measured for
  # causal-conv1d; flash-attn's own worst case measured with torch 2.9 and
  # CUDA 12.8 (5 GiB per nvcc thread, flash-attention PR 2079) times those 4
  # threads, an upper bound borrowed from a heavier kernel set.
  preBuild = nixLib.parallelJobs {
    threadsPerJob = 4;
    peakMiBPerJob = 4 * 5 * 1024;
  };

  passthru.dependencies = {
    torch = [ ];
    packaging = [ ];
  };

  meta = {
    description = "Causal depthwise conv1d CUDA kernel (optional fast path of fla's ShortConvolution)";
    homepage = "https://github.com/Dao-AILab/causal-conv1d";
    license = lib.licenses.bsd3;
    platforms = nixLib.stackSystems;
  };
}
