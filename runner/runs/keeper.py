"""The run's keeper: runs attempts of one training in one run directory until it ends.

The process that owns a run (the detached supervisor, or a foreground
`train`) calls keep(). Each attempt: record it in run.json's `attempts`,
start the metrics collector with a monitor on it (runner.runs.monitor:
resume misalignment, hangs, new checkpoints), run the launch
(runner.launch.run.run_launch: Ray up, the job, Ray down). When it fails:

  1. classify the reason from this attempt's part of the job log (runner.runs.failure);
  2. capture incidents/<attempt>/ while the run's Ray is still up (runner.runs.incidents);
  3. the launch stops the job and this run's Ray; the GPUs are checked free;
  4. decide (runner.runs.restart_policy); if restarting, back off (the machine lock stays held,
     so `status`/`stop` find the run; `stop` ends the backoff at once), then resume from the
     latest complete checkpoint (--ckpt-step when it is not the tracker's) as attempt k+1.

Notifications (runner.runs.notify) go out on start, each failure and
restart, a hang, a disk warning, a misalignment and the end.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from runner.flags import FlagSet
from runner.runs import failure, incidents
from runner.runs.hang import HangLimits
from runner.runs.layout import RunPaths
from runner.runs.record import now_iso, update_record
from runner.runs.restart_policy import RestartPolicy, decide


def _say(msg: str) -> None:
    try:
        print(f"[runner] {msg}", file=sys.stderr, flush=True)
    except OSError:
        pass


@dataclass(frozen=True)
class KeeperConfig:
    """record["keeper"], as `train` wrote it."""

    restart: RestartPolicy
    hang: HangLimits
    keep_checkpoints: int | None
    checkpoint_bytes: int | None
    notify: dict
    gpu_wait_s: float = 120.0
    poll_s: float = 2.0

    @classmethod
    def from_record(cls, record: dict) -> "KeeperConfig":
        data = record.get("keeper") or {}
        long_run = record.get("long_run") or {}  # --keep-checkpoints, --notify-cmd (runner.runs.setup)
        # train decided the budget (runner.runs.keeper_args: 0 for a foreground run).
        restart = RestartPolicy.from_json(data.get("restart"))
        notify = {"cmd": long_run.get("notify_cmd"), "webhook_env": long_run.get("notify_webhook_env")}
        return cls(restart, HangLimits.from_json(data.get("hang")), long_run.get("keep_checkpoints"),
                   data.get("checkpoint_bytes"), notify, float(data.get("gpu_wait_s", 120.0)),
                   float(data.get("poll_s", 2.0)))


def job_flags(record: dict) -> FlagSet:
    entry = list((record.get("job") or {}).get("entrypoint") or [])
    start = next((i for i, t in enumerate(entry) if t.startswith("--")), len(entry))
    try:
        return FlagSet.parse(entry[start:])
    except ValueError:
        return FlagSet.parse([])


def _int(value) -> int | None:  # noqa: ANN001
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


class _StopFlag:
    """SIGTERM/SIGINT between attempts (in a backoff): remembered, and the backoff ends at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum, _frame) -> None:  # noqa: ANN001
        self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None


