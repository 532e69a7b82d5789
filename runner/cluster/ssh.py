"""Ray workers over ssh, one per hostfile line (what slime's scripts do, minus pkill)."""

from __future__ import annotations

import shlex

from runner.cluster.spec import ClusterSpec
from runner.cluster.head import NO_DRAIN
from runner.cluster.hostfile import node_address
from runner.plan import Process

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")


def token_copy_process(spec: ClusterSpec, host: str) -> Process:
    """Copy the auth token through ssh's stdin, so it never appears on a command line."""
    remote = f"umask 077 && mkdir -p {shlex.quote(spec.temp_dir)} && cat > {shlex.quote(spec.remote_token_path)}"
    return Process(("ssh", *SSH_OPTIONS, host, remote), {"RAY_AUTH_TOKEN": spec.token or ""}, purpose=f"copy the Ray auth token to {host} (via stdin)",
                   stdin_secret="RAY_AUTH_TOKEN")


def worker_process(spec: ClusterSpec, host: str) -> Process:
    remote_env = [f"{k}={v}" for k, v in {**NO_DRAIN, **spec.marker_env()}.items()]
    if spec.token_auth:
        remote_env += ["RAY_AUTH_MODE=token", f"RAY_AUTH_TOKEN_PATH={spec.remote_token_path}"]
    else:
        remote_env += ["RAY_AUTH_MODE=disabled"]
    ray_argv = [
        spec.ray, "start", "--block",
        "--address", spec.gcs_address,
        "--num-gpus", str(spec.gpus_per_node),
        "--node-ip-address", node_address(host),
        "--disable-usage-stats",
        # Per node and below the run's temp dir: marks this run's processes
        # there too, and keeps nodes apart where /tmp is shared.
        "--temp-dir", f"{spec.temp_dir}/worker-{node_address(host)}",
    ]
    cleanup = f"; rm -f {shlex.quote(spec.remote_token_path)}" if spec.token_auth else ""
    # The remote shell owns the worker: when ssh hangs up (the runner stopped
    # it, or died), the shell gets SIGHUP and stops `ray start --block` with
    # SIGTERM, whose shutdown stops that node's Ray processes; then the token
    # file goes. (A shell that only exec'd ray would do for the hang-up, but
    # could not remove the token afterwards.)
    remote = (f"{shlex.join(['env', *remote_env, *ray_argv])} & pid=$!; "
              f"trap 'kill -TERM $pid 2>/dev/null; wait $pid{cleanup}' HUP INT TERM EXIT; wait $pid")
    # -tt: a terminal on the far side, so that closing this ssh hangs it up.
    return Process(("ssh", "-tt", *SSH_OPTIONS, host, remote), purpose=f"Ray worker on {host}")


def worker_processes(spec: ClusterSpec) -> list[Process]:
    out: list[Process] = []
    for host in spec.workers:
        if spec.token_auth:
            out.append(token_copy_process(spec, host))
        out.append(worker_process(spec, host))
    return out
