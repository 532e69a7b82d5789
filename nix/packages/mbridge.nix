# mbridge at the commit slime's Dockerfile installs (--no-deps). Only
# slime's tools/convert_hf_to_torch_dist.py imports it. PyPI's mbridge 0.15.1
# is different code, so it is fetched from git.
{
  lib,
  stdenv,
  fetchFromGitHub,
  pyprojectHook,
  resolveBuildSystem,
  pins,
}:
let
  pin = pins.sources.mbridge;
in
stdenv.mkDerivation {
  pname = "mbridge";
  inherit (pin) version;

  # The pinned hash is of the tree without a >4 MiB PDF (docs only, never
  # imported) that no snapshot we could hash contained; deleting it in
  # postFetch makes the fixed output exactly that tree.
  src = fetchFromGitHub {
    inherit (pin) owner repo rev hash;
    postFetch = lib.concatMapStrings (f: ''
      rm -f "$out/${f}"
    '') pin.remove_after_fetch;
  };

  nativeBuildInputs = [
    pyprojectHook
  ]
  ++ resolveBuildSystem {
    setuptools = [ ];
    wheel = [ ];
  };

  # Like slime's Dockerfile (--no-deps): megatron comes from MEGATRON_DIR.
  passthru.dependencies = {
    transformers = [ ];
    safetensors = [ ];
    einops = [ ];
  };

  meta = {
    description = "Bridge between Megatron-Core and Hugging Face checkpoints";
    homepage = "https://github.com/ISEEKYAN/mbridge";
    license = lib.licenses.asl20;
  };
}
