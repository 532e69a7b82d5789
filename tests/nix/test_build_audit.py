"""The build-environment audit (tools/nix-build-audit/build_env_audit.py):
each source build's real setup.py in an environment shaped like its
derivation, recording compilers, every compile replayed with -E.

Its parts are tested on their own (the nvcc model on commands the audit
recorded from flash-attn's and causal-conv1d's real setup.py, the recorder
with this machine's g++); then the audit runs against the flake: it must
fail on Transformer Engine's environment as it stood before its include
dirs were added (the pre-fix environment: the derivation without
CPLUS_INCLUDE_PATH, and with cuDNN's dir only) and pass on the flake as it
is. Those need the deep evaluation's sources (SLIME_UPSTREAM_SOURCES),
g++, ninja, uv, and PyPI or a filled wheel cache (tools/wheel_cache.py);
without them they skip, saying which.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from nixtools import REPO, load_tool

AUDIT_DIR = REPO / "tools" / "nix-build-audit"
audit = load_tool("build_env_audit", AUDIT_DIR / "build_env_audit.py")
nvcc_model = load_tool("nvcc_model", AUDIT_DIR / "nvcc_model.py")
replay = load_tool("replay", AUDIT_DIR / "replay.py")
deep_eval = load_tool("deep_eval", REPO / "tools" / "nix-deep-eval" / "deep_eval.py")

# What torch 2.9.1's BuildExtension handed nvcc for one flash-attn file, as
# the audit recorded it (paths shortened).
FLASH_ATTN_NVCC = [
    "--generate-dependencies-with-compile", "--dependency-output", "/b/flash_bwd.o.d",
    "-I/s/csrc/flash_attn", "-I/s/csrc/cutlass/include", "-I/store/torch/include", "-I/store/cuda-home/include",
    "-c", "-c", "/s/csrc/flash_attn/src/flash_bwd_hdim128_bf16_causal_sm80.cu", "-o", "/b/flash_bwd.o",
    "-D__CUDA_NO_HALF_OPERATORS__", "--expt-relaxed-constexpr", "--compiler-options", "'-fPIC'", "-O3",
    "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "--expt-extended-lambda", "--use_fast_math",
    "-gencode", "arch=compute_90,code=sm_90", "-gencode", "arch=compute_100,code=sm_100", "--threads", "2",
    "-DTORCH_EXTENSION_NAME=flash_attn_2_cuda", "-ccbin", "gcc",
]  # fmt: skip


def test_nvcc_model_parses_a_recorded_flash_attn_compile():
    c = nvcc_model.parse(FLASH_ATTN_NVCC)
    assert c.source == "/s/csrc/flash_attn/src/flash_bwd_hdim128_bf16_causal_sm80.cu"
    assert c.output == "/b/flash_bwd.o" and c.std == "-std=c++17"
    assert c.targets == [("90", ["sm_90"]), ("100", ["sm_100"])]
    assert nvcc_model.emitted(c) == (["sm_90", "sm_100"], [])
    # Preprocessor flags keep their order; the code-generation ones are gone.
    assert c.preprocessor == [
        "-I", "/s/csrc/flash_attn", "-I", "/s/csrc/cutlass/include", "-I", "/store/torch/include",
        "-I", "/store/cuda-home/include", "-D", "__CUDA_NO_HALF_OPERATORS__", "-U", "__CUDA_NO_HALF_OPERATORS__",
        "-D", "TORCH_EXTENSION_NAME=flash_attn_2_cuda",
    ]  # fmt: skip
    assert c.host_options == ["-fPIC"]
    assert c.toggles == ["-D__CUDACC_RELAXED_CONSTEXPR__", "-D__CUDACC_EXTENDED_LAMBDA__"]
    passes = nvcc_model.passes(c, ["/nvcc/include"], compiler="gcc")
    assert [name for name, _ in passes] == ["host", "device sm_90", "device sm_100"]
    host = passes[0][1]
    assert host[:4] == ["gcc", "-std=c++17", "-D__CUDA_ARCH_LIST__=900,1000", "-D__NV_LEGACY_LAUNCH"]
    assert "-D__CUDA_ARCH__=900" in passes[1][1] and "-DCUDA_DOUBLE_MATH_FUNCTIONS" in passes[1][1]
    assert "-D__CUDA_ARCH__" not in " ".join(host)
    for _, argv in passes:
        assert argv[-4:] == ["-include", "cuda_runtime.h", "-m64", c.source]
        assert "-D__CUDACC_VER_MINOR__=8" in argv and "-I/nvcc/include" in argv
        assert not {"-gencode", "--threads", "--use_fast_math", "-ccbin", "-o"} & set(argv)


def test_nvcc_model_sees_causal_conv1d_ptx():
    """causal-conv1d's flags after the derivation's postPatch (gencodeFlags)."""
    c = nvcc_model.parse(["-c", "x.cu", "-o", "x.o", "-gencode", "arch=compute_90,code=sm_90", "-gencode",
                          "arch=compute_100,code=sm_100", "-gencode", "arch=compute_100,code=compute_100",
                          "--threads", "4"])
    assert nvcc_model.emitted(c) == (["sm_90", "sm_100"], ["compute_100"])
    assert [n for n, _ in nvcc_model.passes(c, [])] == ["host", "device sm_90", "device sm_100", "device sm_100"]


def test_gcc_compile_becomes_preprocess_only():
    argv = ["-MMD", "-MF", "a.o.d", "-I/x", "-c", "a.cpp", "-o", "a.o", "-O3", "-std=c++17"]
    assert replay.gcc_preprocess_argv(argv) == ["-I/x", "-E", "a.cpp", "-O3", "-std=c++17"]


def test_recorder_records_replays_and_fakes_outputs(tmp_path):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not installed")
    src = tmp_path / "a.cpp"
    src.write_text('#include "present.h"\nint f() { return 1; }\n')
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "present.h").write_text("#pragma once\n")
    log = tmp_path / "log.jsonl"
    env = {**os.environ, "BUILD_AUDIT_LOG": str(log), "CPLUS_INCLUDE_PATH": str(tmp_path / "inc")}
    rec = [sys.executable, str(AUDIT_DIR / "recorder.py")]
    subprocess.run([*rec, "g++", gxx, "-c", "a.cpp", "-o", "out/a.o", "-MMD", "-MF", "out/a.o.d"],
                   cwd=tmp_path, env=env, check=True)
    lines = [json.loads(l) for l in log.read_text().splitlines()]
    assert [l["type"] for l in lines] == ["command", "replay"]
    assert lines[0]["env"] == {"CPLUS_INCLUDE_PATH": str(tmp_path / "inc")}
    assert lines[1]["ok"] and str(tmp_path / "inc" / "present.h") in lines[1]["headers"]
    assert (tmp_path / "out" / "a.o").read_text() == ""  # nothing compiled
    # The same compile without the variable: the header is missing, and the replay says so.
    log.unlink()
    env.pop("CPLUS_INCLUDE_PATH")
    subprocess.run([*rec, "g++", gxx, "-c", "a.cpp", "-o", "out/a.o"], cwd=tmp_path, env=env, check=True)
    bad = [json.loads(l) for l in log.read_text().splitlines()][1]
    assert not bad["ok"] and "present.h: No such file or directory" in bad["error"]
    # Queries go to the real compiler; the stand-in nvcc answers -V as nvcc 12.8.93.
    out = subprocess.run([*rec, "g++", gxx, "-dumpversion"], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip()[0].isdigit()
    out = subprocess.run([*rec, "nvcc", "none", "-V"], env=env, capture_output=True, text=True, check=True)
    assert "release 12.8, V12.8.93" in out.stdout


def test_substitute_in_place_fails_on_a_missing_pattern(tmp_path):
    f = tmp_path / "setup.py"
    f.write_text("a = 1\na = 1\n")
    tool = [sys.executable, str(AUDIT_DIR / "substitute_in_place.py"), str(f)]
    assert subprocess.run([*tool, "--replace-fail", "a = 1", "b = 2"]).returncode == 0
    assert f.read_text() == "b = 2\nb = 2\n"
    assert subprocess.run([*tool, "--replace-fail", "zzz", "y"], capture_output=True).returncode == 1


# --- the audit against the flake ---------------------------------------------------


def repo_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "result*"))
    return dest


def evaluated(repo: Path = REPO) -> dict:
    try:
        res = deep_eval.evaluate("x86_64-linux", repo=repo)
    except deep_eval.SourcesMissing as exc:
        pytest.skip(str(exc))
    assert res.ok, res.error
    return res.data


def run_audit(deep: dict, tmp_path: Path, only: list[str] | None = None):
    try:
        return audit.audit(deep, only, tmp_path / "work", cores=2)
    except audit.CannotRun as exc:
        pytest.skip(f"build audit cannot run here: {exc}")
    except (urllib.error.URLError, FileNotFoundError) as exc:
        pytest.skip(f"build audit needs PyPI (or a filled wheel cache) and uv: {exc}")


TE = "transformer-engine-torch"
TE_NIX = Path("nix/packages/transformer-engine-torch.nix")
INCLUDE_PATH = re.compile(r"\n    CPLUS_INCLUDE_PATH = .*?;\n", re.S)


def te_environment_before_the_fix(repo: Path, keep: str | None) -> None:
    """The pre-fix environment (before TE got its include dirs): the
    derivation without CPLUS_INCLUDE_PATH, or with only KEEP in it."""
    text = (repo / TE_NIX).read_text()
    assert len(INCLUDE_PATH.findall(text)) == 1, "TE's CPLUS_INCLUDE_PATH attribute moved: update this fixture"
    new = "\n" if keep is None else f'\n    CPLUS_INCLUDE_PATH = "{keep}";\n'
    (repo / TE_NIX).write_text(INCLUDE_PATH.sub(lambda _: new, text))


@pytest.mark.slow
@pytest.mark.parametrize(("keep", "missing"), [(None, "cudnn.h"), ("${cudnnPath}/include", "nccl.h")],
                         ids=["no-include-dirs", "cudnn-only"])
def test_audit_fails_on_te_as_it_stood(tmp_path, keep, missing):
    """Before its include dirs were added, every TE source failed on cudnn.h;
    with cuDNN's alone, on nccl.h (the issue's reproduction)."""
    repo = repo_copy(tmp_path)
    te_environment_before_the_fix(repo, keep)
    deep = evaluated(repo)
    assert ("CPLUS_INCLUDE_PATH" in deep["python"][TE]["attrs"]) == (keep is not None)
    (result,), _ = run_audit(deep, tmp_path, [TE])
    assert result.setup_ok, result.setup_tail  # setup.py itself runs; the compiles fail
    assert result.replays and not any(r.ok for r in result.replays)
    assert all(f"{missing}: No such file or directory" in r.error for r in result.replays), \
        {r.label: r.error for r in result.replays}
    assert sum(1 + len(r.same_as) for r in result.replays) == result.compiles["g++ compile"] == 28
    assert not result.ok


@pytest.mark.slow
def test_audit_passes_on_the_flake(tmp_path):
    """Every source build of the flake: setup.py runs, every compile
    preprocesses from the build's inputs only, every -l resolves, and the
    emitted code is what docs/nix.md says."""
    results, cuda_findings = run_audit(evaluated(), tmp_path)
    by = {r.name.rsplit("-", 1)[0]: r for r in results}
    assert set(by) == {TE, "flash-attn", "causal-conv1d", "torch-memory-saver"}
    for r in results:
        assert r.ok, (r.name, r.problems, r.setup_tail)
        assert r.replays and all(x.ok for x in r.replays)
        assert not r.foreign_headers
    assert by[TE].compiles == {"g++ compile": 28, "g++ link": 1}
    te_headers = by[TE].headers
    assert te_headers.get("nvidia-cudnn-cu12-9.16.0.29") and te_headers.get("nvidia-nccl-cu12-2.27.5")
    assert (by["flash-attn"].sass, by["flash-attn"].ptx) == (["sm_90", "sm_100"], [])
    assert (by["causal-conv1d"].sass, by["causal-conv1d"].ptx) == (["sm_90", "sm_100"], ["compute_100"])
    for name in (TE, "torch-memory-saver"):
        assert (by[name].sass, by[name].ptx) == ([], []), name  # host code only
    assert not any(f.startswith("PROBLEM") for f in cuda_findings), cuda_findings
    # -lcuda links the stub in lib/stubs (CUDA_HOME/lib has none, below).
    tms_links = [x for resolved, _ in by["torch-memory-saver"].links for x in resolved if x.startswith("-lcuda ")]
    assert tms_links and all(x.endswith("/lib/stubs/libcuda.so") for x in tms_links), tms_links


def test_cuda_home_has_no_stub_libcuda_a_loader_would_find(tmp_path):
    """nixpkgs' cuda_cudart links its libcuda stub into $stubs/lib (and adds
    a libcuda.so.1): joined into CUDA_HOME as they come, lib/ holds a stub
    libcuda.so.1 that torch_memory_saver's RUNPATH (CUDA_HOME/lib) reaches.
    cudaHome's postBuild removes them; the link stub stays in lib/stubs."""
    cuda_home = load_tool("cuda_home", AUDIT_DIR / "cuda_home.py")
    deep = evaluated()
    try:
        uvlock = audit.standin_python.uv_lock()
        wheels = audit.toolkit_wheels(uvlock)
    except audit.CannotRun as exc:
        pytest.skip(str(exc))
    except urllib.error.URLError as exc:
        pytest.skip(f"needs PyPI (or a filled wheel cache): {exc}")
    attrs = deep["packages"]["cudaHome"]["attrs"]
    post_build = attrs["buildCommand"].removeprefix("mkdir -p $out; ")
    assert "rm -f $out/lib/libcuda.so $out/lib/libcuda.so.*" in post_build
    for name, text in (("flake", post_build), ("without-the-rm", post_build.replace("rm -f $out/lib/libcuda", ": "))):
        store = tmp_path / name
        out = cuda_home.build({"attrs": {**attrs, "postBuild": text}, "out": deep["packages"]["cudaHome"]["out"]},
                              store, wheels)
        assert (out / "lib64" / "stubs" / "libcuda.so").exists()  # what -lcuda links
        found = cuda_home.reachable_driver_stubs(out)
        if name == "flake":
            assert found == []
        else:
            assert found == ["lib/libcuda.so", "lib/libcuda.so.1", "lib64/libcuda.so", "lib64/libcuda.so.1"]
