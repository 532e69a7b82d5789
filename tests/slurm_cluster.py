"""A real two-node Slurm cluster on this machine, for tests.

Debian 12's slurm-wlm 22.05 (slurmctld, slurmd, slurm-client) and munge:
  - munged with a fresh key, on its own socket (AuthInfo=socket=...);
  - slurmctld on this machine's name, at the head address of a namespace host
    (tests/netns_host.py);
  - slurmd `-N n1` here and slurmd `-N n2` inside the namespace (its own
    address), with %n in their spool, pid and log paths;
  - proctrack/linuxproc and task/none (no cgroups), select/cons_tres with
    CR_CPU; partition "debug" (default) of both nodes, and "short" of n1
    alone with a 10-minute limit.
Every daemon runs in the foreground as a child of the test (its pid is ours);
ports are free ones, paths live in the test's own directory. On exit, every
job is cancelled and waited for, then the daemons stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tests import netns_host

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "scancel", "sinfo")
NODES = ("n1", "n2")
PARTITION = "debug"
# A partition of one node with a 10-minute limit, for the checks of what a run asks of Slurm.
SHORT_PARTITION, SHORT_PARTITION_MINUTES = "short", 10


def unavailable() -> str | None:
    """Why the cluster cannot be built here, or None."""
    why = netns_host.unavailable()
    if why:
        return why
    missing = [name for name in DAEMONS + CLIENTS if not shutil.which(name) and not os.path.exists(f"/usr/sbin/{name}")]
    if missing:
        return f"needs slurmctld, slurmd, slurm-client and munge (missing {', '.join(missing)}; .ci/run installs them)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@dataclass
class SlurmCluster:
    lab: Path
    host: netns_host.NetnsHost
    conf: Path
    name: str
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client needs to talk to this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env={**os.environ, **self.env}, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o`, as a dict (finished jobs stay MinJobAge, 300 s)."""
        line = self.run("scontrol", "show", "job", "-o", job_id).stdout.strip()
        return dict(word.split("=", 1) for word in line.split() if "=" in word)

    def jobs(self) -> list[str]:
        """Jobs slurmctld has not finished yet (pending, running, completing)."""
        return self.run("squeue", "-h", "-o", "%i", check=False).stdout.split()

    def node_states(self) -> dict[str, str]:
        out = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False).stdout
        return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)

    def daemon_pids(self) -> list[int]:
        return [p.pid for p in self.daemons.values() if p.poll() is None]

    def log(self, which: str) -> str:
        path = self.lab / f"{which}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_tail(self) -> str:
        return "\n".join(f"--- {w}\n{self.log(w)[-1500:]}" for w in ("slurmctld", "slurmd-n1", "slurmd-n2"))


def _conf(lab: Path, host: netns_host.NetnsHost, name: str, cpus: int) -> str:
    ctld, slurmd = _free_port(), _free_port()
    return f"""\
ClusterName={name}
SlurmctldHost={socket.gethostname()}({host.head_ip})
SlurmctldPort={ctld}
SlurmdPort={slurmd}
AuthType=auth/munge
AuthInfo=socket={lab}/munge/socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={lab}/state
SlurmdSpoolDir={lab}/spool-%n
SlurmctldPidFile={lab}/slurmctld.pid
SlurmdPidFile={lab}/slurmd-%n.pid
SlurmctldLogFile={lab}/slurmctld.log
SlurmdLogFile={lab}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={NODES[0]} NodeAddr={host.head_ip} CPUs={cpus} State=UNKNOWN
NodeName={NODES[1]} NodeAddr={host.worker_ip} CPUs={cpus} State=UNKNOWN
PartitionName={PARTITION} Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP
PartitionName={SHORT_PARTITION} Nodes={NODES[0]} MaxTime={SHORT_PARTITION_MINUTES} State=UP
"""