class Keeper:
    def __init__(self, launch, paths: RunPaths, record: dict, *, ready_timeout: float, detached: bool,  # noqa: ANN001
                 hangup_log: str | None) -> None:
        self.launch = launch
        self.paths = paths
        self.record = record
        self.ready_timeout = ready_timeout
        self.detached = detached
        self.hangup_log = hangup_log
        self.config = KeeperConfig.from_record(record)
        flags = job_flags(record)
        self.flags = flags
        self.backend = flags.value("train-backend") or "megatron"
        self.global_dataset = not flags.has("disable-rollout-global-dataset")
        self.save_dir = flags.value("save") or (record.get("checkpoint") or {}).get("save")
        self.notifier = self._notifier()
        self.stop = _StopFlag()
        self.timings: dict = {}

    # -- notifications ------------------------------------------------------------------------------
    def _notifier(self):  # noqa: ANN202
        cfg = self.config.notify
        if not (cfg.get("cmd") or cfg.get("webhook_env")):
            return None
        try:
            from runner.runs.notify import Notifier

            return Notifier(cfg.get("cmd"), cfg.get("webhook_env"), log=lambda line: _say(line.removeprefix(
                "[runner] ")))
        except Exception as exc:  # noqa: BLE001 - a broken notifier must not stop the run
            _say(f"notifications off: {exc}")
            return None

    def notify(self, event: str, message: str, attempt: int | None = None, **fields) -> None:  # noqa: ANN003
        if self.notifier is None:
            return
        body = {"event": event, "run": self.paths.id, "attempt": attempt, "message": message, "time": now_iso(),
                "dir": str(self.paths.dir), **fields}
        try:
            self.notifier.send(body)
        except Exception as exc:  # noqa: BLE001
            _say(f"notification ({event}) failed: {exc}")

    # -- checkpoints --------------------------------------------------------------------------------
    def latest_complete_iteration(self) -> int | None:
        if not self.save_dir:
            return None
        from runner.runs.checkpoints import complete_iterations

        done = complete_iterations(self.save_dir, global_dataset=self.global_dataset, backend=self.backend)
        return max(done) if done else None

    def resumed_first(self) -> dict | None:
        """What the first attempt resumes (train --resume): the iteration run.json names (the --ckpt-step one
        on a fallback), and an explicit --start-rollout-id, which a fixed slime keeps."""
        resumed = self.record.get("resumed_from") or {}
        iteration = _int(self.flags.value("ckpt-step")) if self.flags.value("ckpt-step") else _int(
            resumed.get("iteration"))
        if not resumed or iteration is None:
            return None
        return {"iteration": iteration, "backend": self.backend,
                "start_rollout_id": _int(self.flags.value("start-rollout-id"))}

    # -- the loop -----------------------------------------------------------------------------------
    def keep(self) -> int:
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM,)}
        started = time.time()
        attempts = list(self.record.get("attempts") or [])
        launch = self.launch
        resumed = self.resumed_first()
        resume: dict | None = None
        try:
            while True:
                number = len(attempts) + 1
                entry = {"attempt": number, "started_at": now_iso(), "state": "running",
                         "checkpoint_at_start": self.latest_complete_iteration(), "resumed_from": resume}
                attempts.append(entry)
                self.record = update_record(self.paths, {"attempts": attempts, "attempt": number,
                                                         "state": "starting", "restart": None}) or self.record
                if number == 1:
                    self.notify("start", f"run {self.paths.id}: started", number)
                outcome, monitor, incident = self._attempt(launch, number, resumed)
                state, rc, detail = outcome
                entry.update(state=state, exit_code=rc, ended_at=now_iso(),
                             checkpoint_at_end=self.latest_complete_iteration(),
                             progressed=bool(monitor and monitor.progressed),
                             rollout=monitor.failing_rollout() if monitor else None)
                entry["new_checkpoint"] = (entry["checkpoint_at_end"] is not None and
                                           entry["checkpoint_at_end"] != entry["checkpoint_at_start"])
                if incident:
                    entry.update(reason=incident["reason"], reason_label=incident["label"], detail=incident["line"]
                                 or detail, incident=incident["dir"])
                else:
                    entry.update(reason=None if state == "succeeded" else ("stopped" if state == "stopped" else
                                                                          "unknown"), detail=detail)
                decision = decide(attempts, self.config.restart)
                entry["timings"] = {**self.timings, "decided": time.time()}
                if state == "failed" and self.stop:
                    decision = dataclasses.replace(decision, restart=False, why="stopped")
                entry["decision"] = decision.why
                if state == "failed":
                    self.notify("failure", f"run {self.paths.id}: attempt {number} failed: "
                                           f"{entry.get('reason_label') or entry['reason']}: {entry['detail']}; "
                                           f"{decision.why}", number, reason=entry["reason"],
                                rollout=entry["rollout"])
                if decision.restart:
                    problem, next_resume = self._prepare_restart(decision)
                    entry["timings"]["restart_prepared"] = time.time()  # GPUs checked, checkpoint chosen
                    if problem is None:
                        resume = next_resume
                        launch = self._launch_for(next_resume)
                        # A restart continues at the checkpoint's next rollout, an explicit
                        # --start-rollout-id notwithstanding: it would train those rollouts again.
                        resumed = ({"iteration": next_resume["iteration"], "backend": self.backend}
                                   if next_resume else None)
                        waited = self._backoff(attempts, number, decision)
                        if waited:
                            continue
                        entry["decision"] = "stopped during the backoff"
                        return self._end(attempts, ("stopped", 128 + (self.stop.signum or signal.SIGTERM),
                                                    "stopped by a signal during the backoff before a restart"),
                                         started)
                    entry["decision"] = problem
                    decision = dataclasses.replace(decision, restart=False, why=problem)
                if state == "failed":
                    detail = f"{entry.get('reason_label') or entry['reason']}: {entry['detail']}; {decision.why}"
                return self._end(attempts, (state, rc, detail), started)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _attempt(self, launch, number: int, resumed: dict | None):  # noqa: ANN001, ANN202
        from runner.launch.run import run_launch
        from runner.runs.collector import for_run
        from runner.runs.monitor import Monitor

        log_offset = _size(self.paths.job_log)
        collector = for_run(self.paths.dir, self.record, log=sys.stderr, interval=self.config.poll_s)
        monitor = Monitor(limits=self.config.hang, resumed=resumed, save_dir=self.save_dir,
                          global_dataset=self.global_dataset, keep=self.config.keep_checkpoints,
                          checkpoint_bytes=self.config.checkpoint_bytes,
                          baseline_progress_seen=collector.collector.collector.progress.get("last_progress_seen"),
                          notify=lambda event, message, **kw: self.notify(event, message, number, **kw),
                          log=_say)
        collector.after_poll = monitor.tick
        collector.start()
        outcome: list = []
        incident: dict = {}
        self.timings = {}  # epoch seconds of this attempt's end, for run.json (and bench/keeper_bench.py)

        def while_up(line: str | None) -> None:
            self.timings["job_ended"] = time.time()
            incident.update(self._incident(number, log_offset, monitor, line, ray_up=True))
            self.timings["incident_captured"] = time.time()

        try:
            run_launch(launch, ready_timeout=self.ready_timeout, report=lambda *o: outcome.append(o),
                       hangup_log=self.hangup_log, stop_when=monitor.verdict_line, while_up=while_up,
                       abort_if=lambda: bool(self.stop),
                       # A hang's evidence is the hung job; a misalignment must stop before it saves.
                       diagnose_first=lambda _line: monitor.verdict is not None and monitor.verdict.reason == "hang")
        finally:
            collector.stop()
            try:
                monitor.tick(collector.collector.collector.progress)  # a checkpoint of the last seconds
            except Exception as exc:  # noqa: BLE001
                _say(f"monitor: {exc!r}")
            monitor.finish()
        self.timings["ray_down"] = time.time()
        result = outcome[-1] if outcome else ("failed", 1, "the launch ended without a result")
        if result[0] == "succeeded" and monitor.verdict is not None and monitor.verdict.reason == "misalignment":
            # The job ended before a tick saw its first rollout (a short job): it trained the wrong rollouts.
            result = ("failed", 1, monitor.verdict.line)
        if result[0] == "failed" and not incident:
            incident.update(self._incident(number, log_offset, monitor, None, ray_up=False, detail=result[2]))
        if monitor.verdict is not None and monitor.verdict.reason == "hang":
            self.notify("hang", monitor.verdict.line, number)
        if monitor.verdict is not None and monitor.verdict.reason == "misalignment":
            self.notify("misalignment", monitor.verdict.line, number)
        return result, monitor, incident or None

    def _incident(self, number: int, log_offset: int, monitor, line: str | None, *, ray_up: bool,  # noqa: ANN001
                  detail: str | None = None) -> dict:
        tail = incidents.attempt_tail(self.paths.job_log, log_offset)
        if monitor.verdict is not None:
            classified = failure.Classified(monitor.verdict.reason, monitor.verdict.line)
        elif _size(self.paths.job_log) <= log_offset:
            # The job wrote nothing: Ray never ran it (its head or job agent did not come up). The job
            # process said why in the runner's output (a detached run's runner.log).
            classified = failure.Classified("launch", _runner_error(self.paths.runner_log) or detail or
                                            "the job wrote no log: Ray never ran it")
        else:
            classified = failure.classify(tail)
        folder = self.paths.dir / "incidents" / str(number)
        spec = self.launch.cluster
        commands = incidents.ray_commands(self.launch.head.argv[0], spec.gcs_address, spec.dashboard_url)
        if not ray_up:
            commands = {"nvidia-smi.txt": commands["nvidia-smi.txt"]}
        env = {**os.environ, **spec.auth_env()}
        facts = {"attempt": number, "reason": classified.reason, "label": classified.label, "line": classified.line,
                 "rollout": monitor.failing_rollout(), "phase": monitor.phase,
                 "ray_up": ray_up, "detail": detail}
        try:
            incidents.capture(folder, job_log=self.paths.job_log, log_offset=log_offset, facts=facts,
                              commands=commands, env=env)
        except OSError as exc:
            _say(f"could not write {folder}: {exc}")
        _say(f"attempt {number} failed: {classified.label}" + (f": {classified.line}" if classified.line else "")
             + f"; diagnostics in {folder}")
        return {"reason": classified.reason, "label": classified.label, "line": classified.line,
                "dir": str(folder.relative_to(self.paths.dir))}

    def _prepare_restart(self, decision) -> tuple[str | None, dict | None]:  # noqa: ANN001
        """(problem, resume point): GPUs free, and the latest complete checkpoint (None: none yet, start over)."""
        spec = self.launch.cluster
        hosts: list[str | None] = [None]
        if spec.worker_launcher == "ssh":
            from runner.launch.cluster.ssh import SSH_OPTIONS

            hosts += list(spec.workers)
            options = tuple(SSH_OPTIONS)
        else:
            options = ()
        problem, checked = incidents.gpus_busy(hosts, options, dict(os.environ), wait_s=self.config.gpu_wait_s)
        _say(checked)
        if problem:
            return f"no restart: {problem}", None
        if not self.save_dir:
            return None, None
        from runner.runs.checkpoints import latest_complete

        point = latest_complete(self.save_dir, global_dataset=self.global_dataset, backend=self.backend)
        problem = point.problem(self.save_dir)
        if problem:
            return f"no restart: {problem}", None
        if point.iteration is None:
            return None, None  # no checkpoint yet: the restart starts over
        args = list(point.ckpt_step_args())
        if not args and self.flags.value("ckpt-step") is not None:
            # The first attempt's argv names a --ckpt-step (a resume's fallback): name this one instead.
            args = ["--ckpt-step", str(point.iteration)]
        resume = {"iteration": point.iteration, "tracker": point.tracker,
                  "skipped": [list(s) for s in point.skipped], "args": args}
        if point.note():
            _say(point.note())
        return None, resume

    def _launch_for(self, resume: dict | None):  # noqa: ANN202
        if not resume or not resume["args"]:
            return self.launch
        job = dataclasses.replace(self.launch.job, argv=tuple(self.launch.job.argv) + tuple(resume["args"]))
        return dataclasses.replace(self.launch, job=job)

    def _backoff(self, attempts: list, number: int, decision) -> bool:  # noqa: ANN001
        """Wait before the restart; False when a stop came meanwhile."""
        at = time.time() + decision.delay_s
        restart = {"attempt": number + 1, "at": now_iso(at), "after": attempts[-1].get("reason"),
                   "why": decision.why}
        update_record(self.paths, {"attempts": attempts, "state": "restarting", "restart": restart})
        self.notify("restart", f"run {self.paths.id}: attempt {number} failed "
                               f"({attempts[-1].get('reason_label') or attempts[-1].get('reason')}); {decision.why}",
                    number, restart_at=restart["at"])
        _say(f"{decision.why} (at {restart['at']}); `python -m runner stop {self.paths.dir}` ends the run instead")
        try:
            while time.time() < at:
                if self.stop:
                    return False
                time.sleep(min(0.2, max(0.0, at - time.time())))
        except KeyboardInterrupt:
            self.stop.signum = signal.SIGINT
            return False
        return not self.stop

    def _end(self, attempts: list, outcome: tuple, started: float) -> int:
        state, rc, detail = outcome
        changes = {"attempts": attempts, "state": state, "exit_code": rc, "detail": detail, "ended_at": now_iso(),
                   "duration_s": round(time.time() - started, 1), "restart": None}
        try:
            update_record(self.paths, changes)
        except (OSError, ValueError) as exc:
            _say(f"could not record the end of run {self.paths.id} in {self.paths.record}: {exc}")
        self.notify("end", f"run {self.paths.id} {state}: {detail}", len(attempts), state=state, exit_code=rc)
        if self.notifier is not None:
            self.notifier.close()  # deliver what is queued before this process exits
        return rc


def _runner_error(runner_log: Path) -> str | None:
    """The last `[runner] error: ...` line of runner.log's tail (the job process's own words)."""
    lines = [ln.strip() for ln in failure.read_tail(runner_log, 64 << 10).splitlines()]
    errors = [ln.removeprefix("[runner] ") for ln in lines if ln.startswith("[runner] error: ")]
    return errors[-1][:400] if errors else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
