"""The Ray head process on MASTER_ADDR."""

from __future__ import annotations

from runner.launch.cluster.spec import ClusterSpec
from runner.launch.plan import Process

# The runner stops Ray only after the job ended or was stopped, so Ray 2.60's
# drain-on-SIGTERM (up to 30 s) would only wait for nothing.
NO_DRAIN = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}


def head_process(spec: ClusterSpec, no_proxy: str) -> Process:
    argv = (
        spec.ray, "start", "--head", "--block",
        "--node-ip-address", spec.master_addr,
        "--port", str(spec.gcs_port),
        "--num-gpus", str(spec.gpus_per_node),
        "--disable-usage-stats",
        # slime binds 0.0.0.0 here: anyone who reaches this port can run code.
        "--dashboard-host", spec.dashboard_host,
        "--dashboard-port", str(spec.dashboard_port),
        "--temp-dir", spec.head_temp_dir,
    )
    env = {"no_proxy": no_proxy, **spec.auth_env(), **NO_DRAIN, **spec.marker_env()}
    return Process(argv, env, purpose=f"Ray head on {spec.master_addr} ({spec.gpus_per_node} GPUs)")
