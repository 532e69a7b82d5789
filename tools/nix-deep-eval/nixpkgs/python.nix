# python312 of the stand-in: the passthru attributes nixpkgs' CPython has
# (pkgs/development/interpreters/python/passthrufun.nix and cpython/) that
# pyproject.nix, uv2nix and this flake read. The patch level is the one
# nixos-25.11 ships as far as we could tell; no marker in uv.lock depends on
# it (tests/nix/test_deep_eval.py checks that).
{
  lib,
  stdenv,
  leaf,
}:
let
  sourceVersion = {
    major = "3";
    minor = "12";
    patch = "12";
    suffix = "";
  };
  pythonVersion = "${sourceVersion.major}.${sourceVersion.minor}";
  version = "${pythonVersion}.${sourceVersion.patch}";
  executable = "python${pythonVersion}";

  pythonPackages = {
    pytest = leaf "python${pythonVersion}-pytest" { };
  };

  self = stdenv.mkDerivation {
    pname = "python3";
    inherit version;
    passthru = {
      implementation = "cpython";
      libPrefix = "python${pythonVersion}";
      inherit
        executable
        sourceVersion
        pythonVersion
        ;
      sitePackages = "lib/python${pythonVersion}/site-packages";
      interpreter = "${self}/bin/${executable}";
      isPy3 = true;
      isPy3k = true;
      isPy312 = true;
      isPyPy = false;
      pythonAtLeast = lib.versionAtLeast pythonVersion;
      pythonOlder = lib.versionOlder pythonVersion;
      pythonOnBuildForBuild = self;
      pythonOnBuildForHost = self;
      pythonOnBuildForTarget = self;
      pythonOnHostForHost = self;
      pkgs = pythonPackages;
      withPackages =
        f:
        stdenv.mkDerivation {
          name = "python3-${version}-env";
          paths = [ self ] ++ f pythonPackages;
        };
    };
    meta = {
      license = lib.licenses.psfl;
      platforms = lib.platforms.linux ++ lib.platforms.darwin;
      mainProgram = executable;
    };
  };
in
self
