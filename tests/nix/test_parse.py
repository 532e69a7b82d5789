"""Every .nix file of the repo parses with real Nix."""

import subprocess

import pytest

from nixtools import REPO, nix_instantiate

_SKIP = {".git", ".venv", "node_modules", ".pytest_cache"}
NIX_FILES = sorted(
    p
    for p in REPO.rglob("*.nix")
    if not _SKIP & set(p.relative_to(REPO).parts) and not p.relative_to(REPO).parts[0].startswith("result")
)


def test_there_are_nix_files():
    names = {p.relative_to(REPO).as_posix() for p in NIX_FILES}
    assert {"flake.nix", "nix/python.nix", "nix/apps.nix", "nix/checks.nix"} <= names


@pytest.mark.parametrize("path", NIX_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_parses(path):
    res = subprocess.run([nix_instantiate(), "--parse", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_one_derivation_per_package_file():
    # nix/packages/ holds one derivation a file, each a function of its inputs.
    for path in (REPO / "nix" / "packages").glob("*.nix"):
        text = path.read_text()
        assert text.lstrip().startswith("#"), f"{path.name}: starts with a comment saying why"
        assert text.count("stdenv.mkDerivation") + text.count("overrideAttrs") + text.count(
            "fetchFromGitHub {"
        ) + text.count("symlinkJoin {") >= 1, path.name
