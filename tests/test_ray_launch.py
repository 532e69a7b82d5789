"""Real Ray: the runner brings up a head on 127.0.0.1 with 0 GPUs, submits a
tiny entrypoint in place of slime's train.py, streams its logs, propagates
its exit code, and leaves no Ray process of its own behind (also on Ctrl-C)."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runner.launch.processes import processes_with_marker
from tests.conftest import REPO, free_port

pytest.importorskip("ray.job_submission", reason="needs ray[default] (pip install -e '.[test]')")

ENTRY = """\
import os, sys, time
args = sys.argv[1:]
print("ENTRY started with", len(args), "args; NCCL_NVLS_ENABLE=" + os.environ.get("NCCL_NVLS_ENABLE", "?"),
      "CUDA_DEVICE_MAX_CONNECTIONS=" + os.environ.get("CUDA_DEVICE_MAX_CONNECTIONS", "?"), flush=True)
assert "--actor-num-gpus-per-node" in args
code = int(args[args.index("--test-exit-code") + 1]) if "--test-exit-code" in args else 0
sleep = float(args[args.index("--test-sleep") + 1]) if "--test-sleep" in args else 0.0
if "--test-probe" in args:  # an unauthenticated request to the job API
    import urllib.error, urllib.request
    try:
        status = urllib.request.urlopen(args[args.index("--test-probe") + 1], timeout=5).status
    except urllib.error.HTTPError as e:
        status = e.code
    print("ENTRY probe status", status, flush=True)
if "--test-node-probe" in args:  # an actor on every node reports (a hash of) the WANDB_API_KEY it sees
    import hashlib, ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    ray.init()
    @ray.remote(num_cpus=0)
    class Probe:
        def seen(self):
            return hashlib.sha256(os.environ.get("WANDB_API_KEY", "").encode()).hexdigest()
    for node in (n for n in ray.nodes() if n["Alive"]):
        where = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        probe = Probe.options(scheduling_strategy=where, runtime_env={"env_vars": {"X": "1"}}).remote()
        print("ENTRY node", node["NodeManagerAddress"], "key", ray.get(probe.seen.remote()), flush=True)
if "--train-env-vars" in args:  # JSON through argv, ray_job's shlex.join and Ray's shell
    import json
    print("ENTRY train-env-vars", json.dumps(json.loads(args[args.index("--train-env-vars") + 1])), flush=True)
for i in range(3):
    print(f"ENTRY tick {i}", flush=True)
    time.sleep(0.2)
if sleep:
    print("ENTRY sleeping", flush=True)
    time.sleep(sleep)
