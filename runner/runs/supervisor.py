"""The process that owns a run's Ray, and records how the run ends.

A foreground `train` is its own supervisor. `train --detach` starts this
module as a separate process in a new session (setsid: no controlling
terminal, so a closing terminal or ssh session sends it no SIGHUP), hands it
the launch on stdin and the machine lock's open file, and returns once the job
runs:

    python -m runner.runs.supervisor --run-dir DIR --lock-fd N --ready-timeout S   < launch JSON

The supervisor then starts Ray and the job exactly as a foreground run does
(runner.launch.run), so the runner's PR_SET_PDEATHSIG guarantee holds for it: its
Ray head and job process die with it, even by SIGKILL. `stop` sends it
SIGTERM (it stops the job, then its Ray, and records "stopped"); if it is
gone, `stop` finds what is left of the run by its markers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from runner.runs.bundle import LaunchBundle
from runner.runs.identity import identity
from runner.runs.layout import RunPaths
from runner.runs.machine_lock import set_holder
from runner.runs.record import now_iso, update_record


def supervise(launch, paths: RunPaths, ready_timeout: float, detached: bool) -> int:  # noqa: ANN001
    """Run the launch as the run's keeper (runner.runs.keeper): attempts, monitoring, restarts (detached
    runs), incidents and notifications; returns the exit code of the run's last attempt."""
    from runner.runs.keeper import Keeper

    record = update_record(paths, {"supervisor": {**identity(os.getpid()), "detached": detached},
                                   "started_at": now_iso()})
    # A foreground run ends with its terminal: SIGHUP stops it as SIGTERM does, the rest said in runner.log.
    keeper = Keeper(launch, paths, record, ready_timeout=ready_timeout, detached=detached,
                    hangup_log=None if detached else str(paths.runner_log))
    return keeper.keep()


def _hang_up(_signum, _frame) -> None:  # noqa: ANN001
    # A handler rather than SIG_IGN: an ignored signal would stay ignored in
    # every process this one starts (Ray included).
    print("[runner] SIGHUP ignored: a detached run goes on; `python -m runner stop` stops it", file=sys.stderr,
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.runs.supervisor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--lock-fd", type=int, help="inherited open file that holds the machine lock")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGHUP, _hang_up)
    launch = LaunchBundle.from_json(json.loads(sys.stdin.read()))
    # The launch (with its secrets) has been read; stdin is no longer needed.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    paths = RunPaths(Path(args.run_dir))
    if args.lock_fd is not None:
        set_holder(args.lock_fd, paths.id, str(paths.dir), os.getpid())
    print(f"[runner] supervisor of run {paths.id}: pid {os.getpid()}, session {os.getsid(0)}", file=sys.stderr,
          flush=True)
    return supervise(launch, paths, args.ready_timeout, detached=True)


if __name__ == "__main__":
    sys.exit(main())
