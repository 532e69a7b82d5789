"""The job submission retries "500: No available agent to submit job" (and only
transient errors), against a real Ray head.

A Ray head answers that while its job agent has not registered yet, which
happens under CPU load right after the job API comes up; it cannot be
provoked on demand. So a real TCP front stands between `python -m
runner.runs.ray_job` and the real job API: it answers the submission POST with the
head's exact error a given number of times, then passes every connection
through untouched (version check, submission, the log websocket, status).
Without the retry, the first test fails: the job is never submitted.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from runner.launch.cluster.head import head_process
from runner.launch.cluster.spec import ClusterSpec
from runner.launch.processes import ProcessOwner, sweep_run
from runner.launch.run import wait_for_job_api
from tests.conftest import REPO, free_port

pytest.importorskip("ray.job_submission", reason="needs ray[default] (pip install -e '.[test]')")

# Ray 2.60 dashboard/modules/job/job_head.py, verbatim.
NO_AGENT = "No available agent to submit job, please try again later."


class _Front:
    """127.0.0.1:port in front of the real job API: accepts connections and reads each request's head;
    subclasses decide what to pass on (`_forward`)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                conn.close()
                return
            data += chunk
        self._forward(conn, data)

    def _forward(self, conn: socket.socket, data: bytes) -> None:
        raise NotImplementedError


class FlakyFront(_Front):
    """127.0.0.1:port -> the real job API, except the first `failures`
    submission POSTs, which get `status` and `text` (and the connection closed)."""

    def __init__(self, upstream_port: int, failures: int, status: int = 500, text: str = NO_AGENT) -> None:
        self.failures, self.status, self.text = failures, status, text
        self.refused = 0
        self.passed_submissions = 0
        super().__init__(upstream_port)

    def _forward(self, conn: socket.socket, data: bytes) -> None:
        head, _, body = data.partition(b"\r\n\r\n")
        request_line = head.split(b"\r\n", 1)[0]
        submission = request_line.startswith(b"POST /api/jobs/ ")
        if submission and self.refused < self.failures:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:  # read the whole request, as a server would
                body += conn.recv(65536)
            self.refused += 1
            payload = self.text.encode()
            conn.sendall(b"HTTP/1.1 %d Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (self.status, len(payload), payload))
            conn.close()
            return
        if submission:
            self.passed_submissions += 1
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        upstream.sendall(data)
        threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
        _pipe(conn, upstream)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture(scope="module")
def ray_head():
    """A real Ray head (0 GPUs), started and stopped with the runner's own code."""
    temp_dir = tempfile.mkdtemp(prefix="rs", dir="/tmp")
    spec = ClusterSpec(ray=shutil.which("ray") or "ray", master_addr="127.0.0.1", gcs_port=free_port(),
                       dashboard_host="127.0.0.1", dashboard_port=free_port(), gpus_per_node=0, nodes=1,
                       temp_dir=temp_dir, token_auth=False, run_id=f"retry-test-{os.getpid()}")
    owner = ProcessOwner()
    head = owner.spawn(head_process(spec, "127.0.0.1"), own_session=True)
    try:
        wait_for_job_api(spec, head, timeout=120)
        yield spec
    finally:
        owner.stop_all(grace=30)
        sweep_run(temp_dir, spec.run_id)  # everything of this Ray, workers and drivers included
        subprocess.run(["rm", "-rf", temp_dir])


def _submit(tmp_path, front: FlakyFront, *, timeout: float = 120) -> subprocess.CompletedProcess:
    entry = tmp_path / "entry.py"
    entry.write_text("print('ENTRY ran', flush=True)\n")
    env_file = tmp_path / "runtime_env.json"
    env_file.write_text(json.dumps({"env_vars": {"PYTHONUNBUFFERED": "1"}}))
    argv = [sys.executable, "-m", "runner.runs.ray_job", "--address", f"http://127.0.0.1:{front.port}",
            "--submission-id", f"retry-{time.monotonic_ns()}", "--runtime-env-file", str(env_file),
            "--submit-timeout", str(timeout), "--", sys.executable, str(entry)]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=timeout + 120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path),
                               "RAY_AUTH_MODE": "disabled"})


