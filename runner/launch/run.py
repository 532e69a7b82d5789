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
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from runner.launch.cluster.hostfile import node_address
from runner.launch.cluster.spec import ClusterSpec
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


def _on_sigterm(signum, _frame):  # noqa: ANN001
    # One stop is enough: a second signal must not raise again while the first unwinds.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise _Terminated(signum)


def _on_hangup_to(path: str):  # noqa: ANN202
    def handler(signum, frame):  # noqa: ANN001
        redirect_output(path)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        _on_sigterm(signum, frame)
    return handler


def _log(msg: str) -> None:
    try:
        print(f"[runner] {msg}", file=sys.stderr, flush=True)
    except OSError:  # the terminal hung up; the SIGHUP that follows redirects the output
        pass


def wait_for_job_api(spec: ClusterSpec, head, timeout: float) -> None:  # noqa: ANN001
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


def _wait_step(process, popen, timeout: float) -> None:  # noqa: ANN001
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
               report: Report | None = None, hangup_log: str | None = None) -> int:
    """tp: a TrainPlan, or anything with its files, head, workers, job and cluster (runner.runs.bundle).

    hangup_log: a foreground run stops on SIGHUP (its terminal or ssh session closed) as on SIGTERM,
    and says the rest into this file; a detached run's supervisor keeps its own SIGHUP handling."""
    spec = tp.cluster
    owner = ProcessOwner()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_hup = signal.signal(signal.SIGHUP, _on_hangup_to(hangup_log)) if hangup_log else None
    job = None
    outcome = ("failed", 1, "the runner stopped unexpectedly; see its output")
    try:
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
        rc = job.wait()
        _log(f"job finished with exit code {rc}")
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
