"""The shape of the Ray cluster a run needs. Pure data."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_GCS_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
# Ray 2.52 added token authentication (RAY_AUTH_MODE=token).
TOKEN_AUTH_MIN_RAY = (2, 52)
# Set to the run id in the environment of every Ray node of a run; Ray passes
# it on to everything it starts.
RUN_MARKER_ENV = "SLIME_RUNNER_RUN"
HEAD_SUBDIR = "head"
# Ray puts AF_UNIX sockets in each node's temp dir:
#   <temp dir>/session_<%Y-%m-%d_%H-%M-%S_%f>_<pid of the head's `ray start`>/sockets/<name>
# (ray/_private/node.py: the session name and _prepare_socket_file, names
# plasma_store and raylet; on the head also dash_<module> for each dashboard
# module, ray/dashboard/subprocesses/utils.py get_socket_path; the same in
# Ray 2.53 and 2.60), and refuses a path over 107 bytes, Linux's sun_path
# less its NUL (ray/_private/utils.py validate_socket_filepath).
SOCKET_PATH_MAX = 107
NODE_SOCKETS = ("plasma_store", "raylet")


def longest_socket_path(node_temp_dir: str, pid_digits: int, socket_names=NODE_SOCKETS) -> int:  # noqa: ANN001
    """Bytes of Ray's longest socket path under a node's temp dir, for a head pid of pid_digits digits."""
    session = f"session_{'0' * 26}_{'9' * pid_digits}"
    name = max(socket_names, key=len)
    return len(f"{node_temp_dir}/{session}/sockets/{name}".encode())


@dataclass(frozen=True)
class ClusterSpec:
    ray: str  # the `ray` executable
    master_addr: str
    gcs_port: int
    dashboard_host: str
    dashboard_port: int
    gpus_per_node: int
    nodes: int
    # The run's private directory (mode 0700), the same path on every node:
    # each node's Ray temp dir lives inside it (Ray makes its own 0777, with
    # its logs and sockets), and so do the runtime env, the secrets file and
    # Ray's start-up output. Its path marks every process of this Ray
    # instance, so cleanup can find exactly those.
    temp_dir: str
    token_auth: bool
    # The secret token; travels only in environments (and ssh's stdin).
    token: str | None = None
    # Worker hosts (ssh) or Slurm node names; empty for one node.
    workers: tuple[str, ...] = ()
    worker_launcher: str = "none"  # "none", "ssh" or "slurm"
    # The run this cluster belongs to: set as RUN_MARKER_ENV in every Ray node's
    # environment, so that `stop` finds all of its processes (runner.launch.processes).
    run_id: str = ""

    def marker_env(self) -> dict[str, str]:
        return {RUN_MARKER_ENV: self.run_id} if self.run_id else {}

    @property
    def head_temp_dir(self) -> str:
        """The head's Ray --temp-dir (its logs: session_latest/logs)."""
        return f"{self.temp_dir}/{HEAD_SUBDIR}"

    def ssh_worker_temp_dir(self, number: int) -> str:
        """The Ray --temp-dir of the number-th ssh worker (1-based, hostfile order)."""
        return f"{self.temp_dir}/worker-{number}"

    @property
    def slurm_worker_temp_dir(self) -> str:
        return f"{self.temp_dir}/worker"

    def node_temp_dirs(self) -> list[str]:
        """Every node's Ray temp dir."""
        if self.worker_launcher == "ssh":
            return [self.head_temp_dir, *(self.ssh_worker_temp_dir(i) for i in range(1, len(self.workers) + 1))]
        if self.worker_launcher == "slurm" and self.workers:
            return [self.head_temp_dir, self.slurm_worker_temp_dir]
        return [self.head_temp_dir]

    @property
    def secrets_path(self) -> str:
        """The run's secrets (runner.launch.job_secrets), mode 0600, on every node that needs a copy."""
        return f"{self.temp_dir}/secrets.json"

    @property
    def gcs_address(self) -> str:
        return f"{self.master_addr}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        # The job API is always reached locally: the runner runs on the head node.
        host = "127.0.0.1" if self.dashboard_host in ("0.0.0.0", "127.0.0.1", "localhost") else self.dashboard_host
        return f"http://{host}:{self.dashboard_port}"

    @property
    def expected_gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def remote_token_path(self) -> str:
        """Where ssh workers keep the token (written through ssh's stdin, mode 0600)."""
        return f"{self.temp_dir}/auth_token"

    def auth_env(self) -> dict[str, str]:
        if not self.token_auth:
            # Explicit, so that a token lying in ~/.ray/auth_token (which Ray
            # 2.52+ would pick up on its own) cannot change how this run behaves.
            return {"RAY_AUTH_MODE": "disabled"}
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token or ""}


def parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def supports_token_auth(ray_version: str | None) -> bool:
    return ray_version is not None and parse_version(ray_version)[:2] >= TOKEN_AUTH_MIN_RAY
