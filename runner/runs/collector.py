"""Collect a run's metrics from its job log as the log grows: metrics.jsonl and progress.json.

The process that owns a run (the detached supervisor, or a foreground
`train`) runs a RunCollector in a thread: every couple of seconds it reads
what the job log gained since the last byte it consumed, parses the complete
lines (runner.runs.slime_log), appends one record per metric line to
metrics.jsonl, advances the run's progress (runner.runs.progress) and
rewrites progress.json, the few hundred bytes that `status` and `runs` read.

    <run dir>/metrics.jsonl        one JSON object a metric line:
        {"kind", "rollout_id", "step", "time", "attempt", "source", "values": {key: number or null}}
    <run dir>/progress.json        phase, rollout i of N, seconds per rollout, ETA, last reward/eval
    <run dir>/.collector.json      where the collector is: the job log's byte offset of the first
                                   line not yet consumed, metrics.jsonl's size at that point, and
                                   the progress state

Incremental and resumable: a partial last line stays unread until its
newline arrives. A collector that starts again (a restarted supervisor, or
`metrics` reading a run whose collector is gone) continues from
.collector.json: metrics.jsonl is first cut back to the size recorded with
that offset, so a record appended before a crash but after the last state
write is neither lost nor doubled.

The pure part (Collector.feed: bytes in, records out) is separate from the
file handling (RunCollector), so the parser's behaviour over split reads is
tested without files and the same code serves `metrics` read-only.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from runner.runs import progress as progress_mod
from runner.runs.listing import PROGRESS_FILE  # named where the listings read it
from runner.runs.progress import RunShape
from runner.runs.slime_log import MetricLine, TimerLine, is_candidate, parse_line

STATE_SCHEMA = 1
METRICS_FILE = "metrics.jsonl"
STATE_FILE = ".collector.json"
# Read at most this much per poll, so one poll over a huge backlog stays short.
READ_CHUNK = 8 << 20
# A line longer than this is no metric line of slime's: it is skipped, not kept in memory.
MAX_LINE = 4 << 20


def step_rollout_id(event: MetricLine, shape: RunShape, last_rollout_of_pid: dict) -> int | None:
    """The rollout a `step N` line belongs to.

    Megatron numbers steps rollout_id x steps per rollout + i (megatron_utils/model.py), so the
    rollout follows from the steps per rollout when the argv gives them. FSDP counts steps
    globally and restores the counter from its checkpoint, so its rollout is the one its own
    `rollout N` line announced just before training (fsdp_utils/actor.py logs it first)."""
    if shape.backend == "fsdp":
        announced = last_rollout_of_pid.get(str(event.origin.pid))
        if announced is not None:
            return announced
    if shape.steps_per_rollout:
        return event.number // shape.steps_per_rollout
    return None


def to_record(event: MetricLine, rollout_id: int | None, attempt: int) -> dict:
    is_step = event.kind.endswith("step")
    return {"kind": event.kind, "rollout_id": rollout_id, "step": event.number if is_step else None,
            "time": event.origin.time, "attempt": attempt, "source": event.origin.source, "values": event.values}


class Collector:
    """The job log's bytes in, metric records out; keeps the offset, the partial line and the progress."""

    def __init__(self, shape: RunShape, attempt: int = 1, state: dict | None = None) -> None:
        self.shape = shape
        state = state or {}
        self.offset: int = int(state.get("offset", 0))
        self.attempt: int = int(state.get("attempt", attempt))
        self.progress: dict = state.get("progress") or progress_mod.new_progress(shape, self.attempt)
        self.last_rollout_of_pid: dict = dict(state.get("last_rollout_of_pid") or {})
        self._pending = b""  # bytes after self.offset that form no complete line yet
        self._skipping = False  # inside an over-long line, until its newline
        if self.attempt != attempt:
            self.begin_attempt(attempt)

    def begin_attempt(self, attempt: int) -> None:
        self.attempt = attempt
        progress_mod.begin_attempt(self.progress, attempt)
        self.last_rollout_of_pid = {}

    def state(self) -> dict:
        return {"schema": STATE_SCHEMA, "offset": self.offset, "attempt": self.attempt, "progress": self.progress,
                "last_rollout_of_pid": self.last_rollout_of_pid, "shape": self.shape.to_json()}

    def feed(self, data: bytes, final: bool = False) -> list[dict]:
        """Records of the complete lines in (pending + data); with final, the last line needs no newline."""
        buffer = self._pending + data
        end = len(buffer) if final else buffer.rfind(b"\n") + 1
        complete, self._pending = buffer[:end], buffer[end:]
        records: list[dict] = []
        for line in complete.split(b"\n"):
            if self._skipping:
                self._skipping = False  # the tail of an over-long line ends here
                continue
            if line and is_candidate(line):
                records.extend(self._line(line))
        if len(self._pending) > MAX_LINE:
            # No metric line is this long: drop it rather than hold it in memory, and skip to its end.
            complete += self._pending
            self._pending = b""
            self._skipping = True
        self.offset += len(complete)
        return records

    def _line(self, line: bytes) -> list[dict]:
        event = parse_line(line.decode("utf-8", errors="replace"))
        if event is None:
            return []
        progress_mod.apply(self.progress, self.shape, event)
        if isinstance(event, TimerLine):
            return []
        if event.kind.endswith("step"):
            rollout_id = step_rollout_id(event, self.shape, self.last_rollout_of_pid)
        else:
            rollout_id = event.number
            if event.kind == "rollout":
                self.last_rollout_of_pid[str(event.origin.pid)] = rollout_id
        return [to_record(event, rollout_id, self.attempt)]


