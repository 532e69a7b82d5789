"""tools/without-nix.sh, run for real against the pinned upstream sources
(the `git archive` tarballs of SLIME_UPSTREAM_SOURCES in place of GitHub) and
the locked stack (SLIME_STACK_PYTHON; README "Without Nix"). Its `cuda` step
(nvcc 12.8, hours of compilation) is not run here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.checks.patch_state import patch_state
from runner.checks.stack import fla_patch_present
from tests.conftest import REPO
from tests.nix.nixtools import load_tool, upstream_tree
from tests.slime_parser import stack_python

SCRIPT = REPO / "tools" / "without-nix.sh"
PINS = json.loads((REPO / "nix" / "pins.json").read_text())["sources"]
SOURCES = "slime megatron-lm flash-linear-attention causal-conv1d mbridge torch-memory-saver"


def script(src: Path, *steps: str, **env) -> subprocess.CompletedProcess:
    # Every source must come from the tarballs: a fetch from GIT_URL would fail.
    full = {**os.environ, "GIT_URL": "file:///nonexistent/{owner}+{repo}", "ONLY": SOURCES, **env}
    return subprocess.run(["bash", str(SCRIPT), str(src), *steps], env=full, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def needs():
    sources = load_tool("upstream_sources", REPO / "tools" / "upstream_sources.py")
    absent = [f"{PINS[n]['owner']}/{PINS[n]['repo']}" for n in SOURCES.split()
              if sources.find_archive(f"{PINS[n]['owner']}/{PINS[n]['repo']}", PINS[n]["rev"]) is None]
    if absent:
        pytest.skip(f"no pinned tarball of {', '.join(absent)} (set SLIME_UPSTREAM_SOURCES; .ci/run does)")
    missing = [what for what, ok in (("uv", shutil.which("uv")), ("GNU patch", shutil.which("patch"))) if not ok]
    if missing:
        pytest.skip("needs " + " and ".join(missing))
    return Path(stack_python())


@pytest.mark.slow
def test_sources_patches_and_pure_installs(needs, tmp_path):
    stack_exe = needs
    src = tmp_path / "src"
    # A stand-in for the stack's site-packages that may be written to: a copy
    # of the installed sglang 0.5.6.post1 wheel, found first on PYTHONPATH.
    site = tmp_path / "site"
    installed = subprocess.run([str(stack_exe), "-c", "import sglang, os; print(os.path.dirname(sglang.__file__))"],
                               capture_output=True, text=True, check=True).stdout.strip()
    shutil.copytree(installed, site / "sglang")
    # tools/stack-env.sh put slime's sglang.patch into the stack's sglang: take it out of
    # the copy (with slime's own patch file), so that the script has it to apply.
    sglang_patch = (upstream_tree("slime", "SLIME_NIX_SLIME_SRC", PINS["slime"]["rev"], tmp_path / "slime")
                    / "docker/patch/latest/sglang.patch").read_text()
    if patch_state(site, sglang_patch.replace("+++ b/python/", "+++ b/")).applied:
        subprocess.run(["patch", "-R", "-s", "-p2", "--no-backup-if-mismatch", "-d", str(site)], input=sglang_patch,
                       text=True, check=True)
    assert patch_state(site, sglang_patch.replace("+++ b/python/", "+++ b/")).applied == 0
    stack = tmp_path / "stack-python"
    stack.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{stack_exe}" "$@"\n')
    stack.chmod(0o755)

    r = script(src, "sources", "patch", PYTHON=str(stack))
    assert r.returncode == 0, r.stderr
    assert "already" not in r.stderr and f"== sglang in {site} <- slime's sglang.patch" in r.stderr
    pins = PINS
    for name in SOURCES.split():
        # Extracted from the pinned archive (no .git): the script records the revision.
        assert (src / name / ".pinned-rev").read_text().strip() == pins[name]["rev"], name
        archive = f"{pins[name]['owner']}+{pins[name]['repo']}-{pins[name]['rev']}.tar.gz"
        assert any(line.startswith(f"== {name}: ") and line.endswith(archive) for line in r.stderr.splitlines()), name
    for rel in pins["slime"]["patches"]:
        assert patch_state(src / "slime", (REPO / rel).read_text()).complete, rel
    megatron_patch = (src / "slime" / "docker/patch/latest/megatron.patch").read_text()
    assert patch_state(src / "megatron-lm", megatron_patch).complete
    assert fla_patch_present(src / "flash-linear-attention" / "fla") is True
    sglang_patch = (src / "slime" / "docker/patch/latest/sglang.patch").read_text()
    state = patch_state(site, sglang_patch.replace("+++ b/python/", "+++ b/"))
    # Three hunks go in with fuzz (their context differs in 0.5.6.post1), so
    # their exact post-image is not there; every other hunk is.
    assert state.hunks - state.applied == 3 and not list(site.rglob("*.rej")) and not list(site.rglob("*.orig"))
    assert f"export SLIME_DIR={src}/slime MEGATRON_DIR={src}/megatron-lm" in r.stdout

    # Again: nothing fetched twice, no patch applied twice.
    again = script(src, "sources", "patch", PYTHON=str(stack))
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already") == len(SOURCES.split()) + 4  # + slime's, Megatron's, fla's, sglang's patches

    # The pure-Python pins into an environment (a fresh venv here, not the stack).
    venv = tmp_path / "venv"
    subprocess.run(["uv", "venv", "-q", str(venv), "--python", str(stack_exe)], check=True)
    r = script(src, "install", PYTHON=str(venv / "bin" / "python"), ONLY="flash-linear-attention")
    assert r.returncode == 0, r.stderr
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    assert fla_patch_present(site_packages / "fla") is True


def test_unknown_step_is_refused_before_anything_happens(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "src"), "sources", "build"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and r.stderr.strip() == "error: unknown step 'build': use sources, patch, install, cuda or env"
    assert not (tmp_path / "src").exists()


def test_env_only_prints_the_exports(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "src"), "env"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.splitlines()[0] == f"export SLIME_DIR={tmp_path}/src/slime MEGATRON_DIR={tmp_path}/src/megatron-lm"
    assert not (tmp_path / "src").exists()


def test_a_foreign_directory_in_the_way_is_not_touched(needs, tmp_path):
    src = tmp_path / "src"
    (src / "slime").mkdir(parents=True)
    (src / "slime" / "mine.txt").write_text("keep")
    r = script(src, "sources", ONLY="slime")
    assert r.returncode == 2 and "exists and is not at 3d7599aa" in r.stderr
    assert (src / "slime" / "mine.txt").read_text() == "keep"
