"""Ray workers over ssh, one per hostfile line (what slime's scripts do, minus pkill).

Per host, in order: the Ray auth token and the run's secrets, each copied
through ssh's stdin into the run's private directory there (mode 0700, files
0600; never on a command line), each waited for; then `ray start --block`
with its temp dir inside that directory. The n-th host's output goes to
ray-worker-n.out and copy-to-worker-n.out in the run's temp dir (unless
--verbose).
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from runner.launch.cluster.head import NO_DRAIN
from runner.launch.cluster.hostfile import node_address
from runner.launch.cluster.spec import ClusterSpec
from runner.launch.plan import Process

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")


def _private_dir(spec: ClusterSpec) -> str:
    """Shell: make the run's directory on the far side, mode 0700 (an existing one owned by another user
    fails chmod, and so the command). The umask stays in a subshell: Ray's own files keep the usual one."""
    quoted = shlex.quote(spec.temp_dir)
    return f"(umask 077 && mkdir -p {quoted}) && chmod 700 {quoted}"


def token_copy_process(spec: ClusterSpec, host: str) -> Process:
    """Copy the auth token through ssh's stdin, so it never appears on a command line."""
    remote = f"{_private_dir(spec)} && (umask 077 && cat > {shlex.quote(spec.remote_token_path)})"
    return Process(("ssh", *SSH_OPTIONS, host, remote), {"RAY_AUTH_TOKEN": spec.token or ""},
                   purpose=f"copy the Ray auth token to {host} (via stdin)", stdin_secret="RAY_AUTH_TOKEN",
                   wait=True)


def secrets_copy_process(spec: ClusterSpec, host: str) -> Process:
    """Copy the run's secrets file (written locally first) through ssh's stdin."""
    remote = f"{_private_dir(spec)} && (umask 077 && cat > {shlex.quote(spec.secrets_path)})"
    return Process(("ssh", *SSH_OPTIONS, host, remote), purpose=f"copy the run's secrets to {host} (via stdin)",
                   stdin_file=spec.secrets_path, wait=True)


def worker_process(spec: ClusterSpec, host: str, number: int) -> Process:
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
        # Per node and inside the run's private directory: marks this run's
        # processes there too, and keeps nodes apart where /tmp is shared.
        "--temp-dir", spec.ssh_worker_temp_dir(number),
    ]
    cleanup = f"; rm -f {shlex.quote(spec.remote_token_path)} {shlex.quote(spec.secrets_path)}"
    # The remote shell owns the worker: when ssh hangs up (the runner stopped
    # it, or died), the shell gets SIGHUP and stops `ray start --block` with
    # SIGTERM, whose shutdown stops that node's Ray processes; then the token
    # and secrets files go. (A shell that only exec'd ray would do for the
    # hang-up, but could not remove them afterwards.)
    remote = (f"{_private_dir(spec)} || exit 1; {shlex.join(['env', *remote_env, *ray_argv])} & pid=$!; "
              f"trap 'kill -TERM $pid 2>/dev/null; wait $pid{cleanup}' HUP INT TERM EXIT; wait $pid")
    # -tt: a terminal on the far side, so that closing this ssh hangs it up.
    return Process(("ssh", "-tt", *SSH_OPTIONS, host, remote), purpose=f"Ray worker on {host}")


def worker_processes(spec: ClusterSpec, *, with_secrets: bool = False, output_dir: str | None = None) -> list[Process]:
    """Per host: the token copy (token auth), the secrets copy (with_secrets), the worker. output_dir:
    each process's output to a file there, named by the host's number."""
    out: list[Process] = []
    for number, host in enumerate(spec.workers, 1):
        copies = ([token_copy_process(spec, host)] if spec.token_auth else []) + \
                 ([secrets_copy_process(spec, host)] if with_secrets else [])
        if output_dir:
            copies = [replace(p, output=f"{output_dir}/copy-to-worker-{number}.out") for p in copies]
        worker = worker_process(spec, host, number)
        if output_dir:
            worker = replace(worker, output=f"{output_dir}/ray-worker-{number}.out")
        out += [*copies, worker]
    return out
