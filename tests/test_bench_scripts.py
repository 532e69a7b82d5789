"""bench/: benchmark scripts live outside the installed package and take their paths as arguments."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner.planner.smoke_compare import compare_run, load_runs
from tests.conftest import REPO
from tests.nix.nixtools import PINS, load_tool

BENCH = REPO / "bench"


def test_no_benchmark_or_lent_machine_paths_in_the_package():
    assert not list((REPO / "runner").rglob("*.sh"))
    for path in (REPO / "runner").rglob("*.py"):
        assert ".carry" not in path.read_text(), path


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.sh")))
def test_bench_script_parses_and_asks_for_its_paths(script):
    subprocess.run(["bash", "-n", str(BENCH / script)], check=True)
    r = subprocess.run(["bash", str(BENCH / script)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode != 0 and "usage: bench/" in r.stderr, r.stderr


def _gpu_run(label: str, offload: bool) -> dict:
    run = load_runs(REPO / "docs" / "smoke-runs.json")[0]
    run = {**run, "label": label, "fsdp_cpu_offload": offload, "losses": [12.0, 7.0, 3.0], "loss_floor": 2.29,
           "checks": [{"name": "loss falls", "status": "ok"}]}
    if offload:
        run.update(host_rss_base_bytes=[3 << 30], host_rss_end_bytes=[30 << 30], host_rss_peak_bytes=[40 << 30],
                   peak_mem_allocated_bytes=[14 << 30], peak_mem_reserved_bytes=[20 << 30])
    return run


def test_smoke_summary_feeds_the_planner_comparison(tmp_path):
    paths = []
    for label, offload in (("plain", False), ("offload", True)):
        paths.append(tmp_path / f"{label}.json")
        paths[-1].write_text(json.dumps(_gpu_run(label, offload)))
    (tmp_path / "failed.json").write_text("")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(BENCH / "smoke_summary.py"), str(out), *map(str, paths),
                        str(tmp_path / "failed.json")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    runs = load_runs(out / "smoke-runs.json")
    assert [x["label"] for x in runs] == ["plain", "offload"]
    assert compare_run(runs[1])["host_estimated_gib"] > 0
    text = (out / "summary.md").read_text()
    assert "| offload |" in text and "| failed | failed: no result" in text
    assert "host memory held per rank" in text
    assert "- plain (task floor 2.290): 12.000 7.000 3.000" in text


def test_prepare_builds_the_carry_from_the_pinned_sources(tmp_path):
    sources = load_tool("upstream_sources", REPO / "tools" / "upstream_sources.py")
    fla, cc = (sources.find_archive(f"{pin['owner']}/{pin['repo']}", pin["rev"])
               for pin in (PINS["sources"]["flash-linear-attention"], PINS["sources"]["causal-conv1d"]))
    if fla is None or cc is None:
        pytest.skip("no pinned fla / causal-conv1d tarballs (set SLIME_UPSTREAM_SOURCES; .ci/run does)")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("transformers-5.0.0rc0-py3-none-any.whl", "huggingface_hub-1.2.3-py3-none-any.whl",
                 "tokenizers-0.22.1-cp39-abi3-manylinux_2_17_x86_64.whl"):
        (wheels / name).write_bytes(b"")
    carry = tmp_path / "carry"
    r = subprocess.run(["bash", str(BENCH / "smoke_offload.sh"), "prepare", str(carry), str(fla), str(cc),
                        str(wheels)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    setup = (carry / "causal-conv1d" / "setup.py").read_text()
    assert re.findall(r"arch=compute_\d+,code=sm_\d+", setup) == ["arch=compute_90,code=sm_90"]
    assert PINS["sources"]["flash-linear-attention"]["rev"].startswith("9714c595")
    # patches/ applied: patch refuses to apply it a second time.
    for p in sorted((REPO / "patches").glob("*.patch")):
        again = subprocess.run(["patch", "-p1", "--dry-run", "--forward", "-s"], input=p.read_text(),
                               capture_output=True, text=True, cwd=carry / "fla-patched")
        assert again.returncode != 0 and "previously applied" in again.stdout + again.stderr
    assert sorted(x.name for x in (carry / "whl").iterdir()) == sorted(x.name for x in wheels.iterdir())


def _wheel(path: Path, name: str) -> Path:
    """A minimal pure-Python wheel that pip installs."""
    import zipfile

    whl = path / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr(f"{name}/__init__.py", "VALUE = 1\n")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return whl


def _install_site(carry: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", 'source bench/lib/smoke-site.bash && install_smoke_site "$0" "$1"',
                           str(carry), str(site)], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.parametrize("build", ["so-tarball", "wheel", "split-wheel"])
def test_smoke_site_installs_the_carried_builds(tmp_path, build):
    """bench/lib/smoke-site.bash, shared by the GPU scripts: each form of causal-conv1d build, plus CARRY/whl."""
    import tarfile

    carry, site = tmp_path / "carry", tmp_path / "site"
    (carry / "whl").mkdir(parents=True)
    (carry / "prebuilt").mkdir()
    _wheel(carry / "whl", "pinned_transformers")
    if build == "so-tarball":
        pkg = carry / "causal-conv1d" / "causal_conv1d"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        so = tmp_path / "causal_conv1d_cuda.cpython-312-x86_64-linux-gnu.so"
        so.write_bytes(b"\x7fELF")
        with tarfile.open(carry / "prebuilt" / "cc_so.tgz.aa", "w:gz") as t:
            t.add(so, arcname=so.name)
        expected = ["causal_conv1d/__init__.py", so.name]
    else:
        whl = _wheel(tmp_path, "causal_conv1d")
        if build == "wheel":
            (carry / "prebuilt" / whl.name).write_bytes(whl.read_bytes())
        else:  # as `build` returns a wheel over the size limit: parts to concatenate
            data = whl.read_bytes()
            (carry / "prebuilt" / f"{whl.name}.part-aa").write_bytes(data[:100])
            (carry / "prebuilt" / f"{whl.name}.part-ab").write_bytes(data[100:])
        expected = ["causal_conv1d/__init__.py"]
    r = _install_site(carry, site)
    assert r.returncode == 0, r.stderr
    for rel in expected + ["pinned_transformers/__init__.py"]:
        assert (site / rel).is_file(), rel


def test_smoke_site_without_a_build_says_what_to_do(tmp_path):
    carry = tmp_path / "carry"
    (carry / "prebuilt").mkdir(parents=True)
    r = _install_site(carry, tmp_path / "site")
    assert r.returncode == 1 and "run bench/smoke_offload.sh build first" in r.stdout
