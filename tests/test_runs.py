"""Run directories without Ray: finding runs, run.json updates from several
processes, process identity (killed, rebooted, another host), the machine
lock held by a real process, checkpoint refusals, kernel cache resolution,
and `train`'s run decisions through the real CLI (dry-run or refused)."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from runner.kernel_cache import resolve_kernel_cache
from runner.runs import identity
from runner.runs.checkpoints import fresh_start_problem
from runner.runs.layout import RunNotFound, RunPaths, find_run, list_runs, new_run_id, resolve_runs_dir
from runner.runs.machine_lock import MachineLockBusy, acquire, active_run_problem
from runner.runs.record import create_record, read_record, update_record
from tests.checkpoint_folders import save as save_checkpoint
from tests.conftest import REPO, run_cli, unused_short_path

# The train tests here plan on a machine with 8 H100s and no --force (tests/machine.py).
pytestmark = pytest.mark.machine(gpu="h100", force=False)


def _make_run(root: Path, run_id: str, **fields) -> RunPaths:
    paths = RunPaths(root / run_id)
    create_record(paths, {"id": run_id, "state": "succeeded", **fields})
    return paths


def test_run_ids_sort_by_time_and_are_found_by_id_prefix_or_path(tmp_path):
    a = _make_run(tmp_path, new_run_id("fsdp", 1_800_000_000, "aaaa"))
    b = _make_run(tmp_path, new_run_id("megatron-8gpu", 1_800_000_100, "bbbb"))
    (tmp_path / "not-a-run").mkdir()
    assert [p.id for p in list_runs(tmp_path)] == [a.id, b.id]
    assert find_run(tmp_path, b.id) == b
    assert find_run(tmp_path, "megatron") == b
    assert find_run(tmp_path, str(a.dir)).dir == a.dir
    c = _make_run(tmp_path, new_run_id("megatron-8gpu", 1_800_000_200, "cccc"))
    with pytest.raises(RunNotFound, match="matches 2 runs"):
        find_run(tmp_path, "megatron")
    with pytest.raises(RunNotFound, match="python -m runner runs"):
        find_run(tmp_path, "nope")
    assert c.id.startswith("megatron-8gpu-")


def test_runs_dir_flag_then_env_then_base_folder(tmp_path):
    assert resolve_runs_dir("r", None, {"SLIME_RUNS_DIR": "/x"}, str(tmp_path)).value == str(tmp_path / "r")
    assert resolve_runs_dir(None, "/b", {"SLIME_RUNS_DIR": "/x"}, "/").value == "/x"
    assert resolve_runs_dir(None, "/b", {"BASE_FOLDER": "/e"}, "/").value == "/b/runs"
    assert resolve_runs_dir(None, None, {"BASE_FOLDER": "/e"}, "/").value == "/e/runs"
    assert resolve_runs_dir(None, None, {}, "/w").value == "/w/models/runs"


def test_concurrent_updates_from_processes_lose_nothing(tmp_path):
    paths = _make_run(tmp_path, "r-1", state="starting")
    code = textwrap.dedent("""
        import sys
        from pathlib import Path
        from runner.runs.layout import RunPaths
        from runner.runs.record import update_record
        paths, who = RunPaths(Path(sys.argv[1])), sys.argv[2]
        for i in range(40):
            update_record(paths, {who: {str(i): i}})
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(paths.dir), who], env=env) for who in ("a", "b", "c")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    record = read_record(paths)
    for who in ("a", "b", "c"):
        assert record[who] == {str(i): i for i in range(40)}
    assert not [p for p in paths.dir.iterdir() if p.name.startswith(".run.json.") and p.suffix != ".lock"]


def test_update_only_from_expected_state(tmp_path):
    paths = _make_run(tmp_path, "r-2", state="stopped")
    assert update_record(paths, {"state": "running"}, only_if_state=("starting",)) is None
    assert read_record(paths)["state"] == "stopped"


def test_identity_alive_killed_rebooted_and_elsewhere():
    me = identity.identity(os.getpid())
    assert identity.alive(me) is True
    assert identity.effective_state({"state": "running", "supervisor": me}) == ("running", "")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = identity.identity(child.pid)
    child.wait()
    assert identity.alive(gone) is False
    state, note = identity.effective_state({"state": "running", "supervisor": gone})
    assert state == "lost" and "killed" in note
    rebooted = {**me, "boot_id": "00000000-0000-0000-0000-000000000000"}
    state, note = identity.effective_state({"state": "starting", "supervisor": rebooted})
    assert state == "lost" and "rebooted" in note
    reused = {**me, "start_ticks": me["start_ticks"] - 1}  # same pid, another process
    assert identity.alive(reused) is False
    elsewhere = {**me, "host": "some-other-host"}
    state, note = identity.effective_state({"state": "running", "supervisor": elsewhere})
    assert state == "running" and "some-other-host" in note
    assert identity.effective_state({"state": "succeeded", "supervisor": gone}) == ("succeeded", "")


