# Overlay for the prebuilt CUDA wheels of the uv.lock set (torch, nvidia-*,
# sgl-kernel, TE core, ...). uv2nix runs autoPatchelfHook on every wheel, but:
# - the nvidia-* wheels link each other (cusolver -> cublas, nvjitlink, ...)
#   and torch links all of them, while each lives in its own store path: the
#   sibling nvidia/*/lib dirs go on autoPatchelf's search path (uv2nix
#   issue 31);
# - libcuda.so.1 and libnvidia-ml.so.1 belong to the host driver: they are left
#   unresolved at build time and found at run time (autoAddDriverRunpath adds
#   /run/opengl-driver/lib for NixOS; the app wrapper sets LD_LIBRARY_PATH to
#   the host driver directory elsewhere).
{
  lib,
  autoAddDriverRunpath,
  nixLib,
}:
final: prev:
let
  inherit (final) python;
  isWheel = n: (prev.${n}.passthru.format or null) == "wheel";
  names = builtins.filter isWheel (nixLib.cudaWheelNames (builtins.attrNames prev));
  isNvidia = lib.hasPrefix "nvidia-";
  addLibDirs =
    deps:
    lib.concatMapStrings (n: ''
      for d in ${final.${n}}/${python.sitePackages}/nvidia/*/lib; do
        if [ -d "$d" ]; then addAutoPatchelfSearchPath "$d"; fi
      done
    '') deps;
  fixup =
    name:
    prev.${name}.overrideAttrs (old: {
      nativeBuildInputs = (old.nativeBuildInputs or [ ]) ++ [ autoAddDriverRunpath ];
      autoPatchelfIgnoreMissingDeps = nixLib.driverLibraries;
      # preFixup runs before autoPatchelf (postFixup). An nvidia-* wheel only
      # looks at the nvidia-* wheels it declares as dependencies (no cycles);
      # everything else (torch, sgl-kernel, ...) at all of them, and at torch's
      # own lib dir when it is a torch extension.
      preFixup =
        (old.preFixup or "")
        + (
          if isNvidia name then
            addLibDirs (builtins.filter isNvidia (builtins.attrNames (old.passthru.dependencies or { })))
          else
            addLibDirs (builtins.filter isNvidia names)
            + lib.optionalString (name != "torch" && name != "triton") ''
              addAutoPatchelfSearchPath ${final.torch}/${python.sitePackages}/torch/lib
            ''
        );
    });
in
lib.genAttrs names fixup
