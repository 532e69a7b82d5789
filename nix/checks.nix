# `nix flake check`. GPUs are invisible in the build sandbox, so nothing here
# needs one; the import check loads every library without touching a device.
{
  pkgs,
  lib,
  nixLib,
  runtime,
  python,
  # The training stack is here (nixLib.stackSystems): the checks that import it.
  withStack,
  src,
}:
let
  inherit (nixLib) pins;
  fla = pins.sources.flash-linear-attention;

  # The repo's test inputs only (not .git, not result links). bench/ and
  # .ci/: tests/test_bench_scripts.py runs the bench scripts, and a test
  # checks that README's test command is the one .ci/run runs.
  testSrc = lib.fileset.toSource {
    root = src;
    fileset = lib.fileset.unions (
      [
        (src + "/pyproject.toml")
        (src + "/uv.lock")
        (src + "/runner")
        (src + "/tests")
        (src + "/bench")
        (src + "/.ci")
        (src + "/nix")
        (src + "/patches")
        (src + "/flake.nix")
        (src + "/flake.lock")
      ]
      ++ map lib.fileset.maybeMissing [
        (src + "/tools")
        (src + "/README.md")
        (src + "/docs")
      ]
    );
  };

  expected = builtins.toJSON {
    inherit (pins.python_packages)
      torch
      sglang
      transformers
      ray
      flash-linear-attention
      causal-conv1d
      ;
    cuda = pins.cuda.version;
  };
in
{
  # The runner's own test suite (pytest), CPU only, in a light environment
  # (the `test` extra and torch, nix/python.nix testEnv): nothing compiled
  # from source. tests/nix needs Nix itself, which does not run inside the
  # build sandbox: CI runs it, and pins-consistent below runs its
  # pure-Python part. No PYTHONPATH: Megatron-LM has a tests/__init__.py
  # package that would shadow this repo's tests/ ("No module named
  # 'tests.conftest'"); the tests that run upstream code find it through
  # SLIME_UPSTREAM_SOURCES and skip here, where it is not set.
  runner-tests = pkgs.runCommand "runner-tests" { nativeBuildInputs = [ python.testEnv ]; } ''
    cp -r ${testSrc} src && chmod -R u+w src && cd src
    export HOME=$TMPDIR
    python -m pytest -q -m "not gpu and not network" --ignore=tests/nix tests
    touch $out
  '';

  # Our Blackwell patch still applies at the pinned fla commit (the fla build
  # would fail too; this names the reason).
  fla-patch-applies =
    pkgs.runCommand "fla-patch-applies"
      {
        src = pkgs.fetchFromGitHub { inherit (fla) owner repo rev hash; };
        nativeBuildInputs = [ pkgs.patch ];
      }
      ''
        cp -r $src fla && chmod -R u+w fla && cd fla
        ${lib.concatMapStrings (p: ''
          patch -p1 --dry-run --fuzz=0 < ${src + "/${p}"}
        '') fla.patches}
        touch $out
      '';

  # nix/pins.json, flake.lock and uv.lock agree (the same pytest module CI
  # runs). nixpkgs' Python and pytest: no need to build the stack for this.
  pins-consistent =
    pkgs.runCommand "pins-consistent"
      { nativeBuildInputs = [ (pkgs.python312.withPackages (ps: [ ps.pytest ])) ]; }
      ''
        cd ${testSrc}
        python -m pytest -q -p no:cacheprovider --noconftest tests/nix/test_pins.py
        touch $out
      '';

  # Every .nix file is formatted (nixfmt, RFC 166 style).
  nix-format = pkgs.runCommand "nix-format" { nativeBuildInputs = [ pkgs.nixfmt ]; } ''
    find ${testSrc} -name '*.nix' -print0 | xargs -0 nixfmt --check
    touch $out
  '';

  # The environment imports and reports the pinned versions, torch the pinned
  # CUDA. No GPU needed: CUDA is initialised lazily. Only where the stack
  # is (x86_64: PyPI's torch 2.9.1 for aarch64 is a CPU build, docs/nix.md).
}
// lib.optionalAttrs withStack {
  import-check =
    pkgs.runCommand "import-check"
      {
        nativeBuildInputs = [ runtime.env ];
        EXPECTED = expected;
      }
      ''
        export HOME=$TMPDIR
        export PYTHONPATH=${runtime.megatron}:${runtime.slime}
        python - <<'PY'
        import json, os
        from importlib.metadata import version
        import torch, sglang, megatron.core, fla, ray, transformers, causal_conv1d
        import flash_attn, mbridge, torch_memory_saver, slime
        exp = json.loads(os.environ["EXPECTED"])
        got = {
            "torch": torch.__version__.split("+")[0],
            "sglang": version("sglang"),
            "transformers": transformers.__version__,
            "ray": ray.__version__,
            "flash-linear-attention": fla.__version__,
            "causal-conv1d": version("causal-conv1d"),
            "cuda": torch.version.cuda,
        }
        bad = {k: (got[k], exp[k]) for k in exp if got[k] != exp[k]}
        assert not bad, f"installed != pinned: {bad}"
        print("import-check ok:", got)
        PY
        touch $out
      '';

  # runner/slime_args/data/slime_flags.json (what the runner checks overrides against) is
  # what slime's own parsers define: rebuilt from the pinned slime, the patched
  # Megatron-LM and the environment's sglang, then compared.
  slime-flags = pkgs.runCommand "slime-flags" { nativeBuildInputs = [ runtime.env ]; } ''
    export HOME=$TMPDIR
    python ${testSrc}/tools/slime_flag_schema.py --slime-dir ${runtime.slime} \
      --megatron-dir ${runtime.megatron} --check ${testSrc}/runner/slime_args/data/slime_flags.json
    touch $out
  '';
}
