"""Ray's own arguments, checked before anything is created.

`ray start` takes a port out of range, two equal ports, a port it binds by
itself, or a temp dir whose socket paths are too long, and then fails in its
own log (ray-head.out): the run is created, and fails, for a typo. These
checks say so in one line first. Pure, except reading the kernel's pid_max.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

from runner.launch.cluster.spec import NODE_SOCKETS, SOCKET_PATH_MAX, ClusterSpec, longest_socket_path

# Ports a Ray node binds whatever --port and --dashboard-port say (Ray 2.53 and 2.60 defaults:
# ray_constants / `ray start` options): its client server, its dashboard agent's HTTP server, and
# the range it gives worker processes.
RAY_CLIENT_SERVER_PORT = 10001
RAY_DASHBOARD_AGENT_PORT = 52365
RAY_WORKER_PORTS = range(10002, 20000)  # --min-worker-port 10002 .. --max-worker-port 19999


def tcp_port(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1-65535)")
    return port


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds > 0")
    return value


def port_problems(gcs_port: int, dashboard_port: int) -> dict[str, str]:
    """Ports that cannot work whatever else runs on the machine: {flag: problem} (a port named here
    needs no probe of whether it is free)."""
    problems = {}
    for port, flag in ((gcs_port, "--ray-port"), (dashboard_port, "--dashboard-port")):
        if port == RAY_CLIENT_SERVER_PORT:
            problems[flag] = f"{flag} {port} is the port of Ray's client server, which Ray binds itself: pick another"
        elif port == RAY_DASHBOARD_AGENT_PORT:
            problems[flag] = (f"{flag} {port} is the port of Ray's dashboard agent, which Ray binds itself: pick "
                              f"another")
        elif port in RAY_WORKER_PORTS:
            problems[flag] = (f"{flag} {port} is in Ray's worker port range ({RAY_WORKER_PORTS.start}-"
                              f"{RAY_WORKER_PORTS.stop - 1}), which Ray hands to its workers: pick a port outside it")
    if gcs_port == dashboard_port and not problems:
        problems["--dashboard-port"] = (f"--ray-port and --dashboard-port are both {gcs_port}: give them different "
                                        f"ports")
    return problems


def pid_digits(pid_max_file: str = "/proc/sys/kernel/pid_max") -> int:
    """Digits of the largest pid this machine can give (the head's `ray start` names its session with
    it); 7 (Linux's largest pid_max, 4194304) when unknown."""
    try:
        with open(pid_max_file, encoding="ascii") as f:
            return len(str(int(f.read().strip()) - 1))
    except (OSError, ValueError):
        return 7


# The longest dashboard module of the Rays read here (2.60: TaskEventsHead; 2.53: MetricsHead), for when
# no Ray is installed to read (a dry-run on a laptop).
KNOWN_DASHBOARD_MODULE = "TaskEventsHead"
_MODULE_CLASS = re.compile(r"^class (\w+)\(([^)]*)\)", re.MULTILINE)


def dashboard_modules(ray_dir: Path | None = None) -> tuple[str, ...]:
    """Class names of the installed Ray's dashboard subprocess modules (each gets a socket on the head:
    sockets/dash_<name>), read from its sources without importing it; else the longest one known."""
    if ray_dir is None:
        try:
            spec = importlib.util.find_spec("ray")
        except (ImportError, ValueError):
            spec = None
        ray_dir = Path(spec.origin).parent if spec is not None and spec.origin else None
    names = set()
    if ray_dir is not None:
        for path in (ray_dir / "dashboard").rglob("*.py"):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if "SubprocessModule" in text:
                names.update(name for name, bases in _MODULE_CLASS.findall(text) if "SubprocessModule" in bases
                             and name != "SubprocessModule")
    return tuple(sorted(names)) or (KNOWN_DASHBOARD_MODULE,)


def head_sockets(modules: tuple[str, ...]) -> tuple[str, ...]:
    return (*NODE_SOCKETS, *(f"dash_{m}" for m in modules))


def max_private_dir_len(spec: ClusterSpec, digits: int, modules: tuple[str, ...]) -> int:
    """The longest private directory (bytes) whose every node's Ray socket paths fit Ray's limit."""
    extra = max(longest_socket_path(node_dir, digits, head_sockets(modules) if node_dir == spec.head_temp_dir
                                    else NODE_SOCKETS) - len(spec.temp_dir.encode())
                for node_dir in spec.node_temp_dirs())
    return SOCKET_PATH_MAX - extra


def socket_path_problem(spec: ClusterSpec, digits: int, modules: tuple[str, ...]) -> str | None:
    limit = max_private_dir_len(spec, digits, modules)
    length = len(spec.temp_dir.encode())
    if length <= limit:
        return None
    longest = max(((d, max(head_sockets(modules) if d == spec.head_temp_dir else NODE_SOCKETS, key=len))
                   for d in spec.node_temp_dirs()), key=lambda item: len(item[0]) + len(item[1]))
    return (f"--ray-temp-dir {spec.temp_dir} is {length} bytes, too long for Ray's socket paths "
            f"({longest[0]}/session_<time>_<pid>/sockets/{longest[1]} must stay within {SOCKET_PATH_MAX} "
            f"bytes): use one of at most {limit} bytes, e.g. under /tmp")
