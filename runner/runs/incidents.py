"""What an attempt left behind when it failed: incidents/<attempt>/ in the run directory.

Captured while the run's Ray is still up (a hang: before its job is
stopped), each in its own file, each with the error that kept it from
being captured:

    job-log-tail.txt     the last 256 KB of the job log written by this attempt
    ray-status.txt       `ray status` (nodes, resources, pending demands)
    ray-list-actors.txt  `ray list actors` (which actor died, and how)
    ray-stack.txt        `ray stack` (py-spy dumps of this node's Ray workers: where a hang hangs)
    nvidia-smi.txt       `nvidia-smi` of this node
    incident.json        the attempt, its classified reason and line, the rollout, what each capture gave

Then, once the run's Ray is down, `gpus_busy` tells whether any process still
holds a GPU of this node (or of an ssh worker), so that a restart does not
land on GPUs a dying process still holds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from runner.runs.failure import read_tail

COMMAND_TIMEOUT_S = 60.0


def _run(argv: list[str], env: dict, timeout: float) -> tuple[str, str | None]:
    """(output, error or None)."""
    if shutil.which(argv[0], path=env.get("PATH")) is None and not os.path.isfile(argv[0]):
        return "", f"{argv[0]} not found on PATH"
    try:
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "", f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return "", str(exc)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    return out, None if done.returncode == 0 else f"exit code {done.returncode}"


def ray_commands(ray: str, gcs_address: str, dashboard_url: str) -> dict[str, list[str]]:
    return {
        "ray-status.txt": [ray, "status", "--address", gcs_address],
        "ray-list-actors.txt": [ray, "list", "actors", "--address", dashboard_url, "--detail", "--limit", "1000"],
        "ray-stack.txt": [ray, "stack"],
        "nvidia-smi.txt": ["nvidia-smi"],
    }


def capture(folder: Path, *, job_log: Path, log_offset: int, facts: dict, commands: dict[str, list[str]],
            env: dict, timeout: float = COMMAND_TIMEOUT_S) -> dict:
    """Write incidents/<attempt>/ (folder); returns incident.json's content."""
    folder.mkdir(parents=True, exist_ok=True)
    tail = attempt_tail(job_log, log_offset)
    (folder / "job-log-tail.txt").write_text(tail, encoding="utf-8")
    captured: dict[str, str | None] = {}

    def one(name: str, argv: list[str]) -> None:
        out, error = _run(argv, env, timeout)
        header = f"$ {' '.join(argv)}\n" + (f"# unavailable: {error}\n" if error else "")
        (folder / name).write_text(header + out, encoding="utf-8", errors="replace")
        captured[name] = error

    threads = [threading.Thread(target=one, args=item, daemon=True) for item in commands.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    incident = {**facts, "captured_at": time.time(),
                "files": {name: ("ok" if error is None else f"unavailable: {error}")
                          for name, error in sorted(captured.items())}}
    (folder / "incident.json").write_text(json.dumps(incident, indent=2) + "\n", encoding="utf-8")
    return incident


def attempt_tail(job_log: Path, offset: int, max_bytes: int = 256 << 10) -> str:
    """The tail of what the job log gained since `offset` (this attempt's part)."""
    try:
        size = job_log.stat().st_size
    except OSError:
        return ""
    return read_tail(job_log, max_bytes=min(max_bytes, max(0, size - offset)))


def gpu_query(ssh_host: str | None = None, ssh_options: tuple = ()) -> list[str]:
    argv = ["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader"]
    return ["ssh", *ssh_options, ssh_host, *argv] if ssh_host else argv


def gpus_busy(hosts: list[str | None], ssh_options: tuple, env: dict, wait_s: float = 120.0,
              poll_s: float = 5.0) -> tuple[str | None, str]:
    """(problem or None, what was checked): processes still on the GPUs of these hosts (None: this one)
    after up to wait_s. Without nvidia-smi on this host, nothing is checked (said in the second part)."""
    if shutil.which("nvidia-smi", path=env.get("PATH")) is None:
        return None, "GPUs not checked: no nvidia-smi on this host"
    deadline = time.monotonic() + wait_s
    while True:
        busy = []
        for host in hosts:
            out, error = _run(gpu_query(host, ssh_options), env, 60)
            if error:
                busy.append(f"{host or 'this host'}: nvidia-smi failed ({error})")
            elif out.strip():
                busy.append(f"{host or 'this host'}: {'; '.join(out.strip().splitlines()[:4])}")
        if not busy:
            return None, f"GPUs free on {len(hosts)} node(s)"
        if time.monotonic() > deadline:
            return ("GPUs still in use after the attempt ended: " + " | ".join(busy)), "GPUs busy"
        time.sleep(poll_s)
