# Overlay for the prebuilt wheels of the uv.lock set that ship shared
# libraries (torch, nvidia-*, sgl-kernel, TE core, pillow, ...). uv2nix runs
# autoPatchelfHook on every wheel, which fails the build when a NEEDED
# library is found nowhere; nix/wheel-libraries.json says, per wheel, where
# autoPatchelf must look and what it may leave unresolved, and
# tools/wheel_needed_audit.py checks that table against the real wheels:
# - the nvidia-* wheels link each other (cusolver -> cublas, nvjitlink, ...)
#   and torch links all of them, while each lives in its own store path: the
#   sibling nvidia/*/lib dirs go on autoPatchelf's search path (uv2nix
#   issue 31): an nvidia-* wheel gets the nvidia-* wheels it declares as
#   dependencies (no cycles), the others all of them;
# - torch extensions (sgl-kernel, torchao, torchcodec, ...) get torch/lib;
# - libraries from nixpkgs (numactl, rdma-core, zlib, ...) go in
#   buildInputs; libraries a wheel dlopens by name (NCCL's libibverbs) have
#   their directory appended to every RUNPATH;
# - libcuda.so.1 and libnvidia-ml.so.1 belong to the host driver: left
#   unresolved at build time and found at run time (autoAddDriverRunpath adds
#   /run/opengl-driver/lib for NixOS; the app wrapper finds the host driver
#   elsewhere); anything else unresolved only with its reason in the table.
#
# uv2nix builds every package through `final.callPackage`, so the names this
# overlay defines must not depend on any package's attributes (reading
# `prev.<name>.passthru` to choose them loops: infinite recursion). They come
# from the table, filtered with `prev ? name`; whether a package is a wheel
# is decided inside its own override.
{
  lib,
  pkgs,
  nixLib,
}:
final: prev:
let
  inherit (final) python;
  table = nixLib.wheelLibraries;
  names = builtins.filter (n: prev ? ${n}) (builtins.attrNames table.wheels);
  nvidiaNames = builtins.filter (lib.hasPrefix "nvidia-") names;

  fromNixpkgs = attr: lib.getLib (lib.getAttrFromPath (lib.splitString "." attr) pkgs);
  libDirOf = attr: "${fromNixpkgs attr}/lib";

  searchNvidiaLibDirs =
    deps:
    lib.concatMapStrings (n: ''
      for d in ${final.${n}}/${python.sitePackages}/nvidia/*/lib; do
        if [ -d "$d" ]; then addAutoPatchelfSearchPath "$d"; fi
      done
    '') deps;

  fixup =
    name:
    let
      spec = table.wheels.${name};
    in
    prev.${name}.overrideAttrs (
      old:
      let
        nvidiaDeps =
          {
            all = nvidiaNames;
            dependencies = builtins.filter (n: builtins.elem n nvidiaNames) (
              builtins.attrNames (old.passthru.dependencies or { })
            );
            none = [ ];
          }
          .${spec.nvidia_lib_dirs or "none"};
      in
      # A package built from source (the sdist, or an overlay's own build)
      # links against what its build found: nothing to add.
      lib.optionalAttrs ((old.passthru.format or null) == "wheel") {
        nativeBuildInputs = (old.nativeBuildInputs or [ ]) ++ [ pkgs.autoAddDriverRunpath ];
        buildInputs = (old.buildInputs or [ ]) ++ map fromNixpkgs (spec.nixpkgs or [ ]);
        appendRunpaths = (old.appendRunpaths or [ ]) ++ map libDirOf (spec.runpath_nixpkgs or [ ]);
        autoPatchelfIgnoreMissingDeps =
          builtins.attrNames table.driver_libraries ++ builtins.attrNames (spec.ignore or { });
        # preFixup runs before autoPatchelf (postFixup).
        preFixup =
          (old.preFixup or "")
          + searchNvidiaLibDirs nvidiaDeps
          + lib.optionalString (spec.torch_lib or false) ''
            addAutoPatchelfSearchPath ${final.torch}/${python.sitePackages}/torch/lib
          '';
      }
    );
in
lib.genAttrs names fixup