@pytest.mark.slow
def test_no_available_agent_is_retried_until_the_head_accepts(tmp_path, ray_head):
    front = FlakyFront(ray_head.dashboard_port, failures=3)
    try:
        r = _submit(tmp_path, front)
    finally:
        front.close()
    assert r.returncode == 0, r.stderr[-3000:]
    assert front.refused == 3 and front.passed_submissions == 1
    assert r.stderr.count("No available agent to submit job") == 3, r.stderr  # said each time
    assert "retrying for up to" in r.stderr and "accepted on attempt 4" in r.stderr
    assert "ENTRY ran" in r.stdout  # the job really ran, its log streamed through the front


@pytest.mark.slow
def test_other_errors_are_not_retried(tmp_path, ray_head):
    front = FlakyFront(ray_head.dashboard_port, failures=5, status=400, text="runtime_env is invalid")
    try:
        r = _submit(tmp_path, front)
    finally:
        front.close()
    assert r.returncode == 1
    assert front.refused == 1 and front.passed_submissions == 0  # one attempt only
    assert "could not submit job" in r.stderr and "runtime_env is invalid" in r.stderr
    assert "retrying" not in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_retry_gives_up_at_the_timeout(tmp_path, ray_head):
    front = FlakyFront(ray_head.dashboard_port, failures=10**6)
    start = time.monotonic()
    try:
        r = _submit(tmp_path, front, timeout=3)
    finally:
        front.close()
    assert r.returncode == 1
    assert "gave up after" in r.stderr and "No available agent" in r.stderr
    assert front.passed_submissions == 0 and front.refused >= 2
    assert time.monotonic() - start < 60


class HoldingFront(_Front):
    """127.0.0.1:port -> the real job API, except that the reply to the submission POST is held back: the
    head has the job, the submitter still waits in submit_job (where a SIGTERM can land)."""

    def __init__(self, upstream_port: int) -> None:
        self.submitted = threading.Event()
        self.held: list[socket.socket] = []
        super().__init__(upstream_port)

    def close(self) -> None:
        super().close()
        for s in self.held:
            s.close()

    def _forward(self, conn: socket.socket, data: bytes) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        upstream.sendall(data)
        if data.startswith(b"POST /api/jobs/ "):
            self.held += [conn, upstream]
            threading.Thread(target=_pipe, args=(conn, upstream), daemon=True).start()  # the rest of the body
            self.submitted.set()  # the head's reply is never passed on
            return
        threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
        _pipe(conn, upstream)


@pytest.mark.slow
def test_sigterm_during_submission_stops_the_job(tmp_path, ray_head):
    from ray.job_submission import JobSubmissionClient

    entry = tmp_path / "entry.py"
    entry.write_text("import time\nprint('ENTRY started', flush=True)\ntime.sleep(300)\n")
    env_file = tmp_path / "runtime_env.json"
    env_file.write_text(json.dumps({"env_vars": {"PYTHONUNBUFFERED": "1"}}))
    job_id = f"sigterm-{time.monotonic_ns()}"
    front = HoldingFront(ray_head.dashboard_port)
    head = JobSubmissionClient(f"http://127.0.0.1:{ray_head.dashboard_port}")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner.runs.ray_job", "--address", f"http://127.0.0.1:{front.port}", "--submission-id",
             job_id, "--runtime-env-file", str(env_file), "--", sys.executable, str(entry)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled"})
        assert front.submitted.wait(120), "the submission never reached the front"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the head has the job (its reply is held back)
            try:
                head.get_job_status(job_id)
                break
            except RuntimeError:
                time.sleep(0.2)
        proc.send_signal(15)
        _, err = proc.communicate(timeout=180)
        status = str(head.get_job_status(job_id)).split(".")[-1]
        if status not in ("STOPPED", "FAILED", "SUCCEEDED"):
            head.stop_job(job_id)  # the job would otherwise sleep on in the shared head
    finally:
        front.close()
    assert proc.returncode == 143, err[-3000:]
    assert "could not submit" not in err and f"stopping job {job_id}" in err, err[-3000:]
    assert status == "STOPPED", err[-3000:]
