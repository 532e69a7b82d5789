{
  description = "slime's Qwen3-Next-80B-A3B RL recipes: pinned CUDA/PyTorch/sglang/Megatron stack and one-command apps";

  # Optional binary caches for nixpkgs' CUDA packages (unfree, so
  # cache.nixos.org does not have them). Nix asks before using them. Keys as in
  # public NixOS configurations; see docs/nix.md.
  nixConfig = {
    extra-substituters = [
      "https://cache.nixos-cuda.org"
      "https://cuda-maintainers.cachix.org"
    ];
    extra-trusted-public-keys = [
      "cache.nixos-cuda.org:74DUi4Ye579gUqzH4ziL9IyiJBlDpMRn9MBN8oNan9M="
      "cuda-maintainers.cachix.org-1:0dq3bujKpuEPMCX6U4WylrUDZ9JyUG0VpVZa7CNfq5E="
    ];
  };

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

    pyproject-nix = {
      url = "github:pyproject-nix/pyproject.nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };

    uv2nix = {
      url = "github:pyproject-nix/uv2nix";
      inputs.pyproject-nix.follows = "pyproject-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };

    pyproject-build-systems = {
      url = "github:pyproject-nix/build-system-pkgs";
      inputs.pyproject-nix.follows = "pyproject-nix";
      inputs.uv2nix.follows = "uv2nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    { nixpkgs, ... }@inputs:
    let
      nixLib = import ./nix/lib.nix;
      perSystem = nixpkgs.lib.genAttrs nixLib.systems (
        system: import ./nix { inherit inputs system nixLib; }
      );
      output = name: nixpkgs.lib.mapAttrs (_: s: s.${name}) perSystem;
    in
    {
      packages = output "packages";
      legacyPackages = output "legacyPackages";
      apps = output "apps";
      devShells = output "devShells";
      checks = output "checks";
      formatter = output "formatter";
      lib = nixLib;
    };
}
