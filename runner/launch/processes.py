"""The thin side-effect layer: start planned processes and stop exactly those.

Every process the runner starts is recorded here; `stop_all` stops them in
reverse order (SIGTERM to the process group, then SIGKILL after a grace
period). Leftovers are found by markers unique to one run, never by a name
like "python": Ray's per-run --temp-dir in the command line of its own
daemons, and RUN_MARKER_ENV=<run id> in the environment, which the Ray head
passes to everything it starts (raylet, workers, the job's driver and its
children), including processes that rename themselves ("ray::IDLE").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from runner.launch.cluster.spec import RUN_MARKER_ENV
from runner.launch.plan import Process

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this child when the runner dies, even by SIGKILL.

    Without it, a runner killed with -9 would leave its Ray head running.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


@dataclass
class Started:
    process: Process
    popen: subprocess.Popen
    own_session: bool


@dataclass
class ProcessOwner:
    log: object = sys.stderr
    started: list[Started] = field(default_factory=list)

    def spawn(self, process: Process, *, own_session: bool) -> subprocess.Popen:
        env = {**{k: v for k, v in os.environ.items() if k not in process.unset_env}, **process.env}
        stdin = subprocess.PIPE if process.stdin_secret else subprocess.DEVNULL
        if process.stdin_file:
            stdin = open(process.stdin_file, "rb")  # noqa: SIM115 - closed below, the child keeps its own fd
        output = open(process.output, "ab") if process.output else None  # noqa: SIM115 - the child keeps its own fd
        try:
            popen = subprocess.Popen(
                list(process.argv), env=env, cwd=process.cwd, stdin=stdin,
                stdout=output, stderr=subprocess.STDOUT if output else None,
                # own_session: the terminal's Ctrl-C does not reach it; we stop it ourselves, in order.
                start_new_session=own_session,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                text=True,
            )
        finally:
            if output:
                output.close()
            if process.stdin_file:
                stdin.close()
        if process.stdin_secret:
            assert popen.stdin is not None
            popen.stdin.write(process.env.get(process.stdin_secret, ""))
            popen.stdin.close()
        self.started.append(Started(process, popen, own_session))
        return popen

    def stop(self, item: Started, grace: float) -> None:
        popen = item.popen
        if popen.poll() is not None:
            return
        _signal(item, signal.SIGTERM)
        try:
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            print(f"[runner] {item.process.purpose or item.process.argv[0]} ignored SIGTERM for {grace:.0f}s; "
                  f"sending SIGKILL", file=self.log)
            _signal(item, signal.SIGKILL)
            popen.wait(timeout=10)
        if item.own_session:
            # Children left in the group (the process itself has exited).
            _signal(item, signal.SIGKILL, group_only=True)

    def stop_all(self, grace: float = 30.0) -> None:
        for item in reversed(self.started):
            self.stop(item, grace)


def _signal(item: Started, sig: int, group_only: bool = False) -> None:
    try:
        if item.own_session:
            os.killpg(item.popen.pid, sig)
        elif not group_only:
            item.popen.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def _ancestors(pid: int) -> set[int]:
    """pid and its ancestors: a wrapper like `timeout` or `srun` around the runner
    carries the runner's own arguments, temp dir included, and must never match."""
    out = set()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def _own_processes(file: str) -> Iterator[tuple[int, bytes]]:
    """(pid, contents of /proc/PID/FILE) of this user's processes other than this one and its
    ancestors; processes that vanish or cannot be read are left out."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    skip = _ancestors(os.getpid())
    uid = os.getuid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            data = (entry / file).read_bytes()
        except OSError:
            continue
        yield int(entry.name), data


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of this user's processes, other than this one and its ancestors,
    whose command line contains `marker`."""
    return [pid for pid, cmdline in _own_processes("cmdline")
            if marker in cmdline.replace(b"\0", b" ").decode(errors="replace")]


def processes_with_env(name: str, value: str) -> list[int]:
    """PIDs of this user's processes, other than this one and its ancestors, whose
    environment holds NAME=VALUE exactly."""
    if not value:
        return []
    needle = b"\0" + f"{name}={value}".encode() + b"\0"
    return [pid for pid, environ in _own_processes("environ")
            if needle in b"\0" + environ + (b"" if environ.endswith(b"\0") else b"\0")]


def run_processes(temp_dir: str, run_id: str = "") -> list[int]:
    """Every live process of one run's Ray instance, by both markers."""
    # Ray's own processes name paths *inside* the temp dir (session_*/,
    # worker-*/); the runner's command line only names the dir itself.
    pids = set(processes_with_marker(temp_dir.rstrip("/") + "/"))
    if run_id:
        pids.update(processes_with_env(RUN_MARKER_ENV, run_id))
    return sorted(pids)


def sweep(find, grace: float = 10.0, log: object = sys.stderr) -> list[int]:  # noqa: ANN001
    """SIGTERM, then SIGKILL after `grace`, every process `find()` returns, until none is left."""
    pids = find()
    if not pids:
        return []
    print(f"[runner] stopping {len(pids)} leftover process(es) of this run's Ray instance", file=log)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and find():
        time.sleep(0.2)
    for pid in find():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def sweep_marked(marker: str, grace: float = 10.0, log: object = sys.stderr) -> list[int]:
    """SIGTERM, then SIGKILL, every process whose command line holds `marker`."""
    return sweep(lambda: processes_with_marker(marker), grace, log)


def sweep_run(temp_dir: str, run_id: str = "", grace: float = 10.0, log: object = sys.stderr) -> list[int]:
    """SIGTERM, then SIGKILL, every process of one run's Ray instance still alive."""
    return sweep(lambda: run_processes(temp_dir, run_id), grace, log)


def write_private_file(path: Path, content: str) -> None:
    """Create a file readable only by this user (it may hold secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)


def make_private_dir(path: Path) -> None:
    """The run's directory, mode 0700 and ours: Ray makes its temp dir world-writable (0777), with its
    logs and its raylet and object store sockets in it; a private parent keeps other users out of all of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = path.stat()
        if not path.is_dir() or st.st_uid != os.geteuid():
            raise PermissionError(f"{path} exists and is not a directory of this user (uid {st.st_uid})") from None
    os.chmod(path, 0o700)


def write_secrets_file(path: Path, names, environ) -> None:  # noqa: ANN001
    """The named variables' values from `environ` as a JSON object, mode 0600 (runner.launch.job_secrets reads it)."""
    import json

    write_private_file(path, json.dumps({n: environ[n] for n in names if environ.get(n)}))


def redirect_output(path: str) -> None:
    """stdout and stderr (fds 1 and 2) to `path`, appended: the terminal is gone (a write to a hung-up
    terminal fails with EIO), and what the runner says while it stops the run still has to land somewhere."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
