"""doctor's checks of the installed stack against the real things:

- slime's Megatron patch in MEGATRON_DIR: real Megatron-LM 3714d81d trees,
  unpatched and patched with slime 3d7599aa's real patch (from the pinned
  tarballs, SLIME_UPSTREAM_SOURCES), and verbatim excerpts of them
  (tests/data/megatron_patch), checked against those trees;
- fla's device detection: the real fla 9714c595 imported by the real locked
  stack (torch 2.9.1, Triton 3.5.1; SLIME_STACK_PYTHON) in a subprocess, on this CPU machine,
  with GPUs stood in by recorded nvidia-smi output; the likely causes are
  matched against the exceptions real Triton raises.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner.checks.fla_device import FlaDevice, compiler_error, likely_cause
from runner.checks.patch_state import parse_unified_diff, patch_state
from runner.checks.rows import FAIL, OK, SKIP, WARN
from runner.checks.stack import fla_device_check, libcuda_check, megatron_patch_check
from tests.conftest import DATA, REPO
from tests.gpu_recordings import record
from tests.hf_fixtures import make_base_folder
from tests.nix.nixtools import upstream_tree
from tests.slime_parser import stack_python

PINS = json.loads((REPO / "nix" / "pins.json").read_text())
SLIME_REV = PINS["sources"]["slime"]["rev"]
MEGATRON_REV = PINS["sources"]["megatron-lm"]["rev"]
FLA_REV = PINS["sources"]["flash-linear-attention"]["rev"]
PATCH_REL = PINS["sources"]["megatron-lm"]["patches_from_slime"][0]
FIXTURE = DATA / "megatron_patch"
PIN_ENV = {"SLIME_RUNNER_PINS": str(REPO / "nix" / "pins.json")}


# The variables tests/nix use for a tree or clone given by hand (the tarballs come first).
SOURCE_VARIABLES = {"slime": "SLIME_NIX_SLIME_SRC", "megatron-lm": "SLIME_NIX_MEGATRON_SRC",
                    "flash-linear-attention": "SLIME_NIX_FLA_SRC"}


def snapshot(name: str, rev: str, dest: Path, *paths: str) -> Path:
    """PATHS of the pinned upstream tree of `name` (nix/pins.json), copied to dest, or skip."""
    tree = upstream_tree(name, SOURCE_VARIABLES[name], rev, dest.parent / f"{dest.name}-src")
    for rel in paths:
        copy = shutil.copytree if (tree / rel).is_dir() else shutil.copy2
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        copy(tree / rel, dest / rel)
    return dest


@pytest.fixture(scope="module")
def real_trees(tmp_path_factory):
    """slime 3d7599aa, and Megatron-LM 3714d81d's megatron/ unpatched and patched."""
    base = tmp_path_factory.mktemp("upstream")
    if shutil.which("patch") is None:
        pytest.skip("GNU patch not installed")
    slime = snapshot("slime", SLIME_REV, base / "slime", "train.py", "docker/patch")
    unpatched = snapshot("megatron-lm", MEGATRON_REV, base / "megatron-unpatched", "megatron")
    patched = snapshot("megatron-lm", MEGATRON_REV, base / "megatron-patched", "megatron")
    # patch -p1, not git apply: git apply inside another work tree can exit 0
    # having applied nothing (FACTS.md).
    with open(slime / PATCH_REL) as f:
        subprocess.run(["patch", "-s", "-p1", "-d", str(patched)], stdin=f, check=True)
    return slime, unpatched, patched


# slime's Megatron patch -------------------------------------------------------------

def test_real_unpatched_megatron_fails_with_the_fix(real_trees):
    slime, unpatched, _ = real_trees
    check = megatron_patch_check("megatron", str(slime), str(unpatched), PIN_ENV)
    assert check.status == FAIL
    assert "is not patched" in check.detail and "--use-gated-attention" in check.detail
    assert check.fix == f"patch -p1 -d {unpatched} < {slime}/{PATCH_REL}"
    assert "\n" not in check.detail + check.fix


def test_real_patched_megatron_passes_every_hunk(real_trees):
    slime, _, patched = real_trees
    check = megatron_patch_check("megatron", str(slime), str(patched), PIN_ENV)
    hunks = (slime / PATCH_REL).read_text().count("\n@@ ")
    assert hunks > 40
    assert check.status == OK and f"({hunks} hunks)" in check.detail


def test_real_partly_patched_megatron_names_the_file(real_trees, tmp_path):
    slime, unpatched, patched = real_trees
    partial = tmp_path / "partial"
    shutil.copytree(patched, partial, symlinks=True)
    rel = "megatron/training/arguments.py"
    shutil.copy(unpatched / rel, partial / rel)
    check = megatron_patch_check("megatron", str(slime), str(partial), PIN_ENV)
    assert check.status == FAIL and rel in check.detail and "partial patch" in check.detail
    state = patch_state(partial, (slime / PATCH_REL).read_text())
    assert state.applied == state.hunks - 2 and state.missing_files == (rel,)