@contextmanager
def slurm_cluster(lab: Path, host: netns_host.NetnsHost, ready_timeout: float = 60) -> Iterator[SlurmCluster]:
    lab.mkdir(parents=True, exist_ok=True)
    (lab / "munge").mkdir(mode=0o700)
    (lab / "state").mkdir()
    key = lab / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    name = f"t{os.getpid()}"
    conf = lab / "slurm.conf"
    conf.write_text(_conf(lab, host, name, os.cpu_count() or 1))
    cluster = SlurmCluster(lab, host, conf, name)
    env = {**os.environ, **cluster.env}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    try:
        cluster.daemons["munged"] = subprocess.Popen(
            [_daemon("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={lab}/munge/socket",
             f"--pid-file={lab}/munge/pid", f"--log-file={lab}/munge/log", f"--seed-file={lab}/munge/seed"], **quiet)
        _wait_for(lambda: (lab / "munge" / "socket").exists(), 15, "munged's socket", cluster)
        cluster.daemons["slurmctld"] = subprocess.Popen([_daemon("slurmctld"), "-D", "-f", str(conf)], **quiet)
        cluster.daemons["slurmd-n1"] = subprocess.Popen([_daemon("slurmd"), "-D", "-f", str(conf), "-N", NODES[0]],
                                                        **quiet)
        cluster.daemons["slurmd-n2"] = subprocess.Popen(
            host.inside(_daemon("slurmd"), "-D", "-f", str(conf), "-N", NODES[1]), **quiet)
        _wait_for(lambda: sorted(s for s in cluster.node_states().values() if s == "idle") == ["idle", "idle"],
                  ready_timeout, "both nodes idle", cluster)
        yield cluster
    finally:
        _take_down(cluster)


class ClusterError(RuntimeError):
    pass


def _wait_for(ok, timeout: float, what: str, cluster: SlurmCluster) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [n for n, p in cluster.daemons.items() if p.poll() is not None]
        if dead:
            raise ClusterError(f"{', '.join(dead)} exited while waiting for {what}\n{cluster.logs_tail()}")
        if ok():
            return
        time.sleep(0.2)
    raise ClusterError(f"no {what} after {timeout:.0f}s\n{cluster.logs_tail()}")


def _take_down(cluster: SlurmCluster) -> None:
    """Cancel every job and wait until slurmd reaped them, then stop the daemons, newest first."""
    if "slurmctld" in cluster.daemons and cluster.daemons["slurmctld"].poll() is None:
        jobs = cluster.jobs()
        if jobs:
            cluster.run("scancel", "--full", *jobs, check=False)
        deadline = time.monotonic() + 90  # KillWait (30 s) + UnkillableStepTimeout's first round
        while time.monotonic() < deadline and (cluster.jobs() or _steps_left(cluster)):
            time.sleep(0.5)
    for name in reversed(list(cluster.daemons)):
        proc = cluster.daemons[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _steps_left(cluster: SlurmCluster) -> list[int]:
    """slurmstepd processes of this cluster (their spool directory is the cluster's)."""
    return step_daemons(cluster.lab)


def step_daemons(lab: Path) -> list[int]:
    """PIDs of slurmstepd processes whose working directory or open spool lies under `lab`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"slurmstepd"):
                continue
            fds = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        if any(f.startswith(str(lab)) for f in fds):
            out.append(int(entry.name))
    return out


def cluster_fixture(tag: str):  # noqa: ANN201 - a pytest fixture
    """A module-scoped pytest fixture: the cluster, or a one-line skip where it cannot run."""
    import contextlib

    import pytest

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory):  # noqa: ANN001
        why = unavailable()
        if why:
            pytest.skip(why)
        with contextlib.ExitStack() as stack:
            try:
                host = stack.enter_context(netns_host.namespace_host(tag))
            except subprocess.CalledProcessError as exc:
                pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
            yield stack.enter_context(slurm_cluster(tmp_path_factory.mktemp("slurm"), host))

    return fixture
