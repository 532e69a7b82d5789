"""Execute a planned training launch and clean up exactly what it started.

Order: make the run's private directory (mode 0700), write the runtime-env
and secrets files (0600), start the Ray head, wait for its job API, start
workers, wait until every node and GPU registered, run the job process
(which streams logs and exits with the job's code), then stop the workers and
the head, newest first, and remove the secrets file. Ctrl-C or SIGTERM at
any point stops the job first; so does SIGHUP in a foreground run (the
terminal or ssh session closed), after which the output goes to runner.log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Callable, NoReturn

from runner.launch.cluster.hostfile import node_address
from runner.launch.cluster.spec import ClusterSpec
from runner.launch.plan import Process
from runner.launch.processes import (ProcessOwner, make_private_dir, redirect_output, sweep_run, write_private_file,
                                     write_secrets_file)
from runner.launch.train_plan import TrainPlan

# Called once the run's Ray is down: (state, exit code, detail), state one of
# "succeeded", "failed", "stopped" (a run directory records it).
Report = Callable[[str, int, str], None]


class LaunchError(Exception):
    pass


class _Terminated(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _on_sigterm(signum: int, _frame: FrameType | None) -> NoReturn:
    # One stop is enough: a second signal must not raise again while the first unwinds.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise _Terminated(signum)


def _on_hangup_to(path: str):  # noqa: ANN202
    def handler(signum: int, frame: FrameType | None) -> None:
        redirect_output(path)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        _on_sigterm(signum, frame)
    return handler


def _log(msg: str) -> None:
    try:
        print(f"[runner] {msg}", file=sys.stderr, flush=True)
    except OSError:  # the terminal hung up; the SIGHUP that follows redirects the output
        pass


def wait_for_job_api(spec: ClusterSpec, head: subprocess.Popen, timeout: float) -> None:
    url = f"{spec.dashboard_url}/api/version"
    headers = _auth_headers(spec)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise LaunchError(f"the Ray head exited with code {head.returncode} before its job API came up; "
                              f"see its output (above, or {spec.temp_dir}/ray-head.out without --verbose) and the "
                              f"logs under {spec.temp_dir}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise LaunchError(f"the Ray job API at {spec.dashboard_url} refused this runner ({exc.code}): "
                                  f"RAY_AUTH_MODE/RAY_AUTH_TOKEN of the head and the runner disagree") from None
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    raise LaunchError(f"the Ray job API at {spec.dashboard_url} did not answer within {timeout:.0f}s "
                      f"(is ray[default] installed? logs: {spec.temp_dir})")


def _auth_headers(spec: ClusterSpec) -> dict[str, str]:
    return {"Authorization": f"Bearer {spec.token}"} if spec.token_auth and spec.token else {}


def registered_nodes(spec: ClusterSpec) -> list[dict]:
    """Nodes from the dashboard's state API (REST: no `import ray` in the runner,
    whose exit hooks could then try to reach a GCS this runner just stopped)."""
    url = f"{spec.dashboard_url}/api/v0/nodes?limit=10000&detail=false"
    with urllib.request.urlopen(urllib.request.Request(url, headers=_auth_headers(spec)), timeout=10) as resp:
        payload = json.load(resp)
    if not payload.get("result", False):
        raise RuntimeError(payload.get("msg") or "the state API refused the node list")
    nodes = payload["data"]["result"]["result"]
    return [{"ip": n.get("node_ip"), "gpus": float((n.get("resources_total") or {}).get("GPU", 0)),
             "state": str(n.get("state"))} for n in nodes]


def wait_for_cluster(spec: ClusterSpec, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    alive: list[dict] = []
    while True:
        try:
            alive = [n for n in registered_nodes(spec) if n["state"].endswith("ALIVE")]
        except Exception as exc:  # the state API can lag behind the job API for a moment
            _log(f"waiting for the node list: {exc}")
        gpus = sum(n["gpus"] for n in alive)
        if len(alive) >= spec.nodes and gpus >= spec.expected_gpus:
            _log(f"cluster ready: {len(alive)} node(s), {gpus:.0f} GPU(s)")
            return
        if time.monotonic() > deadline:
            seen = {n["ip"] for n in alive}
            missing = [h for h in (spec.master_addr, *spec.workers) if node_address(h) not in seen]
            raise LaunchError(f"after {timeout:.0f}s only {len(alive)} of {spec.nodes} node(s) and {gpus:.0f} of "
                              f"{spec.expected_gpus} GPU(s) registered; missing: {', '.join(missing) or 'unknown'} "
                              f"(their output: above with --verbose, else {spec.temp_dir}/ray-*.out; raise "
                              f"--ready-timeout if they are slow)")
        time.sleep(1.0)


def _wait_step(process: Process, popen: subprocess.Popen, timeout: float) -> None:
    """A step that must finish before the next starts (a copy to a worker host)."""
    try:
        rc = popen.wait(timeout=timeout)
    except Exception:
        raise LaunchError(f"{process.purpose}: no answer within {timeout:.0f}s") from None
    if rc != 0:
        said = _last_line(process.output) if process.output else None
        where = f"{said!r}; its output: {process.output}" if said else (
            f"its output: {process.output}" if process.output else "its output is above")
        raise LaunchError(f"{process.purpose} failed with exit code {rc} ({where})")


def _last_line(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            lines = [ln.strip() for ln in f.read()[-4096:].decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


def run_launch(tp: TrainPlan, ready_timeout: float = 300.0, stop_grace: float = 30.0,
               report: Report | None = None, hangup_log: str | None = None,
               stop_when: Callable[[], str | None] | None = None,
               while_up: Callable[[str | None], None] | None = None,
               abort_if: Callable[[], bool] | None = None,
               diagnose_first: Callable[[str], bool] | None = None) -> int:
    """tp: a TrainPlan, or anything with its files, head, workers, job and cluster (runner.runs.bundle).

    hangup_log: a foreground run stops on SIGHUP (its terminal or ssh session closed) as on SIGTERM,
    and says the rest into this file; a detached run's supervisor keeps its own SIGHUP handling.
    stop_when: asked every half second while the job runs; a line (a hang, a resume misalignment)
    stops the job, and the run fails with that line.
    while_up: called once the job failed (with stop_when's line, or None when the job exited by
    itself), while the job (when stopped for a line) and the run's Ray are still up: diagnostics.
    abort_if: asked once this function handles SIGTERM; True stops at once (a stop that arrived
    before, e.g. during a keeper's backoff).
    diagnose_first: for a line of stop_when, whether while_up runs before the job is stopped (a hang:
    the evidence is the hung job itself) rather than right after (a job that must stop at once)."""
    spec = tp.cluster
    owner = ProcessOwner()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_hup = signal.signal(signal.SIGHUP, _on_hangup_to(hangup_log)) if hangup_log else None
    job = None
    outcome = ("failed", 1, "the runner stopped unexpectedly; see its output")
    try:
        if abort_if is not None and abort_if():
            raise _Terminated(signal.SIGTERM)
        try:
            make_private_dir(Path(spec.temp_dir))
        except OSError as exc:
            raise LaunchError(f"cannot make the run's private directory {spec.temp_dir}: {exc}; choose another "
                              f"with --ray-temp-dir") from None
        for path, content in tp.files.items():
            write_private_file(Path(path), content)
        for path, names in tp.secret_files.items():
            write_secrets_file(Path(path), names, os.environ)
        _log(f"starting Ray head on {spec.gcs_address} (temp dir {spec.head_temp_dir})")
        head = owner.spawn(tp.head, own_session=True)
        wait_for_job_api(spec, head, timeout=min(ready_timeout, 120.0))
        for worker in tp.workers:
            _log(worker.purpose)
            started = owner.spawn(worker, own_session=True)
            if worker.wait:
                _wait_step(worker, started, timeout=min(ready_timeout, 120.0))
        wait_for_cluster(spec, ready_timeout)
        _log(tp.job.purpose)
        # Same session as the runner: Ctrl-C in the terminal reaches the job process too.
        job = owner.spawn(tp.job, own_session=False)
        line = None
        while True:
            try:
                rc = job.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                line = stop_when() if stop_when is not None else None
                if line:
                    break
        if line:
            _log(f"stopping the job: {line}")
            first = diagnose_first(line) if diagnose_first is not None else True
            if while_up is not None and first:
                while_up(line)
            job.send_signal(signal.SIGTERM)  # the job process stops the job through Ray
            try:
                job.wait(timeout=90)
            except subprocess.TimeoutExpired:
                pass
            if while_up is not None and not first:
                while_up(line)
            rc = job.returncode if job.returncode not in (None, 0) else 1
            outcome = ("failed", rc, line)
            return rc
        _log(f"job finished with exit code {rc}")
        if rc != 0 and while_up is not None:
            while_up(None)
        outcome = ("succeeded" if rc == 0 else "failed", rc, f"the job exited with code {rc}")
        return rc
    except (KeyboardInterrupt, _Terminated) as exc:
        sig = signal.SIGINT if isinstance(exc, KeyboardInterrupt) else exc.signum
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if hangup_log:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        what = {signal.SIGINT: "interrupted", signal.SIGHUP: "the terminal hung up (SIGHUP)"}.get(sig, "terminated")
        _log(f"{what}: stopping the job and the Ray instance this run started")
        if job is not None and job.poll() is None:
            # The job process stops the job through Ray on SIGINT, SIGTERM or SIGHUP alike.
            job.send_signal(signal.SIGINT if sig == signal.SIGINT else signal.SIGTERM)
            try:
                job.wait(timeout=90)
            except Exception:
                pass
        name = signal.Signals(sig).name
        outcome = ("stopped", 128 + sig, f"stopped by {name}" + (" (the terminal hung up)"
                                                                 if sig == signal.SIGHUP else ""))
        return 128 + sig
    except LaunchError as exc:
        _log(f"error: {exc}")
        outcome = ("failed", 1, str(exc))
        return 1
    finally:
        # Cleanup must finish: a second Ctrl-C or SIGTERM would leave Ray running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        owner.stop_all(grace=stop_grace)
        sweep_run(spec.temp_dir, spec.run_id)
        # The secrets go; so does the runtime env (it names the secrets file). Ray's logs stay for
        # debugging, in the private directory.
        for path in [*tp.files, *tp.secret_files]:
            Path(path).unlink(missing_ok=True)
        _log(f"Ray logs of this run: {spec.temp_dir}")
        if report is not None:
            report(*outcome)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if previous_hup is not None:
            signal.signal(signal.SIGHUP, previous_hup)
