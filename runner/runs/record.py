"""run.json: written atomically (temp file, fsync, rename), updated under a lock.

Several processes update one run's record (the supervisor, the job process
once Ray accepted the job, `stop` when the supervisor is gone); each update
is read-merge-write under an exclusive flock, so none loses another's
fields, and a reader never sees a half-written file.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable

from runner.runs.layout import RunPaths

SCHEMA = 1
# queued: submitted to Slurm, its batch script not yet started (runner.runs.slurm_run);
# starting: the runner is bringing Ray up; running: Ray accepted the job;
# restarting: an attempt failed and the keeper waits before the next (runner.runs.keeper);
# then one of the terminal states. "lost" is what `status` and `runs` show,
# and `stop` records, when the process that owned the run is gone without
# having recorded an end (killed, or the machine rebooted).
ACTIVE = ("queued", "starting", "running", "restarting")
TERMINAL = ("succeeded", "failed", "stopped", "lost")


def now_iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() if t is None else t))


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(paths: RunPaths) -> dict:
    with open(paths.record, encoding="utf-8") as f:
        return json.load(f)


class BadRecord(Exception):
    """run.json is missing, unreadable, or not a run record (cut short or edited by hand)."""


def load_record(paths: RunPaths) -> dict:
    """run.json as a dict, or BadRecord with a one-line reason naming the file."""
    try:
        record = read_record(paths)
    except OSError as exc:
        raise BadRecord(f"cannot read {paths.record}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BadRecord(f"{paths.record} is not valid JSON ({exc}); it was cut short or edited: restore it, "
                        f"or move {paths.dir} out of the runs dir") from None
    if not isinstance(record, dict):
        raise BadRecord(f"{paths.record} holds a JSON {type(record).__name__}, not a run record: restore it, "
                        f"or move {paths.dir} out of the runs dir")
    return record


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def update_record(paths: RunPaths, changes: dict, only_if_state: Iterable[str] | None = None) -> dict | None:
    """Merge `changes` (nested dicts merge) into run.json; None when only_if_state did not match."""
    with open(paths.record_lock, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = read_record(paths)
        if only_if_state is not None and record.get("state") not in tuple(only_if_state):
            return None
        record = _merge(record, changes)
        record["updated_at"] = now_iso()
        write_json_atomic(paths.record, record)
        return record


def create_record(paths: RunPaths, record: dict) -> None:
    paths.dir.mkdir(parents=True, exist_ok=False)
    write_json_atomic(paths.record, {"schema": SCHEMA, **record, "updated_at": now_iso()})


def relocated(record: dict, actual_dir: Path) -> dict:
    """A run directory read from elsewhere than it was written (copied, or moved): its record's paths
    inside the recorded directory (job.log, runner.log, checkpoints/, the job's --run-dir ...) as they are
    under `actual_dir`, and "relocated_from" the recorded one. Other records as they are. Pure."""
    recorded = record.get("dir")
    if not isinstance(recorded, str) or not recorded:
        return record
    old, new = os.path.normpath(recorded), os.path.normpath(str(actual_dir))
    if old == new:
        return record

    def move(node):  # noqa: ANN001, ANN202
        if isinstance(node, str):
            return new + node[len(old):] if node == old or node.startswith(old + "/") else node
        if isinstance(node, dict):
            return {k: move(v) for k, v in node.items()}
        if isinstance(node, list):
            return [move(v) for v in node]
        return node

    return {**move(record), "relocated_from": recorded}
