"""tools/wheel_needed_audit.py: its ELF reader against readelf (CI), and the
audit of the locked wheels (where the deep evaluation runs and the wheels'
records are cached: run `python3 tools/wheel_needed_audit.py` once, it
downloads them from PyPI)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nixtools import NIX_DIR, REPO, load_tool

audit = load_tool("wheel_needed_audit", REPO / "tools" / "wheel_needed_audit.py")
deep_eval = load_tool("deep_eval", REPO / "tools" / "nix-deep-eval" / "deep_eval.py")
TABLE = json.loads((NIX_DIR / "wheel-libraries.json").read_text())


def elf_files():
    """A few dynamic ELF files of this machine: the interpreter and its extension modules."""
    out = [Path(sys.executable).resolve()]
    out += sorted(Path(p) for p in Path(sys.modules["json"].__file__).parents[1].glob("lib-dynload/*.so"))[:5]
    return [p for p in out if p.is_file()]


@pytest.mark.parametrize("path", elf_files(), ids=lambda p: p.name)
def test_read_elf_matches_readelf(path):
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf (binutils) not installed")
    out = subprocess.run([readelf, "-dW", str(path)], capture_output=True, text=True, check=True).stdout
    elf = audit.read_elf(path)
    assert elf is not None
    assert elf.needed == re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    soname = re.findall(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    assert elf.soname == (soname[0] if soname else None)


def test_read_elf_of_a_non_elf_file(tmp_path):
    f = tmp_path / "x.so"
    f.write_text("not an ELF file")
    assert audit.read_elf(f) is None


@pytest.fixture(scope="module")
def locked():
    try:
        res = deep_eval.evaluate("x86_64-linux")
    except deep_eval.SourcesMissing as exc:
        pytest.skip(str(exc))
    assert res.ok, res.error
    try:
        return res.data, *audit.audit("x86_64-linux", res.data, audit.default_cache(), offline=True)
    except audit.NotCached as exc:
        pytest.skip(f"wheel {exc} not audited here yet (run python3 tools/wheel_needed_audit.py once)")


def test_every_needed_library_of_the_locked_wheels_resolves(locked):
    _, verdicts, _ = locked
    assert {n: v.unresolved for n, v in verdicts.items() if v.unresolved} == {}
    # What the table is for: numactl for sgl-kernel, torch/lib for torchao.
    assert verdicts["sgl-kernel"].how.get("nixpkgs numactl")
    assert verdicts["torchao"].how.get("torch/lib")
    assert set(verdicts["nvidia-nvshmem-cu12"].ignored) == set(TABLE["wheels"]["nvidia-nvshmem-cu12"]["ignore"])


def test_the_audit_fails_without_the_table_entries(locked):
    deep, _, _ = locked
    table = copy.deepcopy(TABLE)
    del table["wheels"]["sgl-kernel"]["nixpkgs"]
    table["wheels"]["nvidia-nvshmem-cu12"]["ignore"].pop("libmpi.so.40")
    verdicts, _ = audit.audit("x86_64-linux", deep, audit.default_cache(), table=table, offline=True)
    assert set(verdicts["sgl-kernel"].unresolved) == {"libnuma.so.1"}
    assert set(verdicts["nvidia-nvshmem-cu12"].unresolved) == {"libmpi.so.40"}


def test_the_overlay_gives_each_wheel_what_the_table_says(locked):
    deep, _, _ = locked
    py = deep["python"]
    for name, spec in TABLE["wheels"].items():
        if name not in py or py[name]["format"] != "wheel":
            continue
        attrs = py[name]["attrs"]
        inputs = [p.split("-", 1)[1] for p in attrs["buildInputs"]]
        for attr in spec.get("nixpkgs", []):
            pname = {"python312": "python3"}.get(attr, attr)  # nixpkgs' pname for that attribute
            assert any(i.startswith(f"{pname}-") for i in inputs), (name, attr, inputs)
        runpaths = [p.split("-", 1)[1] for p in attrs.get("appendRunpaths", [])]
        assert [r.split("-stand-in")[0] for r in runpaths] == spec.get("runpath_nixpkgs", []), name
