# nixpkgs' lib for the stand-in. nixos-25.11's lib asks for Nix >= 2.18
# (lib/minfeatures.nix); on an older Nix (Debian 12 has 2.8) the one builtin
# it calls that such a Nix lacks, readFileType (Nix 2.14), is supplied from
# readDir, which reports the same four types. Everything else is the real lib,
# unchanged: every file it imports sees the same builtins.
let
  readFileType = path: (builtins.readDir (dirOf path)).${baseNameOf path};
  scope = {
    builtins = builtins // {
      inherit readFileType;
    };
    import = path: builtins.scopedImport scope path;
  };
in
if builtins ? readFileType then import ./lib else scope.import ./lib
