"""nix/packages/*.nix, nix/apps.nix and nix/cuda-wheels.nix evaluated by real
Nix against a mock of the few nixpkgs/pyproject.nix functions they call (with
nixpkgs' real `lib`), and the generated app wrapper run by bash.

This is not a build: it checks argument names, the attributes each file
produces, the exact shell/Python text of patch steps, and the wrapper's
behaviour. Needs a snapshot of nixpkgs' lib (SLIME_NIX_NIXPKGS_LIB_SRC or the
project mirror); skips without it (CI)."""

import ast
import os
import re
import subprocess

import pytest

from nixtools import NIX_DIR, PINS, nix_eval, upstream_tree


@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    nlib = upstream_tree(
        "nixpkgs-lib", "SLIME_NIX_NIXPKGS_LIB_SRC", "HEAD",
        tmp_path_factory.mktemp("nlib") / "nlib", mirror="nix-community+nixpkgs.lib",
    )  # fmt: skip
    return f"""
      let
        lib = import {nlib}/lib;
        nixLib = import {NIX_DIR}/lib.nix;
        pins = nixLib.pins;
        drv = name: attrs: attrs // {{ type = "derivation"; outPath = "/nix/store/mock-${{name}}"; name = name; }};
        mkDerivation = a: let attrs = if builtins.isFunction a then a attrs else a; in drv (attrs.pname or attrs.name or "x") attrs;
        stdenv = {{ inherit mkDerivation; }};
        fetchFromGitHub = a: drv "${{a.repo}}-src" a;
        tool = n: drv n {{ }};
        resolveBuildSystem = spec: map (n: tool "py-${{n}}") (builtins.attrNames spec);
        cudaHome = tool "cuda-home";
        common = {{
          inherit lib stdenv fetchFromGitHub resolveBuildSystem cudaHome nixLib pins;
          stdenvNoCC = stdenv;
          pyprojectHook = tool "pyproject-hook";
          ninja = tool "ninja"; which = tool "which"; patchelf = tool "patchelf";
          autoAddDriverRunpath = tool "auto-add-driver-runpath";
          slimeSrc = tool "slime-src";
        }};
        call = path: extra: let f = import path; in f (builtins.intersectAttrs (builtins.functionArgs f) (common // extra));
        base = name: drv name {{ pname = name; nativeBuildInputs = [ ]; passthru.format = "pyproject"; }}
          // {{ overrideAttrs = g: let old = base name; in old // g old; override = _: base name; }};
      in
    """


def ev(mock, expr):
    return nix_eval(mock + expr)


def test_fla(mock):
    got = ev(mock, f"""let d = call {NIX_DIR}/packages/fla.nix {{ }}; in {{
        inherit (d) pname version; patches = map toString d.patches; deps = d.passthru.dependencies;
        src = {{ inherit (d.src) owner repo rev hash; }}; }}""")
    pin = PINS["sources"]["flash-linear-attention"]
    assert got["pname"] == "flash-linear-attention" and got["version"] == pin["version"]
    assert got["src"] == {k: pin[k] for k in ("owner", "repo", "rev", "hash")}
    assert [p.rsplit("/", 1)[1] for p in got["patches"]] == [p.rsplit("/", 1)[1] for p in pin["patches"]]
    assert got["deps"] == {"torch": [], "transformers": [], "einops": []}


def test_causal_conv1d(mock, tmp_path):
    got = ev(mock, f"""let d = call {NIX_DIR}/packages/causal-conv1d.nix {{ }}; in {{
        inherit (d) pname version postPatch env; }}""")
    assert got["env"]["CAUSAL_CONV1D_FORCE_BUILD"] == "TRUE"
    assert got["env"]["TORCH_CUDA_ARCH_LIST"] == "9.0;10.0"
    assert got["env"]["CUDA_HOME"] == "/nix/store/mock-cuda-home"
    # Apply the evaluated postPatch's substitution (bash single-quoted
    # strings) to the real setup.py, where a snapshot exists.
    m = re.fullmatch(r"substituteInPlace setup.py --replace-fail \\\n\s*'([^']*)' \\\n\s*'([^']*)'\n", got["postPatch"])
    assert m, got["postPatch"]
    old, new = m.groups()
    pin = PINS["sources"]["causal-conv1d"]
    tree = upstream_tree("causal-conv1d", "SLIME_NIX_CAUSAL_CONV1D_SRC", pin["rev"], tmp_path / "cc")
    setup = (tree / "setup.py").read_text()
    assert setup.count(old) == 1
    patched = setup.replace(old, new)
    ast.parse(patched)
    line = next(l for l in patched.splitlines() if l.strip().startswith("cc_flag = [f for f"))
    ns = {"cc_flag": ["-gencode", "arch=compute_75,code=sm_75", "-lineinfo"]}
    exec(line.strip(), ns)
    assert ns["cc_flag"] == ["-lineinfo", "-gencode", "arch=compute_90,code=sm_90",
                             "-gencode", "arch=compute_100,code=sm_100",
                             "-gencode", "arch=compute_100,code=compute_100"]


def test_mbridge_removes_the_pdf(mock):
    got = ev(mock, f"(call {NIX_DIR}/packages/mbridge.nix {{ }}).src.postFetch")
    assert 'rm -f "$out/memory_estimator/MoEMemoryEstimator.pdf"' in got


def test_torch_memory_saver(mock):
    got = ev(mock, f"""let d = call {NIX_DIR}/packages/torch-memory-saver.nix {{ }}; in {{
        inherit (d) version postFixup; cuda = d.env.CUDA_HOME; rev = d.src.rev; }}""")
    assert got["version"] == "0.0.9" and got["rev"] == PINS["sources"]["torch-memory-saver"]["rev"]
    assert "/stubs" in got["postFixup"]


