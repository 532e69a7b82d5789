"""The run's keeper end to end on CPU (issue 17): a real Ray head runs tests/standin_train.py in place of
slime's train.py, with its fault knobs, and the detached supervisor keeps the run. Small thresholds and
backoffs through train's own options keep each test short.

Checked: a crash restarts from the latest complete checkpoint in the same run directory and continues at
checkpoint + 1 (no rollout trained twice), with incidents/1/ and notifications; the restart budget; fail
fast; the stop after two attempts without a new checkpoint; a hang that only prints health checks;
`stop` during a backoff; SIGKILL of the supervisor, then `stop`; a restart under the pin's start-id
behaviour caught as a resume misalignment before it overwrites a checkpoint."""

import json
import os
import shutil
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runner.launch.processes import run_processes
from runner.runs.collector import read_records
from tests.conftest import REPO, free_port, run_cli

pytest.importorskip("ray.job_submission", reason="needs ray[default] (pip install -e '.[test]')")

STANDIN = REPO / "tests" / "standin_train.py"
TRAIN_PERF = "train_metric_utils.py"


@pytest.fixture
def lab(tmp_path, short_tmp):
    runs = tmp_path / "runs"
    env = {"NCCL_NVLS_ENABLE": "0", "PYTHONUNBUFFERED": "1", "SLIME_RUNNER_LOCK": str(tmp_path / "runner.lock")}

    def train(*runner_args: str, slime: tuple = (), recipe: str = "megatron-8gpu"):
        temp = f"{short_tmp}/t{len(list(Path(short_tmp).iterdir()))}"
        argv = ["train", "--test-entrypoint", str(STANDIN), "--ray-temp-dir", temp,
                "--ray-port", str(free_port()), "--dashboard-port", str(free_port()), "--ready-timeout", "300",
                "--runs-dir", str(runs), "--kernel-cache", str(tmp_path / "kernels"), *runner_args]
        if recipe and "--resume" not in runner_args:
            argv += ["--recipe", recipe]
        argv += ["--", "--standin-seconds", "0.2", *slime]
        return run_cli(*argv, env=env, timeout=420)

    def cli(*args: str, timeout: float = 300):
        return run_cli(*args, "--runs-dir", str(runs), env=env, timeout=timeout)

    return {"train": train, "cli": cli, "runs": runs, "env": env, "once": tmp_path / "once"}


def _run_dirs(lab) -> list[Path]:  # noqa: ANN001
    return sorted(p for p in lab["runs"].iterdir() if (p / "run.json").is_file())


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _wait(run_dir: Path, states: tuple, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = _record(run_dir)
        if record["state"] in states:
            return record
        time.sleep(0.3)
    raise AssertionError(f"{run_dir.name} not {states} within {timeout:.0f}s: {_record(run_dir)['state']}\n"
                         + (run_dir / "runner.log").read_text()[-4000:])


def _ended(run_dir: Path) -> dict:
    return _wait(run_dir, ("succeeded", "failed", "stopped", "lost"))


def _trained(run_dir: Path) -> list[tuple[int, int]]:
    """(attempt, rollout) of each rollout whose training ended (the trainer's perf line)."""
    return [(r["attempt"], r["rollout_id"]) for r in read_records(run_dir / "metrics.jsonl")
            if r["kind"] == "perf" and r["source"] == TRAIN_PERF]


def _nothing_left(record: dict) -> None:
    assert run_processes(record["ray"]["temp_dir"], record["id"]) == []


@pytest.fixture
def webhook():
    """An http.server on 127.0.0.1 that keeps what is POSTed to it."""
    received: list = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):  # noqa: ANN002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


