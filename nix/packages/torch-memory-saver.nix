# torch_memory_saver at the commit slime's Dockerfile installs, built with its
# CUDA hooks (two extension modules: LD_PRELOAD mode and torch-allocator mode)
# against the pinned CUDA. Replaces the PyPI 0.0.9 wheel that the uv.lock
# resolution of sglang brings: same version, slime's tested source.
{
  lib,
  stdenv,
  fetchFromGitHub,
  pyprojectHook,
  resolveBuildSystem,
  which,
  cudaHome,
  autoAddDriverRunpath,
  patchelf,
  nixLib,
  pins,
}:
let
  pin = pins.sources.torch-memory-saver;
in
stdenv.mkDerivation {
  pname = "torch-memory-saver";
  inherit (pin) version;

  src = fetchFromGitHub { inherit (pin) owner repo rev hash; };

  nativeBuildInputs = [
    pyprojectHook
    which
    patchelf
    autoAddDriverRunpath
  ]
  ++ resolveBuildSystem {
    setuptools = [ ];
    wheel = [ ];
  };

  # setup.py finds the toolkit through CUDA_HOME (include/, lib64/,
  # lib64/stubs for libcuda) and links -lcuda -lcudart.
  env.CUDA_HOME = "${cudaHome}";

  # The link against the libcuda stub must not leave the stub directory in
  # RUNPATH: at run time libcuda.so.1 comes from the host driver
  # (autoAddDriverRunpath on NixOS, the wrapper's LD_LIBRARY_PATH elsewhere).
  postFixup = ''
    for so in $(find $out -name '*.so'); do
      rpath=$(patchelf --print-rpath "$so" | tr ':' '\n' | grep -v '/stubs' | paste -sd: -)
      patchelf --set-rpath "$rpath" "$so"
    done
  '';

  passthru.dependencies = { };

  meta = {
    description = "Pause and resume CUDA memory of torch tensors (sglang/slime colocated rollout)";
    homepage = "https://github.com/fzyzcjy/torch_memory_saver";
    license = lib.licenses.asl20;
    platforms = nixLib.stackSystems;
  };
}
