# Pure helpers: no derivations, no nixpkgs packages, only nixpkgs' `lib`.
# tests/nix/ evaluates every function here with real Nix on CI (no network),
# so anything that can be decided without building lives here.
{ lib }:
let
  pins = builtins.fromJSON (builtins.readFile ./pins.json);
in
rec {
  inherit pins;

  # "9.0" -> "90": the spelling nvcc, flash-attn and TE use.
  capabilityDigits = cap: lib.replaceStrings [ "." ] [ "" ] cap;

  # nvcc flags for exactly the pinned capabilities: real SASS for each, and
  # PTX for the newest so a later GPU can still JIT it.
  gencodeFlags =
    caps:
    let
      digits = map capabilityDigits caps;
      newest = lib.last digits;
    in
    lib.concatMap (d: [
      "-gencode"
      "arch=compute_${d},code=sm_${d}"
    ]) digits
    ++ [
      "-gencode"
      "arch=compute_${newest},code=compute_${newest}"
    ];

  # As a Python list literal, for build scripts that hard-code their own
  # -gencode list (causal-conv1d's setup.py).
  gencodePythonList = caps: "[" + lib.concatMapStringsSep ", " (f: ''"${f}"'') (gencodeFlags caps) + "]";

  # TORCH_CUDA_ARCH_LIST wants "9.0;10.0", FLASH_ATTN_CUDA_ARCHS and
  # NVTE_CUDA_ARCHS want "90;100".
  torchArchList = caps: lib.concatStringsSep ";" caps;
  digitArchList = caps: lib.concatStringsSep ";" (map capabilityDigits caps);

  # "12.8" -> "cudaPackages_12_8"
  cudaPackagesAttr = version: "cudaPackages_" + lib.replaceStrings [ "." ] [ "_" ] version;

  # Unfree is allowed only for NVIDIA's CUDA licences, by predicate (the
  # licence short names nixpkgs' CUDA documentation lists), never globally.
  cudaLicenseNames = [
    "CUDA EULA"
    "cuDNN EULA"
    "cuSPARSELt EULA"
    "cuTENSOR EULA"
    "NVidia OptiX EULA"
  ];
  allowUnfreeCuda =
    pkg:
    let
      licenses = lib.toList (pkg.meta.license or [ ]);
    in
    licenses != [ ]
    && builtins.all (
      license: (license.free or false) || builtins.elem (license.shortName or "") cudaLicenseNames
    ) licenses;

  # nixpkgs `config` for the pinned CUDA.
  nixpkgsConfig = {
    allowUnfreePredicate = allowUnfreeCuda;
    cudaSupport = true;
    cudaCapabilities = pins.cuda.capabilities;
    # PTX for the newest capability is emitted explicitly (gencodeFlags).
    cudaForwardCompat = false;
  };

  # Arguments for fetchFromGitHub from a pins.json source entry.
  fetchArgs =
    name:
    let
      s = pins.sources.${name};
    in
    {
      inherit (s) owner repo rev hash;
    };

  # Names of wheels in the Python set that carry or link CUDA libraries and so
  # need the nvidia-* sibling lib dirs on autoPatchelf's search path
  # (uv2nix issue 31), plus those that dlopen libcuda from the host driver.
  cudaWheelNames =
    names:
    builtins.filter (
      n:
      lib.hasPrefix "nvidia-" n
      || builtins.elem n [
        "torch"
        "torchaudio"
        "torchvision"
        "triton"
        "sgl-kernel"
        "flashinfer-python"
        "flashinfer-cubin"
        "transformer-engine-cu12"
        "cuda-python"
        "cuda-bindings"
        "cupy-cuda12x"
        "xgrammar"
        "decord2"
      ]
    ) names;

  # Driver libraries that no build can provide: they come from the host at
  # run time (libcuda finder in the wrapper, /run/opengl-driver on NixOS).
  driverLibraries = [
    "libcuda.so.1"
    "libnvidia-ml.so.1"
  ];

  # "12.8.90" matches the pin "12.8"?
  cudaVersionMatches = pin: actual: lib.versions.majorMinor actual == pin;

  # App name -> runner arguments (nix/apps.nix). Kept here so tests can check
  # the mapping without building anything.
  appRunnerArgs = {
    train-8gpu = [
      "train"
      "--recipe"
      "megatron-8gpu"
    ];
    train-multinode = [
      "train"
      "--recipe"
      "megatron-multinode"
    ];
    train-fsdp = [
      "train"
      "--recipe"
      "fsdp"
    ];
    convert = [ "convert" ];
    doctor = [ "doctor" ];
    smoke = [ "smoke" ];
  };
  defaultApp = "train-8gpu";
}
