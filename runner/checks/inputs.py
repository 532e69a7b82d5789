"""Checks of what the user pointed the runner at, before anything starts.

BASE_FOLDER, MASTER_ADDR for multinode, and the Python that will submit the
Ray job. Each returns one line naming the value and the fix, or None. They
only read (the file system, name resolution, this interpreter's packages).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import shutil
import socket
import sys
from pathlib import Path

from runner.locations import Locations


def base_folder_problem(locs: Locations) -> str | None:
    base = locs.base
    if base.exists() and not base.is_dir():
        return (f"BASE_FOLDER {base} (from {locs.base_folder.source}) is a file, not a folder; point --base-folder "
                f"or BASE_FOLDER at the folder that holds (or will hold) the checkpoints and data")
    return None


# Why an IPv6 address is refused everywhere (MASTER_ADDR, --dashboard-host, hostfile entries): tried
# here, Ray 2.53 (uv.lock's) cannot start a head on one: its client server fails to bind
# "fd00::2:10001" (the address without brackets); Ray 2.60 started on fd00::2 but its dashboard agent
# did not, and with --node-ip-address ::1 it took the node's IPv4 address instead.
IPV6_REASON = ("the pinned Ray (2.53) cannot start a node on an IPv6 address (its client server fails to bind), so "
               "the runner supports IPv4 only")


def _bare(host: str) -> str:
    """[addr] -> addr; a zone (%eth0) dropped."""
    host = host.strip()
    if host.startswith("[") and "]" in host:
        host = host[1:host.index("]")]
    return host.split("%", 1)[0]


def is_ipv6_literal(host: str) -> bool:
    try:
        return ipaddress.ip_address(_bare(host)).version == 6
    except ValueError:
        return False


def ipv6_problem(host: str, what: str, source: str | None = None) -> str | None:
    """One line when `host` is an IPv6 address, or a name that resolves to IPv6 addresses only."""
    fix = "use the node's IPv4 address (`hostname -I`) or a name that resolves to it"
    named = f"{what} {host}" + (f" (from {source})" if source else "")
    if is_ipv6_literal(host):
        return f"{named} is an IPv6 address: {IPV6_REASON}; {fix}"
    try:
        ipaddress.ip_address(host)
        return None  # IPv4
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
        return None
    except (socket.gaierror, UnicodeError):
        pass
    try:
        socket.getaddrinfo(host, None, socket.AF_INET6, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None  # unresolvable: the port check says so
    return f"{named} resolves to IPv6 addresses only: {IPV6_REASON}; {fix}"


def _loopback(host: str) -> str | None:
    """The loopback address `host` is or resolves to, else None."""
    try:
        return host if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return None  # unresolvable: the port check says so
    addresses = [info[4][0] for info in infos]
    if addresses and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        return addresses[0]
    return None


def multinode_master_problem(master_addr: str, source: str) -> str | None:
    """Workers must reach the head at MASTER_ADDR; a loopback address would send each to itself."""
    loop = _loopback(master_addr)
    if loop is None:
        return None
    how = master_addr if loop == master_addr else f"{master_addr} (resolves to {loop})"
    return (f"MASTER_ADDR {how}, from {source}, is a loopback address: every worker would connect to itself, "
            f"not to this head; set MASTER_ADDR or --master-addr to this node's address on the network the "
            f"workers share (e.g. `hostname -I`)")


def ray_executable(python: str = sys.executable) -> str | None:
    """The `ray` next to this interpreter (its own environment's), else the one on PATH."""
    sibling = Path(python).parent / "ray"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    return shutil.which("ray")


def _script_interpreter(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            first = f.readline(512).decode(errors="replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if not words:
        return None
    if os.path.basename(words[0]) == "env" and len(words) > 1:
        return words[1]
    return words[0]


def job_python_problem(ray_exe: str | None, python: str = sys.executable) -> str | None:
    """The runner submits the job with `python -m runner.runs.ray_job` (ray's job client): this interpreter
    must import ray. After `pip install -e .` into a Python without the stack, a `ray` found on PATH
    belongs to another Python, and the submitter would die with `No module named 'ray'`."""
    if importlib.util.find_spec("ray") is not None:
        return None
    owner = _script_interpreter(ray_exe) if ray_exe else None
    if ray_exe and owner and "python" in os.path.basename(owner):
        return (f"ray is not installed for {python}, which runs the runner and submits the job; the `ray` on PATH "
                f"({ray_exe}) belongs to {owner}: run the runner with that Python (`{owner} -m runner ...`), or "
                f"install the stack for this one (nix develop, or uv sync --extra stack)")
    return (f"ray is not installed for {python}, which runs the runner and submits the job: run inside the pinned "
            f"stack (nix develop, or uv sync --extra stack) or with the Python that has it")
