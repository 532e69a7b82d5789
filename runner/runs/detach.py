"""`train --detach`: start the run's supervisor in its own session, return once the job runs.

The supervisor is started with start_new_session (setsid) and without the
runner's PR_SET_PDEATHSIG, so neither this process exiting nor the terminal
hanging up reaches it; its stdout and stderr go to the run's runner.log,
which this process copies to the terminal while it waits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from runner.interpreter import own_python
from runner.runs.layout import RunPaths, read_from
from runner.runs.record import TERMINAL, read_record


def start_supervisor(launch, paths: RunPaths, *, ready_timeout: float, lock_fd: int,
                     python: str = sys.executable) -> subprocess.Popen:  # noqa: ANN001
    argv = [*own_python(python), "-m", "runner.runs.supervisor", "--run-dir", str(paths.dir), "--lock-fd", str(lock_fd),
            "--ready-timeout", f"{ready_timeout:g}"]
    with open(paths.runner_log, "ab") as log:
        popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, pass_fds=(lock_fd,),
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert popen.stdin is not None
    popen.stdin.write(json.dumps(launch.to_json()).encode())
    popen.stdin.close()
    return popen


def _copy_new(path: Path, offset: int, out: TextIO) -> int:
    data, offset = read_from(path, offset)
    if data:
        out.write(data.decode(errors="replace"))
        out.flush()
    return offset


def wait_until_running(popen: subprocess.Popen, paths: RunPaths, out=sys.stderr, poll: float = 0.3) -> int:  # noqa: ANN001
    """0 once Ray accepted the job; else the run's exit code once it ended before that."""
    offset = 0
    while True:
        offset = _copy_new(paths.runner_log, offset, out)
        try:
            record = read_record(paths)
        except (OSError, ValueError):
            record = {}
        state = record.get("state")
        if state in ("running", "succeeded"):
            return 0
        rc = popen.poll()
        if state in TERMINAL or rc is not None:
            if rc is not None and state not in TERMINAL:
                time.sleep(poll)  # its last words
            _copy_new(paths.runner_log, offset, out)
            record = read_record(paths)
            code = record.get("exit_code")
            return code if isinstance(code, int) and code != 0 else (rc or 1)
        time.sleep(poll)
