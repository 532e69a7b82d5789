"""Runs with a real Ray on CPU (the --test-entrypoint path): a detached run
outlives the session that started it; status, logs and stop on a running job;
stop leaves no process of that run and touches nothing else; resume finds the
checkpoint folder recorded in run.json; a refused fresh start writes nothing;
run.json holds no secret.

Processes "of the run" are checked two independent ways: every descendant of
the run's supervisor seen while it ran, and every process carrying the run's
markers (its id in the environment, its Ray temp dir in the command line).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, run_cli, unused_short_path

pytest.importorskip("ray.job_submission", reason="needs ray[default] (pip install -e '.[test]')")

SECRET = "wandb-secret-value-for-runs-0123456789"

ENTRY = """\
import os, pathlib, sys, time
args = sys.argv[1:]
def arg(name, default=None):
    return args[args.index(name) + 1] if name in args else default
load, save = arg("--load"), arg("--save")
tracker = pathlib.Path(load) / "latest_checkpointed_iteration.txt"
print("ENTRY load=" + load, "iteration=" + (tracker.read_text().strip() if tracker.exists() else "none"),
      "lr=" + arg("--lr"), flush=True)
print("ENTRY TRITON_CACHE_DIR=" + os.environ.get("TRITON_CACHE_DIR", "?"), flush=True)
if "--test-write-checkpoint" in args:  # what slime does at --save-interval (Megatron torch_dist)
    (pathlib.Path(save) / "iter_0000003").mkdir(parents=True, exist_ok=True)
    (pathlib.Path(save) / "iter_0000003" / "metadata.json").write_text('{"sharded_backend": "torch_dist"}')
    (pathlib.Path(save) / "latest_checkpointed_iteration.txt").write_text("3")
    (pathlib.Path(save) / "rollout").mkdir(exist_ok=True)
    (pathlib.Path(save) / "rollout" / "global_dataset_state_dict_3.pt").write_bytes(b"")
sleep = float(arg("--test-sleep", 0))
if sleep:
    print("ENTRY sleeping", flush=True)
    time.sleep(sleep)
print("ENTRY exiting", flush=True)
"""


@pytest.fixture
def lab(tmp_path, short_tmp):
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    runs = tmp_path / "runs"
    env = {"NCCL_NVLS_ENABLE": "0", "PYTHONUNBUFFERED": "1", "SLIME_RUNNER_LOCK": str(tmp_path / "runner.lock")}

    def train_args(temp_dir: str = short_tmp) -> list[str]:
        return ["train", "--recipe", "megatron-8gpu", "--test-entrypoint", str(entry), "--ray-temp-dir", temp_dir,
                "--ray-port", str(free_port()), "--dashboard-port", str(free_port()), "--ready-timeout", "120",
                "--runs-dir", str(runs), "--kernel-cache", str(tmp_path / "kernels")]

    return {"tmp": tmp_path, "entry": entry, "runs": runs, "env": env, "train_args": train_args,
            "temp_dir": short_tmp}


def _cli_env(lab: dict, extra: dict | None = None) -> dict:
    """What tests.conftest.run_cli would pass, for processes started by hand."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIME_RUNNER_")
           and k not in ("BASE_FOLDER", "WANDB_API_KEY", "HF_TOKEN", "MASTER_ADDR", "SLIME_RUNS_DIR")}
    return {**env, **lab["env"], **(extra or {}), "PYTHONPATH": str(REPO)}


def _runs(lab) -> list[Path]:
    return sorted(p for p in lab["runs"].iterdir() if (p / "run.json").is_file()) if lab["runs"].exists() else []


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _wait(predicate, timeout: float, what: str):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _session(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[3]) if fields else None


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _descendants(root: int) -> set[int]:
    parent = {}
    for pid in _all_pids():
        fields = _stat(pid)
        if fields:
            parent[pid] = int(fields[1])
    out, frontier = set(), {root}
    while frontier:
        children = {p for p, pp in parent.items() if pp in frontier and p not in out}
        out |= children
        frontier = children
    return out


