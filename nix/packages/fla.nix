# flash-linear-attention at the commit slime's Qwen3-Next doc pins (9714c595,
# v0.4.0-59, reports 0.4.1), with our Blackwell workaround applied. The patch
# must apply: if it stops applying, patchPhase fails and so does the build.
# Pure Python + Triton: nothing is compiled at build time.
{
  lib,
  stdenv,
  fetchFromGitHub,
  pyprojectHook,
  resolveBuildSystem,
  pins,
}:
let
  pin = pins.sources.flash-linear-attention;
in
stdenv.mkDerivation {
  pname = "flash-linear-attention";
  inherit (pin) version;

  src = fetchFromGitHub { inherit (pin) owner repo rev hash; };

  patches = map (p: ../../${p}) pin.patches;

  nativeBuildInputs = [
    pyprojectHook
  ]
  ++ resolveBuildSystem {
    setuptools = [ ];
    wheel = [ ];
  };

  # Read by mkVirtualEnv's resolver (pyproject.nix): the runtime closure.
  passthru.dependencies = {
    torch = [ ];
    transformers = [ ];
    einops = [ ];
  };

  meta = {
    description = "Triton kernels for linear attention (Qwen3-Next gated delta rule)";
    homepage = "https://github.com/fla-org/flash-linear-attention";
    license = lib.licenses.mit;
  };
}
