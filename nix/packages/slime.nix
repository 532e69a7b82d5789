# slime's source tree at the pinned commit, with our patches (nix/pins.json
# sources.slime.patches: the resume fix backported from upstream). slime's
# image installs it with `pip install -e . --no-deps`; train.py and tools/ are
# run from the tree, so the apps export it as SLIME_DIR and put it on
# PYTHONPATH (slime and slime_plugins are top-level packages there). Its
# Python dependencies are the `stack` extra of this repo's pyproject.toml
# (uv.lock). The same tree provides the Megatron and sglang patches (never
# copied into this repo).
{
  lib,
  stdenvNoCC,
  fetchFromGitHub,
  pins,
}:
let
  pin = pins.sources.slime;
in
stdenvNoCC.mkDerivation {
  pname = "slime";
  version = "${pin.version}-${builtins.substring 0 8 pin.rev}";

  src = fetchFromGitHub {
    inherit (pin) owner repo rev hash;
    name = "slime-${pin.version}-${builtins.substring 0 8 pin.rev}-source";
  };

  # patch -p1 fails on any rejected hunk: a patch that stops applying fails
  # the build instead of shipping an unpatched slime.
  patches = map (p: ../../${p}) (pin.patches or [ ]);

  dontConfigure = true;
  dontBuild = true;
  installPhase = ''
    runHook preInstall
    cp -r . $out
    runHook postInstall
  '';

  meta = {
    description = "slime RL framework source tree, with this project's patches";
    homepage = "https://github.com/THUDM/slime";
    license = lib.licenses.asl20;
  };
}
