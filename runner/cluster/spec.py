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


@dataclass(frozen=True)
class ClusterSpec:
    ray: str  # the `ray` executable
    master_addr: str
    gcs_port: int
    dashboard_host: str
    dashboard_port: int
    gpus_per_node: int
    nodes: int
    # A directory unique to this run: Ray's --temp-dir on the head. It marks
    # every process of this Ray instance, so cleanup can find exactly those.
    temp_dir: str
    token_auth: bool
    # The secret token; travels only in environments (and ssh's stdin).
    token: str | None = None
    # Worker hosts (ssh) or Slurm node names; empty for one node.
    workers: tuple[str, ...] = ()
    worker_launcher: str = "none"  # "none", "ssh" or "slurm"
    # The run this cluster belongs to: set as RUN_MARKER_ENV in every Ray node's
    # environment, so that `stop` finds all of its processes (runner.execute).
    run_id: str = ""

    def marker_env(self) -> dict[str, str]:
        return {RUN_MARKER_ENV: self.run_id} if self.run_id else {}

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
