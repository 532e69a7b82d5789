# Stand-in setup hook (tools/nix-deep-eval/nixpkgs): never run.
