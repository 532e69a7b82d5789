"""Which process owns a run, and is it still that process?

A pid alone can be reused; (pid, start time in clock ticks since boot, boot
id) names one process for good. After a reboot the boot id differs: nothing
of the run can still be running.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # exited, not yet reaped: gone for our purposes
            return None
        return int(fields[19])  # field 22 of proc(5); fields[0] is field 3
    except (OSError, IndexError, ValueError):
        return None


def hostname() -> str:
    return socket.gethostname()


def uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def identity(pid: int) -> dict:
    # uid: who may signal it (`stop` by another user is refused by the kernel; say whose run it is).
    return {"pid": pid, "start_ticks": start_ticks(pid), "boot_id": boot_id(), "host": hostname(), "uid": uid_of(pid)}


def same_machine(ident: dict) -> bool:
    return ident.get("host") == hostname()


def alive(ident: dict | None) -> bool | None:
    """True/False on the machine that recorded it; None where we cannot tell (another host, no /proc)."""
    if not ident or not ident.get("pid"):
        return False
    if not same_machine(ident):
        return None
    current_boot = boot_id()
    if current_boot is None:
        return None
    if ident.get("boot_id") != current_boot:
        return False  # rebooted since
    ticks = start_ticks(int(ident["pid"]))
    return ticks is not None and ticks == ident.get("start_ticks")


def why_gone(ident: dict | None) -> str:
    if not ident or not ident.get("pid"):
        return "no process was recorded for it"
    if ident.get("boot_id") and boot_id() and ident["boot_id"] != boot_id():
        return "the machine rebooted since it started"
    return f"its runner (pid {ident['pid']}) is gone without recording an end (killed?)"


def is_alive_pid(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return start_ticks(pid) is not None


def effective_state(record: dict) -> tuple[str, str]:
    """(state, note): the recorded state, except an active run whose owner is gone is "lost"; a run
    in a Slurm job whose runner is not alive here is what Slurm says of that job."""
    state = record.get("state") or "unknown"
    if state not in ("queued", "starting", "running", "restarting"):
        return state, ""
    owner = record.get("supervisor")
    live = alive(owner)
    if live is not True and (record.get("slurm") or {}).get("job_id"):
        # Its runner is elsewhere (or not started yet): the Slurm job says.
        from runner.runs.slurm_run import effective

        return effective(record, live)
    if live is False:
        return "lost", why_gone(owner)
    if live is None:
        return state, f"owned by host {(owner or {}).get('host')}; cannot check from here"
    return state, ""