def test_machine_lock_is_held_by_a_live_process_only(tmp_path):
    env = {"SLIME_RUNNER_LOCK": str(tmp_path / "lock")}
    assert active_run_problem(env) is None and not (tmp_path / "lock").exists()  # the check writes nothing
    holder = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time\nfrom runner.runs.machine_lock import acquire\n"
         "acquire({'SLIME_RUNNER_LOCK': sys.argv[1]}, 'run-x', '/runs/run-x', os.getpid())\n"
         "print('held', flush=True)\ntime.sleep(600)", str(tmp_path / "lock")],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        problem = active_run_problem(env)
        assert problem and "run run-x is still active" in problem and "python -m runner stop /runs/run-x" in problem
        with pytest.raises(MachineLockBusy, match="run-x"):
            acquire(env, "run-y", "/runs/run-y", os.getpid())
    finally:
        holder.kill()
        holder.wait()
    assert active_run_problem(env) is None  # the kernel released it with the process: no stale lock
    fd = acquire(env, "run-y", "/runs/run-y", os.getpid())
    os.close(fd)


def test_fresh_start_over_a_checkpoint_says_how_to_continue(tmp_path):
    run = _make_run(tmp_path, "megatron-8gpu-20261129-000000-abcd")
    (run.checkpoints).mkdir()
    (run.checkpoints / "latest_checkpointed_iteration.txt").write_text("40\n")
    problem = fresh_start_problem(str(run.checkpoints), str(tmp_path / "elsewhere"), "megatron-8gpu")
    assert problem.startswith(f"--load {run.checkpoints} already holds a checkpoint (iteration 40)")
    assert f"python -m runner train --resume {run.dir}" in problem
    legacy = tmp_path / "Qwen3-Next-80B-A3B-Thinking_slime"
    legacy.mkdir()
    (legacy / "latest_checkpointed_iteration.txt").write_text("20")
    problem = fresh_start_problem(str(tmp_path / "empty"), str(legacy), "fsdp")
    assert problem.startswith(f"--save {legacy} already holds")
    assert f"python -m runner train --recipe fsdp --resume {legacy}" in problem
    assert fresh_start_problem(str(tmp_path / "empty"), str(tmp_path / "empty"), "fsdp") is None


def test_kernel_cache_flag_then_environment_then_default(tmp_path):
    env = {"HOME": "/home/u", "TRITON_CACHE_DIR": "/fast/triton"}
    cache = resolve_kernel_cache(None, env)
    assert cache.env["TRITON_CACHE_DIR"] == "/fast/triton" and cache.sources["TRITON_CACHE_DIR"] == "$TRITON_CACHE_DIR"
    assert cache.env["FLASHINFER_WORKSPACE_BASE"] == "/home/u/.cache/slime-qwen3-next/kernels/flashinfer"
    assert cache.env["TORCH_EXTENSIONS_DIR"] == "/home/u/.cache/slime-qwen3-next/kernels/torch_extensions"
    assert resolve_kernel_cache(None, {**env, "XDG_CACHE_HOME": "/xdg"}).env["TORCH_EXTENSIONS_DIR"] == \
        "/xdg/slime-qwen3-next/kernels/torch_extensions"
    shared = resolve_kernel_cache("shared/k", env, cwd="/nfs")
    assert shared.env == {"TRITON_CACHE_DIR": "/nfs/shared/k/triton", "FLASHINFER_WORKSPACE_BASE": "/nfs/shared/k/flashinfer",
                          "TORCH_EXTENSIONS_DIR": "/nfs/shared/k/torch_extensions"}


# --- train's run decisions through the CLI (no Ray) -------------------------------------------------------------

def _train(machine, *extra, dry=True, env=None):
    argv = ["train", "--recipe", "megatron-8gpu", *machine["args"], *extra]
    if dry:
        argv += ["--dry-run", "--json"]
    return run_cli(*argv, env={**machine["env"], "SLIME_RUNNER_LOCK": str(machine["tmp"] / "lock"), **(env or {})})


def _entry_flags(plan: dict) -> list[str]:
    job = plan["processes"][-1]["argv"]
    return job[job.index("--") + 1:]


def test_a_fresh_run_saves_into_its_own_folder(machine):
    plan = json.loads(_train(machine).stdout)
    entry = _entry_flags(plan)
    runs = machine["base"] / "runs"
    load, save = entry[entry.index("--load") + 1], entry[entry.index("--save") + 1]
    assert load == save and Path(load).parent.parent == runs and Path(load).name == "checkpoints"
    assert any(n.startswith("run megatron-8gpu-") for n in plan["notes"])
    assert not runs.exists()  # a dry-run writes nothing
    job = plan["processes"][-1]["argv"]
    assert job[job.index("--log-file") + 1] == str(Path(load).parent / "job.log")
    head = plan["processes"][0]
    assert head["env"]["SLIME_RUNNER_RUN"] == Path(load).parent.name  # the marker stop finds processes by
    (runtime_env,) = [json.loads(c) for c in plan["files"].values()]
    assert runtime_env["env_vars"]["TRITON_CACHE_DIR"].endswith("/slime-qwen3-next/kernels/triton")