def _marked(run_id: str, temp_dir: str) -> set[int]:
    """Independent of runner.launch.processes: scan /proc for the run's two markers."""
    found = set()
    needle = f"SLIME_RUNNER_RUN={run_id}".encode()
    for pid in _all_pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in environ or f"{temp_dir}/" in cmdline:
            found.add(pid)
    return found


def _head_token(run_id: str) -> str | None:
    for pid in _all_pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SLIME_RUNNER_RUN={run_id}".encode() in environ:
            for item in environ:
                if item.startswith(b"RAY_AUTH_TOKEN="):
                    return item.split(b"=", 1)[1].decode()
    return None


@pytest.mark.slow
def test_detached_run_outlives_the_session_that_started_it(lab):
    # Like an ssh login: a shell that is a session leader starts the run, then the session hangs up.
    # As the flake's apps run it (python -P), from a directory whose ./runner is a decoy: the supervisor
    # and the job submitter it starts must run the runner's code, not the decoy (runner.interpreter).
    safe = ["-P"] if sys.version_info >= (3, 11) else []
    decoy = lab["tmp"] / "checkout"
    (decoy / "runner").mkdir(parents=True)
    (decoy / "runner" / "__init__.py").write_text('raise ImportError("DECOY runner imported")\n')
    train = " ".join([sys.executable, *safe, "-m", "runner", *lab["train_args"](), "--detach",
                      "--", "--test-sleep", "8"])
    shell = subprocess.Popen(["bash", "-c", f"{train}; echo LAUNCHED rc=$?; exec sleep 600"],
                             cwd=decoy if safe else REPO,
                             env=_cli_env(lab), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(shell.stdout.readline, "")), daemon=True).start()
    try:
        _wait(lambda: any("LAUNCHED" in ln for ln in lines), 240, "train --detach to return")
        assert any("LAUNCHED rc=0" in ln for ln in lines), "".join(lines[-40:])
        assert any("is running, detached" in ln for ln in lines)
        (run_dir,) = _runs(lab)
        record = _record(run_dir)
        assert record["state"] == "running"
        supervisor = record["supervisor"]["pid"]
        assert record["supervisor"]["detached"]
        session = [p for p in _all_pids() if _session(p) == shell.pid]
        assert supervisor not in session and _session(supervisor) != shell.pid  # its own session
        assert "ENTRY exiting" not in (run_dir / "job.log").read_text()  # the job is still running
        seen = _descendants(supervisor) | _marked(record["id"], lab["temp_dir"])
        # The terminal goes away: every process of that session gets SIGHUP.
        for pid in session:
            os.kill(pid, signal.SIGHUP)
        shell.wait(timeout=30)
        final = _wait(lambda: _record(run_dir)["state"] in ("succeeded", "failed", "stopped", "lost")
                      and _record(run_dir), 240, "the detached run to finish")
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    assert final["state"] == "succeeded" and final["exit_code"] == 0, final
    job_log = (run_dir / "job.log").read_text()
    assert "ENTRY sleeping" in job_log and "ENTRY exiting" in job_log
    assert f"ENTRY TRITON_CACHE_DIR={lab['tmp'] / 'kernels' / 'triton'}" in job_log  # persistent cache reached the job
    assert final["kernel_caches"]["TRITON_CACHE_DIR"]["path"] == str(lab["tmp"] / "kernels" / "triton")
    assert "SIGHUP ignored" not in (run_dir / "runner.log").read_text()  # it was never in that session
    assert "DECOY" not in (run_dir / "runner.log").read_text() + "".join(lines)
    _wait(lambda: not any(_alive(p) for p in seen | _marked(final["id"], lab["temp_dir"])), 60,
          "the run's processes to exit")
    assert len(seen) >= 5  # the Ray head's daemons, workers, the job's driver were all watched