def test_source_builds_of_lock_packages(mock):
    fa = ev(mock, f'(call {NIX_DIR}/packages/flash-attn.nix {{ base = base "flash-attn"; }}).env')
    assert fa["FLASH_ATTENTION_FORCE_BUILD"] == "TRUE" and fa["FLASH_ATTN_CUDA_ARCHS"] == "90;100"
    te = ev(mock, f'(call {NIX_DIR}/packages/transformer-engine-torch.nix {{ base = base "te"; }}).env')
    assert te["NVTE_FRAMEWORK"] == "pytorch" and te["NVTE_CUDA_ARCHS"] == "90;100"
    sg = ev(mock, f"""let d = call {NIX_DIR}/packages/sglang.nix {{ base = base "sglang"; }}; in
        {{ patches = map toString d.patches; inherit (d) patchFlags; }}""")
    assert sg["patches"] == ["/nix/store/mock-slime-src/docker/patch/latest/sglang.patch"]
    assert sg["patchFlags"] == ["-p2", "--no-backup-if-mismatch"]


def test_megatron_takes_the_patch_from_slime(mock):
    got = ev(mock, f"map toString (call {NIX_DIR}/packages/megatron-lm.nix {{ }}).patches")
    assert got == ["/nix/store/mock-slime-src/docker/patch/latest/megatron.patch"]


def test_cuda_wheels_overlay_avoids_cycles(mock):
    # nvidia-cusolver declares cublas; cublas declares nothing nvidia.
    got = ev(mock, f"""
      let
        whl = name: deps: drv name {{ pname = name; passthru = {{ format = "wheel"; dependencies = deps; }}; }}
          // {{ overrideAttrs = g: let old = whl name deps; in old // g old; }};
        prev = {{
          torch = whl "torch" {{ nvidia-cublas-cu12 = [ ]; }};
          nvidia-cublas-cu12 = whl "nvidia-cublas-cu12" {{ }};
          nvidia-cusolver-cu12 = whl "nvidia-cusolver-cu12" {{ nvidia-cublas-cu12 = [ ]; }};
          numpy = whl "numpy" {{ }};
          sgl-kernel = whl "sgl-kernel" {{ torch = [ ]; }};
        }};
        overlay = import {NIX_DIR}/cuda-wheels.nix {{ inherit lib nixLib; autoAddDriverRunpath = tool "aadr"; }};
        final = prev // overlay final prev // {{ python.sitePackages = "lib/python3.12/site-packages"; }};
        o = overlay final prev;
      in lib.mapAttrs (_: d: {{ inherit (d) preFixup autoPatchelfIgnoreMissingDeps; }}) o
    """)
    assert set(got) == {"torch", "nvidia-cublas-cu12", "nvidia-cusolver-cu12", "sgl-kernel"}
    assert "cusolver" not in got["nvidia-cublas-cu12"]["preFixup"]
    assert "nvidia-cublas-cu12" in got["nvidia-cusolver-cu12"]["preFixup"]
    assert "torch/lib" in got["sgl-kernel"]["preFixup"] and "torch/lib" not in got["torch"]["preFixup"]
    assert got["torch"]["autoPatchelfIgnoreMissingDeps"] == ["libcuda.so.1", "libnvidia-ml.so.1"]


def test_app_wrapper_runs_the_runner(mock, tmp_path):
    """Render apps.nix's wrapper with fake store paths and run it."""
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    py = env / "bin" / "python"
    py.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$OUT/argv"; env > "$OUT/environ"\n')
    py.chmod(0o755)
    script = ev(mock, f"""
      let
        writeShellScriptBin = name: text: {{ inherit name text; }};
        apps = import {NIX_DIR}/apps.nix {{
          inherit lib nixLib;
          pkgs = {{ inherit writeShellScriptBin; }};
          runtime = {{
            env = "{env}"; megatron = "/fake/megatron"; slime = "/fake/slime";
            cudaHome = "/fake/cuda"; pinsJson = "/fake/pins.json"; findLibcuda = "{NIX_DIR}/find-libcuda.sh";
          }};
        }};
      in {{ text = apps.wrappers.slime-train-multinode.text; names = builtins.attrNames apps.apps; }}
    """)
    assert set(script["names"]) >= {"default", "train-8gpu", "train-multinode", "train-fsdp", "convert", "doctor"}
    wrapper = tmp_path / "wrapper"
    wrapper.write_text("#!/usr/bin/env bash\n" + script["text"])
    root = tmp_path / "root"
    (root / "usr/lib64").mkdir(parents=True)
    (root / "usr/lib64/libcuda.so.1").write_bytes(b"")
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SLIME_")}
    run_env.update(OUT=str(tmp_path), SLIME_RUNNER_LIBCUDA_ROOT=str(root), PYTHONPATH="/user/path")
    subprocess.run(["bash", str(wrapper), "--dry-run", "--set", "a=b c"], env=run_env, check=True)
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv == ["-m", "runner", "train", "--recipe", "megatron-multinode", "--dry-run", "--set", "a=b c"]
    got = dict(line.split("=", 1) for line in (tmp_path / "environ").read_text().splitlines() if "=" in line)
    assert got["SLIME_DIR"] == "/fake/slime" and got["MEGATRON_DIR"] == "/fake/megatron"
    assert got["PYTHONPATH"] == "/fake/megatron:/fake/slime:/user/path"
    assert got["SLIME_RUNNER_PINS"] == "/fake/pins.json"
    assert got["SLIME_RUNNER_LIBCUDA_SOURCE"] == "search"
    assert got["LD_LIBRARY_PATH"].split(":")[0] == str(root / "usr/lib64")
    assert got["PATH"].startswith(f"{env}/bin:/fake/cuda/bin:")
