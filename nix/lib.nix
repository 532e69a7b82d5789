# Pure helpers: no derivations and no nixpkgs, only builtins, so CI (which
# cannot fetch nixpkgs) evaluates every function here with real Nix
# (tests/nix/). Anything that can be decided without building lives here.
let
  pins = builtins.fromJSON (builtins.readFile ./pins.json);

  concatMap = f: l: builtins.concatLists (map f l);
  last = l: builtins.elemAt l (builtins.length l - 1);
  hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
  toList = x: if builtins.isList x then x else [ x ];
  join = sep: l: builtins.concatStringsSep sep l;
  majorMinor = v: join "." (builtins.genList (builtins.elemAt (builtins.splitVersion v)) 2);
in
rec {
  inherit pins;

  # "9.0" -> "90": the spelling nvcc, flash-attn and TE use.
  capabilityDigits = cap: builtins.replaceStrings [ "." ] [ "" ] cap;

  # nvcc flags for exactly the pinned capabilities: SASS for each, and PTX for
  # the newest so a later GPU can still JIT it.
  gencodeFlags =
    caps:
    let
      digits = map capabilityDigits caps;
      newest = last digits;
    in
    concatMap (d: [
      "-gencode"
      "arch=compute_${d},code=sm_${d}"
    ]) digits
    ++ [
      "-gencode"
      "arch=compute_${newest},code=compute_${newest}"
    ];

  # As a Python list literal, for build scripts that hard-code their own
  # -gencode list (causal-conv1d's setup.py).
  gencodePythonList = caps: "[" + join ", " (map (f: ''"${f}"'') (gencodeFlags caps)) + "]";

  # TORCH_CUDA_ARCH_LIST wants "9.0;10.0"; FLASH_ATTN_CUDA_ARCHS and
  # NVTE_CUDA_ARCHS want "90;100".
  torchArchList = caps: join ";" caps;
  digitArchList = caps: join ";" (map capabilityDigits caps);

  # Shell text for preBuild: MAX_JOBS, the number of compiler jobs
  # torch.utils.cpp_extension's ninja runs (setting it also turns off
  # flash-attn's own guard, which applies only when MAX_JOBS is unset). One
  # helper for every source build, bounded twice:
  # - by cores: NIX_BUILD_CORES / threadsPerJob (an nvcc job with
  #   `--threads N` runs N compiler processes at once);
  # - by memory: MemAvailable (/proc/meminfo, read when the build starts) /
  #   peakMiBPerJob, the most one job needs (each package says where its
  #   figure comes from).
  # At least 1. NIX_BUILD_CORES=0 (Nix's "all cores") counts with nproc; an
  # unreadable /proc/meminfo leaves the cores bound alone. Prints its reason.
  parallelJobs =
    { threadsPerJob, peakMiBPerJob }:
    ''
      _cores=''${NIX_BUILD_CORES:-1}
      if [ "$_cores" -lt 1 ] 2>/dev/null || ! [ "$_cores" -eq "$_cores" ] 2>/dev/null; then _cores=$(nproc); fi
      _by_cores=$(( _cores / ${toString threadsPerJob} ))
      _avail_kib=
      _by_memory=
      while read -r _key _value _unit; do
        if [ "$_key" = MemAvailable: ]; then _avail_kib=$_value; fi
      done < /proc/meminfo || true
      MAX_JOBS=$_by_cores
      if [ -n "$_avail_kib" ]; then
        _by_memory=$(( _avail_kib / 1024 / ${toString peakMiBPerJob} ))
        if [ "$_by_memory" -lt "$MAX_JOBS" ]; then MAX_JOBS=$_by_memory; fi
      fi
      if [ "$MAX_JOBS" -lt 1 ]; then MAX_JOBS=1; fi
      export MAX_JOBS
      echo "MAX_JOBS=$MAX_JOBS: $_cores cores / ${toString threadsPerJob} threads per job = $_by_cores; MemAvailable ''${_avail_kib:-unknown} KiB / ${toString peakMiBPerJob} MiB per job = ''${_by_memory:-no bound}"
    '';

  # "12.8" -> "cudaPackages_12_8"
  cudaPackagesAttr = version: "cudaPackages_" + builtins.replaceStrings [ "." ] [ "_" ] version;

  # Unfree is allowed only for NVIDIA's CUDA licences, by predicate (the
  # licence short names that nixpkgs' CUDA documentation lists), never
  # globally.
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
      licenses = toList (pkg.meta.license or [ ]);
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

  # Per wheel of uv.lock: library dirs and nixpkgs libraries autoPatchelf
  # gets, and the NEEDED entries it may leave unresolved, with the reason
  # (nix/wheel-libraries.nix, tools/wheel-needed-audit.py).
  wheelLibraries = builtins.fromJSON (builtins.readFile ./wheel-libraries.json);

  # Does a CUDA version ("12.8.90", or torch.version.cuda "12.8") match the
  # pin ("12.8")?
  cudaVersionMatches = pin: actual: majorMinor actual == pin;

  # App name -> runner arguments (nix/apps.nix); tests check this mapping.
  appRunnerArgs = {
    train-8gpu = [
      "train"
      "--recipe"
      "megatron-8gpu"
    ];
    # The layout the planner fits to 8 x 80 GB GPUs (derived, not yet run at full scale).
    train-8gpu-80gb = [
      "train"
      "--recipe"
      "megatron-8gpu-80gb"
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
    # FSDP layouts the planner fits (derived from fsdp, not yet run at full scale).
    train-fsdp-h200 = [
      "train"
      "--recipe"
      "fsdp-h200"
    ];
    train-fsdp-80gb = [
      "train"
      "--recipe"
      "fsdp-80gb"
    ];
    convert = [ "convert" ];
    doctor = [ "doctor" ];
    smoke = [ "smoke" ];
    download = [ "download" ];
    plan = [ "plan" ];
    # The whole CLI: `nix run .#runner -- status RUN` (runs, show, logs, stop, ...).
    runner = [ ];
  };
  defaultApp = "train-8gpu";

  # App name -> meta.description (`nix flake check` and `nix flake show`
  # read it for every app). One entry per appRunnerArgs entry: nix/apps.nix
  # refuses an app without one, and tests/nix/test_lib_eval.py compares the
  # two tables.
  appDescriptions = {
    train-8gpu = "Megatron, one node of 8 GPUs (6 train + 2 rollout)";
    train-8gpu-80gb = "Megatron, one node of 8 x 80 GB GPUs, the layout the planner fits (not yet run at full scale)";
    train-multinode = "Megatron, 4 nodes x 8 GPUs over Ray";
    train-fsdp = "FSDP backend, one node (slime's script as written)";
    train-fsdp-h200 = "FSDP on 8 x H200: the script's layout with CPU offload (derived)";
    train-fsdp-80gb = "FSDP on 8 x 80 GB: 4 training with CPU offload + 4 rollout (derived)";
    convert = "HF checkpoint -> Megatron torch_dist";
    doctor = "Is this machine ready for a recipe? What is missing?";
    smoke = "Train a tiny Qwen3-Next on this machine's GPUs with the pinned kernels";
    download = "Model weights and datasets into BASE_FOLDER (resumable)";
    plan = "Per-GPU memory estimate and topology check of a recipe";
    runner = "The whole runner CLI with the pinned environment: runs, show, status, logs, stop, train, ... (`-- --help`)";
  };

  # Systems the flake evaluates for (wheels exist for both in uv.lock).
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # The systems with the training stack. PyPI's torch 2.9.1 for aarch64 is a
  # CPU build, so nothing that compiles against its CUDA (flash-attn, TE,
  # causal-conv1d, torch_memory_saver) can build there; their meta.platforms
  # say so. The other systems get the runner alone (it has no dependencies
  # of its own): plans, dry runs, and the runs of a cluster read from a
  # laptop or a login node.
  stackSystems = [ "x86_64-linux" ];
  runnerOnlyApps = [
    "plan"
    "runner"
  ];
  runnerOnlyDefaultApp = "runner";
}
