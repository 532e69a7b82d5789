# Deep evaluation of this flake (tools/nix-deep-eval/deep_eval.py runs it):
# the flake's inputs are wired from flake.lock the way Nix's call-flake.nix
# does it, with the REAL pyproject.nix, uv2nix and build-system-pkgs sources
# (given as paths, extracted at flake.lock's revisions) and the stand-in
# nixpkgs of ./nixpkgs (with the real nixpkgs lib copied into it). The
# result forces, for one system: every package of the Python set, every
# flake package, app (program and meta.description, as `nix flake check`
# does), devShell, check and the formatter; evaluated with --strict it is
# JSON.
{
  # Path of this repository (the flake to evaluate).
  repo,
  # Node name in flake.lock -> source tree; "nixpkgs" is the stand-in.
  sources,
  system,
  # What Nix adds to `self` for this flake's own tree (flake.lock has no
  # `locked` for the root): { rev; shortRev; } for a clean git tree,
  # { dirtyRev; dirtyShortRev; } for a dirty one, { } for a path.
  selfInfo ? { },
}:
let
  lock = builtins.fromJSON (builtins.readFile (repo + "/flake.lock"));
  standIn = sources.nixpkgs;
  lib = import (standIn + "/lib-compat.nix");

  sourceInfo =
    key:
    let
      locked = lock.nodes.${key}.locked or { };
    in
    {
      outPath = sources.${key};
    }
    // lib.optionalAttrs (locked ? rev) {
      inherit (locked) rev narHash lastModified;
      shortRev = builtins.substring 0 7 locked.rev;
    }
    // lib.optionalAttrs (key == lock.root) selfInfo;

  # flake.lock input reference -> node key (a string, or a `follows` path
  # walked from the root node).
  resolveKey =
    ref:
    if builtins.isString ref then
      ref
    else
      builtins.foldl' (
        key: name: resolveKey lock.nodes.${key}.inputs.${name}
      ) lock.root ref;

  # call-flake.nix: a flake's outputs function called with its resolved
  # inputs and itself.
  callFlake =
    key:
    let
      info = sourceInfo key;
      inputs = lib.mapAttrs (_: ref: nodes.${resolveKey ref}) (lock.nodes.${key}.inputs or { });
      flake = import (info.outPath + "/flake.nix");
      outputs = flake.outputs (inputs // { self = result; });
      result =
        outputs
        // info
        // {
          inherit inputs outputs;
          sourceInfo = info;
          _type = "flake";
        };
    in
    result;

  # The stand-in has no flake.nix: its outputs are those of nixpkgs' flake
  # that anything here reads.
  nixpkgsFlake =
    let
      info = sourceInfo "nixpkgs";
    in
    info
    // {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
        s: import standIn { system = s; }
      );
      sourceInfo = info;
      _type = "flake";
    };

  nodes = lib.mapAttrs (
    key: _: if key == "nixpkgs" then nixpkgsFlake else callFlake key
  ) lock.nodes;

  flake = nodes.${lock.root};

  nameOf = d: if lib.isDerivation d then d.name else toString d;

  pythonSet = flake.legacyPackages.${system}.pythonSet;
  uvLock = builtins.fromTOML (builtins.readFile (repo + "/uv.lock"));
  lockNames = map (p: p.name) uvLock.package;
  # Packages of the set this project owns or takes from uv.lock: each one,
  # with the attributes the overlays set (the derivation's own attributes,
  # as builtins.derivation received them).
  setNames = lib.unique (lockNames ++ flake.legacyPackages.${system}.pythonSetExtraNames);
  venvDeps = d: builtins.filter (p: p != "") (lib.splitString ":" (d.NIX_PYPROJECT_DEPS or ""));
  srcInfo =
    src:
    if lib.isDerivation src then
      {
        inherit (src) name;
        url = src.url or null;
        urls = src.urls or null;
        hash = src.outputHash or null;
        postFetch = src.postFetch or null;
      }
    else
      null;
  # Forcing drvPath instantiates the derivation and, through its inputs, its
  # whole build graph.
  describe =
    drv:
    {
      # (not `outPath`: toJSON would print a set with one as that path)
      out = drv.outPath;
      inherit (drv) drvPath name;
      format = drv.passthru.format or null;
      # What uv2nix and the overlays put on the derivation, coerced as Nix
      # coerces it (derivations become store paths).
      attrs = builtins.removeAttrs drv.drvAttrs [
        "builder"
        "args"
        "stdenv"
        "system"
        "outputs"
      ];
      # The source as the fetcher was asked for it (URL and hash).
      src = srcInfo (drv.src or null);
      nativeBuildInputNames = map nameOf (drv.nativeBuildInputs or [ ]);
      # The packages it builds with that come from a source (wheels and
      # sdists of the Python set, the build systems' too): what the build
      # audit (tools/nix-build-audit) fetches to stand in for each.
      nativeBuildInputSources = map (d: {
        inherit (d) name;
        out = d.outPath;
        format = d.passthru.format or null;
        src = srcInfo d.src;
      }) (builtins.filter (d: lib.isDerivation d && d ? src) (drv.nativeBuildInputs or [ ]));
      # Store paths of the packages in the virtual environments this
      # derivation is or uses (pyproject.nix's mkVirtualEnv lists them).
      venvPackages = lib.concatMap venvDeps (
        [ drv ] ++ builtins.filter lib.isDerivation (drv.nativeBuildInputs or [ ])
      );
      buildInputNames = map nameOf (drv.buildInputs or [ ]);
    };
  # Packages whose meta.platforms leave this system out (the CUDA source
  # builds on aarch64): nixpkgs refuses to instantiate them, as `nix build`
  # would; whether it does is recorded instead of their derivation.
  platform = lib.systems.elaborate system;
  inSet = builtins.filter (n: pythonSet ? ${n}) setNames;
  availableHere = n: lib.meta.availableOn platform pythonSet.${n};
in
{
  inherit system;
  python = lib.genAttrs (builtins.filter availableHere inSet) (n: describe pythonSet.${n});
  unavailable = lib.genAttrs (builtins.filter (n: !availableHere n) inSet) (n: {
    platforms = pythonSet.${n}.meta.platforms;
    refused = !(builtins.tryEval pythonSet.${n}.drvPath).success;
  });
  notInSet = builtins.filter (n: !(pythonSet ? ${n})) setNames;
  packages = lib.mapAttrs (_: describe) flake.packages.${system};
  apps = lib.mapAttrs (_: app: {
    inherit (app) type program;
    description = app.meta.description;
  }) flake.apps.${system};
  devShells = lib.mapAttrs (_: describe) flake.devShells.${system};
  checks = lib.mapAttrs (_: describe) flake.checks.${system};
  formatter = flake.formatter.${system}.drvPath;
  # For tests that run what the flake generated (the app wrapper).
  wrapperTexts = lib.mapAttrs (_: d: d.text) (
    lib.filterAttrs (n: _: lib.hasPrefix "slime-" n) flake.packages.${system}
  );
}
