"""Notifications: a real http.server on 127.0.0.1 receives the webhook's POST, a real command
receives the event on stdin, the rate limit, a caller never blocked nor raised into, and the
webhook URL (a secret) kept out of the dry run, run.json and every process the runner starts."""

import http.server
import json
import os
import threading
import time

import pytest

from runner.runs.notify import WEBHOOK_ENV, Notifier, event
from tests.conftest import run_cli
from tests.test_runs import _train

# The train tests here plan on a machine with 8 H100s and no --force (tests/machine.py).
pytestmark = pytest.mark.machine(gpu="h100", force=False)

URL_SECRET_PART = "T000/B000/hooksecret0123456789"


@pytest.fixture
def hook():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):  # noqa: ANN002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/{URL_SECRET_PART}", received
    server.shutdown()


def test_the_webhook_receives_slack_compatible_json(hook):
    url, received = hook
    n = Notifier(None, WEBHOOK_ENV, environ={WEBHOOK_ENV: url})
    n.send(event("failure", "megatron-8gpu-x", "CUDA out of memory at rollout 41", attempt=2, rollout=41))
    assert n.close()
    ((path, ctype, body),) = received
    assert path == f"/services/{URL_SECRET_PART}" and ctype == "application/json"
    assert body["text"] == "slime run megatron-8gpu-x (attempt 2): failure: CUDA out of memory at rollout 41"
    assert body["event"] == "failure" and body["run"] == "megatron-8gpu-x" and body["rollout"] == 41
    assert body["time"].startswith(time.strftime("%Y-", time.gmtime()))


def test_the_command_receives_the_event_on_stdin(tmp_path):
    out = tmp_path / "events.jsonl"
    n = Notifier(f"cat >> {out}", None)
    n.send(event("start", "r1", "started"))
    n.send(event("end", "r1", "succeeded"))
    assert n.close()
    assert [json.loads(line)["event"] for line in out.read_text().splitlines()] == ["start", "end"]


def test_rate_limit_one_per_kind_and_failure_end_always(tmp_path):
    out = tmp_path / "events.jsonl"
    now = [1000.0]
    n = Notifier(f"cat >> {out}", None, min_interval_s=300, clock=lambda: now[0])
    for _ in range(3):
        n.send(event("disk", "r1", "low disk"))
        n.send(event("failure", "r1", "crashed"))
    now[0] += 301
    n.send(event("disk", "r1", "still low"))
    assert n.close()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["event"] for e in events] == ["disk", "failure", "failure", "failure", "disk"]
    assert events[-1]["dropped"] == {"disk": 2} and "(2 more disk since " in events[-1]["message"]


def test_a_failing_or_slow_notification_never_raises_nor_blocks():
    lines = []
    n = Notifier("sleep 30", WEBHOOK_ENV, timeout_s=1, environ={WEBHOOK_ENV: "http://127.0.0.1:9/x"},
                 log=lines.append)
    started = time.monotonic()
    n.send(event("hang", "r1", "no progress"))
    assert time.monotonic() - started < 0.5  # queued: the caller goes on
    assert n.close(timeout_s=15)
    assert any("--notify-cmd ran past 1 s: killed" in ln for ln in lines)
    assert any("the webhook ($SLIME_NOTIFY_WEBHOOK) could not be reached" in ln for ln in lines)
    assert not any("127.0.0.1:9" in ln for ln in lines)  # the URL is a secret
    failing = Notifier("exit 3", None, log=lines.append)
    failing.send(event("end", "r1", "done"))
    assert failing.close() and any("--notify-cmd exited 3" in ln for ln in lines)
    Notifier(None, None).send({"event": object()})  # disabled: nothing, no error


def test_the_webhook_url_never_reaches_the_dry_run_nor_a_process(machine, tmp_path):
    url = f"https://hooks.example.org/services/{URL_SECRET_PART}"
    r = _train(machine, "--notify-cmd", "cat > /dev/null", env={WEBHOOK_ENV: url})
    assert r.returncode == 0, r.stderr
    assert URL_SECRET_PART not in r.stdout + r.stderr
    plan = json.loads(r.stdout)
    assert any(n.startswith("notifications: --notify-cmd cat > /dev/null and webhook from $SLIME_NOTIFY_WEBHOOK")
               for n in plan["notes"])
    for proc in plan["processes"]:  # Ray's head and the job process: not inherited
        assert WEBHOOK_ENV in proc.get("unset_env", []), proc
    assert not any(WEBHOOK_ENV in json.dumps(content) for content in plan.get("files", {}).values())
    text = run_cli("train", "--recipe", "megatron-8gpu", *machine["args"], "--dry-run",
                   env={**machine["env"], WEBHOOK_ENV: url, "SLIME_RUNNER_LOCK": str(tmp_path / "lock")})
    assert text.returncode == 0 and URL_SECRET_PART not in text.stdout + text.stderr


def test_run_json_records_the_options_and_not_the_url(machine, monkeypatch):
    from runner.cli import build_parser
    from runner.commands.train import gather
    from runner.runs.manifest import build_record
    from runner.secrets import secret_values

    url = f"https://hooks.example.org/services/{URL_SECRET_PART}"
    for k, v in {**machine["env"], WEBHOOK_ENV: url, "SLIME_RUNNER_LOCK": str(machine["tmp"] / "lock")}.items():
        monkeypatch.setenv(k, v)
    args = build_parser().parse_args(["train", "--recipe", "megatron-8gpu", *machine["args"], "--keep-checkpoints",
                                      "3", "--notify-cmd", "logger -t slime"])
    tp, plan = gather(args)
    record = build_record(tp, tp.run, {}, secret_values(os.environ), "host")
    assert record["long_run"] == {"keep_checkpoints": 3, "notify_cmd": "logger -t slime",
                                  "notify_webhook_env": WEBHOOK_ENV}
    assert URL_SECRET_PART not in json.dumps(record)


def test_resume_carries_keep_checkpoints_and_notify_cmd(machine, tmp_path):
    from runner.runs.layout import RunPaths
    from runner.runs.record import create_record
    from tests.checkpoint_folders import save

    folder = tmp_path / "runs" / "megatron-8gpu-20261129-000000-abcd" / "checkpoints"
    previous = RunPaths(folder.parent)
    create_record(previous, {"id": previous.id, "state": "failed",
                             "request": {"recipe": "megatron-8gpu", "overrides": []},
                             "checkpoint": {"folder": str(folder), "save": str(folder)},
                             "long_run": {"keep_checkpoints": 3, "notify_cmd": "logger -t slime"}})
    save(folder, 19)
    env = {**machine["env"], "SLIME_RUNNER_LOCK": str(tmp_path / "lock")}
    base = ["train", "--resume", previous.id, "--runs-dir", str(tmp_path / "runs"), *machine["args"], "--dry-run",
            "--json"]
    notes = json.loads(run_cli(*base, env=env).stdout)["notes"]
    assert any("(--keep-checkpoints 3:" in n for n in notes)
    assert any(n.startswith("notifications: --notify-cmd logger -t slime") for n in notes)
    notes = json.loads(run_cli(*base, "--keep-checkpoints", "5", env=env).stdout)["notes"]
    assert any("(--keep-checkpoints 5:" in n for n in notes)  # given again: this invocation's wins
