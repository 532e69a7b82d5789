"""Read a hostfile: one worker per line, minus the head.

slime's multinode script takes the first column of each line (`awk '{print
$1}'` of an MPI rack hostfile, whose lines read `HOST slots=8`). The runner
accepts the same two forms, `HOST` and `HOST slots=N` (N is not used: each
node's GPU count comes from the recipe, and the runner waits until they all
registered), with an optional ssh user (`root@HOST`) and `#` comments.
Anything else on a line is refused with the line number, rather than read as
a host name that ssh and Ray would then fail on: `10.0.0.3:22` (a port: set
it in ~/.ssh/config), `node-b,node-c` (one host per line), other columns.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from runner.checks.inputs import IPV6_REASON

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_SLOTS = re.compile(r"^slots=[1-9][0-9]*$")


class HostfileError(Exception):
    pass


def node_address(host: str) -> str:
    """A hostfile entry may name the ssh user (`root@10.0.0.2`, as slime's scripts log in)."""
    return host.rsplit("@", 1)[-1]


def entry_problem(entry: str) -> str | None:
    """None if `entry` ([user@]host) is a host ssh and Ray can use; else why not and what to write."""
    user, _, host = entry.rpartition("@")
    if user and not _USER.match(user):
        return f"{user!r} is not a user name"
    if "," in host:
        return "one host per line, not a comma-separated list"
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        if ipaddress.ip_address(bare.split("%", 1)[0]).version == 6:
            return f"an IPv6 address: {IPV6_REASON}; give the host's IPv4 address or name"
        return None
    except ValueError:
        pass
    if re.match(r"^[^:]+:\d+$", host) or re.match(r"^\[.*\]:\d+$", host):
        return "a port is not part of a hostfile entry; set it for ssh in ~/.ssh/config (Host ... / Port ...)"
    if not _HOSTNAME.match(host):
        return "not a host name or IP address"
    return None


def parse_hostfile(text: str, source: str = "hostfile") -> list[str]:
    hosts = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        entry, *rest = line.split()
        problem = entry_problem(entry)
        if problem is None and rest and not (len(rest) == 1 and _SLOTS.match(rest[0])):
            problem = f"unexpected {' '.join(rest)!r} after the host"
        if problem:
            raise HostfileError(f"{source} line {number}: {line!r}: {problem}; each line is HOST or HOST slots=N "
                                f"(optionally user@HOST)")
        hosts.append(entry)
    return hosts


def read_workers(path: Path, master_addr: str) -> list[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise HostfileError(f"hostfile {path}: cannot read ({exc.strerror}); pass --hostfile with one host per line") from None
    hosts = parse_hostfile(text, f"hostfile {path}")
    if not hosts:
        raise HostfileError(f"hostfile {path} lists no hosts; put one worker address per line")
    duplicates = sorted({h for h in hosts if hosts.count(h) > 1})
    if duplicates:
        raise HostfileError(f"hostfile {path} lists {duplicates[0]} more than once")
    return [h for h in hosts if node_address(h) != master_addr]
