# Megatron-LM at the commit slime's Dockerfile checks out, with slime's
# docker/patch/latest/megatron.patch taken from the pinned slime source (never
# copied into this repo). Installed the way slime's image does it (an editable
# checkout): a source tree that the apps put on PYTHONPATH and export as
# MEGATRON_DIR.
{
  lib,
  stdenvNoCC,
  fetchFromGitHub,
  slimeSrc,
  pins,
}:
let
  pin = pins.sources.megatron-lm;
in
stdenvNoCC.mkDerivation {
  pname = "megatron-lm";
  inherit (pin) version;

  src = fetchFromGitHub { inherit (pin) owner repo rev hash; };

  # slime applies it with `git apply --3way` and fails on any conflict marker;
  # patch -p1 fails on any rejected hunk, which is the same contract.
  patches = map (p: "${slimeSrc}/${p}") pin.patches_from_slime;

  dontConfigure = true;
  dontBuild = true;
  installPhase = ''
    runHook preInstall
    cp -r . $out
    runHook postInstall
  '';

  meta = {
    description = "Megatron-LM source tree, patched for slime";
    homepage = "https://github.com/NVIDIA/Megatron-LM";
    license = lib.licenses.bsd3;
  };
}
