"""Multinode launch for real: a Ray worker on a second host reached over ssh.

The second host is a network namespace made by the test (veth pair, its own
address, sshd listening there), so the runner's ssh worker path runs end to
end: hostfile, token copy through ssh's stdin, `ssh -tt ... ray start
--block`, waiting for both nodes, the job, and the worker stopping itself
when ssh hangs up. Needs root, iproute2 and openssh-server (.ci/run installs
them); skipped otherwise.
"""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

from runner.launch.processes import processes_with_marker
from tests import netns_host
from tests.test_ray_launch import _alive, _launch

pytest.importorskip("ray.job_submission", reason="needs ray[default]")


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def worker_host(tmp_path_factory):
    why = netns_host.unavailable() or (None if os.path.exists("/usr/sbin/sshd") else "needs openssh-server")
    if why:
        pytest.skip(f"{why} (installed by .ci/run)")
    lab = tmp_path_factory.mktemp("sshlab")
    with contextlib.ExitStack() as stack:
        try:
            host = stack.enter_context(netns_host.namespace_host("slt"))
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
        stack.callback(_kill_from_pid_file, lab / "sshd.pid")
        for key in ("hostkey", "userkey"):
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(lab / key))
        shutil.copy(lab / "userkey.pub", lab / "authorized_keys")
        (lab / "sshd_config").write_text(
            f"ListenAddress {host.worker_ip}\nHostKey {lab}/hostkey\nAuthorizedKeysFile {lab}/authorized_keys\n"
            f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nStrictModes no\nUsePAM no\n"
            f"PidFile {lab}/sshd.pid\n")
        os.makedirs("/run/sshd", exist_ok=True)
        _run(*host.inside("/usr/sbin/sshd", "-f", str(lab / "sshd_config"), "-E", str(lab / "sshd.log")))
        # The runner calls plain `ssh`: a wrapper first on PATH adds this lab's key and host policy.
        (lab / "ssh_config").write_text(f"Host *\n  IdentityFile {lab}/userkey\n  StrictHostKeyChecking no\n"
                                        f"  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
        (lab / "bin").mkdir()
        wrapper = lab / "bin" / "ssh"
        wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('ssh')} -F {lab}/ssh_config \"$@\"\n")
        wrapper.chmod(0o755)
        for _ in range(50):
            if subprocess.run([str(wrapper), "-o", "BatchMode=yes", host.worker_ip, "true"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.skip("sshd in the namespace did not come up")
        yield {"lab": lab, "path": f"{lab}/bin:{os.environ['PATH']}", "head_ip": host.head_ip,
               "worker_ip": host.worker_ip, "nobody_ip": host.address(9), "host": host}


def _kill_from_pid_file(pid_file):
    if pid_file.exists():
        subprocess.run(["kill", pid_file.read_text().strip()], capture_output=True)


def _hostfile(tmp_path, head_ip, *hosts):
    path = tmp_path / "hosts"
    path.write_text("".join(f"{h} slots=8\n" for h in (head_ip, *hosts)))
    return str(path)


@pytest.mark.slow
def test_worker_over_ssh_joins_runs_and_cleans_up(worker_host, tmp_path, short_tmp):
    h = worker_host
    key = "wandb-key-for-the-worker-node-0123456789"
    rc, out, seen = _launch(
        tmp_path, short_tmp, "--test-node-probe", probe=True, recipe="megatron-multinode",
        runner_args=("--hostfile", _hostfile(tmp_path, h["head_ip"], h["worker_ip"]), "--master-addr", h["head_ip"]),
        env_extra={"PATH": worker_host["path"], "WANDB_API_KEY": key})
    assert rc == 0, out[-4000:]
    assert f"copy the Ray auth token to {h['worker_ip']}" in out and f"Ray worker on {h['worker_ip']}" in out
    assert f"copy the run's secrets to {h['worker_ip']}" in out
    assert "cluster ready: 2 node(s)" in out
    assert "ENTRY probe status 401" in out  # multinode: token authentication is on
    # An actor on each node sees the key: on the worker, whose Ray came up over ssh without it, the
    # secrets hook read the copy of the run's secrets file.
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert f"ENTRY node {h['head_ip']} key {digest}" in out and f"ENTRY node {h['worker_ip']} key {digest}" in out, out[-3000:]
    assert key not in out
    assert "leftover" not in out  # the worker stopped itself when ssh hung up; nothing had to be swept
    assert not os.path.exists(os.path.join(short_tmp, "auth_token"))  # the worker's token file is gone
    assert not os.path.exists(os.path.join(short_tmp, "secrets.json"))  # and the secrets
    assert not processes_with_marker(short_tmp + "/")
    assert not [p for p in seen if _alive(p)]


@pytest.mark.slow
def test_unreachable_worker_is_named(worker_host, tmp_path, short_tmp):
    h = worker_host
    rc, out, seen = _launch(
        tmp_path, short_tmp, recipe="megatron-multinode",
        runner_args=("--hostfile", _hostfile(tmp_path, h["head_ip"], h["worker_ip"], h["nobody_ip"]), "--master-addr", h["head_ip"],
                     "--ready-timeout", "25"),
        env_extra={"PATH": worker_host["path"]})
    assert rc == 1, out[-4000:]
    error = [line for line in out.splitlines() if "error:" in line]
    # The copy of the token to it (ssh, waited for) is the first step that reaches the host.
    assert error and f"copy the Ray auth token to {h['nobody_ip']} (via stdin) failed" in error[-1], error
    assert f"connect to host {h['nobody_ip']}" in error[-1], error  # ssh's own reason, from copy-to-worker-2.out
    assert "ENTRY" not in out  # the job never started
    assert not processes_with_marker(short_tmp + "/")
    assert not [p for p in seen if _alive(p)]


@pytest.mark.slow
def test_detached_multinode_run_is_stopped_on_every_node(worker_host, tmp_path, short_tmp):
    """train --detach with an ssh worker, then `stop RUN`: the job, the head and the worker's Ray all end,
    found through the run directory (the worker's processes carry the run's temp dir), nothing else."""
    h = worker_host
    from tests.conftest import free_port, run_cli
    from tests.test_runs_ray import ENTRY, _record, _wait

    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    runs = tmp_path / "runs"
    env = {"PATH": worker_host["path"], "PYTHONUNBUFFERED": "1", "NCCL_NVLS_ENABLE": "0",
           "SLIME_RUNNER_LOCK": str(tmp_path / "runner.lock")}
    r = run_cli("train", "--recipe", "megatron-multinode", "--test-entrypoint", str(entry),
                "--ray-temp-dir", short_tmp, "--ray-port", str(free_port()), "--dashboard-port", str(free_port()),
                "--ready-timeout", "120", "--runs-dir", str(runs), "--kernel-cache", str(tmp_path / "kernels"),
                "--hostfile", _hostfile(tmp_path, h["head_ip"], h["worker_ip"]), "--master-addr", h["head_ip"], "--detach",
                "--", "--test-sleep", "300", env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = [p for p in runs.iterdir() if (p / "run.json").is_file()]
    worker_marker = f"{short_tmp}/worker-1/"  # the first worker's Ray temp dir
    try:
        _wait(lambda: "ENTRY sleeping" in (run_dir / "job.log").read_text(), 180, "the job to start")
        assert _record(run_dir)["state"] == "running"
        worker = processes_with_marker(worker_marker)
        assert worker, "the worker's Ray (in the second host's namespace) should be running"
        everything = set(processes_with_marker(short_tmp + "/")) | set(worker)
        _remote_host_reaches_no_job(h["host"], run_dir)
        stop = run_cli("stop", run_dir.name, "--runs-dir", str(runs), env=env, timeout=300)
        assert stop.returncode == 0, stop.stderr
        assert "no process of it is left" in stop.stderr, stop.stderr
    finally:
        if processes_with_marker(short_tmp + "/"):  # leave nothing behind for the next test
            subprocess.run(["pkill", "-9", "-f", short_tmp + "/"], capture_output=True)
    final = _record(run_dir)
    assert final["state"] == "stopped", final
    assert "ENTRY exiting" not in (run_dir / "job.log").read_text()
    assert not processes_with_marker(short_tmp + "/")
    assert not [p for p in everything if _alive(p)]


def _remote_host_reaches_no_job(host, run_dir) -> None:  # noqa: ANN001
    """From the second host (its own network namespace), as user nobody: every port the head's Ray
    listens on, at the head's address. Without the token nothing answers but Prometheus metrics; the job
    API (on the head's 127.0.0.1) is out of reach, and so a job submission fails."""
    from tests.test_security import _as_nobody, _listening, _pids_of_run, _python_for_nobody, _setpriv

    setpriv = host.inside(*_setpriv())
    python = _python_for_nobody(setpriv)
    record = json.loads((run_dir / "run.json").read_text())
    dashboard = int(record["ray"]["dashboard"].rsplit(":", 1)[1])
    # This test's /proc/net/tcp is the head's namespace: the head's sockets only.
    ports = sorted({port for _, port in _listening(_pids_of_run(run_dir))})
    assert int(record["ray"]["gcs"].rsplit(":", 1)[1]) in ports
    probe = _as_nobody(setpriv, python, {"ports": [[host.head_ip, p] for p in ports], "secrets": [],
                                         "submit": {"host": host.head_ip, "port": dashboard, "marker": "/nonexistent"}})
    answered = {f"{k} {v}" for k, answers in probe["http"].items() for v in answers if v.startswith("200")}
    assert all(a.endswith("200 metrics") for a in answered), answered
    assert sum(v[0] == "401" for v in probe["http"].values()) >= 2, probe["http"]  # Ray's agents want the token
    assert probe["submit"] == "URLError", probe["submit"]  # nothing listens there on the head's address
