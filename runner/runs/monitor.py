"""The keeper's eye on one attempt: ticks after each poll of the metrics collector.

It reads what the collector already parsed (runner.runs.progress's state:
the phase, the first rollout this attempt logged, when progress was last
seen) and the checkpoint tracker's file, and decides:

  - a resume misalignment: the first rollout this attempt logged is not the
    one after the checkpoint it resumed (runner.runs.alignment); the run is
    stopped at once, before slime trains on to its next save and overwrites
    a checkpoint;
  - a hang: no progress (slime's metric lines, Timer ends, a change of the
    tracker) for longer than the phase allows (runner.runs.hang);
  - a new checkpoint: the tracker changed; the retention rule and the disk
    check run in a thread of their own (deleting a checkpoint can take
    minutes on a parallel file system).

The collector's thread calls tick(); the process that owns the run reads
`verdict` (a line, or None) and stops the job when it is set.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

from runner.runs.checkpoints import TRACKER
from runner.runs.hang import HangLimits, hang_verdict

Notify = Callable[..., None]  # notify(event, message, **fields)


class Verdict:
    def __init__(self, reason: str, line: str) -> None:
        self.reason = reason  # "hang" or "misalignment"
        self.line = line

    def __repr__(self) -> str:
        return f"Verdict({self.reason!r}, {self.line!r})"


def tracker_signature(save_dir: str | None) -> tuple | None:
    if not save_dir:
        return None
    try:
        st = os.stat(Path(save_dir) / TRACKER)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Monitor:
    def __init__(self, *, limits: HangLimits, resumed: dict | None, save_dir: str | None,
                 global_dataset: bool, keep: int | None, checkpoint_bytes: int | None,
                 baseline_progress_seen: float | None, notify: Notify | None = None,
                 log: Callable[[str], None] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        # What this attempt resumed: {"iteration", "backend", "start_rollout_id"} (None: not a resume).
        self.resumed = resumed
        self.save_dir = save_dir
        self.global_dataset = global_dataset
        self.keep = keep
        self.checkpoint_bytes = checkpoint_bytes
        self.notify = notify or (lambda *a, **k: None)
        self.log = log or (lambda line: None)
        self.clock = clock
        self.started = clock()
        self.baseline_seen = baseline_progress_seen
        self.verdict: Verdict | None = None
        self.progressed = False
        self.first_rollout: int | None = None
        self.last_rollout: int | None = None  # the last rollout whose training ended in this attempt
        self.phase: str | None = None
        self._phase_seen = self.started
        self._tracker = tracker_signature(save_dir)
        self._tracker_changed = self.started
        self._aligned_checked = False
        self._housekeeping = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._ended = threading.Event()
        self.disk_warned = False

    # -- what the owner reads ---------------------------------------------------------------------
    def verdict_line(self) -> str | None:
        return self.verdict.line if self.verdict else None

    def failing_rollout(self) -> int | None:
        """The rollout this attempt was at: the one after its last trained rollout, else its first."""
        if self.last_rollout is not None:
            return self.last_rollout + 1
        return self.first_rollout

    # -- the tick -----------------------------------------------------------------------------------
    def tick(self, progress: dict) -> None:
        now = self.clock()
        seen = progress.get("last_progress_seen")
        fresh = seen is not None and (self.baseline_seen is None or seen > self.baseline_seen)
        if fresh:
            self.progressed = True
        if progress.get("first_rollout") is not None:
            self.first_rollout = progress["first_rollout"]
        ends = progress.get("rollout_ends") or []
        if ends:
            self.last_rollout = ends[-1][0]
        if progress.get("phase") != self.phase:
            self.phase = progress.get("phase")
            self._phase_seen = now
        signature = tracker_signature(self.save_dir)
        if signature != self._tracker:
            self._tracker = signature
            self._tracker_changed = now
            if signature is not None:
                self.progressed = True
                self._new_checkpoint()
        if self.verdict is not None:
            return
        self._check_alignment()
        if self.verdict is not None:
            return
        quiet_since = max(self.started, self._phase_seen, self._tracker_changed, seen if fresh else self.started)
        line = hang_verdict(progress, self.limits, now - quiet_since)
        if line:
            self.verdict = Verdict("hang", line)
            self.log(line)

    def _check_alignment(self) -> None:
        if self._aligned_checked or self.resumed is None or self.first_rollout is None:
            return
        self._aligned_checked = True
        from runner.runs.alignment import misalignment

        line = misalignment(self.resumed.get("iteration"), self.first_rollout,
                            backend=self.resumed.get("backend") or "megatron",
                            start_rollout_id=self.resumed.get("start_rollout_id"))
        if line:
            self.verdict = Verdict("misalignment", line)
            self.log(line)

    # -- after a new checkpoint -----------------------------------------------------------------------
    def _new_checkpoint(self) -> None:
        thread = threading.Thread(target=self._housekeep, name="checkpoint-housekeeping", daemon=True)
        self._threads.append(thread)
        thread.start()

    def finish(self, timeout: float = 60.0) -> None:
        """Let the housekeeping of the attempt's last checkpoint finish (bounded): the attempt ended."""
        self._ended.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _wait_complete(self) -> None:
        """The tracker moves when the actor saved; the rollout manager's data state follows. Retention
        counts complete checkpoints only, so wait for this one (bounded; checked once more at the end)."""
        from runner.runs.checkpoints import complete_iterations, tracker_iteration

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            tracker = tracker_iteration(self.save_dir)
            done = complete_iterations(self.save_dir, global_dataset=self.global_dataset)
            if tracker is None or tracker in done or self._ended.wait(1.0):
                return

    def _housekeep(self) -> None:
        with self._housekeeping:
            try:
                if self.keep:
                    self._wait_complete()
                if self.keep:
                    from runner.runs.retention import prune

                    removed = prune(self.save_dir, self.keep, global_dataset=self.global_dataset)
                    if removed:
                        self.log(f"--keep-checkpoints {self.keep}: removed iteration(s) "
                                 f"{', '.join(map(str, removed))}")
                if self.checkpoint_bytes:
                    from runner.runs.disk import low_disk_warning

                    warning = low_disk_warning(self.save_dir, self.checkpoint_bytes)
                    if warning:
                        self.log(warning)
                        self.disk_warned = True
                        self.notify("disk", warning)
            except Exception as exc:  # noqa: BLE001 - housekeeping must never take the run down
                self.log(f"checkpoint housekeeping failed: {exc}")
