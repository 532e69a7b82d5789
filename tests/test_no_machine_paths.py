"""No path of the machines this project was developed on, anywhere in it.

Code, tests, tools and docs take their inputs from documented variables
(SLIME_UPSTREAM_SOURCES, SLIME_STACK_PYTHON, BASE_FOLDER, ...) or from folders
given on the command line; recorded outputs (docs/smoke-runs.json, docs/runs/)
write `<checkout>` and `<python>` for the recording machine's paths.

What counts as a machine path:
  - anything in the development workspace (the top-level `work` folder): the
    worktrees, CI clones, the stack's venv, the snapshot mirror;
  - the snapshot mirror by its folder name (dot mirror), wherever it is mounted;
  - the home of the machines' user, root (caches, the stack env), except the
    layout of slime's own docker image and scripts, which the recipes and
    their golden argv reproduce: slime and Megatron-LM in root's home, and
    BASE_FOLDER=root's home with the model and the two datasets;
  - the lent GPU machines' interpreter (torch's venv in /opt).

The patterns below are spelled so that this file does not match them itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

# slime's image (docker/Dockerfile: WORKDIR root's home, slime and Megatron-LM cloned
# there) and scripts/run-qwen3-next-80B-A3B*.sh (BASE_FOLDER=root's home).
SLIME_LAYOUT = r"(?:slime|Megatron-LM|Qwen3-Next-80B-A3B-Thinking[\w.-]*|dapo-math-17k|aime-2024)(?![\w.-])"
MACHINE_PATH = re.compile(
    r"(?<![\w.~/-])/wor[k]/"               # the development workspace (not a work/ folder further down)
    r"|\.mirro[r]\b"                       # the snapshot mirror
    rf"|/roo[t]/(?!{SLIME_LAYOUT})"        # root's home, but for slime's layout
    r"|/opt/torc[h]\b"                     # the lent GPU machines' Python
)

SKIPPED_DIRS = {".git", "__pycache__", ".pytest_cache", ".venv", "node_modules", ".carry", "result"}


def machine_paths(text: str) -> list[str]:
    """Each line of `text` that names a machine path, as 'LINE: text'."""
    return [f"{n}: {line.strip()[:160]}" for n, line in enumerate(text.splitlines(), 1) if MACHINE_PATH.search(line)]


def project_files() -> list[Path]:
    """Every file of the project: git's tracked and not-ignored files, or, without git
    (a source archive, the Nix store), every file outside caches and build outputs."""
    if (REPO / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout.decode()
        return [REPO / rel for rel in out.split("\0") if rel and (REPO / rel).is_file()]
    files = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        files += [Path(root) / n for n in names]
    return files


def test_the_detector_knows_a_machine_path_from_slimes_layout():
    flagged = [
        "/" + "work/ci-main/tests",
        "python3 tools/verify-pins.py --clones /" + "work/." + "mirror",
        "SLIME_GIT=~/." + "mirror/THUDM+slime/repo",
        '"fla.path": "/' + 'work/main/.carry/smoke/fla-plain/fla"',
        "SLIME_STACK_PYTHON=/" + "root/.cache/slime-qwen3-next/stack-env/bin/python",
        "/" + "root/slime-src/slime",
        "$ /" + "opt/torch/.venv/bin/python3 -m runner.runs.ray_job",
    ]
    kept = [
        "export SLIME_DIR=/root/slime MEGATRON_DIR=/root/Megatron-LM BASE_FOLDER=/root",
        '"PYTHONPATH": "/root/Megatron-LM/",',
        "--hf-checkpoint /root/Qwen3-Next-80B-A3B-Thinking_torch_dist/ --prompt-data /root/dapo-math-17k/x.jsonl",
        "BASE_FOLDER = <checkout>/models (from default)",
        "the nix-community/nixpkgs.lib mirror has no 25.11 branch",
        "/tmp/slime-ray-191f5d91/runtime_env.json",
        "a worker at /home/user/work/run",
    ]
    assert [t for t in flagged if not machine_paths(t)] == []
    assert [t for t in kept if machine_paths(t)] == []


def test_no_machine_path_in_code_tests_tools_or_docs():
    files = project_files()
    assert REPO / "runner" / "cli.py" in files and REPO / "docs" / "smoke-runs.json" in files
    found = []
    for path in files:
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        found += [f"{path.relative_to(REPO)}:{hit}" for hit in machine_paths(data.decode("utf-8", "replace"))]
    assert found == [], "machine paths (use a documented variable, an argument or a placeholder):\n" + "\n".join(found)
