"""A second host for multinode tests: a network namespace with its own address.

A veth pair joins this machine (the head, HEAD address) to a new network
namespace (the worker, its own address): what runs inside reaches the head
over the veth and sees only its own address. The tests that need a second
host (ssh workers, a Slurm node) use this one builder.

Processes are started inside with `nsenter --net=/run/netns/NAME`, which
enters the network namespace only. `ip netns exec` would also remount /sys,
after which slurmd 22.05 stops on a cgroup error.

Names (namespace, interfaces) carry this process's id and the subnet is one
that no interface of this machine uses yet, so two test sessions never share
either. Needs root and iproute2.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

# Candidate /24 subnets (private 10.0.0.0/8, rarely used third octets).
_FIRST_SUBNETS = (231, 232, 233, 234, 235)


@dataclass(frozen=True)
class NetnsHost:
    name: str  # the network namespace
    host_if: str  # the veth end on this machine
    ns_if: str  # the veth end inside the namespace
    subnet: str  # "10.231.77"

    @property
    def head_ip(self) -> str:
        return f"{self.subnet}.1"

    @property
    def worker_ip(self) -> str:
        return f"{self.subnet}.2"

    def address(self, last: int) -> str:
        """Another address of the subnet (one that nobody answers on, e.g. .9)."""
        return f"{self.subnet}.{last}"

    def inside(self, *argv: str) -> list[str]:
        """argv run in the namespace's network (and nothing else of it)."""
        return ["nsenter", f"--net=/run/netns/{self.name}", *argv]


def unavailable() -> str | None:
    """Why a namespace host cannot be built here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not shutil.which("ip") or not shutil.which("nsenter"):
        return "needs iproute2 and util-linux's nsenter (installed by .ci/run)"
    return None


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def _free_subnet(salt: int) -> str:
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    taken = {ipaddress.ip_interface(word).network for word in used.split() if "/" in word and word[0].isdigit()}
    for second in _FIRST_SUBNETS:
        for step in range(250):
            third = (salt + step) % 250 + 1
            net = ipaddress.ip_network(f"10.{second}.{third}.0/24")
            if not any(net.overlaps(t) for t in taken):
                return f"10.{second}.{third}"
    raise RuntimeError("no free 10.x.y.0/24 subnet for the test namespace")


@contextmanager
def namespace_host(tag: str) -> Iterator[NetnsHost]:
    """Create the namespace host; on exit delete the namespace and both veth ends.

    `tag` (a few letters) names what it is for; the process id makes it unique.
    Raises subprocess.CalledProcessError when the kernel refuses (callers skip).
    """
    pid = os.getpid() % 100000
    host = NetnsHost(name=f"{tag}{pid}", host_if=f"v{tag}h{pid}"[:15], ns_if=f"v{tag}n{pid}"[:15],
                     subnet=_free_subnet(pid))
    _run("ip", "netns", "add", host.name)
    try:
        _run("ip", "link", "add", host.host_if, "type", "veth", "peer", "name", host.ns_if)
        _run("ip", "link", "set", host.ns_if, "netns", host.name)
        _run("ip", "addr", "add", f"{host.head_ip}/24", "dev", host.host_if)
        _run("ip", "link", "set", host.host_if, "up")
        _run(*host.inside("ip", "addr", "add", f"{host.worker_ip}/24", "dev", host.ns_if))
        _run(*host.inside("ip", "link", "set", host.ns_if, "up"))
        _run(*host.inside("ip", "link", "set", "lo", "up"))
        yield host
    finally:
        # Deleting the namespace deletes its veth end, and with it the pair.
        subprocess.run(["ip", "netns", "del", host.name], capture_output=True)
        subprocess.run(["ip", "link", "del", host.host_if], capture_output=True)


def leftovers(host: NetnsHost) -> list[str]:
    """What of `host` still exists on this machine (empty once it is taken down)."""
    out = []
    if host.name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
        out.append(f"network namespace {host.name}")
    if subprocess.run(["ip", "link", "show", host.host_if], capture_output=True).returncode == 0:
        out.append(f"interface {host.host_if}")
    return out
