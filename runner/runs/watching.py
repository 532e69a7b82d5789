"""Read what a run's collector keeps (metrics.jsonl, progress.json) for `metrics`, `report` and
`status`: the thin file layer under those commands. Reads only.

A run whose collector is behind (its owner was killed, or the run predates
the collector) is caught up here without writing: the job log is parsed from
where .collector.json says the collector stopped (from the start when there
is none), the same way the collector would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from runner.runs.collector import METRICS_FILE, RunCollector
from runner.runs.html_report import RunView
from runner.runs.layout import RunPaths
from runner.runs.progress import RunShape, summary


def current(paths: RunPaths, record: dict) -> tuple[list[dict], dict]:
    """(every metric record so far, the progress summary), from metrics.jsonl and the job log."""
    reader = RunCollector(paths.dir, RunShape.from_record(record), read_only=True)
    base: list[dict] = []
    if reader.metrics_size:
        with open(paths.dir / METRICS_FILE, "rb") as f:
            data = f.read(reader.metrics_size)
        for line in data.splitlines():
            try:
                base.append(json.loads(line))
            except ValueError:
                continue
    records = base + reader.poll(final=record.get("state") not in ("starting", "running", "restarting"))
    return records, summary(reader.collector.progress)


def incidents(paths: RunPaths) -> tuple[str, ...]:
    try:
        return tuple(sorted(p.name for p in (paths.dir / "incidents").iterdir()))
    except OSError:
        return ()


def checkpoint_age(record: dict, now: float | None = None) -> tuple[str | None, float | None]:
    """(the tracker's iteration, seconds since it was written) of the run's --save folder."""
    from runner.runs.checkpoints import TRACKER

    folder = (record.get("checkpoint") or {}).get("save")
    if not folder:
        return None, None
    try:
        tracker = Path(folder) / TRACKER
        return tracker.read_text().strip() or None, (now or time.time()) - tracker.stat().st_mtime
    except OSError:
        return None, None


def run_view(paths: RunPaths, record: dict, state: str) -> RunView:
    records, progress = current(paths, record)
    return RunView(record, records, state, progress, incidents(paths), checkpoint_age(record)[0])