def test_user_named_checkpoint_folder_wins(machine, tmp_path):
    plan = json.loads(_train(machine, "--set", f"save={tmp_path / 'mine'}", "--runs-dir", str(tmp_path / "r")).stdout)
    entry = _entry_flags(plan)
    assert entry[entry.index("--save") + 1] == str(tmp_path / "mine")
    assert entry[entry.index("--load") + 1].startswith(str(tmp_path / "r"))


def test_fresh_start_over_the_scripts_checkpoint_folder_is_refused(machine):
    legacy = machine["base"] / "Qwen3-Next-80B-A3B-Thinking_slime"
    legacy.mkdir()
    (legacy / "latest_checkpointed_iteration.txt").write_text("20")
    r = _train(machine, "--set", f"load={legacy}/", dry=False)
    assert r.returncode == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert any("already holds a checkpoint (iteration 20)" in e and "--resume" in e for e in errors), r.stderr
    assert not (machine["base"] / "runs").exists() and not machine["temp"].exists()
    assert sorted(p.name for p in legacy.iterdir()) == ["latest_checkpointed_iteration.txt"]


def test_resume_a_checkpoint_folder_no_run_wrote(machine):
    legacy = machine["base"] / "Qwen3-Next-80B-A3B-Thinking_slime"
    save_checkpoint(legacy, 20)
    plan = json.loads(_train(machine, "--resume", str(legacy)).stdout)
    entry = _entry_flags(plan)
    assert entry[entry.index("--load") + 1] == entry[entry.index("--save") + 1] == str(legacy)
    assert any("resumes" in n and "iteration 20" in n for n in plan["notes"])
    no_recipe = run_cli("train", "--resume", str(legacy), *machine["args"], "--dry-run", env=machine["env"])
    assert no_recipe.returncode == 2 and "name its recipe with --recipe" in no_recipe.stderr


def test_resume_needs_a_run_or_a_checkpoint(machine):
    r = run_cli("train", "--resume", "no-such-run", *machine["args"], "--dry-run", env=machine["env"])
    assert r.returncode == 2 and "error: --resume no-such-run: no run 'no-such-run' under" in r.stderr
    r = run_cli("train", *machine["args"], "--dry-run", env=machine["env"])
    assert r.returncode == 2 and "train needs --recipe NAME (or --resume RUN" in r.stderr


def test_resume_with_changes_needs_accept_changes_and_records_them(machine, tmp_path):
    runs = tmp_path / "runs"
    folder = runs / "megatron-8gpu-20261129-000000-abcd" / "checkpoints"
    previous = RunPaths(folder.parent)
    create_record(previous, {
        "id": previous.id, "state": "failed",
        "request": {"recipe": "megatron-8gpu", "overrides": [{"set": ["lr=2e-6"], "unset": [], "low_memory": True,
                                                               "extra_argv": ["--num-rollout", "10"]}]},
        "checkpoint": {"folder": str(folder), "load": str(folder), "save": str(folder)}})
    save_checkpoint(folder, 7)
    base = ["train", "--resume", previous.id, "--runs-dir", str(runs), *machine["args"], "--dry-run", "--json"]
    env = {**machine["env"], "SLIME_RUNNER_LOCK": str(tmp_path / "lock")}
    plan = json.loads(run_cli(*base, env=env).stdout)
    entry = _entry_flags(plan)
    assert entry[entry.index("--lr") + 1] == "2e-6" and entry[entry.index("--num-rollout") + 1] == "10"
    assert "--grad-reduce-in-bf16" in entry  # the recorded --low-memory
    assert entry[entry.index("--load") + 1] == str(folder)
    refused = run_cli(*base[:-2], "--set", "lr=1e-5", env=env)
    assert refused.returncode == 2 and "changing them (--set lr=1e-5) needs --accept-changes" in refused.stderr
    # --force no longer accepts changes: it only starts despite the memory plan.
    still = run_cli(*base[:-2], "--set", "lr=1e-5", "--force", env=env)
    assert still.returncode == 2 and "needs --accept-changes" in still.stderr
    accepted = json.loads(run_cli(*base, "--set", "lr=1e-5", "--accept-changes", env=env).stdout)
    entry = _entry_flags(accepted)
    assert entry[entry.index("--lr") + 1] == "1e-5" and entry[entry.index("--num-rollout") + 1] == "10"
    assert any("changed on resume (--accept-changes; recorded): --set lr=1e-5" in n for n in accepted["notes"])
    assert sorted(p.name for p in runs.iterdir()) == [previous.id]