@pytest.mark.slow
def test_a_crash_restarts_from_the_checkpoint_in_the_same_run(lab, webhook, tmp_path):
    url, received = webhook
    lab["env"]["SLIME_NOTIFY_WEBHOOK"] = url
    events = tmp_path / "events.jsonl"
    started = lab["train"]("--detach", "--max-restarts", "2", "--restart-backoff", "1", "--keep-checkpoints", "1",
                           "--notify-cmd", f"cat >> {events}",
                           slime=("--num-rollout", "6", "--save-interval", "2", "--standin-crash-at", "4",
                                  "--standin-once-dir", str(lab["once"]), "--standin-start-id", "patched"))
    assert started.returncode == 0, started.stderr[-3000:]
    (run,) = _run_dirs(lab)
    record = _ended(run)
    assert url not in (run / "run.json").read_text() and url not in (run / "runner.log").read_text()
    assert record["state"] == "succeeded", (record, (run / "runner.log").read_text()[-3000:])
    first, second = record["attempts"]
    assert first["state"] == "failed" and first["reason"] == "python" and first["rollout"] == 4
    assert "standin: crash in training at rollout 4" in first["detail"]
    assert first["checkpoint_at_end"] == 3 and first["new_checkpoint"]
    assert first["decision"].startswith("restart 1 of 2")
    assert second["state"] == "succeeded" and second["resumed_from"]["iteration"] == 3
    # One training: attempt 1 trained 0-3 (rollout 4 crashed before its training ended), attempt 2 4-5.
    assert _trained(run) == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 4), (2, 5)]
    assert json.loads((run / "progress.json").read_text())["first_rollout"] == 4
    incident = run / "incidents" / "1"
    assert "standin: crash in training at rollout 4" in (incident / "job-log-tail.txt").read_text()
    facts = json.loads((incident / "incident.json").read_text())
    assert facts["reason"] == "python" and facts["ray_up"] is True
    # Ray was up when the incident was captured: its status names the head node.
    assert "Node status" in (incident / "ray-status.txt").read_text()
    assert "RolloutManager" in (incident / "ray-list-actors.txt").read_text()
    assert set(facts["files"]) == {"ray-status.txt", "ray-list-actors.txt", "ray-stack.txt", "nvidia-smi.txt"}
    status = lab["cli"]("status", run.name).stdout
    assert "attempt:    2" in status and "incident:   attempt 1 at rollout 4: Python exception" in status
    _nothing_left(record)
    # --keep-checkpoints 1: the newest complete checkpoint (the tracker's) stays, with its data state.
    ckpt = run / "checkpoints"
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text() == "5"
    assert sorted(p.name for p in ckpt.glob("iter_*")) == ["iter_0000005"]
    assert sorted(p.name for p in (ckpt / "rollout").iterdir()) == ["global_dataset_state_dict_5.pt"]
    # Notifications: the webhook (Slack-compatible "text") and --notify-cmd got the same events.
    kinds = [e["event"] for e in received]
    assert [k for k in kinds if k != "disk"] == ["start", "failure", "restart", "end"], received
    assert all(e["text"].startswith(f"slime run {run.name}") and e["run"] == run.name for e in received)
    failure = next(e for e in received if e["event"] == "failure")
    assert failure["attempt"] == 1 and failure["reason"] == "python" and received[-1]["state"] == "succeeded"
    from_cmd = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    assert from_cmd == kinds
    # The low-disk warning: free space at --save below 1.5 x the planned checkpoint (80B: about a terabyte).
    low = shutil.disk_usage(ckpt).free < 1.5 * record["keeper"]["checkpoint_bytes"]
    assert ("disk" in kinds) == low


@pytest.mark.slow
def test_the_restart_budget(lab):
    # Each crash once, at 2 then 4, each after a new checkpoint: only the budget stops the second.
    lab["train"]("--detach", "--max-restarts", "1", "--restart-backoff", "0",
                 slime=("--num-rollout", "6", "--save-interval", "2", "--standin-crash-at", "2,4",
                        "--standin-once-dir", str(lab["once"]), "--standin-start-id", "patched"))
    (run,) = _run_dirs(lab)
    record = _ended(run)
    assert record["state"] == "failed"
    assert [a["rollout"] for a in record["attempts"]] == [2, 4]
    assert record["attempts"][-1]["decision"] == "no restart: the restart budget is spent (1 of --max-restarts 1)"
    assert "restart budget is spent" in record["detail"]
    _nothing_left(record)


@pytest.mark.slow
def test_fail_fast_when_the_first_attempt_never_made_progress(lab):
    lab["train"]("--detach", "--restart-backoff", "0", slime=("--standin-crash-at", "startup"))
    (run,) = _run_dirs(lab)
    record = _ended(run)
    assert record["state"] == "failed" and len(record["attempts"]) == 1
    assert record["attempts"][0]["progressed"] is False
    assert "the first attempt never made progress" in record["detail"]
    assert "a configuration error before the first weight update" in record["detail"]


@pytest.mark.slow
def test_two_attempts_without_a_new_checkpoint_stop(lab):
    # An OOM at 1, then (restarted from scratch: no checkpoint yet) a crash at 2: neither saved.
    lab["train"]("--detach", "--max-restarts", "5", "--restart-backoff", "0",
                 slime=("--num-rollout", "6", "--save-interval", "10", "--standin-oom-at", "1",
                        "--standin-crash-at", "2", "--standin-once-dir", str(lab["once"])))
    (run,) = _run_dirs(lab)
    record = _ended(run)
    assert [a["reason"] for a in record["attempts"]] == ["cuda_oom", "python"]
    assert record["attempts"][-1]["decision"] == ("no restart: attempts 1 and 2 both ended without a new "
                                                  "complete checkpoint")
    assert record["state"] == "failed"


