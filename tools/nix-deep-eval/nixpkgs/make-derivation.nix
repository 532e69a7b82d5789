# stdenv.mkDerivation of the stand-in nixpkgs: the parts of nixpkgs'
# pkgs/stdenv/generic/make-derivation.nix and check-meta.nix that decide
# whether an evaluation succeeds, on top of the real builtins.derivation.
# Forcing drvPath forces what Nix forces: every attribute is coerced to a
# string (a set, a function or a misspelt attribute fails), every input
# derivation is instantiated in turn, fixed-output hashes are parsed.
#
# Mirrored from nixpkgs:
# - mkDerivation takes a set or a function of the final attributes
#   (finalAttrs, finalAttrs.finalPackage); overrideAttrs takes `prev: {}`
#   or `final: prev: {}` (lib.toExtension);
# - name = pname-version unless name is given; outputs default to [ "out" ];
# - dependency lists may hold derivations, paths, strings and null, nothing
#   else (nixpkgs' checkDependencyList);
# - `env` holds strings, booleans, integers or derivations and may not
#   repeat a top-level attribute;
# - meta/passthru/pos stay out of the derivation; passthru and meta are on
#   the result (lib.extendDerivation, as nixpkgs);
# - the result's drvPath/outPath fail, as check-meta's validity does, for an
#   unfree licence the config does not allow, a platform outside
#   meta.platforms (or in meta.badPlatforms), and meta.broken.
{
  lib,
  config,
  hostPlatform,
  shell,
  stdenvDrv,
}:
let
  inherit (lib)
    isDerivation
    isFunction
    toList
    ;

  dependencyAttrs = [
    "depsBuildBuild"
    "depsBuildBuildPropagated"
    "nativeBuildInputs"
    "propagatedNativeBuildInputs"
    "depsBuildTarget"
    "depsBuildTargetPropagated"
    "depsHostHost"
    "depsHostHostPropagated"
    "buildInputs"
    "propagatedBuildInputs"
    "depsTargetTarget"
    "depsTargetTargetPropagated"
  ];

  checkDependencyList =
    pkgName: attrName: deps:
    map (
      dep:
      if isDerivation dep || dep == null || builtins.isString dep || builtins.isPath dep then
        dep
      else if builtins.isList dep then
        checkDependencyList pkgName attrName dep
      else
        throw "${pkgName}: dependency of type ${builtins.typeOf dep} in ${attrName} is not a derivation, path or string"
    ) deps;

  checkEnv =
    pkgName: drvArgs: env:
    lib.mapAttrs (
      n: v:
      if drvArgs ? ${n} then
        throw "${pkgName}: env.${n} repeats a top-level attribute of the derivation"
      else if
        builtins.isString v || builtins.isBool v || builtins.isInt v || isDerivation v || builtins.isPath v
      then
        v
      else
        throw "${pkgName}: env.${n} is a ${builtins.typeOf v}; env takes strings, booleans, integers and derivations"
    ) env;

  # check-meta.nix, the parts that fail an evaluation.
  validity =
    attrs:
    let
      meta = attrs.meta or { };
      name = attrs.name or "${attrs.pname or "?"}-${attrs.version or "?"}";
      licenses = toList (meta.license or [ ]);
      unfree = builtins.any (l: !(l.free or true)) licenses;
      allowedUnfree = config.allowUnfree || config.allowUnfreePredicate attrs;
    in
    if unfree && !allowedUnfree then
      throw "Package ‘${name}’ has an unfree license (${
        lib.concatMapStringsSep ", " (l: l.shortName or "?") licenses
      }), refusing to evaluate (stand-in nixpkgs: config.allowUnfreePredicate rejected it)"
    else if !config.allowUnsupportedSystem && !lib.meta.availableOn hostPlatform { inherit meta; } then
      throw "Package ‘${name}’ is not available on the requested hostPlatform ${hostPlatform.system} (meta.platforms/badPlatforms)"
    else if (meta.broken or false) && !config.allowBroken then
      throw "Package ‘${name}’ is marked as broken, refusing to evaluate"
    else
      true;

  mkDerivationSimple =
    overrideAttrs: attrs:
    let
      name =
        attrs.name or (
          if attrs ? pname && attrs ? version then
            "${attrs.pname}-${attrs.version}"
          else
            throw "mkDerivation: neither name nor pname and version given (attributes: ${toString (builtins.attrNames attrs)})"
        );
      outputs = attrs.outputs or [ "out" ];
      passthru = attrs.passthru or { };
      meta = attrs.meta or { };
      deps = lib.genAttrs (builtins.filter (a: attrs ? ${a}) dependencyAttrs) (
        a: checkDependencyList name a attrs.${a}
      );
      drvArgs =
        builtins.removeAttrs attrs [
          "meta"
          "passthru"
          "pos"
          "env"
          "finalPackage"
          "overrideAttrs"
        ]
        // deps
        // {
          inherit name outputs;
          inherit (hostPlatform) system;
          builder = shell;
          args = [
            "-c"
            "echo 'stand-in nixpkgs: evaluation only' >&2; exit 1"
          ];
          stdenv = stdenvDrv;
        };
      env = checkEnv name drvArgs (attrs.env or { });
      drv = derivation (drvArgs // env);
    in
    lib.extendDerivation (validity attrs) (
      {
        inherit meta passthru overrideAttrs;
      }
      // passthru
    ) drv;

  makeDerivationExtensible =
    rattrs:
    let
      args = rattrs (args // { inherit finalPackage overrideAttrs; });
      overrideAttrs = f0: makeDerivationExtensible (lib.extends (lib.toExtension f0) rattrs);
      finalPackage = mkDerivationSimple overrideAttrs args;
    in
    finalPackage;
in
fnOrAttrs:
makeDerivationExtensible (if isFunction fnOrAttrs then fnOrAttrs else (_: fnOrAttrs))
