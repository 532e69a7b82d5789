"""Every package of uv.lock that the flake builds from its sdist has a build
system the build can see.

uv2nix gives an sdist only pyprojectHook (it does not read the sdist's own
pyproject.toml) and builds it with `uv build --no-build-isolation`: a
setup.py then fails with "No module named 'setuptools'". So each sdist-built
package is either declared in pyproject.toml's
[tool.uv.extra-build-dependencies] (which uv2nix reads) or built by a file of
nix/packages/ that resolves its build system. Pure Python: CI runs it.
(tests/nix/test_deep_eval.py checks the same on the evaluated derivations.)
"""

from __future__ import annotations

import re
import tomllib

import pytest

from nixtools import NIX_DIR, REPO

UVLOCK = tomllib.loads((REPO / "uv.lock").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
EXTRA_BUILD = PYPROJECT["tool"]["uv"].get("extra-build-dependencies", {})

# Lock packages that nix/python.nix builds from source itself, and the file
# that gives each its build system.
OVERLAY_BUILT = {
    "sglang": "sglang.nix",  # rebuilt from the sdist to take slime's patch
    "flash-attn": "flash-attn.nix",
    "transformer-engine-torch": "transformer-engine-torch.nix",
    "torch-memory-saver": "torch-memory-saver.nix",  # slime's git pin replaces the lock's
}

BUILD_BACKENDS = {"setuptools", "hatchling", "flit-core", "poetry-core", "pdm-backend", "maturin", "scikit-build-core", "meson-python"}

# What the flake's Python 3.12 on glibc 2.40 (nixos-25.11) accepts.
PYTHON = (3, 12)
GLIBC = (2, 40)


def wheel_fits(filename: str, arch: str) -> bool:
    """Is this wheel installable by CPython 3.12 on glibc Linux `arch`?"""
    name = filename[: -len(".whl")]
    py_tags, abi_tags, plat_tags = name.split("-")[-3:]
    def py_ok(t: str) -> bool:
        # py3, pyXY (any CPython >= 3.Y), cp312, cp3Y with the stable ABI.
        m = re.fullmatch(r"(py|cp)(\d)(\d*)", t)
        if not m or int(m[2]) != PYTHON[0]:
            return False
        minor = int(m[3]) if m[3] else 0
        if m[1] == "py":
            return minor <= PYTHON[1]
        return minor == PYTHON[1] or ("abi3" in abi_tags and minor <= PYTHON[1])

    abi_ok = any(a in ("none", "abi3", f"cp{PYTHON[0]}{PYTHON[1]}") for a in abi_tags.split("."))

    def plat_ok(p: str) -> bool:
        if p == "any":
            return True
        if p == f"linux_{arch}" or p in (f"manylinux1_{arch}", f"manylinux2010_{arch}", f"manylinux2014_{arch}"):
            return True
        m = re.fullmatch(rf"manylinux_(\d+)_(\d+)_{arch}", p)
        return bool(m) and (int(m[1]), int(m[2])) <= GLIBC

    return any(py_ok(t) for t in py_tags.split(".")) and abi_ok and any(plat_ok(p) for p in plat_tags.split("."))


def sdist_built(arch: str) -> set[str]:
    """Registry packages with an sdist and no wheel that fits."""
    out = set()
    for pkg in UVLOCK["package"]:
        if "registry" not in pkg.get("source", {}):
            continue
        wheels = [w["url"].rsplit("/", 1)[1] for w in pkg.get("wheels", [])]
        # Neither a wheel nor an sdist: a marker keeps it off this system
        # (uv2nix would stop otherwise; the deep evaluation checks that).
        if not any(wheel_fits(w, arch) for w in wheels) and "sdist" in pkg:
            out.add(pkg["name"])
    return out


def test_wheel_fits():
    assert wheel_fits("torch-2.9.1-cp312-cp312-manylinux_2_28_x86_64.whl", "x86_64")
    assert not wheel_fits("torch-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl", "x86_64")
    assert not wheel_fits("torch-2.9.1-cp312-cp312-manylinux_2_28_aarch64.whl", "x86_64")
    assert not wheel_fits("x-1-cp312-cp312-manylinux_2_41_x86_64.whl", "x86_64")
    assert wheel_fits("six-1.17.0-py2.py3-none-any.whl", "aarch64")
    assert wheel_fits("x-1-cp39-abi3-manylinux2014_x86_64.whl", "x86_64")
    assert wheel_fits("interegular-0.3.3-py37-none-any.whl", "x86_64")
    assert not wheel_fits("multiprocess-0.70.18-py313-none-any.whl", "x86_64")
    assert not wheel_fits("x-1-cp312-cp312-win_amd64.whl", "x86_64")


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_every_sdist_built_package_has_a_known_build_system(arch):
    built = sdist_built(arch) | set(OVERLAY_BUILT)
    unknown = sorted(built - set(EXTRA_BUILD) - set(OVERLAY_BUILT))
    assert not unknown, (
        f"uv.lock has sdist-only packages for {arch} with no build system the flake can see: {unknown}; "
        "add each to [tool.uv.extra-build-dependencies] in pyproject.toml with the backend its "
        "setup.py/pyproject.toml needs (or build it in nix/packages/)"
    )


def test_the_known_sdists_are_the_ones_in_uv_lock():
    """No stale entry: each declared package really is built from its sdist."""
    assert set(EXTRA_BUILD) <= sdist_built("x86_64") | sdist_built("aarch64")
    assert sdist_built("x86_64") == {"antlr4-python3-runtime", "flash-attn", "pylatexenc", "transformer-engine-torch"}


def test_declared_build_systems_name_a_backend():
    for name, reqs in EXTRA_BUILD.items():
        names = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in reqs}
        assert names & BUILD_BACKENDS, f"{name}: {reqs} names no build backend"


@pytest.mark.parametrize("name", sorted(OVERLAY_BUILT))
def test_overlay_built_packages_resolve_their_build_system(name):
    text = (NIX_DIR / "packages" / OVERLAY_BUILT[name]).read_text()
    block = re.search(r"resolveBuildSystem \{(.*?)\}", text, re.S)
    assert block and "setuptools = [ ];" in block.group(1), name