print("ENTRY exiting with", code, flush=True)
sys.exit(code)
"""


def _launch(tmp_path, short_tmp, *extra, sigint_after: str | None = None, sig: int = signal.SIGINT,
            runner_args: tuple[str, ...] = (), probe: bool = False, env_extra: dict | None = None,
            recipe: str = "megatron-8gpu"):
    """Run the runner; optionally send `sig` once a line contains `sigint_after`.

    Returns (exit code, output, PIDs of this run's Ray processes seen meanwhile).
    Output is read on a thread so that a hung child cannot hang the test.
    """
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    dashboard = free_port()
    if probe:
        extra = (*extra, "--test-probe", f"http://127.0.0.1:{dashboard}/api/jobs/")
    argv = [sys.executable, "-m", "runner", "train", "--recipe", recipe, "--test-entrypoint", str(entry),
            "--ray-temp-dir", short_tmp, "--ray-port", str(free_port()), "--dashboard-port", str(dashboard),
            "--ready-timeout", "120", "--runs-dir", str(tmp_path / "runs"), *runner_args, "--", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "NCCL_NVLS_ENABLE": "0",
           "SLIME_RUNNER_LOCK": str(tmp_path / "runner.lock"), **(env_extra or {})}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    seen: set[int] = set()
    deadline = time.monotonic() + 240
    while proc.poll() is None:
        assert time.monotonic() < deadline, "".join(lines[-30:])
        seen.update(processes_with_marker(short_tmp))
        if sigint_after and any(sigint_after in line for line in lines):
            proc.send_signal(sig)
            sigint_after = None
        time.sleep(0.2)
    reader.join(timeout=100)  # children may hold the pipe until they exit
    return proc.returncode, "".join(lines), seen


def _assert_nothing_left(short_tmp, seen):
    assert len(seen) >= 3, "expected to observe the Ray processes of this run (gcs, raylet, dashboard...)"
    left = processes_with_marker(short_tmp)
    assert not left, f"Ray processes of this run still alive: {left}"
    still = [pid for pid in seen if _alive(pid)]
    assert not still, f"processes seen during the run still alive: {still}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie whose parent has not reaped it yet is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_success_streams_logs_and_cleans_up(tmp_path, short_tmp):
    # A token in ~/.ray/auth_token would switch Ray 2.52+ to token auth on its
    # own; the runner's explicit choice (off for one node) must win.
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("a-token-the-user-made-earlier-0123456789")
    rc, out, seen = _launch(tmp_path, short_tmp, probe=True, env_extra={"HOME": str(home)},
                            runner_args=("--set", 'train-env-vars={"A": "1", "B": "it\'s $HOME"}'))
    assert rc == 0, out[-3000:]
    assert 'ENTRY train-env-vars {"A": "1", "B": "it\'s $HOME"}' in out  # valid JSON, quotes and $ intact
    # Ray's start-up banner goes to a file unless --verbose.
    assert "Ray runtime started" not in out
    assert "Ray runtime started" in open(os.path.join(short_tmp, "ray-head.out")).read()
    assert "ENTRY tick 0" in out and "ENTRY tick 2" in out and "ENTRY exiting with 0" in out
    assert "NCCL_NVLS_ENABLE=0" in out and "CUDA_DEVICE_MAX_CONNECTIONS=1" in out  # runtime env reached the job
    assert "job finished with exit code 0" in out
    assert "WebSocket closed" not in out  # Ray's job client's INFO line when the log stream ends
    assert "ENTRY probe status 401" in out  # token authentication on every run, one node included
    _assert_nothing_left(short_tmp, seen)
    assert not os.path.exists(os.path.join(short_tmp, "runtime_env.json"))  # may hold secrets: removed


@pytest.mark.slow
def test_nonzero_exit_code_propagates(tmp_path, short_tmp):
    rc, out, seen = _launch(tmp_path, short_tmp, "--test-exit-code", "7", probe=True,
                            runner_args=("--verbose", "--ray-auth", "off"))
    assert rc == 7, out[-3000:]
    assert "Ray runtime started" in out  # --verbose: the banner on the terminal
    assert "warning: --ray-auth off: Ray token authentication is off" in out
    assert "ENTRY probe status 200" in out  # off: the job API answers anyone
    assert "ENTRY exiting with 7" in out
    _assert_nothing_left(short_tmp, seen)


@pytest.mark.slow
def test_sigint_stops_job_and_ray(tmp_path, short_tmp):
    rc, out, seen = _launch(tmp_path, short_tmp, "--test-sleep", "300", sigint_after="ENTRY sleeping")
    assert rc == 130, out[-3000:]
    assert "stopping job" in out
    assert "ENTRY exiting" not in out  # the job was stopped, not allowed to finish
    _assert_nothing_left(short_tmp, seen)


@pytest.mark.slow
def test_runner_killed_with_sigkill_still_takes_its_ray_down(tmp_path, short_tmp):
    # PR_SET_PDEATHSIG: the head and the job process get SIGTERM when the runner dies.
    rc, out, seen = _launch(tmp_path, short_tmp, "--test-sleep", "300", sigint_after="ENTRY sleeping",
                            sig=signal.SIGKILL)
    assert rc == -signal.SIGKILL
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (processes_with_marker(short_tmp) or any(_alive(p) for p in seen)):
        time.sleep(1)
    _assert_nothing_left(short_tmp, seen)


@pytest.mark.slow
def test_token_authentication_end_to_end(tmp_path, short_tmp):
    from runner.launch.cluster.spec import supports_token_auth

    if not supports_token_auth(__import__("importlib.metadata").metadata.version("ray")):
        pytest.skip("Ray < 2.52 has no token authentication")
    rc, out, seen = _launch(tmp_path, short_tmp, runner_args=("--ray-auth", "token"), probe=True)
    assert rc == 0, out[-3000:]
    assert "ENTRY probe status 401" in out  # the job API refuses requests without the token
    assert "cluster ready" in out and "ENTRY exiting with 0" in out  # readiness probe, node list and job API all authenticated
    _assert_nothing_left(short_tmp, seen)


@pytest.mark.slow
def test_a_ray_temp_dir_at_the_socket_path_limit_runs(tmp_path, short_tmp):
    """At the runner's limit Ray starts and runs the job (one byte more is refused: test_input_errors)."""
    from tests.test_input_errors import _socket_limit

    limit = _socket_limit()
    at_limit = short_tmp + "/" + "x" * (limit - len(short_tmp) - 1)
    assert len(at_limit) == limit
    rc, out, seen = _launch(tmp_path, at_limit)
    assert rc == 0, out[-3000:]
    assert "ENTRY exiting with 0" in out
    assert any(p.name.startswith("session_") for p in (Path(at_limit) / "head").iterdir())
    _assert_nothing_left(at_limit, seen)
