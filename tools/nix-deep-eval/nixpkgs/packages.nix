# The stand-in package set: builders and packages the evaluation asks for,
# with nixpkgs' (nixos-25.11) attribute names, arguments and outputs.
# Where each fact was looked up: docs/nix.md, "The deep evaluation".
{
  lib,
  platform,
  config,
}:
self:
let
  inherit (platform) system;

  # A derivation for the stdenv itself (nixpkgs' stdenv is one; every
  # mkDerivation passes it as $stdenv).
  placeholderDrv =
    name:
    derivation {
      inherit name system;
      builder = "/bin/sh";
      args = [
        "-c"
        "exit 1"
      ];
    };

  mkStdenv =
    { name, cc }:
    let
      drv = placeholderDrv name;
      stdenv = drv // {
        mkDerivation = import ./make-derivation.nix {
          inherit lib config;
          hostPlatform = platform;
          shell = "${self.bash}/bin/bash";
          # Every derivation carries its stdenv (nixpkgs: `inherit stdenv`),
          # which is how pyproject.nix reads python.stdenv.
          stdenvDrv = stdenv;
        };
        hostPlatform = platform;
        buildPlatform = platform;
        targetPlatform = platform;
        inherit (platform) isLinux isDarwin;
        inherit system cc;
        shell = "${self.bash}/bin/bash";
      };
    in
    stdenv;

  # A package that only needs to exist (and to be coercible to a path).
  leaf =
    pname: attrs:
    self.stdenv.mkDerivation (
      {
        inherit pname;
        version = "stand-in";
      }
      // attrs
    );

  hook = name: self.makeSetupHook { inherit name; } ./hook.sh;

  gccVersion = "14";
  glibcVersion = "2.40";
