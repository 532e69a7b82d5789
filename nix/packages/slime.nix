# slime's source tree at the pinned commit. slime's image installs it with
# `pip install -e . --no-deps`; train.py and tools/ are run from the tree, so
# the apps export it as SLIME_DIR and put it on PYTHONPATH (slime and
# slime_plugins are top-level packages there). Its Python dependencies are the
# `stack` extra of this repo's pyproject.toml (uv.lock). The same tree provides
# the Megatron and sglang patches (never copied into this repo).
{
  fetchFromGitHub,
  pins,
}:
let
  pin = pins.sources.slime;
in
fetchFromGitHub {
  inherit (pin) owner repo rev hash;
  name = "slime-${pin.version}-${builtins.substring 0 8 pin.rev}-source";
}