def test_runs_show_status_of_a_killed_run(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = identity.identity(child.pid)
    child.wait()
    paths = _make_run(tmp_path, "fsdp-20261129-000000-dead", state="running", supervisor=gone, recipe="fsdp",
                      request={"recipe": "fsdp", "overrides": []}, created_at="2026-11-29T00:00:00+0000")
    runs = run_cli("runs", "--runs-dir", str(tmp_path))
    assert runs.returncode == 0 and "fsdp-20261129-000000-dead  fsdp    lost" in runs.stdout
    status = json.loads(run_cli("status", paths.id, "--runs-dir", str(tmp_path), "--json").stdout)
    assert status["state"] == "lost" and "killed" in status["note"] and status["recorded_state"] == "running"
    stop = run_cli("stop", paths.id, "--runs-dir", str(tmp_path))
    assert stop.returncode == 0 and read_record(paths)["state"] == "lost"
    show = run_cli("show", "fsdp-2026", "--runs-dir", str(tmp_path))
    assert show.returncode == 0 and "run fsdp-20261129-000000-dead  [lost]" in show.stdout


def test_another_ray_on_this_machine_is_refused_before_anything_is_written(tmp_path):
    import socket

    from runner.checks.preflight import RAY_DASHBOARD_AGENT_PORT
    from tests.conftest import free_port

    entry = tmp_path / "entry.py"
    entry.write_text("")
    try:  # what a running Ray's dashboard agent holds
        holder = socket.create_server(("127.0.0.1", RAY_DASHBOARD_AGENT_PORT))
    except OSError:
        holder = None  # a real Ray holds it right now: the refusal must come all the same
    try:
        temp = unused_short_path()
        r = run_cli("train", "--recipe", "megatron-8gpu", "--test-entrypoint", str(entry), "--runs-dir",
                    str(tmp_path / "runs"), "--ray-temp-dir", str(temp), "--ray-port", str(free_port()),
                    "--dashboard-port", str(free_port()), env={"SLIME_RUNNER_LOCK": str(tmp_path / "lock")})
    finally:
        if holder is not None:
            holder.close()
    assert r.returncode == 2
    assert f"error: port {RAY_DASHBOARD_AGENT_PORT} (Ray's dashboard agent) is in use: another Ray" in r.stderr
    assert not (tmp_path / "runs").exists() and not temp.exists()


def test_run_from_the_flake_records_its_revision_lock_and_store_paths(tmp_path):
    """What nix/apps.nix exports (the installed runner has no .git and no flake.lock beside it) is what
    run.json's software records; the real provenance collector, the job's Python probed for real."""
    from runner.runs import provenance

    lock = tmp_path / "flake.lock"
    lock.write_text(json.dumps({"root": "root", "version": 7, "nodes": {
        "root": {"inputs": {"nixpkgs": "nixpkgs"}},
        "nixpkgs": {"locked": {"type": "github", "owner": "NixOS", "repo": "nixpkgs", "rev": "f" * 40,
                               "narHash": "sha256-flake-lock-from-the-environment=", "lastModified": 1}}}}))
    store = "/nix/store/" + "a" * 32
    environ = {"SLIME_RUNNER_REVISION": "b" * 40 + "-dirty", "SLIME_RUNNER_FLAKE_LOCK": str(lock),
               "SLIME_RUNNER_NIX_ENV": f"{store}-slime-qwen3-next-env", "CUDA_HOME": f"{store}-cuda-home-12.8",
               "CUDNN_PATH": f"{store}-nvidia-cudnn-cu12-9.16.0.29/lib/python3.12/site-packages/nvidia/cudnn",
               "SLIME_RUNNER_PINS": str(REPO / "nix" / "pins.json"), "SLIME_RUNNER_ENV": "nix"}
    # The job's Python must run: this one (the python store path is checked below).
    sw = provenance.collect(python=sys.executable, pythonpath=None, slime_dir=None, megatron_dir=None, environ=environ)
    assert sw["runner"]["rev"] == "b" * 40 + "-dirty" and sw["runner"]["dirty"] is True
    assert sw["runner"]["source"] == "$SLIME_RUNNER_REVISION"
    assert sw["flake_lock"]["path"] == str(lock)
    assert sw["flake_lock"]["nixpkgs"]["narHash"] == "sha256-flake-lock-from-the-environment="
    assert sw["from_nix"] is True
    # The job's Python is a store path itself where these tests run inside
    # `nix flake check` (the check's test env), and is recorded then.
    in_store = {"python": sys.executable} if sys.executable.startswith("/nix/store/") else {}
    assert sw["store_paths"] == {"env": f"{store}-slime-qwen3-next-env", "cuda-home": f"{store}-cuda-home-12.8",
                                 "cudnn": environ["CUDNN_PATH"], **in_store}  # the lock and pins here are no store paths
    assert provenance.store_paths({"python": f"{store}-slime-qwen3-next-env/bin/python"}) == \
        {"python": f"{store}-slime-qwen3-next-env/bin/python"}  # as given, not the interpreter it links to
    # Outside the flake: the checkout's git (none in `nix flake check`'s copy) and its flake.lock.
    plain = provenance.collect(python=sys.executable, pythonpath=None, slime_dir=None, megatron_dir=None, environ={})
    assert "source" not in plain["runner"]
    if (REPO / ".git").exists():
        assert len(plain["runner"]["rev"]) == 40
    assert plain["flake_lock"]["path"] == str(REPO / "flake.lock") and not plain["store_paths"].keys() - {"python"}


# --- the run commands on damaged, vanishing, foreign and remote runs (through the real CLI) ---------------------

def _write_raw(root: Path, run_id: str, text: str) -> RunPaths:
    paths = RunPaths(root / run_id)
    paths.dir.mkdir(parents=True)
    paths.record.write_text(text)
    return paths


def test_an_unreadable_run_json_is_one_line_for_a_named_run_and_a_warning_in_listings(tmp_path):
    good = _make_run(tmp_path, "fsdp-20261129-000000-good", recipe="fsdp", created_at="2026-11-29T00:00:00+0000")
    cut = _write_raw(tmp_path, "fsdp-20261129-000100-ccut", '{"id": "fsdp-2026')
    listed = _write_raw(tmp_path, "fsdp-20261129-000200-list", "[]")
    runs_dir = ["--runs-dir", str(tmp_path)]
    for bad in (cut, listed):
        for argv in (["status", bad.id], ["show", bad.id], ["logs", bad.id], ["logs", "-f", bad.id],
                     ["stop", bad.id], ["stop", "--dry-run", bad.id]):
            r = run_cli(*argv, *runs_dir)
            assert r.returncode == 2, (argv, r.stdout, r.stderr)
            assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, (argv, r.stderr)
            assert r.stderr.startswith(f"error: run {bad.id}: ") and str(bad.record) in r.stderr
        assert bad.record.read_text() in ('{"id": "fsdp-2026', "[]")  # nothing rewritten
    assert "not valid JSON" in run_cli("show", cut.id, *runs_dir).stderr
    assert "holds a JSON list, not a run record" in run_cli("show", listed.id, *runs_dir).stderr
    for argv in (["runs"], ["status"], ["status", "--json"]):
        r = run_cli(*argv, *runs_dir)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (argv, r.stderr)
        warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: skipped run ")]
        assert len(warnings) == 2 and str(cut.record) in warnings[0] and str(listed.record) in warnings[1], r.stderr
    assert good.id in run_cli("runs", *runs_dir).stdout
    resume = run_cli("train", "--resume", listed.id, *runs_dir, "--dry-run")
    assert resume.returncode == 2 and "Traceback" not in resume.stderr, resume.stderr
    assert f"error: --resume {listed.id}: {listed.record} holds a JSON list, not a run record" in resume.stderr
    assert [f["id"] for f in json.loads(run_cli("status", "--json", *runs_dir).stdout)] == [good.id]


def _runner_env() -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SLIME_")}, "PYTHONPATH": str(REPO)}


def test_logs_follow_ends_with_a_note_when_the_run_directory_is_removed(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        paths = _make_run(tmp_path, "fsdp-20261129-000000-gone", state="running",
                          supervisor=identity.identity(owner.pid))
        paths.job_log.write_text("step 1\n")
        follow = subprocess.Popen([sys.executable, "-m", "runner", "logs", "-f", paths.id, "--runs-dir", str(tmp_path),
                                   "--poll", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=_runner_env(), cwd=REPO)
        assert follow.stdout.readline() == "step 1\n"
        subprocess.run(["rm", "-rf", str(paths.dir)], check=True)
        out, err = follow.communicate(timeout=120)
    finally:
        owner.kill()
        owner.wait()
    assert follow.returncode == 1 and "Traceback" not in err, err
    assert err.strip() == f"(stopped following run {paths.id}: its directory was removed)"


def _python_for(user: int) -> str | None:
    """A Python 3.10+ that `user` may run (this one may live under root's home)."""
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            probe = subprocess.run([python, "-c", "import sys; assert sys.version_info >= (3, 10)"], user=user,
                                   capture_output=True, cwd="/")
        except OSError:
            continue
        if probe.returncode == 0:
            return python
    return None


def test_stop_of_another_users_run_says_whose_it_is(tmp_path):
    root = Path(tempfile.mkdtemp(prefix="rs-foreign", dir="/tmp"))
    owner = None
    try:
        os.chmod(root, 0o755)
        python = sys.executable
        if os.geteuid() == 0:  # the runner's owner is root (this test); `stop` runs as nobody
            python, user = _python_for(65534), 65534
            if python is None:
                pytest.skip("no Python that user nobody may run")
            owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            supervisor = identity.identity(owner.pid)
        else:  # the runner's owner is pid 1's user; `stop` runs as this user
            if os.stat("/proc/1").st_uid == os.geteuid():
                pytest.skip("needs root, or a pid 1 of another user")
            supervisor, user = identity.identity(1), None
        paths = _make_run(root, "fsdp-20261129-000000-ours", state="running", supervisor=supervisor)
        r = subprocess.run([python, "-m", "runner", "stop", paths.id, "--runs-dir", str(root)],
                           capture_output=True, text=True, env={**_runner_env(), "HOME": str(root)}, cwd=REPO,
                           timeout=120, user=user)
        if owner is not None:
            assert owner.poll() is None  # not signalled
    finally:
        if owner is not None:
            owner.kill()
            owner.wait()
        subprocess.run(["rm", "-rf", str(root)])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == (f"error: cannot stop run {paths.id}: it belongs to another user "
                                f"(uid {supervisor['uid']}); run `python -m runner stop` as that user (or root)")


def test_status_json_prints_json_only(tmp_path):
    runs_dir = ["--runs-dir", str(tmp_path)]
    none = run_cli("status", "--json", *runs_dir)
    assert none.returncode == 0 and json.loads(none.stdout) == [] and f"no runs under {tmp_path}" in none.stderr
    ended = _make_run(tmp_path, "fsdp-20261129-000000-done", state="succeeded", exit_code=0)
    latest = run_cli("status", "--json", *runs_dir)
    assert [f["id"] for f in json.loads(latest.stdout)] == [ended.id]  # a list without RUN, as ever
    assert f"no active run under {tmp_path}; the latest:" in latest.stderr
    me = identity.identity(os.getpid())
    active = [_make_run(tmp_path, f"fsdp-20261129-00010{i}-act{i}", state="running", supervisor=me) for i in (1, 2)]
    both = run_cli("status", "--json", *runs_dir)
    assert [f["id"] for f in json.loads(both.stdout)] == [p.id for p in active] and both.stderr == ""
    one = json.loads(run_cli("status", active[0].id, "--json", *runs_dir).stdout)
    assert one["id"] == active[0].id and one["state"] == "running"  # an object for a named run, as ever
    text = run_cli("status", *runs_dir[:1], str(tmp_path / "empty"))
    assert text.stdout.strip() == f"no runs under {tmp_path / 'empty'}"  # plain text keeps it on stdout


def test_stop_dry_run_of_a_run_owned_elsewhere_shows_only_the_refusal(tmp_path):
    me = identity.identity(os.getpid())
    paths = _make_run(tmp_path, "fsdp-20261129-000000-away", state="running", supervisor={**me, "host": "far-host"},
                      ray={"temp_dir": str(tmp_path / "ray")})
    dry = run_cli("stop", "--dry-run", paths.id, "--runs-dir", str(tmp_path))
    real = run_cli("stop", paths.id, "--runs-dir", str(tmp_path))
    assert real.returncode == 2 and "its runner lives on host far-host" in real.stderr
    assert dry.returncode == 0 and dry.stdout.strip() == (
        f"would refuse: cannot stop run {paths.id} from here: its runner lives on host far-host: run "
        f"`python -m runner stop` there")
    assert read_record(paths)["state"] == "running"


def test_logs_notes_for_a_foreground_run_and_an_ended_run(tmp_path):
    me = identity.identity(os.getpid())
    fg = _make_run(tmp_path, "fsdp-20261129-000000-fgnd", state="succeeded", supervisor={**me, "detached": False})
    for follow in ([], ["-f"]):
        r = run_cli("logs", "--runner", *follow, fg.id, "--runs-dir", str(tmp_path))
        assert r.returncode == 0 and r.stderr.strip() == \
            "(a foreground run has no runner.log: its output went to the terminal that started it)", r.stderr
    failed = _make_run(tmp_path, "fsdp-20261129-000100-fail", state="failed", supervisor={**me, "detached": True})
    r = run_cli("logs", failed.id, "--runs-dir", str(tmp_path))
    assert r.stderr.strip() == "(no job.log; the run is failed)"
    starting = _make_run(tmp_path, "fsdp-20261129-000200-strt", state="starting", supervisor={**me, "detached": True})
    r = run_cli("logs", "--runner", starting.id, "--runs-dir", str(tmp_path))
    assert r.stderr.strip() == "(no runner.log yet; the run is starting)"


def test_duration_honours_each_time_stamps_offset():
    from runner.runs.report import duration

    # 10:00 at +0100 is 09:00 UTC: the run took 30 minutes, though its clock times read 10:00 .. 09:30.
    mixed = {"started_at": "2026-11-29T10:00:00+0100", "ended_at": "2026-11-29T09:30:00+0000"}
    assert duration(mixed) == "30m00s"
    assert duration({"started_at": "2026-11-29T23:30:00-0200", "ended_at": "2026-11-30T03:45:10+0200"}) == "15m10s"
    assert duration({"created_at": "2026-11-29T00:00:00+0000"}, now=1_795_910_400 + 3723) == "1h02m"


def test_kernel_caches_from_the_environment_reach_the_job_as_absolute_paths(machine):
    cache = resolve_kernel_cache(None, {"HOME": "/home/u", "TRITON_CACHE_DIR": "rel/triton", "XDG_CACHE_HOME": "xdg"},
                                 cwd="/w")
    assert cache.env == {"TRITON_CACHE_DIR": "/w/rel/triton",
                         "FLASHINFER_WORKSPACE_BASE": "/w/xdg/slime-qwen3-next/kernels/flashinfer",
                         "TORCH_EXTENSIONS_DIR": "/w/xdg/slime-qwen3-next/kernels/torch_extensions"}
    plan = json.loads(_train(machine, env={"TRITON_CACHE_DIR": "rel/triton", "XDG_CACHE_HOME": "xdg"}).stdout)
    (runtime_env,) = [json.loads(c) for c in plan["files"].values()]
    assert runtime_env["env_vars"]["TRITON_CACHE_DIR"] == str(REPO / "rel" / "triton")  # run_cli's cwd
    assert runtime_env["env_vars"]["TORCH_EXTENSIONS_DIR"] == \
        str(REPO / "xdg/slime-qwen3-next/kernels/torch_extensions")


def test_hints_after_train_name_the_run_from_any_directory(tmp_path):
    from runner.runs.start import run_ref

    rid = "fsdp-20261129-000000-abcd"
    for flag, base, environ in (("runs", None, {}), (None, "models", {}), (None, None, {}),
                                (None, None, {"BASE_FOLDER": "/m"}), (None, None, {"SLIME_RUNS_DIR": "/shared/r"})):
        where = resolve_runs_dir(flag, base, environ, str(tmp_path))
        # Always the runs dir, absolute: a later shell may have another BASE_FOLDER, or none.
        assert run_ref(rid, where) == f"{rid} --runs-dir {where.value}" and os.path.isabs(where.value)
    missing = run_cli("status", "nope", "--base-folder", str(tmp_path))
    assert missing.returncode == 2 and "--runs-dir, --base-folder, $SLIME_RUNS_DIR or $BASE_FOLDER" in missing.stderr


def test_an_unusable_runs_dir_is_refused_before_anything_starts(machine, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for runs_dir, why in (("/proc/x", "cannot create it under /proc"), (str(blocker / "runs"), "is not a directory")):
        r = _train(machine, "--runs-dir", runs_dir, dry=False)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith(f"error: runs dir {runs_dir} ")]
        assert why in line and "(from --runs-dir) is not writable" in line and "--runs-dir DIR" in line
        assert not machine["temp"].exists()  # no Ray started
        plan = json.loads(_train(machine, "--runs-dir", runs_dir).stdout)  # a dry-run lists it
        assert any(p["message"].startswith(f"runs dir {runs_dir} ") for p in plan["problems"]), plan["problems"]
    assert blocker.read_text() == "" and not any(p.name.startswith(".slime-runner-probe") for p in tmp_path.iterdir())
    assert not [p for p in machine["base"].iterdir() if p.name == "runs"]


def test_runs_and_status_of_a_runs_dir_that_is_a_file_fail(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for cmd in (("runs",), ("status",), ("status", "--json"), ("runs", "--json")):
        r = run_cli(*cmd, "--runs-dir", str(blocker))
        assert r.returncode == 2 and "Traceback" not in r.stderr, (cmd, r.stdout, r.stderr)
        assert r.stderr.strip() == (f"error: runs dir {blocker} (from --runs-dir) is a file, not a directory; name "
                                    f"the runs dir with --runs-dir DIR or $SLIME_RUNS_DIR"), r.stderr
        assert r.stdout == ""
    empty = run_cli("runs", "--runs-dir", str(tmp_path / "nothing-yet"))  # not there yet: no runs, not an error
    assert empty.returncode == 0 and "no runs under" in empty.stdout


def test_show_and_status_of_a_copied_run_read_the_copy(tmp_path):
    import shutil

    original = _make_run(tmp_path / "a", "fsdp-20261129-000000-abcd", state="succeeded", exit_code=0)
    record = read_record(original)
    record.update(dir=str(original.dir), logs={"job": str(original.job_log), "runner": None},
                  checkpoint={"save": str(original.checkpoints), "load": str(original.checkpoints)})
    (original.dir / "run.json").write_text(json.dumps(record))
    original.job_log.write_text("step 1\nlast words of the copied run\n")
    (original.checkpoints / "iter_0000005").mkdir(parents=True)
    (original.checkpoints / "latest_checkpointed_iteration.txt").write_text("5")
    copy = tmp_path / "archive" / original.id
    shutil.copytree(original.dir, copy)
    shutil.rmtree(tmp_path / "a")  # only the copy is left
    status = json.loads(run_cli("status", original.id, "--runs-dir", str(copy.parent), "--json").stdout)
    assert status["dir"] == str(copy) and status["iteration"] == "5", status
    assert status["last_log_line"] == "last words of the copied run"
    show = run_cli("show", str(copy))
    assert show.returncode == 0, show.stderr
    assert f"directory:   {copy} (run.json was written in {original.dir})" in show.stdout
    assert f"--save {copy}/checkpoints" in show.stdout and str(original.dir) + "/" not in show.stdout
    text = run_cli("status", original.id, "--runs-dir", str(copy.parent)).stdout
    assert "latest iteration: 5" in text and f"job log:    {copy}/job.log" in text


def test_resume_on_the_other_backend_warns_that_it_cannot_continue(machine, tmp_path):
    runs = tmp_path / "runs"
    folder = runs / "megatron-8gpu-20261129-000000-abcd" / "checkpoints"
    previous = RunPaths(folder.parent)
    create_record(previous, {"id": previous.id, "state": "failed", "request": {"recipe": "megatron-8gpu",
                                                                               "overrides": []},
                             "checkpoint": {"folder": str(folder), "save": str(folder)}})
    save_checkpoint(folder, 7)  # Megatron's layout: torch_dist files in iter_N/
    base = ["train", "--resume", previous.id, "--runs-dir", str(runs), *machine["args"], "--dry-run", "--json"]
    env = {**machine["env"], "SLIME_RUNNER_LOCK": str(tmp_path / "lock")}
    plan = json.loads(run_cli(*base, "--recipe", "fsdp-h200", "--accept-changes", env=env).stdout)
    warnings = [p["message"] for p in plan["problems"] if p["severity"] == "warning"]
    (line,) = [w for w in warnings if "cannot continue" in w]
    assert line.startswith(f"--recipe fsdp-h200 resumes {previous.id}, a megatron-8gpu run: the fsdp backend "
                           f"cannot continue its megatron checkpoints")
    assert "skips the load and trains from the HF weights" in line and "start a fresh run instead" in line
    same = json.loads(run_cli(*base, "--recipe", "megatron-8gpu-80gb", "--accept-changes", env=env).stdout)
    assert not [p for p in same["problems"] if "cannot continue" in p["message"]]  # same backend: no warning


def test_no_none_where_a_run_has_no_exit_code_or_checkpoint(tmp_path, machine):
    runs = tmp_path / "runs"
    rid = "fsdp-20261129-000000-abcd"
    lost = _make_run(runs, rid, state="lost", exit_code=None, ended_at="2026-11-29T01:00:00+0000",
                     created_at="2026-11-29T00:00:00+0000", detail="its runner was killed", dir=str(runs / rid),
                     request={"recipe": "fsdp", "overrides": []}, recipe="fsdp",
                     checkpoint={"save": str(runs / rid / "checkpoints")},
                     logs={"job": str(runs / rid / "job.log"), "runner": None,
                           "ray": "/tmp/r/head/session_latest/logs"},
                     ray={"temp_dir": "/tmp/r", "logs": "/tmp/r/head/session_latest/logs", "token_auth": True})
    lost.job_log.write_text("a line\n")
    outputs = {cmd: run_cli(*cmd, "--runs-dir", str(runs)) for cmd in
               (("status", lost.id), ("show", lost.id), ("logs", "-f", lost.id), ("stop", lost.id), ("runs",))}
    for cmd, r in outputs.items():
        said = r.stdout + r.stderr
        assert r.returncode == 0 and "exit code None" not in said and "iteration None" not in said, (cmd, said)
    assert "no exit code" in outputs[("status", lost.id)].stdout and "no exit code" in outputs[("show", lost.id)].stdout
    assert outputs[("logs", "-f", lost.id)].stderr.strip() == f"(run {lost.id} lost, no exit code)"
    plan = json.loads(run_cli("train", "--resume", lost.id, "--runs-dir", str(runs), *machine["args"], "--dry-run",
                              "--json", env=machine["env"]).stdout)
    (where,) = [n for n in plan["notes"] if n.startswith("run ")]
    assert "(run.json, job.log); runs dir" in where and "checkpoints/" not in where  # it saves into lost's folder
    notes = [n for n in plan["notes"] if n.startswith("resumes ")]
    assert notes == [f"resumes {lost.id} from its latest checkpoint (none yet: see the problems)"], notes
    assert any("holds no checkpoint yet" in p["message"] for p in plan["problems"])


def test_a_fresh_runs_directory_note_lists_its_checkpoints_folder(machine):
    plan = json.loads(_train(machine).stdout)
    (where,) = [n for n in plan["notes"] if n.startswith("run ")]
    assert "(run.json, job.log, checkpoints/); runs dir" in where
    detached = json.loads(_train(machine, "--detach").stdout)
    (where,) = [n for n in detached["notes"] if n.startswith("run ")]
    assert "(run.json, job.log, runner.log, checkpoints/); runs dir" in where