in
{
  inherit lib config;
  pkgs = self;
  buildPackages = self;
  pkgsBuildHost = self;

  newScope = extra: lib.callPackageWith (self // extra);
  callPackage = self.newScope { };
  callPackages = lib.callPackagesWith self;

  stdenv = mkStdenv {
    name = "stdenv-linux";
    cc = self.gcc;
  };
  stdenvNoCC = mkStdenv {
    name = "stdenv-linux";
    cc = null;
  };

  # stdenv.cc: the wrapped compiler; .cc is the unwrapped one (its lib output
  # holds libstdc++), .libc is glibc (pyproject.nix compares its version with
  # manylinux tags).
  gcc = self.stdenv.mkDerivation {
    pname = "gcc-wrapper";
    version = gccVersion;
    passthru = {
      cc = leaf "gcc" {
        version = gccVersion;
        outputs = [
          "out"
          "lib"
        ];
      };
      libc = self.glibc;
      isGNU = true;
      isClang = false;
      libcxx = null;
      targetPrefix = "";
    };
  };
  glibc = leaf "glibc" {
    version = glibcVersion;
    outputs = [
      "out"
      "bin"
      "dev"
      "static"
      "getent"
    ];
    passthru.linuxHeaders = leaf "linux-headers" { };
  };

  # The builders' shell (nixpkgs builds it in the bootstrap stages, without
  # stdenv.mkDerivation).
  bash = placeholderDrv "bash";
  runtimeShell = "${self.bash}/bin/bash";

  # pkgs/build-support/trivial-builders/default.nix
  runCommand =
    name: env: buildCommand:
    self.stdenvNoCC.mkDerivation (
      {
        enableParallelBuilding = true;
        inherit buildCommand name;
        passAsFile = [ "buildCommand" ] ++ (env.passAsFile or [ ]);
      }
      // builtins.removeAttrs env [ "passAsFile" ]
    );
  runCommandCC =
    name: env: buildCommand:
    self.stdenv.mkDerivation (
      {
        inherit buildCommand name;
        passAsFile = [ "buildCommand" ];
      }
      // env
    );

  writeTextFile =
    {
      name,
      text,
      executable ? false,
      destination ? "",
      checkPhase ? "",
      meta ? { },
      passthru ? { },
      allowSubstitutes ? false,
      preferLocalBuild ? true,
      derivationArgs ? { },
    }:
    self.runCommand name (
      {
        inherit
          text
          executable
          checkPhase
          allowSubstitutes
          preferLocalBuild
          meta
          passthru
          ;
        passAsFile = [ "text" ];
      }
      // derivationArgs
    ) "target=$out${lib.escapeShellArg destination}; cp $textPath $target";

  writeShellScriptBin =
    name: text:
    self.writeTextFile {
      inherit name;
      executable = true;
      destination = "/bin/${name}";
      text = ''
        #!${self.runtimeShell}
        ${text}
      '';
      meta.mainProgram = name;
    };

  symlinkJoin =
    args@{
      name ? "${args.pname}-${args.version}",
      paths,
      preferLocalBuild ? true,
      allowSubstitutes ? false,
      postBuild ? "",
      ...
    }:
    self.runCommand name (
      builtins.removeAttrs args [
        "name"
        "postBuild"
      ]
      // {
        inherit preferLocalBuild allowSubstitutes;
        passAsFile = [ "paths" ];
      }
    ) "mkdir -p $out; ${postBuild}";

  makeSetupHook =
    {
      name ? lib.warn "calling makeSetupHook without passing a name is deprecated." "hook",
      propagatedBuildInputs ? [ ],
      depsTargetTargetPropagated ? [ ],
      meta ? { },
      passthru ? { },
      substitutions ? { },
    }:
    script:
    self.runCommand name (
      substitutions
      // {
        __structuredAttrs = false;
        inherit meta depsTargetTargetPropagated propagatedBuildInputs;
        strictDeps = true;
        passthru = passthru // {
          provides.setupHook = true;
        };
      }
    ) "mkdir -p $out/nix-support; cp ${script} $out/nix-support/setup-hook";

  replaceVars =
    src: replacements:
    self.stdenvNoCC.mkDerivation (
      {
        name = baseNameOf (toString src);
        inherit src;
      }
      // replacements
    );

  # pkgs/build-support/mkshell/default.nix
  mkShell =
    {
      name ? "nix-shell",
      packages ? [ ],
      inputsFrom ? [ ],
      buildInputs ? [ ],
      nativeBuildInputs ? [ ],
      propagatedBuildInputs ? [ ],
      propagatedNativeBuildInputs ? [ ],
      ...
    }@attrs:
    self.stdenv.mkDerivation (
      builtins.removeAttrs attrs [
        "packages"
        "inputsFrom"
      ]
      // {
        inherit name;
        nativeBuildInputs = packages ++ nativeBuildInputs;
        phases = [ "buildPhase" ];
        buildPhase = "echo nix-shell only >&2; exit 1";
      }
    );

  # Fixed-output fetchers: Nix parses the hash when the derivation is
  # instantiated, so a malformed hash fails here as it would in nixpkgs.
  fetchurl =
    {
      url ? "",
      urls ? [ ],
      hash ? "",
      sha256 ? "",
      name ? baseNameOf (if url != "" then url else builtins.head urls),
      postFetch ? "",
      passthru ? { },
      meta ? { },
      ...
    }:
    self.stdenvNoCC.mkDerivation {
      inherit name postFetch passthru meta;
      urls = if url != "" then [ url ] else urls;
      outputHashMode = "flat";
      outputHash =
        if hash != "" then
          hash
        else if sha256 != "" then
          sha256
        else
          throw "fetchurl ${name}: no hash";
      outputHashAlgo = if hash != "" then null else "sha256";
    };
  fetchFromGitHub =
    {
      owner,
      repo,
      tag ? null,
      rev ? null,
      name ? "source",
      hash ? null,
      fetchSubmodules ? false,
      postFetch ? "",
      passthru ? { },
      meta ? { },
      ...
    }:
    assert lib.assertMsg (lib.xor (tag == null) (
      rev == null
    )) "fetchFromGitHub requires one of either `rev` or `tag` to be provided (not both).";
    self.stdenvNoCC.mkDerivation {
      inherit name postFetch meta;
      url = "https://github.com/${owner}/${repo}/archive/${if tag != null then tag else rev}.tar.gz";
      outputHashMode = "recursive";
      outputHash = if hash != null then hash else throw "fetchFromGitHub ${owner}/${repo}: no hash";
      outputHashAlgo = null;
      passthru = passthru // {
        gitRepoUrl = "https://github.com/${owner}/${repo}.git";
        inherit owner repo tag;
        rev = if rev != null then rev else tag;
      };
    };

  # pkgs/tools/misc/coreutils/default.nix: outputs [ "out" "info" ] and
  # separateDebugInfo, which adds "debug" (docs/nix.md says where this was
  # looked up); the programs are in out/bin.
  coreutils = leaf "coreutils" {
    outputs = [
      "out"
      "info"
      "debug"
    ];
  };

  # Tools and libraries that only need to exist.
  uv = leaf "uv" { meta.mainProgram = "uv"; };
  ugrep = leaf "ugrep" { meta.mainProgram = "ugrep"; };
  git = leaf "git" { };
  patch = leaf "patch" { };
  unzip = leaf "unzip" { };
  ninja = leaf "ninja" { };
  which = leaf "which" { };
  patchelf = leaf "patchelf" { meta.mainProgram = "patchelf"; };
  nixfmt = leaf "nixfmt" { meta.mainProgram = "nixfmt"; };

  autoPatchelfHook = hook "auto-patchelf-hook";
  # pkgs/by-name/au/autoAddDriverRunpath; addDriverRunpath.driverLink is the
  # NixOS driver directory.
  autoAddDriverRunpath = hook "auto-add-driver-runpath-hook";
  addDriverRunpath = {
    driverLink = "/run/opengl-driver";
  };

  # Libraries nix/wheel-libraries.json names (outputs as in
  # pkgs/by-name/nu/numactl, pkgs/by-name/rd/rdma-core; zlib's were not
  # looked up: the overlay takes lib.getLib, whatever they are).
  numactl = leaf "numactl" {
    outputs = [
      "out"
      "dev"
      "man"
    ];
  };
  rdma-core = leaf "rdma-core" {
    outputs = [
      "out"
      "dev"
      "scripts"
      "man"
    ];
  };
  zlib = leaf "zlib" { };

  # pkgs/by-name/li/libsndfile/package.nix
  libsndfile = leaf "libsndfile" {
    outputs = [
      "bin"
      "dev"
      "out"
      "man"
      "doc"
    ];
  };

  # pkgs/development/interpreters/python/manylinux/default.nix: the
  # libraries each manylinux tag promises, as the packages providing them.
  pythonManylinuxPackages =
    let
      manylinux2014 = [
        (lib.getLib self.glibc)
        (lib.getLib self.gcc.cc)
        (lib.getLib self.xorg.libX11)
        (lib.getLib self.xorg.libXext)
        (lib.getLib self.xorg.libXrender)
        (lib.getLib self.xorg.libICE)
        (lib.getLib self.xorg.libSM)
        (lib.getLib self.libGL)
        (lib.getLib self.glib)
      ];
    in
    {
      inherit manylinux2014;
      manylinux2010 = manylinux2014;
      manylinux1 = manylinux2014 ++ [
        (lib.getLib self.ncurses5)
        (lib.getLib self.libxcrypt)
      ];
    };
  xorg = lib.genAttrs [ "libX11" "libXext" "libXrender" "libICE" "libSM" ] (n: leaf n { });
  libGL = leaf "libGL" { };
  glib = leaf "glib" { };
  ncurses5 = leaf "ncurses" { };
  libxcrypt = leaf "libxcrypt" { };

  python312 = import ./python.nix {
    inherit lib leaf;
    inherit (self) stdenv;
  };

  # nixpkgs' own Python package set: build-system-pkgs' overlay takes setup
  # hooks and sources of a few build tools from it (its overlay.nix).
  python3Packages =
    let
      withHook = pname: extra: leaf "python3.13-${pname}" ({ setupHook = ./hook.sh; } // extra);
    in
    {
      setuptools-scm = withHook "setuptools-scm" { };
      cython = withHook "cython" { };
      pdm-backend = withHook "pdm-backend" { };
      poetry-dynamic-versioning = withHook "poetry-dynamic-versioning" { };
      meson-python = leaf "python3.13-meson-python" { setupHooks = [ ./hook.sh ]; };
    };

  cudaPackages_12_8 = import ./cuda.nix {
    inherit lib leaf config;
    pkgs = self;
    cudaMajorMinorVersion = "12.8";
  };
  # nixos-25.11's default CUDA package set (docs/nix.md).
  cudaPackages = self.cudaPackages_12_8;
}