@pytest.mark.slow
def test_a_hang_is_caught_with_small_thresholds(lab):
    lab["train"]("--detach", "--max-restarts", "1", "--restart-backoff", "0", "--hang-timeout", "train=0.1",
                 slime=("--num-rollout", "4", "--save-interval", "2", "--standin-hang", "train",
                        "--standin-hang-at", "2", "--standin-health-interval", "0.3",
                        "--standin-once-dir", str(lab["once"]), "--standin-start-id", "patched"))
    (run,) = _run_dirs(lab)
    record = _ended(run)
    assert record["state"] == "succeeded", (record, (run / "runner.log").read_text()[-3000:])
    first = record["attempts"][0]
    assert first["reason"] == "hang" and first["rollout"] == 2
    assert first["detail"].startswith("hang: no progress for ") and "in phase train" in first["detail"]
    tail = (run / "incidents" / "1" / "job-log-tail.txt").read_text()
    assert "hanging in train 2" in tail and tail.count('"GET /health_generate HTTP/1.1" 200 OK') >= 3
    assert _trained(run) == [(1, 0), (1, 1), (2, 2), (2, 3)]


@pytest.mark.slow
def test_stop_during_a_backoff_ends_the_run_at_once(lab):
    lab["train"]("--detach", "--restart-backoff", "600",
                 slime=("--num-rollout", "6", "--save-interval", "2", "--standin-crash-at", "2",
                        "--standin-start-id", "patched"))
    (run,) = _run_dirs(lab)
    record = _wait(run, ("restarting",))
    assert record["restart"]["attempt"] == 2
    status = lab["cli"]("status").stdout  # found as the active run
    assert f"run {run.name}: restarting" in status and "restart:    attempt 2 at " in status
    before = time.monotonic()
    stop = lab["cli"]("stop", run.name)
    assert stop.returncode == 0, stop.stderr
    assert time.monotonic() - before < 30
    record = _record(run)
    assert record["state"] == "stopped" and len(record["attempts"]) == 1
    _nothing_left(record)
    assert lab["cli"]("status").stdout.count("restarting") == 0


@pytest.mark.slow
def test_supervisor_killed_then_stop_leaves_nothing(lab):
    lab["train"]("--detach", "--restart-backoff", "0",
                 slime=("--num-rollout", "40", "--save-interval", "2", "--standin-crash-at", "2",
                        "--standin-once-dir", str(lab["once"]), "--standin-start-id", "patched"))
    (run,) = _run_dirs(lab)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # attempt 2 running
        record = _record(run)
        if len(record.get("attempts") or []) == 2 and record["state"] == "running":
            break
        time.sleep(0.3)
    else:
        raise AssertionError(_record(run))
    os.kill(record["supervisor"]["pid"], signal.SIGKILL)
    stop = lab["cli"]("stop", run.name)
    assert stop.returncode == 0, stop.stderr
    record = _record(run)
    assert record["state"] in ("stopped", "lost")
    _nothing_left(record)


@pytest.mark.slow
def test_a_restart_under_the_pins_start_id_is_a_misalignment(lab):
    # slime 3d7599aa's behaviour: the restart loads iteration 3, then starts at rollout 0 again.
    lab["train"]("--detach", "--max-restarts", "3", "--restart-backoff", "0",
                 slime=("--num-rollout", "8", "--save-interval", "4", "--standin-seconds", "2.0",
                        "--standin-crash-at", "5", "--standin-once-dir", str(lab["once"]),
                        "--standin-start-id", "pin"))
    (run,) = _run_dirs(lab)
    ckpt = run / "checkpoints" / "iter_0000003" / "common.pt"
    record = _wait(run, ("restarting", "failed", "succeeded"))
    saved = ckpt.stat().st_mtime_ns
    record = _ended(run)
    assert record["state"] == "failed"
    second = record["attempts"][1]
    assert second["reason"] == "misalignment" and second["detail"].startswith("resume misalignment:")
    assert "started at rollout 0" in second["detail"] and "continues at rollout 4" in second["detail"]
    assert second["decision"].startswith("no restart after a resume misalignment")
    assert ckpt.stat().st_mtime_ns == saved  # not overwritten
    assert (run / "checkpoints" / "latest_checkpointed_iteration.txt").read_text() == "3"
