# A stand-in for nixpkgs (nixos-25.11) for the deep evaluation
# (tools/nix-deep-eval): `import nixpkgs { system; config; overlays; }` with
# the real nixpkgs lib (./lib, put there by the driver) and derivations built
# by the real builtins.derivation, so forcing drvPath instantiates the whole
# graph as Nix would. It has exactly the attributes that evaluating this
# flake with the real pyproject.nix, uv2nix and build-system-pkgs asks for,
# named and shaped as in nixpkgs (docs/nix.md cites where each was looked
# up), so a misspelt attribute fails here as it would there. Nothing is
# built: every builder exits 1.
{
  system ? null,
  localSystem ? {
    inherit system;
  },
  config ? { },
  overlays ? [ ],
  crossSystem ? null,
  crossOverlays ? [ ],
}:
let
  lib = import ./lib-compat.nix;

  # nixpkgs' config options this project sets or that the code below reads.
  # Real nixpkgs types its options and accepts other keys freely; the
  # stand-in refuses a key it does not know, so a misspelt option (which
  # nixpkgs would silently ignore) fails the evaluation. Add a key here only
  # after finding it in nixpkgs' pkgs/top-level/config.nix.
  knownConfig = {
    allowUnfree = false;
    allowUnfreePredicate = _: false;
    allowBroken = false;
    allowUnsupportedSystem = false;
    allowAliases = true;
    cudaSupport = false;
    cudaCapabilities = [ ];
    cudaForwardCompat = true;
  };
  unknownConfig = builtins.attrNames (builtins.removeAttrs config (builtins.attrNames knownConfig));
  config' =
    if unknownConfig != [ ] then
      throw "stand-in nixpkgs: unknown config option(s) ${toString unknownConfig} (see tools/nix-deep-eval/nixpkgs/default.nix)"
    else
      knownConfig // config;

  platform = lib.systems.elaborate (
    if crossSystem != null then throw "stand-in nixpkgs: no cross compilation" else localSystem
  );

  base = import ./packages.nix {
    inherit lib platform;
    config = config';
  };
in
assert crossOverlays == [ ];
lib.fix (lib.foldl' (lib.flip lib.extends) base overlays)
