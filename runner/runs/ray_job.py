"""Submit one Ray job, stream its logs, exit with its driver's exit code.

Run as a process by the train executor (`python -m runner.runs.ray_job ...`), so
the plan shows exactly what runs. The runtime env's variables come from a
JSON file (mode 0600) rather than argv, because they can include secrets.
On SIGINT, SIGTERM or SIGHUP it stops the job, waits for Ray to confirm, and
exits 130 / 143 / 129 (after SIGHUP its output goes to the run's runner.log:
the terminal is gone).

Submission is retried, until --submit-timeout, on transient errors only: the
head answers "500: No available agent to submit job" while its job agent has
not registered yet (seen right after the job API comes up, under CPU load),
a 502/503/504 from a proxy, or a refused connection. Anything else (a bad
runtime env, a duplicate submission id) fails at once with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path

from runner.launch.processes import redirect_output

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runner.runs.ray_job", description=__doc__)
    parser.add_argument("--address", required=True, help="job API URL, e.g. http://127.0.0.1:8265")
    parser.add_argument("--submission-id", required=True)
    parser.add_argument("--runtime-env-file", required=True, help="JSON file with the job's runtime_env")
    parser.add_argument("--stop-timeout", type=float, default=60.0)
    parser.add_argument("--submit-timeout", type=float, default=300.0,
                        help="keep retrying a transient submission error this long (seconds)")
    parser.add_argument("--log-file", help="append the job's log here too (a run's job.log)")
    parser.add_argument("--quiet", action="store_true", help="do not copy the job's log to stdout")
    parser.add_argument("--run-dir", help="run directory whose run.json turns 'running' once Ray accepts the job")
    parser.add_argument("entrypoint", nargs=argparse.REMAINDER, help="-- ARGV of the job's driver")
    args = parser.parse_args(argv)
    if args.entrypoint and args.entrypoint[0] == "--":
        args.entrypoint = args.entrypoint[1:]
    if not args.entrypoint:
        parser.error("no entrypoint given after --")
    return args


class _Stop(BaseException):
    """SIGINT/SIGTERM: a BaseException, so that no `except Exception` on the way (submission, its retry)
    swallows it: the signal must reach main(), which stops the job."""

    def __init__(self, signum: int) -> None:
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_stop(signum, _frame):  # noqa: ANN001
    # One stop is enough: the next signal (the runner passes the terminal's SIGHUP on as SIGTERM) must not
    # raise again while this one unwinds, e.g. inside asyncio's shutdown.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise _Stop(signum)


def _hang_up_to(path: str | None):  # noqa: ANN202
    """SIGHUP: the terminal is gone; what this process still says goes to `path` (the run's runner.log)."""
    def handler(signum, frame):  # noqa: ANN001
        redirect_output(path or os.devnull)
        _raise_stop(signum, frame)
    return handler


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:  # a hung-up terminal; the SIGHUP that follows redirects the output
        pass


async def _stream(client, job_id: str, log_file: str | None, echo: bool) -> None:
    log = open(log_file, "a", encoding="utf-8") if log_file else None
    try:
        async for chunk in client.tail_job_logs(job_id):
            if echo:
                try:
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
                except OSError:  # the terminal hung up: job.log keeps the log
                    echo = False
            if log is not None:
                log.write(chunk)
                log.flush()
    finally:
        if log is not None:
            log.close()


def _mark_running(run_dir: str | None) -> None:
    if not run_dir:
        return
    from runner.runs.layout import RunPaths
    from runner.runs.record import now_iso, update_record

    try:
        # Only from "starting": a `stop` that got there first keeps its state.
        update_record(RunPaths(Path(run_dir)), {"state": "running", "job": {"submitted_at": now_iso()}},
                      only_if_state=("starting",))
    except OSError as exc:
        _say(f"[runner] could not update {run_dir}/run.json: {exc}")


def _status(value) -> str:  # noqa: ANN001
    """"JobStatus.SUCCEEDED" or "SUCCEEDED" -> "SUCCEEDED"."""
    return str(value).split(".")[-1]


NO_AGENT = "No available agent to submit job"
RETRY_STATUS = (502, 503, 504)


def transient_submit_error(exc: BaseException) -> str | None:
    """Why a failed submission is worth retrying, or None when it is not.

    Ray's SDK raises RuntimeError("Request failed with status code N: TEXT.")
    for HTTP errors and requests' ConnectionError when nothing listens.
    """
    text = str(exc)
    if isinstance(exc, RuntimeError):
        if NO_AGENT in text:
            return "the head's job agent has not registered yet (No available agent to submit job)"
        match = re.search(r"status code (\d{3})", text)
        if match and int(match.group(1)) in RETRY_STATUS:
            return f"HTTP {match.group(1)} from the job API"
        return None
    if type(exc).__name__ == "ConnectionError" or isinstance(exc, ConnectionError):
        return "the job API refused the connection"
    return None


def submit_with_retry(client, *, entrypoint: str, submission_id: str, runtime_env: dict, timeout: float,
                      log=sys.stderr) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    delay = 0.5
    attempt = 0
    retried = False
    while True:
        attempt += 1
        try:
            client.submit_job(entrypoint=entrypoint, submission_id=submission_id, runtime_env=runtime_env)
            if retried:
                print(f"[runner] job {submission_id} accepted on attempt {attempt}", file=log, flush=True)
            return
        except Exception as exc:  # noqa: BLE001 - classified below; anything else is re-raised
            if retried and "already exists" in str(exc):
                # An earlier attempt reached the head after all (its reply was lost).
                client.get_job_info(submission_id)
                return
            why = transient_submit_error(exc)
            left = deadline - time.monotonic()
            if why is None:
                raise
            if left < delay:
                raise RuntimeError(f"{why}; gave up after {attempt} attempt(s) in {timeout:.0f}s "
                                   f"(--ready-timeout): {exc}") from None
            print(f"[runner] submission attempt {attempt} failed: {why}; retrying for up to {left:.0f}s",
                  file=log, flush=True)
            retried = True
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _exit_code(client, job_id: str) -> int:
    info = client.get_job_info(job_id)
    status = _status(info.status)
    if status == "SUCCEEDED":
        return 0
    code = getattr(info, "driver_exit_code", None)
    _say(f"[runner] job {job_id} {status}: {info.message or ''}".rstrip())
    if isinstance(code, int) and code != 0:
        return code
    return 1


def _stop(client, job_id: str, timeout: float) -> None:
    _say(f"[runner] stopping job {job_id} ...")
    try:
        client.stop_job(job_id)
    except Exception as exc:  # the job may already be gone
        _say(f"[runner] stop_job: {exc}")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(client.get_job_status(job_id))
        if status in TERMINAL:
            _say(f"[runner] job {job_id} is {status}")
            return
        time.sleep(0.5)
    _say(f"[runner] job {job_id} did not stop within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    with open(args.runtime_env_file, encoding="utf-8") as f:
        runtime_env = json.load(f)

    from ray.job_submission import JobSubmissionClient  # heavy: imported only when submitting

    # Ray's job client logs "WebSocket closed for job ... with close code 1000" at INFO when a log stream
    # ends normally (ray/dashboard/modules/job/sdk.py, 2.53 and 2.60): noise on the runner's stderr. An
    # abnormal close raises, and is reported.
    logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)
    client = JobSubmissionClient(args.address)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    # A foreground run's terminal closing: stop the job as on SIGTERM (a detached run's job process has
    # no terminal, and its supervisor's session gets no SIGHUP).
    signal.signal(signal.SIGHUP, _hang_up_to(os.path.join(args.run_dir, "runner.log") if args.run_dir else None))
    submitted = False
    try:
        # Set first: a signal that lands right after the submission must still stop the job.
        submitted = True
        try:
            submit_with_retry(client, entrypoint=shlex.join(args.entrypoint), submission_id=args.submission_id,
                              runtime_env=runtime_env, timeout=args.submit_timeout)
        except Exception as exc:  # noqa: BLE001 - one line, not a traceback
            submitted = False
            print(f"[runner] error: could not submit job {args.submission_id}: {exc}".rstrip(),
                  file=sys.stderr, flush=True)
            return 1
        print(f"[runner] submitted job {args.submission_id}", file=sys.stderr, flush=True)
        _mark_running(args.run_dir)
        asyncio.run(_stream(client, args.submission_id, args.log_file, echo=not args.quiet))
        # The log stream ends when the job does; the status may lag a moment.
        for _ in range(100):
            if _status(client.get_job_status(args.submission_id)) in TERMINAL:
                break
            time.sleep(0.2)
        return _exit_code(client, args.submission_id)
    except _Stop as stop:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if submitted:
            _stop(client, args.submission_id, args.stop_timeout)
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