def test_doctor_cli_reports_an_unpatched_megatron(real_trees, tmp_path):
    from tests.conftest import run_cli

    slime, unpatched, _ = real_trees
    env = {**record(tmp_path / "h100", 8), **PIN_ENV}
    base = make_base_folder(tmp_path / "models")
    r = run_cli("doctor", "--json", "--no-imports", "--base-folder", str(base), "--slime-dir", str(slime),
                "--megatron-dir", str(unpatched), env=env)
    rows = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert r.returncode == 1
    assert rows["slime + Megatron-LM"]["status"] == "ok"
    assert rows["Megatron-LM patch"]["status"] == "fail"
    assert rows["Megatron-LM patch"]["fix"].startswith("patch -p1 -d ")


def test_fixture_is_a_verbatim_excerpt_of_the_real_files(real_trees):
    slime, unpatched, patched = real_trees
    rel = "megatron/training/arguments.py"
    for kind, tree in (("unpatched", unpatched), ("patched", patched)):
        excerpt = (FIXTURE / kind / rel).read_text().split("# [... lines 1407-1760 of the original file left out ...]\n")
        assert len(excerpt) == 2
        assert all(part in (tree / rel).read_text() for part in excerpt), kind
    assert (FIXTURE / "slime" / PATCH_REL).read_text() in (slime / PATCH_REL).read_text()


def test_fixture_unpatched_and_patched(tmp_path):
    """On CI: the same check on verbatim excerpts of the real files."""
    slime = FIXTURE / "slime"
    unpatched = FIXTURE / "unpatched"
    check = megatron_patch_check("megatron", str(slime), str(unpatched), PIN_ENV)
    assert check.status == FAIL and "is not patched" in check.detail
    check = megatron_patch_check("megatron", str(slime), str(FIXTURE / "patched"), PIN_ENV)
    assert check.status == OK and "(2 hunks)" in check.detail
    # One hunk applied, the other not: partial.
    partial = tmp_path / "megatron" / "training"
    partial.mkdir(parents=True)
    text = (FIXTURE / "patched" / "megatron/training/arguments.py").read_text()
    text = text.replace("    group.add_argument('--use-gated-attention', action='store_true',\n"
                        "                       help='If set, use gated attention as in Qwen3Next')\n", "")
    (partial / "arguments.py").write_text(text)
    check = megatron_patch_check("megatron", str(slime), str(tmp_path), PIN_ENV)
    assert check.status == FAIL and "1/2 hunks" in check.detail


def test_without_the_patch_file_the_flag_it_adds_is_checked(tmp_path):
    no_patch = tmp_path / "slime-without-docker"
    no_patch.mkdir()
    check = megatron_patch_check("megatron", str(no_patch), str(FIXTURE / "unpatched"), PIN_ENV)
    assert check.status == FAIL and "--use-gated-attention" in check.detail and PATCH_REL in check.fix
    check = megatron_patch_check("megatron", str(no_patch), str(FIXTURE / "patched"), PIN_ENV)
    assert check.status == OK and "checked only the --use-gated-attention flag" in check.detail


def test_fsdp_and_missing_megatron_are_not_judged():
    assert megatron_patch_check("fsdp", None, None, PIN_ENV).status == SKIP
    assert megatron_patch_check("megatron", None, None, PIN_ENV).status == SKIP


def test_diff_parser_reads_hunks_by_their_line_counts():
    # A removed line that starts with "--" must not end the hunk.
    diff = ("--- a/x.sql\n+++ b/x.sql\n@@ -1,3 +1,3 @@\n keep\n--- old comment\n+-- new comment\n keep2\n"
            "@@ -10 +10 @@\n-a\n+b\n\\ No newline at end of file\n")
    hunks = parse_unified_diff(diff)
    assert [(h.path, h.before, h.after) for h in hunks] == [
        ("x.sql", ("keep", "-- old comment", "keep2"), ("keep", "-- new comment", "keep2")),
        ("x.sql", ("a",), ("b",)),
    ]


# libcuda -----------------------------------------------------------------------------

def test_libcuda_row_judges_the_private_driver_dir_the_process_loads(tmp_path):
    host = tmp_path / "usr-lib64"
    host.mkdir()
    (host / "libcuda.so.1").write_bytes(b"driver")
    links = tmp_path / "driver-libs"
    links.mkdir()
    (links / "libcuda.so.1").symlink_to(host / "libcuda.so.1")
    env = {"SLIME_RUNNER_LIBCUDA_DIR": str(host), "SLIME_RUNNER_LIBCUDA_SOURCE": "ldconfig",
           "SLIME_RUNNER_DRIVER_LIBS": str(links)}
    check = libcuda_check(env)
    assert check.status == OK and f"linked in {links}" in check.detail and "ldconfig" in check.detail
    (host / "libcuda.so.1").unlink()  # driver removed since the wrapper ran: the link dangles
    assert libcuda_check(env).status == FAIL


# fla's device detection ------------------------------------------------------------

@pytest.fixture(scope="module")
def fla_src(tmp_path_factory):
    return snapshot("flash-linear-attention", FLA_REV, tmp_path_factory.mktemp("fla") / "src", "fla")