def read_records(path: Path) -> list[dict]:
    """metrics.jsonl's records; a line cut short (a writer killed mid-line) is skipped."""
    out = []
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return out


def _write_atomic(path: Path, data: dict, durable: bool) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


class RunCollector:
    """The collector of one run directory: reads job.log, writes metrics.jsonl, progress.json and
    .collector.json. `read_only` computes the same records without writing (the `metrics` command)."""

    def __init__(self, run_dir: Path, shape: RunShape, attempt: int = 1, job_log: Path | None = None,
                 read_only: bool = False) -> None:
        self.dir = Path(run_dir)
        self.job_log = job_log or self.dir / "job.log"
        self.metrics_path = self.dir / METRICS_FILE
        self.progress_path = self.dir / PROGRESS_FILE
        self.state_path = self.dir / STATE_FILE
        self.read_only = read_only
        state = self._load_state()
        self.metrics_size = int(state.get("metrics_size", 0)) if state else 0
        self.collector = Collector(shape, attempt, state)
        self._saved_offset = self.collector.offset
        self._saved_at = 0.0

    def _load_state(self) -> dict | None:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("schema") != STATE_SCHEMA:
            return None
        try:
            have = self.metrics_path.stat().st_size
            log_size = self.job_log.stat().st_size
        except OSError:
            return None  # metrics.jsonl or the log is gone: start over
        if have < int(state.get("metrics_size", 0)) or log_size < int(state.get("offset", 0)):
            return None  # metrics.jsonl cut, or the log replaced: start over
        return state

    def poll(self, final: bool = False) -> list[dict]:
        """Consume what the job log gained; returns the new records (already appended unless read-only)."""
        records: list[dict] = []
        collector = self.collector
        events, progressed = collector.progress["events"], collector.progress["last_progress"]
        try:
            with open(self.job_log, "rb") as log:
                log.seek(collector.offset + len(collector._pending))
                while True:
                    data = log.read(READ_CHUNK)
                    last = len(data) < READ_CHUNK
                    records += collector.feed(data, final=final and last)
                    if last:
                        break
        except FileNotFoundError:
            return []
        if collector.progress["last_progress"] != progressed:
            # This machine's clock when progress was last seen: the log's stamps are the logging
            # node's clock, to the second; a hang check compares with now.
            collector.progress["last_progress_seen"] = time.time()
        if not self.read_only:
            self._append(records)
            self._save(force=final or bool(records) or collector.progress["events"] != events)
        return records

    def _append(self, records: list[dict]) -> None:
        if not records and self.metrics_path.exists():
            return
        # First write of this collector: cut metrics.jsonl back to what the saved offset accounts for.
        with open(self.metrics_path, "ab") as f:
            if f.tell() != self.metrics_size:
                f.truncate(self.metrics_size)
                f.seek(self.metrics_size)
            f.write(b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records))
            f.flush()
            self.metrics_size = f.tell()

    def _save(self, force: bool) -> None:
        """State and progress.json: at each new record or Timer line, and at least every 30 s while the
        offset moves (a restart re-reads at most that much of the log)."""
        now = time.time()
        moved = self.collector.offset != self._saved_offset
        if not force and not (moved and now - self._saved_at > 30):
            return
        state = {**self.collector.state(), "metrics_size": self.metrics_size}
        _write_atomic(self.state_path, state, durable=True)
        self.write_progress(now)
        self._saved_offset, self._saved_at = self.collector.offset, now

    def progress_summary(self) -> dict:
        return progress_mod.summary(self.collector.progress)

    def write_progress(self, now: float | None = None) -> None:
        data = {"updated_at": now or time.time(), "attempt": self.collector.attempt,
                "shape": self.collector.shape.to_json(), **self.progress_summary()}
        _write_atomic(self.progress_path, data, durable=False)


class CollectorThread:
    """RunCollector.poll every `interval` seconds in a daemon thread; stop() drains the log to its end.

    A failing poll (a full disk, a removed run directory) is reported once and retried: the
    collector must never take the run down with it."""

    def __init__(self, collector: RunCollector, interval: float = 2.0, log=None,  # noqa: ANN001
                 after_poll=None) -> None:  # noqa: ANN001
        self.collector = collector
        self.interval = interval
        self.log = log
        # Called with the progress state after each poll, in this thread (the keeper's monitor).
        self.after_poll = after_poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-collector", daemon=True)
        self._reported = False

    def start(self) -> "CollectorThread":
        self._thread.start()
        return self

    def _poll(self, final: bool = False) -> None:
        try:
            self.collector.poll(final=final)
            self._reported = False
        except (OSError, ValueError) as exc:
            if not self._reported and self.log is not None:
                print(f"[runner] metrics collector: {exc}", file=self.log, flush=True)
            self._reported = True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()
            if self.after_poll is not None:
                try:
                    self.after_poll(self.collector.collector.progress)
                except Exception as exc:  # noqa: BLE001 - the monitor must not stop the collector
                    if self.log is not None:
                        print(f"[runner] monitor: {exc!r}", file=self.log, flush=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._poll(final=True)


def for_run(run_dir: Path, record: dict, log=None, interval: float = 2.0) -> CollectorThread:  # noqa: ANN001
    """The collector thread of the process that owns a run (runner.runs.supervisor.supervise), not started:
    its attempt is run.json's last (attempts, as the keeper records them)."""
    attempts = record.get("attempts")
    attempt = len(attempts) if isinstance(attempts, list) and attempts else 1
    return CollectorThread(RunCollector(Path(run_dir), RunShape.from_record(record), attempt), interval=interval,
                           log=log)


def start_for_run(run_dir: Path, record: dict, log=None) -> CollectorThread:  # noqa: ANN001
    return for_run(run_dir, record, log).start()
