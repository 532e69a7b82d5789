"""Listing many runs quickly: the few fields of run.json that `runs` and `status` need, and progress.json.

A run.json is 10-20 KB (argv, environment, processes, software); `runs` and
`status` over 2,000 runs spent most of their time decoding them whole. Here
only the top-level fields a listing shows are decoded: run.json is written
with indent=2 (runner.runs.record), so a top-level key is a line that starts
with exactly two spaces and a quote, and json's raw_decode reads its value
where it starts, leaving the rest of the file undecoded. A file not in that
layout, or cut short, is decoded whole by load_record, which names what is
wrong with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from runner.runs.layout import RUN_JSON, RunPaths, _stamp
from runner.runs.record import BadRecord, load_record

# Written by the collector (runner.runs.collector); named here so that a listing imports no parser.
PROGRESS_FILE = "progress.json"

LISTED = ("id", "recipe", "state", "created_at", "started_at", "ended_at", "exit_code", "dir")
# Read only for a run recorded as active: whether its owner is still alive (runner.runs.identity).
ACTIVE_ONLY = ("supervisor",)
_DECODER = json.JSONDecoder()


def summary(paths: RunPaths) -> dict:
    """The LISTED fields of a run's run.json (BadRecord as load_record raises it)."""
    try:
        with open(os.path.join(paths.dir, RUN_JSON), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise
    except OSError:
        return load_record(paths)  # raises BadRecord naming the file
    if not (text.startswith("{\n") and text.rstrip().endswith("}")):
        return _listed(load_record(paths))
    out = {}
    try:
        for key in LISTED:
            _decode(text, key, out)
        if out.get("state") in ("starting", "running", "restarting"):
            for key in ACTIVE_ONLY:
                _decode(text, key, out)
    except ValueError:
        return _listed(load_record(paths))
    if "id" not in out:
        return _listed(load_record(paths))
    return out


def _decode(text: str, key: str, out: dict) -> None:
    needle = f'\n  "{key}": '
    at = text.find(needle)
    if at >= 0:
        out[key], _ = _DECODER.raw_decode(text, at + len(needle))


def _listed(record: dict) -> dict:
    return {k: record[k] for k in LISTED + ACTIVE_ONLY if k in record}


def run_dirs(root: Path) -> list[RunPaths]:
    """The run directories under root (those holding a run.json), oldest first: runner.runs.layout.list_runs,
    with one scandir and no stat per entry (a missing run.json is found when it is read)."""
    try:
        with os.scandir(root) as entries:
            names = [e.name for e in entries if e.is_dir()]
    except OSError:
        return []
    return [RunPaths(root / name) for name in sorted(names, key=lambda n: (_stamp(n), n))]


def summaries(root: Path, warn) -> list[tuple[RunPaths, dict]]:  # noqa: ANN001 - warn: print to stderr
    """(run directory, listed fields) of every run under root, oldest first; an unreadable run.json is
    skipped with a one-line warning, as runner.runs.arguments.readable_runs does."""
    out = []
    for paths in run_dirs(root):
        try:
            out.append((paths, summary(paths)))
        except FileNotFoundError:
            continue  # not a run directory
        except BadRecord as exc:
            warn(f"warning: skipped run {paths.id}: {exc}")
    return out


def read_progress(paths: RunPaths) -> dict | None:
    """progress.json as the run's collector last wrote it, or None (none yet, or an older run)."""
    try:
        with open(os.path.join(paths.dir, PROGRESS_FILE), "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