@pytest.mark.slow
def test_status_logs_and_stop_on_a_running_job(lab, tmp_path):
    env = {"WANDB_API_KEY": SECRET}
    r = run_cli(*lab["train_args"](), "--ray-auth", "token", "--detach", "--", "--test-sleep", "300",
                env={**lab["env"], **env}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = _runs(lab)
    run_id = run_dir.name
    assert f"python -m runner stop {run_id}" in r.stderr
    decoy = None
    follower = None
    try:
        _wait(lambda: "ENTRY sleeping" in (run_dir / "job.log").read_text(), 120, "the job to log")
        record = _record(run_dir)
        seen = _descendants(record["supervisor"]["pid"]) | _marked(run_id, lab["temp_dir"])
        token = _head_token(run_id)
        assert token and len(token) >= 32  # token auth is on: the head holds a real token

        status = run_cli("status", run_id, "--runs-dir", str(lab["runs"]), "--json", env=lab["env"])
        facts = json.loads(status.stdout)
        assert facts["state"] == "running" and facts["ray_processes"] >= 5, facts
        assert "ENTRY sleeping" in facts["last_log_line"]
        text = run_cli("status", "--runs-dir", str(lab["runs"]), env=lab["env"]).stdout  # no RUN: active runs
        assert f"run {run_id}: running" in text

        logs = run_cli("logs", run_id[:20], "--runs-dir", str(lab["runs"]), env=lab["env"])  # a unique prefix
        assert logs.returncode == 0 and "ENTRY sleeping" in logs.stdout and "ENTRY exiting" not in logs.stdout
        follower = subprocess.Popen([sys.executable, "-m", "runner", "logs", "-f", str(run_dir)], cwd=REPO,
                                    env=_cli_env(lab), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        # A second run on this machine is refused while this one is active, and writes nothing.
        second_temp = unused_short_path()
        second = run_cli(*lab["train_args"](str(second_temp)), env=lab["env"])
        assert second.returncode == 2 and f"run {run_id} is still active on this machine" in second.stderr
        assert len([ln for ln in second.stderr.splitlines() if ln.startswith("error: ")]) == 1, second.stderr
        assert len(_runs(lab)) == 1 and not second_temp.exists()

        # Bystanders that look like Ray: another run's marker, a Ray-like command line. stop must spare them.
        decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "ray", "start", "--head",
                                  "--temp-dir", "/tmp/slime-ray-not-this-run/"],
                                 env={**os.environ, "SLIME_RUNNER_RUN": run_id + "-other"})

        for cmd in (("show", run_id), ("status", run_id), ("runs",)):
            out = run_cli(*cmd, "--runs-dir", str(lab["runs"]), env=lab["env"])
            assert out.returncode == 0 and SECRET not in out.stdout and token not in out.stdout

        stop = run_cli("stop", run_id, "--runs-dir", str(lab["runs"]), env=lab["env"], timeout=300)
        assert stop.returncode == 0, stop.stderr
        assert "no process of it is left" in stop.stderr
        out, err = follower.communicate(timeout=60)  # logs -f ends with the run
        assert follower.returncode == 0 and "ENTRY sleeping" in out and "stopped" in err
    finally:
        if follower and follower.poll() is None:
            follower.kill()
        if decoy:
            assert decoy.poll() is None, "stop killed a process that is not of its run"
            decoy.kill()
    final = _record(run_dir)
    assert final["state"] == "stopped" and final["ended_at"], final
    assert "ENTRY exiting" not in (run_dir / "job.log").read_text()  # stopped, not finished
    assert len(seen) >= 5
    still = [p for p in seen | _marked(run_id, lab["temp_dir"]) if _alive(p)]
    assert not still, f"processes of the stopped run still alive: {still}"
    # No secret anywhere in the run directory.
    for path in run_dir.rglob("*"):
        if path.is_file():
            content = path.read_text(errors="replace")
            assert SECRET not in content and token not in content, path
    # The key reached the job through a private file, never the runtime env (runner.launch.job_secrets).
    assert "WANDB_API_KEY" not in final["job"]["runtime_env"]["env_vars"]
    assert final["job"]["secrets_passed"] == ["WANDB_API_KEY"]
    assert final["job"]["runtime_env"]["env_vars"]["SLIME_RUNNER_SECRETS_FILE"] == f"{lab['temp_dir']}/secrets.json"
    # stop again: nothing to do.
    again = run_cli("stop", run_id, "--runs-dir", str(lab["runs"]), env=lab["env"])
    assert again.returncode == 0 and "nothing to stop" in again.stderr


