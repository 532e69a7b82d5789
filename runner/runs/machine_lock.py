"""One active run per machine: the second is refused, naming the first.

Why not side by side: slime's recipes take every GPU of a node, and a Ray
head binds fixed ports beyond the two the runner sets (the Ray client server
on 10001, the dashboard agent on 52365), so a second head on the same
machine fails half-way or starves the first. The refusal comes before
anything is written or started.

The lock is an flock on one file in /tmp (machine-wide; $SLIME_RUNNER_LOCK
moves it), held by the process that owns the run's Ray: the foreground
runner, or a detached run's supervisor (the open file is handed over, so the
lock never lapses in between). The kernel drops it when that process dies,
so a crash or reboot never leaves a stale lock. The file names the holder
(run id, run directory, pid, uid): `status`, `logs` and `stop` find the
active run through it from any directory and shell (active_holder).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Mapping

LOCK_ENV = "SLIME_RUNNER_LOCK"
DEFAULT_LOCK = "/tmp/slime-qwen3-next-runner.lock"


def lock_path(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(LOCK_ENV) or DEFAULT_LOCK)


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = json.loads(os.read(fd, 65536) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _holder_text(fd: int) -> str:
    holder = _read_holder(fd)
    if holder.get("run_id"):
        where = holder.get("run_dir") or holder["run_id"]
        return (f"run {holder['run_id']} is still active on this machine (pid {holder.get('pid')}, {where}); one "
                f"run per machine: it holds the GPUs and Ray's ports. Follow it with `python -m runner logs -f "
                f"{where}`, or stop it with `python -m runner stop {where}`")
    return "another run is active on this machine (lock held); stop it first"


def active_run_problem(environ: Mapping[str, str]) -> str | None:
    """Read-only check: the problem if a run holds the lock; creates nothing."""
    path = lock_path(environ)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot read the run lock {path} ({exc.strerror}); set {LOCK_ENV} to a file you can write"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return _holder_text(fd)
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def active_holder(environ: Mapping[str, str]) -> dict | None:
    """{"run_id", "run_dir", "pid", "uid"} of the run that holds the lock now, or None (no run active, or
    the lock cannot be read). Read-only: a shared lock attempt, released at once."""
    try:
        fd = os.open(lock_path(environ), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                holder = _read_holder(fd)
                return holder if holder.get("run_id") and holder.get("run_dir") else None
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class MachineLockBusy(Exception):
    pass


def acquire(environ: Mapping[str, str], run_id: str, run_dir: str, pid: int) -> int:
    """Take the lock for a run; returns the open descriptor that holds it (keep it open)."""
    path = lock_path(environ)
    while True:
        try:
            # Open an existing file without O_CREAT: with fs.protected_regular, O_CREAT on
            # another user's file in sticky /tmp fails even when its mode allows writing.
            fd = os.open(path, os.O_RDWR)
            break
        except FileNotFoundError:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                os.fchmod(fd, 0o666)  # any user's run can take it next
                break
            except FileExistsError:
                continue
        except OSError as exc:
            raise MachineLockBusy(f"cannot open the run lock {path} ({exc.strerror}); set {LOCK_ENV} to a file "
                                  f"you can write") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        message = _holder_text(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else str(exc)
        os.close(fd)
        raise MachineLockBusy(message) from None
    set_holder(fd, run_id, run_dir, pid)
    return fd


def set_holder(fd: int, run_id: str, run_dir: str, pid: int) -> None:
    """Name the holder in the lock file (a detached run's supervisor renames itself)."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps({"run_id": run_id, "run_dir": run_dir, "pid": pid, "uid": os.geteuid()}).encode())
