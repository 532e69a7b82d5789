"""Where runs live and how they are named. Pure, except listing a directory."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from runner.locations import DEFAULT_BASE_FOLDER, Setting

RUNS_ENV = "SLIME_RUNS_DIR"
RUN_JSON = "run.json"


@dataclass(frozen=True)
class RunPaths:
    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def record(self) -> Path:
        return self.dir / RUN_JSON

    @property
    def record_lock(self) -> Path:
        return self.dir / ".run.json.lock"

    @property
    def job_log(self) -> Path:
        return self.dir / "job.log"

    @property
    def runner_log(self) -> Path:
        return self.dir / "runner.log"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"


def resolve_runs_dir(flag: str | None, base_folder: str | None, environ: Mapping[str, str],
                     cwd: str | None = None) -> Setting:
    """--runs-dir, else $SLIME_RUNS_DIR, else BASE_FOLDER/runs (flag, $BASE_FOLDER, ./models)."""
    cwd = cwd or os.getcwd()

    def absolute(path: str) -> str:
        return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))

    if flag:
        return Setting(absolute(flag), "--runs-dir")
    if environ.get(RUNS_ENV):
        return Setting(absolute(environ[RUNS_ENV]), f"${RUNS_ENV}")
    if base_folder:
        return Setting(absolute(os.path.join(base_folder, "runs")), "--base-folder")
    if environ.get("BASE_FOLDER"):
        return Setting(absolute(os.path.join(environ["BASE_FOLDER"], "runs")), "$BASE_FOLDER")
    return Setting(absolute(os.path.join(DEFAULT_BASE_FOLDER, "runs")), "default")


def new_run_id(recipe: str, now: float, suffix: str) -> str:
    """Readable and sortable: megatron-8gpu-20261129-013012-a3f2."""
    return f"{recipe}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{suffix}"


class RunNotFound(Exception):
    pass


_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def list_runs(root: Path) -> list[RunPaths]:
    """Run directories (those holding a run.json), oldest first by name's time stamp."""
    try:
        entries = [RunPaths(e) for e in root.iterdir() if (e / RUN_JSON).is_file()]
    except OSError:
        return []
    return sorted(entries, key=lambda p: (_stamp(p.id), p.id))


def _stamp(run_id: str) -> str:
    match = re.search(r"(\d{8}-\d{6})-[0-9a-f]+$", run_id)
    return match.group(1) if match else ""


def find_run(root: Path, ref: str) -> RunPaths:
    """RUN is a run id, a unique prefix of one, or the path of a run directory."""
    as_path = Path(ref).expanduser()
    if (as_path / RUN_JSON).is_file():
        return RunPaths(as_path.resolve())
    if _SAFE.match(ref) and (root / ref / RUN_JSON).is_file():
        return RunPaths(root / ref)
    matches = [p for p in list_runs(root) if p.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise RunNotFound(f"{ref!r} matches {len(matches)} runs under {root} "
                          f"({', '.join(p.id for p in matches[:3])}...): give more of the id")
    raise RunNotFound(f"no run {ref!r} under {root}: `python -m runner runs` lists them "
                      f"(--runs-dir, --base-folder, $SLIME_RUNS_DIR or $BASE_FOLDER choose where to look)")


def read_from(path: str | Path, offset: int) -> tuple[bytes, int]:
    """What a growing file (a run's log) holds past `offset`, and the offset after it; nothing while the
    file cannot be read (not written yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return b"", offset
    return data, offset + len(data)
