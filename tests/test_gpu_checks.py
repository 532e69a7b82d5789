"""runner.checks.gpu_kernels (doctor --gpu): Blackwell-patch detection, no-GPU behaviour, and the real checks on a GPU."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

HAS_TORCH = importlib.util.find_spec("torch") is not None

# The seed's patch, as it reads once applied to fla 9714c595 (only the marker matters).
PATCHED_LINE = textwrap.dedent("""\
    b_dk += tl.inline_asm_elementwise(
        asm="mov.f32 $0, $1;",
        constraints="=r,r",
        args=[tl.dot(tl.trans(b_dA), b_kb)],
        dtype=tl.float32,
        is_pure=True,
        pack=1,
    )
""")
PLAIN_LINE = "b_dk += tl.dot(tl.trans(b_dA), b_kb)\n"


def fake_fla(tmp_path, body: str):
    """An fla tree with just the file the check reads (its __init__ would import triton: it must not run)."""
    d = tmp_path / "fla" / "ops" / "gated_delta_rule"
    d.mkdir(parents=True)
    (tmp_path / "fla" / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (d / "wy_fast.py").write_text(body)
    return tmp_path


def patch_check(path, capability):
    code = ("import json, runner.checks.gpu_kernels as g; "
            f"print(json.dumps(g.check_blackwell_patch({capability!r}).to_json()))")
    env = {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{REPO}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("capability,patched,status", [
    ((10, 0), False, "fail"),
    ((10, 0), True, "ok"),
    ((9, 0), False, "ok"),
    ((9, 0), True, "ok"),
])
def test_blackwell_patch_detection(tmp_path, capability, patched, status):
    root = fake_fla(tmp_path, PATCHED_LINE if patched else PLAIN_LINE)
    c = patch_check(root, capability)
    assert c["status"] == status
    assert ("present" if patched else "absent") in c["detail"]
    assert ("need" if capability[0] == 10 else "not needed") in c["detail"]
    if status == "fail":
        assert c["fix"]


def test_blackwell_patch_without_fla(tmp_path):
    assert patch_check(tmp_path, (10, 0))["status"] == "fail"  # a B200 without fla can't train Qwen3-Next
    assert patch_check(tmp_path, (9, 0))["status"] == "skip"


def test_seed_patch_applies_marker():
    """The marker the check looks for is what the seed's patch adds."""
    seed = REPO.parent / "shared" / "seed" / "qwen3-next-80B-A3B.md"
    if not seed.exists():
        pytest.skip("seed document not present in this checkout")
    text = seed.read_text()
    import runner.checks.gpu_kernels as g

    added = [line for line in text.splitlines() if line.startswith("+") and g.BLACKWELL_MARK in line]
    assert added, "the seed's fla patch no longer adds tl.inline_asm_elementwise"


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_no_gpu_is_a_skip_not_a_crash():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    import runner.checks.gpu_kernels as g

    checks = g.run_gpu_checks()
    assert [c.status for c in checks] == ["skip"]


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_TORCH and __import__("torch").cuda.is_available()), reason="needs a CUDA GPU")
def test_gpu_checks_pass_on_a_gpu():
    import runner.checks.gpu_kernels as g

    checks = g.run_gpu_checks()
    names = [c.name for c in checks]
    assert "fla chunk_gated_delta_rule fwd+bwd" in names and "causal-conv1d fwd+bwd" in names
    assert not [c for c in checks if c.blocking], [c.to_json() for c in checks]


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_doctor_gpu_compiles_into_the_kernel_cache_of_smoke_and_train(tmp_path, no_gpu_env):
    """doctor --gpu through the real CLI on CPU: the kernel checks run (and skip: no GPU) in an environment that
    carries smoke's and train's kernel cache (runner.kernel_cache: --kernel-cache, else the environment, else
    the per-user default), and doctor says which."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the kernels would run")
    from tests.conftest import run_cli

    def rows(*extra, env=None):
        r = run_cli("doctor", "--gpu", "--json", "--no-imports", "--base-folder", str(tmp_path / "models"), *extra,
                    env={**no_gpu_env, "XDG_CACHE_HOME": str(tmp_path / "xdg"), **(env or {})}, timeout=300)
        return {c["name"]: c for c in json.loads(r.stdout)["checks"]}

    flag = tmp_path / "kernels"
    got = rows("--kernel-cache", str(flag))
    assert got["kernel cache"]["detail"] == "; ".join(
        f"{var} = {flag}/{sub} (from --kernel-cache)"
        for var, sub in (("TRITON_CACHE_DIR", "triton"), ("FLASHINFER_WORKSPACE_BASE", "flashinfer"),
                         ("TORCH_EXTENSIONS_DIR", "torch_extensions")))
    gpu = got["CUDA GPU"]  # written by the GPU checks from the environment they ran in
    assert gpu["status"] == "skip"
    assert (f"TRITON_CACHE_DIR={flag}/triton, FLASHINFER_WORKSPACE_BASE={flag}/flashinfer, "
            f"TORCH_EXTENSIONS_DIR={flag}/torch_extensions") in gpu["detail"]

    default = tmp_path / "xdg" / "slime-qwen3-next" / "kernels"
    got = rows(env={"TRITON_CACHE_DIR": str(tmp_path / "mine")})
    assert f"TRITON_CACHE_DIR = {tmp_path / 'mine'} (from $TRITON_CACHE_DIR)" in got["kernel cache"]["detail"]
    assert f"TORCH_EXTENSIONS_DIR = {default}/torch_extensions (from default)" in got["kernel cache"]["detail"]
    assert (f"TRITON_CACHE_DIR={tmp_path / 'mine'}, FLASHINFER_WORKSPACE_BASE={default}/flashinfer, "
            f"TORCH_EXTENSIONS_DIR={default}/torch_extensions") in got["CUDA GPU"]["detail"]

    dry = run_cli("doctor", "--gpu", "--dry-run", "--json", "--kernel-cache", str(flag), env=no_gpu_env)
    assert f"--gpu compiles kernels into TRITON_CACHE_DIR = {flag}/triton (from --kernel-cache)" in \
        json.loads(dry.stdout)["notes"]
    assert not flag.exists() and not default.exists()  # nothing compiled, nothing created
