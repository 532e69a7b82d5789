"""Read a hostfile the way slime does (`awk '{print $1}'`), minus the head."""

from __future__ import annotations

from pathlib import Path


class HostfileError(Exception):
    pass


def node_address(host: str) -> str:
    """A hostfile entry may name the ssh user (`root@10.0.0.2`, as slime's scripts log in)."""
    return host.rsplit("@", 1)[-1]


def parse_hostfile(text: str) -> list[str]:
    hosts = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            hosts.append(line.split()[0])
    return hosts


def read_workers(path: Path, master_addr: str) -> list[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise HostfileError(f"hostfile {path}: cannot read ({exc.strerror}); pass --hostfile with one host per line") from None
    hosts = parse_hostfile(text)
    if not hosts:
        raise HostfileError(f"hostfile {path} lists no hosts; put one worker address per line")
    duplicates = sorted({h for h in hosts if hosts.count(h) > 1})
    if duplicates:
        raise HostfileError(f"hostfile {path} lists {duplicates[0]} more than once")
    return [h for h in hosts if node_address(h) != master_addr]
