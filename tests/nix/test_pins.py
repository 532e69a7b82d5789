"""Pins agree: nix/pins.json vs flake.lock vs uv.lock vs pyproject vs FACTS.md.

Pure Python (no Nix), so `nix flake check` runs it too (pins-consistent).
"""

import json
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PINS = json.loads((REPO / "nix" / "pins.json").read_text())
LOCK = json.loads((REPO / "flake.lock").read_text())
UVLOCK = tomllib.loads((REPO / "uv.lock").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
FACTS = REPO.parent / "shared" / "FACTS.md"

SRI = re.compile(r"^sha256-[A-Za-z0-9+/]{43}=$")
REV = re.compile(r"^[0-9a-f]{40}$")


def uv_versions() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pkg in UVLOCK["package"]:
        out.setdefault(pkg["name"], set()).add(pkg["version"])
    return out


# --- pins.json itself -------------------------------------------------------


def test_schema():
    assert PINS["schema"] == 1
    assert set(PINS) >= {"cuda", "python", "sources", "python_packages"}
    assert PINS["cuda"]["capabilities"] == ["9.0", "10.0"]
    assert PINS["python"]["version"] == "3.12"


@pytest.mark.parametrize("name", sorted(PINS["sources"]))
def test_source_pins_are_well_formed(name):
    src = PINS["sources"][name]
    assert REV.match(src["rev"]), "a full 40-hex revision"
    assert SRI.match(src["hash"]), "an SRI sha256"
    assert src["hash_source"].startswith(("computed", "FACTS.md")), "say where the hash came from"
    assert src["version"]


def test_patches_exist():
    for name in ("flash-linear-attention", "slime"):
        for p in PINS["sources"][name]["patches"]:
            assert (REPO / p).is_file(), p


# --- flake.lock ----------------------------------------------------------------

# (rev, narHash, lastModified) as FACTS.md lists them; a change of input must
# change this table and FACTS.md together.
FLAKE_INPUTS = {
    "nixpkgs": ("NixOS", "nixpkgs", "8fd9daa3db09ced9700431c5b7ad0e8ba199b575",
                "sha256-Ti+ZBvW6yrWWAg2szExVTwCd4qOJ3KlVr1tFHfyfi8Q=", 1778430510),
    "uv2nix": ("pyproject-nix", "uv2nix", "49dac8d206c42175b069b7c6050ba27060a21106",
               "sha256-uPeuFNSYO429IEiud3iJKWIpN/xrH2CANj1uYNiDxqc=", 1784582828),
    "pyproject-nix": ("pyproject-nix", "pyproject.nix", "7af23cfe91064865ecf2e835da28b45b3c6f49fd",
                      "sha256-SvXJcAemihifkTn4BGvyE5K1FJX9bl4U8DQ5pqKvD0s=", 1782905613),
    "pyproject-build-systems": ("pyproject-nix", "build-system-pkgs", "90ffdeee1a4929b231913df067448cd9803d3e07",
                                "sha256-8SFyOdmcG6Nsh/JzlH812lTI/v+ur06fpQhj/acNn8k=", 1786936886),
}  # fmt: skip


def test_flake_lock_shape():
    assert LOCK["version"] == 7
    root = LOCK["nodes"][LOCK["root"]]
    assert root["inputs"] == {k: k for k in FLAKE_INPUTS}
    # One nixpkgs for everything: the uv2nix family follows ours.
    for name in ("uv2nix", "pyproject-nix", "pyproject-build-systems"):
        assert LOCK["nodes"][name]["inputs"]["nixpkgs"] == ["nixpkgs"]
    assert LOCK["nodes"]["uv2nix"]["inputs"]["pyproject-nix"] == ["pyproject-nix"]
    assert LOCK["nodes"]["pyproject-build-systems"]["inputs"]["uv2nix"] == ["uv2nix"]
    assert set(LOCK["nodes"]) == set(FLAKE_INPUTS) | {"root"}


@pytest.mark.parametrize("name", sorted(FLAKE_INPUTS))
def test_flake_lock_pins(name):
    owner, repo, rev, nar, lm = FLAKE_INPUTS[name]
    locked = LOCK["nodes"][name]["locked"]
    assert locked == {
        "type": "github", "owner": owner, "repo": repo, "rev": rev,
        "narHash": nar, "lastModified": lm,
    }  # fmt: skip


def test_flake_nix_inputs_match_lock():
    text = (REPO / "flake.nix").read_text()
    assert 'nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11"' in text
    assert LOCK["nodes"]["nixpkgs"]["original"]["ref"] == "nixos-25.11"
    for name, (owner, repo, *_rest) in FLAKE_INPUTS.items():
        if name != "nixpkgs":
            assert f'url = "github:{owner}/{repo}"' in text, name


# --- uv.lock ---------------------------------------------------------------------

# Built by the flake from git pins, not from uv.lock.
FROM_GIT = {"flash-linear-attention", "causal-conv1d", "mbridge"}


def test_python_packages_match_uv_lock():
    versions = uv_versions()
    for name, want in PINS["python_packages"].items():
        if name in FROM_GIT:
            continue
        assert versions.get(name) == {want}, f"{name}: uv.lock has {versions.get(name)}, pins.json {want}"


def test_git_built_packages_match_source_pins():
    src = PINS["sources"]
    assert PINS["python_packages"]["flash-linear-attention"] == src["flash-linear-attention"]["version"]
    assert PINS["python_packages"]["causal-conv1d"] == src["causal-conv1d"]["version"]
    assert PINS["python_packages"]["mbridge"] == src["mbridge"]["version"]
    # torch_memory_saver is in uv.lock (sglang pins it) and replaced by the git
    # build of the same version.
    assert PINS["python_packages"]["torch-memory-saver"] == src["torch-memory-saver"]["version"]


def test_cuda_pin_matches_torch_wheels():
    versions = uv_versions()
    (runtime,) = versions["nvidia-cuda-runtime-cu12"]
    assert ".".join(runtime.split(".")[:2]) == PINS["cuda"]["version"]
    torch = next(p for p in UVLOCK["package"] if p["name"] == "torch")
    assert any(d["name"] == "nvidia-cuda-runtime-cu12" for d in torch["dependencies"])


def test_uv_lock_covers_both_linux_systems_and_python_312():
    markers = " ".join(UVLOCK.get("supported-markers", []))
    assert "x86_64" in markers and "aarch64" in markers
    torch = next(p for p in UVLOCK["package"] if p["name"] == "torch")
    wheels = [w["url"].rsplit("/", 1)[1] for w in torch["wheels"]]
    assert any("cp312" in w and "x86_64" in w for w in wheels)
    assert any("cp312" in w and "aarch64" in w for w in wheels)


def test_every_locked_artifact_has_a_hash():
    for pkg in UVLOCK["package"]:
        if "source" in pkg and ("registry" in pkg["source"]):
            arts = pkg.get("wheels", []) + ([pkg["sdist"]] if "sdist" in pkg else [])
            assert arts, pkg["name"]
            assert all(a.get("hash", "").startswith("sha256:") for a in arts), pkg["name"]


def test_stack_extra_pins_agree_with_pins_json():
    stack = PYPROJECT["project"]["optional-dependencies"]["stack"]
    exact = dict(
        re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(.+)$", s).groups() for s in stack if "==" in s
    )
    exact = {re.sub(r"\[.*\]", "", k).lower().replace("_", "-"): v for k, v in exact.items()}
    for name, want in exact.items():
        assert PINS["python_packages"].get(name) == want, name
    assert PYPROJECT["tool"]["uv"]["override-dependencies"] == ["nvidia-cudnn-cu12==9.16.0.29"]


# --- FACTS.md (only where the team's shared notes are present) --------------------


def test_source_pins_match_facts():
    if not FACTS.exists():
        pytest.skip(f"{FACTS} not present (only in the team's workspace)")
    text = FACTS.read_text()
    for name, src in PINS["sources"].items():
        assert src["rev"] in text, f"{name} rev not in FACTS.md"
        assert src["hash"] in text, f"{name} hash not in FACTS.md"
    for owner, repo, rev, nar, lm in FLAKE_INPUTS.values():
        assert rev in text and nar in text and str(lm) in text, repo