def stack_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIME_RUNNER_", "TRITON_"))}
    env.pop("CC", None)
    env.update(extra)
    return env


def test_no_gpu_seen_skips_the_fla_probe():
    assert fla_device_check(False, {}).status == SKIP


def test_fla_not_importable_is_reported_not_hidden():
    # This interpreter has no fla: a real subprocess says so.
    check = fla_device_check(True, stack_env(PYTHONPATH=""), python=sys.executable)
    assert check.status == WARN and "No module named 'fla'" in check.detail


@pytest.mark.slow
def test_doctor_fails_when_real_fla_says_cpu_on_a_gpu_machine(fla_src, tmp_path):
    """The real fla 9714c595 in the real locked stack, on this CPU machine,
    says 'cpu'; with 8 H100s seen (recorded nvidia-smi) doctor must fail."""
    python = stack_python()
    env = stack_env(**record(tmp_path / "h100", 8), **PIN_ENV, PYTHONPATH=f"{REPO}{os.pathsep}{fla_src}")
    base = make_base_folder(tmp_path / "models")
    r = subprocess.run([python, "-m", "runner", "doctor", "--json", "--base-folder", str(base)],
                       capture_output=True, text=True, env=env, cwd=str(REPO), timeout=600)
    rows = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert r.returncode == 1
    assert rows["import fla"]["status"] == "ok"
    fla = rows["fla device"]
    assert fla["status"] == "fail"
    assert fla["detail"].startswith("fla's device detection says 'cpu' on a GPU machine: torch sees no CUDA device")
    assert "\n" not in fla["detail"] + fla["fix"]


def triton_driver_start(tmp_path: Path, env: dict, wrap: list[str] | None = None) -> FlaDevice:
    """Start real Triton's CUDA driver pieces the way its driver does (the
    launcher utilities, built with the C compiler against libcuda), in the
    locked stack, and describe what it raises with the probe's own code."""
    code = ("import json, runpy, sys\n"
            f"describe = runpy.run_path({str(REPO / 'runner' / 'checks' / 'fla_device.py')!r})['describe']\n"
            "try:\n"
            "    from triton.backends.nvidia.driver import CudaUtils\n"
            "    CudaUtils()\n"
            "    print(json.dumps(''))\n"
            "except BaseException as e:\n"
            "    print(json.dumps(describe(e)))\n")
    env = {**env, "TRITON_CACHE_DIR": str(tmp_path / "triton-cache"), "TRITON_HOME": str(tmp_path)}
    r = subprocess.run([*(wrap or []), stack_python(), "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.stdout, r.stderr
    return FlaDevice("cpu", torch_cuda=True, triton_error=json.loads(r.stdout.splitlines()[-1]),
                     compiler_error=compiler_error(r.stderr))


@pytest.mark.slow
def test_causes_match_what_real_triton_raises(tmp_path):
    libdir = tmp_path / "no-libcuda"
    libdir.mkdir()
    # No C compiler anywhere.
    env = stack_env(PATH=str(tmp_path / "empty-path"), TRITON_LIBCUDA_PATH=str(libdir))
    result = triton_driver_start(tmp_path, env)
    cause, fix = likely_cause(result, env)
    assert cause.startswith("no C compiler") and "CC" in fix, result
    # A compiler, but TRITON_LIBCUDA_PATH holds no libcuda.so: -lcuda fails.
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for the -lcuda case")
    env = stack_env(CC=cc, TRITON_LIBCUDA_PATH=str(libdir))
    result = triton_driver_start(tmp_path, env)
    assert "cannot find -lcuda" in result.compiler_error, result
    cause, fix = likely_cause(result, env)
    assert cause.startswith("Triton cannot link its launcher with -lcuda") and "TRITON_LIBCUDA_PATH" in fix
    # No TRITON_LIBCUDA_PATH: Triton asks /sbin/ldconfig, which lists no libcuda here.
    env = stack_env(CC=cc)
    result = triton_driver_start(tmp_path, env)
    assert "libcuda.so cannot found" in result.triton_error, result
    cause, fix = likely_cause(result, env)
    assert cause.startswith("Triton cannot locate libcuda") and "TRITON_LIBCUDA_PATH" in fix
    # No /sbin/ldconfig at all (NixOS): hide it in a private mount namespace.
    empty = tmp_path / "empty-sbin"
    empty.mkdir()
    sbin = os.path.realpath("/sbin")
    wrap = ["unshare", "-m", "sh", "-c", f'mount --bind "{empty}" "{sbin}" && exec "$0" "$@"']
    if shutil.which("unshare") is None or subprocess.run([*wrap, "true"], capture_output=True).returncode:
        pytest.skip("cannot hide /sbin/ldconfig here (unshare -m needs privileges)")
    result = triton_driver_start(tmp_path, env, wrap)
    assert result.triton_error.startswith("FileNotFoundError") and "/sbin/ldconfig" in result.triton_error
    cause, _ = likely_cause(result, env)
    assert cause.startswith("Triton cannot locate libcuda")