@pytest.mark.slow
def test_resume_finds_the_recorded_checkpoint_and_a_fresh_start_over_it_is_refused(lab, tmp_path):
    # As `nix run` starts it: nix/apps.nix names the flake's revision, flake.lock and env.
    lock = tmp_path / "flake.lock"
    lock.write_text((REPO / "flake.lock").read_text())
    env_path = "/nix/store/" + "e" * 32 + "-slime-qwen3-next-env"
    flake = {"SLIME_RUNNER_REVISION": "c" * 40, "SLIME_RUNNER_FLAKE_LOCK": str(lock), "SLIME_RUNNER_NIX_ENV": env_path}
    first = run_cli(*lab["train_args"](), "--set", "lr=2e-6", "--", "--test-write-checkpoint",
                    env={**lab["env"], **flake}, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    (run1,) = _runs(lab)
    rec1 = _record(run1)
    software = rec1["software"]
    assert software["runner"]["rev"] == "c" * 40 and not software["runner"]["dirty"]
    assert software["flake_lock"]["path"] == str(lock) and software["flake_lock"]["uv2nix"]["rev"]
    assert software["store_paths"]["env"] == env_path
    folder = str(run1 / "checkpoints")
    assert rec1["checkpoint"]["load"] == rec1["checkpoint"]["save"] == folder  # the run's own folder
    assert f"ENTRY load={folder} iteration=none lr=2e-6" in first.stdout  # a fresh run: nothing to load yet
    assert (run1 / "checkpoints" / "latest_checkpointed_iteration.txt").read_text() == "3"

    # A fresh start over that folder: refused with one line, nothing written.
    before = sorted(p.name for p in lab["runs"].iterdir())
    ckpt_before = sorted(str(p) for p in (run1 / "checkpoints").rglob("*"))
    refused_temp = unused_short_path()
    refused = run_cli(*lab["train_args"](str(refused_temp)), "--set", f"load={folder}",
                      "--set", f"save={folder}", env=lab["env"])
    assert refused.returncode == 2
    errors = [ln for ln in refused.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and f"python -m runner train --resume {run1}" in errors[0], refused.stderr
    assert sorted(p.name for p in lab["runs"].iterdir()) == before
    assert sorted(str(p) for p in (run1 / "checkpoints").rglob("*")) == ckpt_before
    assert not refused_temp.exists()

    # Changing the recorded recipe on resume needs --accept-changes.
    changed = run_cli(*lab["train_args"](), "--resume", run1.name, "--set", "lr=1e-5", env=lab["env"])
    assert changed.returncode == 2 and "needs --accept-changes" in changed.stderr
    assert sorted(p.name for p in lab["runs"].iterdir()) == before

    # train --resume RUN: no --recipe, no overrides: both come from run.json.
    args = [a for a in lab["train_args"]() if a not in ("--recipe", "megatron-8gpu")]
    second = run_cli(*args, "--resume", run1.name, env=lab["env"], timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    run2 = next(p for p in _runs(lab) if p != run1)
    rec2 = _record(run2)
    assert f"ENTRY load={folder} iteration=3 lr=2e-6" in second.stdout  # the job loads run 1's checkpoint
    assert rec2["resumed_from"] == {"run": run1.name, "dir": str(run1), "checkpoint": folder, "iteration": "3"}
    assert rec2["checkpoint"]["load"] == rec2["checkpoint"]["save"] == folder
    assert rec2["request"]["recipe"] == "megatron-8gpu"
    assert rec2["request"]["overrides"] == rec1["request"]["overrides"]  # replayed, not retyped
    assert rec2["state"] == "succeeded" and rec2["changes_on_resume"] == []


@pytest.mark.slow
def test_stop_after_the_supervisor_was_killed(lab):
    r = run_cli(*lab["train_args"](), "--detach", "--", "--test-sleep", "300", env=lab["env"], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = _runs(lab)
    record = _record(run_dir)
    supervisor = record["supervisor"]["pid"]
    _wait(lambda: "ENTRY sleeping" in (run_dir / "job.log").read_text(), 120, "the job to log")
    seen = _descendants(supervisor) | _marked(record["id"], lab["temp_dir"])
    os.kill(supervisor, signal.SIGKILL)  # no chance to record anything
    _wait(lambda: not _alive(supervisor), 30, "the supervisor to die")
    status = json.loads(run_cli("status", record["id"], "--runs-dir", str(lab["runs"]), "--json",
                                env=lab["env"]).stdout)
    assert status["state"] == "lost" and status["recorded_state"] == "running" and "killed" in status["note"]
    stop = run_cli("stop", record["id"], "--runs-dir", str(lab["runs"]), env=lab["env"], timeout=300)
    assert stop.returncode == 0, stop.stderr
    final = _record(run_dir)
    assert final["state"] in ("lost", "stopped") and final["ended_at"], final
    still = [p for p in seen | _marked(record["id"], lab["temp_dir"]) if _alive(p)]
    assert not still, f"processes of the run still alive: {still}"
    # The machine is free again: the kernel dropped the lock with the supervisor.
    again = run_cli(*lab["train_args"](lab["temp_dir"] + "-2"), "--dry-run", env=lab["env"])
    assert again.returncode == 0 and "still active" not in again.stdout + again.stderr


@pytest.mark.slow
def test_a_detached_run_is_found_from_a_new_shell(lab, tmp_path):
    """Started with BASE_FOLDER set; later, from another directory and a shell without it, status, logs
    and stop still find the run (through the machine lock), and the hints name its runs dir."""
    base = tmp_path / "base"
    args = [a for a in lab["train_args"]() if a not in ("--runs-dir", str(lab["runs"]))]
    start_dir, other_dir = tmp_path / "here", tmp_path / "elsewhere"
    start_dir.mkdir()
    other_dir.mkdir()
    r = run_cli(*args, "--detach", "--", "--test-sleep", "300", env={**lab["env"], "BASE_FOLDER": str(base)},
                cwd=str(start_dir), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = [p for p in (base / "runs").iterdir() if (p / "run.json").is_file()]
    run_id = run_dir.name
    assert f"python -m runner stop {run_id} --runs-dir {base / 'runs'}" in r.stderr  # the hints name the runs dir
    try:
        _wait(lambda: "ENTRY sleeping" in (run_dir / "job.log").read_text(), 120, "the job to log")
        # A new shell: no BASE_FOLDER, another directory (whose ./models/runs has nothing).
        status = run_cli("status", run_id, "--json", env=lab["env"], cwd=str(other_dir))
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["state"] == "running"
        assert f"run {run_id} is active on this machine: {run_dir}" in status.stderr
        plain = run_cli("status", env=lab["env"], cwd=str(other_dir))
        assert plain.returncode == 0 and f"run {run_id}: running" in plain.stdout, plain.stdout + plain.stderr
        logs = run_cli("logs", run_id[:25], env=lab["env"], cwd=str(other_dir))
        assert logs.returncode == 0 and "ENTRY sleeping" in logs.stdout
        stop = run_cli("stop", run_id, env=lab["env"], cwd=str(other_dir), timeout=300)
        assert stop.returncode == 0 and "no process of it is left" in stop.stderr, stop.stderr
    finally:
        if _record(run_dir)["state"] in ("starting", "running"):
            run_cli("stop", str(run_dir), env=lab["env"], timeout=300)
    assert _record(run_dir)["state"] == "stopped"
    # Once it ended, the lock no longer names it: only its runs dir finds it.
    gone = run_cli("status", run_id, env=lab["env"], cwd=str(other_dir))
    assert gone.returncode == 2 and f"no run '{run_id}'" in gone.stderr
    assert run_cli("status", run_id, "--runs-dir", str(base / "runs"), env=lab["env"]).returncode == 0


@pytest.mark.slow
def test_foreground_train_stops_cleanly_when_its_terminal_hangs_up(lab):
    """As an ssh session that closes: an interactive shell on a pseudo-terminal runs a foreground `train`;
    the terminal goes away. The job and this run's Ray stop as on SIGTERM, run.json says stopped, and no
    process of the run is left."""
    import fcntl
    import select
    import termios

    train = " ".join([sys.executable, "-m", "runner", *lab["train_args"](), "--", "--test-sleep", "300"])
    master, slave = os.openpty()

    def controlling_terminal():  # in the child, after setsid: the pty becomes its terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    shell = subprocess.Popen(["bash", "--norc", "--noprofile", "-i"], stdin=slave, stdout=slave, stderr=slave,
                             cwd=REPO, env={**_cli_env(lab), "PS1": "$ "}, start_new_session=True,
                             preexec_fn=controlling_terminal)
    os.close(slave)
    screen: list[bytes] = []
    reading = threading.Event()
    reading.set()

    def read_terminal():
        # Never blocked in read(): a read in progress keeps the terminal open when the master is closed.
        while reading.is_set():
            if select.select([master], [], [], 0.2)[0]:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    return
                if not data:
                    return
                screen.append(data)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    run_dir = None
    try:
        os.write(master, (train + "\n").encode())
        run_dir = _wait(lambda: (_runs(lab) or [None])[0], 120, "the run directory")
        _wait(lambda: (run_dir / "job.log").exists() and "ENTRY sleeping" in (run_dir / "job.log").read_text(),
              180, "the job to run")
        record = _record(run_dir)
        assert record["state"] == "running" and record["supervisor"]["detached"] is False
        seen = _descendants(record["supervisor"]["pid"]) | _marked(record["id"], lab["temp_dir"])
        reading.clear()
        reader.join(timeout=10)
        os.close(master)  # the terminal hangs up: the shell gets SIGHUP and passes it on to its job
        master = None
        final = _wait(lambda: _record(run_dir)["state"] in ("succeeded", "failed", "stopped", "lost")
                      and _record(run_dir), 240, "the run to record its end")
        shell.wait(timeout=60)
    finally:
        reading.clear()
        if master is not None:
            reader.join(timeout=10)
            os.close(master)
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
        if run_dir is not None and _record(run_dir)["state"] in ("starting", "running"):
            run_cli("stop", str(run_dir), env=lab["env"], timeout=300)  # leave nothing for the next test
    assert final["state"] == "stopped" and final["exit_code"] == 128 + signal.SIGHUP, final
    assert "SIGHUP" in final["detail"], final
    assert "ENTRY exiting" not in (run_dir / "job.log").read_text()  # stopped, not finished
    _wait(lambda: not any(_alive(p) for p in seen | _marked(final["id"], lab["temp_dir"])), 60,
          "the run's processes to exit")
    assert len(seen) >= 5
    # What the runner said after the terminal was gone went to runner.log.
    said = (run_dir / "runner.log").read_text()
    assert "hung up" in said and "stopping job" in said and "Traceback" not in said, said
