# sglang 0.5.6.post1 rebuilt from its PyPI sdist (hash in uv.lock) with slime's
# docker/patch/latest/sglang.patch from the pinned slime source. The patch was
# written for an sglang nightly (5e2cda61); on 0.5.6.post1 GNU patch applies all
# 41 files, 4 hunks with fuzz 2 (post1 has an extra `reasoning` keyword near
# them). Strict `git apply` refuses those hunks, so GNU patch with its default
# fuzz is used; a rejected hunk still fails the build. See docs/nix.md.
{
  base,
  resolveBuildSystem,
  slimeSrc,
}:
(base.override { sourcePreference = "sdist"; }).overrideAttrs (old: {
  patches = (old.patches or [ ]) ++ [ "${slimeSrc}/docker/patch/latest/sglang.patch" ];
  # Paths in the patch start with python/ (the sglang monorepo); the sdist
  # root is that python/ directory. No .orig files in the installed package.
  patchFlags = [
    "-p2"
    "--no-backup-if-mismatch"
  ];
  nativeBuildInputs =
    (old.nativeBuildInputs or [ ])
    ++ resolveBuildSystem {
      setuptools = [ ];
      wheel = [ ];
    };
})
