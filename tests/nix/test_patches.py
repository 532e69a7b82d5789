"""Patches apply where they must: ours at the pinned fla commit; slime's
Megatron patch at the pinned Megatron; causal-conv1d's -gencode anchor.

Each needs the upstream repository at its pin: the tarball in
SLIME_UPSTREAM_SOURCES (CI sets it), or a clone or source tree named by an
environment variable; without one it skips.
"""

import re
import subprocess

from nixtools import NIX_DIR, PINS, REPO, upstream_tree

SRC = PINS["sources"]


def patch_dry_run(tree, patch, strip, fuzz=None):
    # GNU patch, not `git apply`: inside another git work tree `git apply`
    # resolves paths against the outer repo and can exit 0 without applying.
    args = ["patch", f"-p{strip}", "--dry-run", "--no-backup-if-mismatch"]
    if fuzz is not None:
        args.append(f"--fuzz={fuzz}")
    return subprocess.run(args, cwd=tree, input=patch, capture_output=True, text=True)


def test_fla_patch_is_our_file_and_targets_wy_fast():
    (name,) = SRC["flash-linear-attention"]["patches"]
    text = (REPO / name).read_text()
    assert "+++ b/fla/ops/gated_delta_rule/wy_fast.py" in text
    assert "tl.inline_asm_elementwise" in text
    assert text.endswith("\n")


def test_fla_patch_applies_at_pinned_commit(tmp_path):
    pin = SRC["flash-linear-attention"]
    tree = upstream_tree("flash-linear-attention", "SLIME_NIX_FLA_SRC", pin["rev"], tmp_path / "fla")
    for p in pin["patches"]:
        res = patch_dry_run(tree, (REPO / p).read_text(), 1, fuzz=0)
        assert res.returncode == 0, res.stdout + res.stderr
    # The version the flake declares is the one the tree reports.
    init = (tree / "fla" / "__init__.py").read_text()
    assert f"__version__ = '{pin['version']}'" in init


def test_our_slime_patches_apply_at_pinned_commit_without_fuzz(tmp_path):
    pin = SRC["slime"]
    tree = upstream_tree("slime", "SLIME_NIX_SLIME_SRC", pin["rev"], tmp_path / "slime")
    assert pin["patches"], "the resume fix is listed"
    for p in pin["patches"]:
        text = (REPO / p).read_text()
        # The header names the upstream commits it backports.
        assert "c1fd2bac1b0b7aaa013c694ddc44411a7fd481bf" in text and "b91f59e2816339e6787181f42bb4cc20a1ce4331" in text
        res = patch_dry_run(tree, text, 1, fuzz=0)
        assert res.returncode == 0, res.stdout + res.stderr


def test_megatron_patch_from_slime_applies(tmp_path):
    slime = upstream_tree("slime", "SLIME_NIX_SLIME_SRC", SRC["slime"]["rev"], tmp_path / "slime")
    meg = upstream_tree(
        "megatron-lm", "SLIME_NIX_MEGATRON_SRC", SRC["megatron-lm"]["rev"], tmp_path / "meg"
    )
    for p in SRC["megatron-lm"]["patches_from_slime"]:
        res = patch_dry_run(meg, (slime / p).read_text(), 1)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "FAILED" not in res.stdout


def test_causal_conv1d_source_facts(tmp_path):
    """What nix/packages/causal-conv1d.nix relies on in setup.py at v1.5.4 (the
    rewrite itself is replayed on the evaluated postPatch in test_deep_eval.py)."""
    pin = SRC["causal-conv1d"]
    tree = upstream_tree("causal-conv1d", "SLIME_NIX_CAUSAL_CONV1D_SRC", pin["rev"], tmp_path / "cc")
    setup = (tree / "setup.py").read_text()
    nix_text = (NIX_DIR / "packages" / "causal-conv1d.nix").read_text()
    anchor = re.search(r"--replace-fail \\\n\s+'([^']+)' \\", nix_text).group(1)
    assert setup.count(anchor) == 1
    assert 'CAUSAL_CONV1D_FORCE_BUILD", "FALSE") == "TRUE"' in setup
    assert f'version="{pin["version"]}"' in setup or pin["version"] in (tree / "causal_conv1d" / "__init__.py").read_text()
