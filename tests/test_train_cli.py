"""train: bad input gives one clear error, exit 2, and starts nothing; dry-run
shape; secrets stay out of argv and output."""

import json
import os
import socket
import sys

import pytest

from runner.launch.processes import processes_with_marker
from tests.conftest import REPO, run_cli, unused_short_path
from tests.gpu_recordings import record
from tests.hf_fixtures import make_base_folder, make_dataset
from tests.machine import make_source_trees

SECRET = "wandb-secret-value-0123456789"


@pytest.fixture
def ready(tmp_path):
    """A machine that has everything: 8 H100s, slime, Megatron-LM, checkpoints, data."""
    base = make_base_folder(tmp_path / "models")
    slime, megatron = make_source_trees(tmp_path)
    env = record(tmp_path / "gpus", 8)
    temp = unused_short_path()
    args = ["--base-folder", str(base), "--slime-dir", str(slime), "--megatron-dir", str(megatron),
            "--ray-temp-dir", str(temp)]
    return {"base": base, "env": env, "args": args, "temp": temp, "tmp": tmp_path}


def train(ready, *extra, recipe="megatron-8gpu", env=None, dry=False):
    argv = ["train", "--recipe", recipe, *ready["args"], *extra]
    if dry:
        argv += ["--dry-run", "--json"]
    environ = {**ready["env"], **(env or {})}
    return run_cli(*argv, env=environ)


def errors_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def assert_refused(result, ready, fragment: str):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert any(fragment in e for e in errors_of(result)), result.stderr
    assert not ready["temp"].exists(), "nothing may be started or written"
    assert not processes_with_marker(str(ready["temp"]))


def test_ready_machine_plans_cleanly(ready):
    r = train(ready, dry=True)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    errors = [p for p in plan["problems"] if p["severity"] == "error"]
    # The planner may refuse 8 x 80 GB for this recipe (the seed's rollout shortfall); nothing else.
    assert all("memory plan" in p["message"] for p in errors), errors
    head, job = plan["processes"][0], plan["processes"][-1]
    assert head["argv"][1:4] == ["start", "--head", "--block"]
    assert head["argv"][head["argv"].index("--dashboard-host") + 1] == "127.0.0.1"
    assert "--num-gpus" in head["argv"] and head["argv"][head["argv"].index("--num-gpus") + 1] == "8"
    assert job["argv"][1:3] == ["-m", "runner.runs.ray_job"]
    entry = job["argv"][job["argv"].index("--") + 1:]
    assert entry[1].endswith("/slime/train.py")
    assert set(job.keys()) >= {"argv", "env", "cwd"}
    (runtime_env,) = [json.loads(c) for c in plan["files"].values()]
    assert runtime_env["env_vars"]["NCCL_NVLS_ENABLE"] == "1"  # NVLink seen in the recorded topology
    assert not ready["temp"].exists()


def test_caller_nccl_nvls_wins_over_detection(ready):
    plan = json.loads(train(ready, dry=True, env={"NCCL_NVLS_ENABLE": "0"}).stdout)
    (runtime_env,) = [json.loads(c) for c in plan["files"].values()]
    assert runtime_env["env_vars"]["NCCL_NVLS_ENABLE"] == "0"


def test_dry_run_needs_no_ray_or_torch(ready):
    # Block the heavy modules: importing them would raise ImportError.
    code = ("import sys; sys.modules.update({m: None for m in ('ray', 'torch', 'huggingface_hub', 'transformers')});"
            "from runner.cli import main; sys.exit(main(sys.argv[1:]))")
    import subprocess

    r = subprocess.run([sys.executable, "-c", code, "train", "--recipe", "megatron-multinode", "--dry-run", "--json"],
                       capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    messages = " ".join(p["message"] for p in plan["problems"])
    assert "MASTER_ADDR" in messages and "--hostfile" in messages  # listed, not raised


def test_missing_checkpoint(ready):
    (ready["base"] / "Qwen3-Next-80B-A3B-Thinking" / "config.json").unlink()
    assert_refused(train(ready), ready, "config.json is missing")


def test_incomplete_torch_dist(ready):
    (ready["base"] / "Qwen3-Next-80B-A3B-Thinking_torch_dist" / "latest_checkpointed_iteration.txt").unlink()
    assert_refused(train(ready), ready, "run `python -m runner convert` first")


def test_dataset_without_label_key(ready):
    make_dataset(ready["base"] / "dapo-math-17k" / "dapo-math-17k.jsonl", [{"prompt": "x", "answer": "y"}])
    assert_refused(train(ready), ready, "dapo-math-17k.jsonl:1: missing key 'label'")


def test_megatron_without_slimes_patch_is_refused_before_anything_starts(ready):
    """The doctor's check, in train's preflight: slime's parser would reject the recipe only once Ray is up."""
    slime, megatron = make_source_trees(ready["tmp"] / "unpatched", patched=False)
    where = ["--slime-dir", str(slime), "--megatron-dir", str(megatron)]
    r = train(ready, *where)
    assert_refused(r, ready, f"{megatron} is not patched with slime's docker/patch/latest/megatron.patch")
    (line,) = [e for e in errors_of(r) if "megatron.patch" in e]
    assert "unrecognized arguments: --use-gated-attention" in line
    assert line.endswith(f"fix: patch -p1 -d {megatron} < {slime}/docker/patch/latest/megatron.patch")
    plan = json.loads(train(ready, *where, dry=True).stdout)  # a dry-run lists it
    assert [p["severity"] for p in plan["problems"] if "megatron.patch" in p["message"]] == ["error"]
    fsdp = json.loads(train(ready, *where, recipe="fsdp", dry=True).stdout)  # FSDP never parses Megatron's flags
    assert not [p for p in fsdp["problems"] if "megatron.patch" in p["message"]]
    ok = json.loads(train(ready, dry=True).stdout)  # the fixture's patched tree
    assert not [p for p in ok["problems"] if "megatron.patch" in p["message"]]


def test_too_few_gpus(ready):
    env = record(ready["tmp"] / "gpus4", 4)
    assert_refused(train(ready, env=env), ready, "needs 8 GPUs on this node, found 4")


def test_megatron_on_blackwell_is_blocked_but_fsdp_is_not(ready):
    env = record(ready["tmp"] / "b200", 8, name="NVIDIA B200", mib=183359, cc="10.0")
    assert_refused(train(ready, env=env), ready, "Blackwell: slime's Megatron recipes are unsupported")
    plan = json.loads(train(ready, recipe="fsdp", env=env, dry=True).stdout)
    assert not any("Blackwell" in p["message"] for p in plan["problems"])


@pytest.mark.parametrize("setting, fragment", [
    ("pipeline-model-parallel-size=5", "48 layers are not divisible by --pipeline-model-parallel-size 5"),
    ("expert-model-parallel-size=3", "512 experts are not divisible by --expert-model-parallel-size 3"),
    ("tensor-model-parallel-size=4", "6 training GPUs are not divisible by TP x PP x CP = 4 x 6 x 1 = 24"),
    ("actor-num-gpus-per-node=8", "the recipe needs 10 GPUs (8 training + 2 rollout)"),
])
def test_parallel_sizes_that_do_not_divide(ready, setting, fragment):
    assert_refused(train(ready, "--set", setting), ready, fragment)


def test_multinode_needs_master_addr_and_hostfile(ready):
    env = {"MASTER_ADDR": ""}
    r = train(ready, recipe="megatron-multinode", env=env)
    assert_refused(r, ready, "needs MASTER_ADDR")
    assert any("--hostfile" in e for e in errors_of(r))


def test_multinode_master_addr_must_be_local(ready):
    hostfile = ready["tmp"] / "hosts"
    hostfile.write_text("203.0.113.7 slots=8\n10.0.0.2\n10.0.0.3\n10.0.0.4\n")
    r = train(ready, "--hostfile", str(hostfile), "--master-addr", "203.0.113.7", recipe="megatron-multinode")
    assert_refused(r, ready, "MASTER_ADDR 203.0.113.7 is not an address of this machine")


def test_hostfile_with_wrong_worker_count(ready):
    hostfile = ready["tmp"] / "hosts"
    hostfile.write_text("127.0.0.1\n10.0.0.2\n")
    r = train(ready, "--hostfile", str(hostfile), "--master-addr", "127.0.0.1", recipe="megatron-multinode")
    assert_refused(r, ready, "needs 3 worker node(s) besides MASTER_ADDR 127.0.0.1; found 1: 10.0.0.2")


def test_occupied_ray_port(ready):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert_refused(train(ready, "--ray-port", str(port)), ready, f"port {port} on 127.0.0.1 (Ray GCS) is already in use")


def test_low_memory_only_for_megatron(ready):
    r = train(ready, "--low-memory", recipe="fsdp")
    assert r.returncode == 2 and "--low-memory applies to Megatron recipes" in r.stderr
    plan = json.loads(train(ready, "--low-memory", dry=True).stdout)
    entry = plan["processes"][-1]["argv"]
    assert "--grad-reduce-in-bf16" in entry and "--accumulate-allreduce-grads-in-fp32" not in entry


def test_secret_flag_on_argv_is_refused(ready):
    r = train(ready, "--set", f"wandb-key={SECRET}")
    assert_refused(r, ready, "--wandb-key would put a secret on the command line")
    assert SECRET not in r.stdout + r.stderr


def test_secrets_from_environment_are_passed_but_redacted(ready):
    env = {"WANDB_API_KEY": SECRET, "HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz"}
    for json_mode in (True, False):
        argv = ["train", "--recipe", "megatron-8gpu", *ready["args"], "--dry-run", "--set", "use-wandb"]
        r = run_cli(*(argv + (["--json"] if json_mode else [])), env={**ready["env"], **env})
        assert r.returncode == 0
        out = r.stdout + r.stderr
        assert SECRET not in out and "hf_abcdefghijklmnopqrstuvwxyz" not in out
        assert "WANDB_API_KEY" in out and "<redacted>" in out


def test_multinode_turns_on_token_auth_without_leaking_it(ready):
    hostfile = ready["tmp"] / "hosts"
    hostfile.write_text("127.0.0.1\n10.0.0.2\n10.0.0.3\n10.0.0.4\n")
    plan = json.loads(train(ready, "--hostfile", str(hostfile), "--master-addr", "127.0.0.1",
                            recipe="megatron-multinode", dry=True).stdout)
    head = plan["processes"][0]
    assert head["env"]["RAY_AUTH_MODE"] == "token" and head["env"]["RAY_AUTH_TOKEN"] == "<redacted>"
    workers = [p for p in plan["processes"] if p["argv"][0] == "ssh" and "--block" in p["argv"][-1]]
    assert len(workers) == 3
    assert all("RAY_AUTH_TOKEN_PATH=" in w["argv"][-1] and "RAY_AUTH_TOKEN=" not in w["argv"][-1] for w in workers)
    assert any("TP x CP = 4" in p["message"] for p in plan["problems"] if p["severity"] == "warning")


def test_hostfile_entries_may_name_the_ssh_user(ready):
    hostfile = ready["tmp"] / "hosts"
    hostfile.write_text("root@127.0.0.1\nroot@10.0.0.2 slots=8\n10.0.0.3\n# spare\nroot@10.0.0.4\n")
    plan = json.loads(train(ready, "--hostfile", str(hostfile), "--master-addr", "127.0.0.1",
                            recipe="megatron-multinode", dry=True).stdout)
    workers = [p["argv"] for p in plan["processes"] if p["argv"][0] == "ssh" and "--block" in p["argv"][-1]]
    assert [w[-2] for w in workers] == ["root@10.0.0.2", "10.0.0.3", "root@10.0.0.4"]  # ssh targets
    assert "--node-ip-address 10.0.0.2 " in workers[0][-1]  # the Ray node address has no user
    assert not any("needs 3 worker" in p["message"] for p in plan["problems"])


def test_worker_output_files_are_numbered_by_host(ready):
    """ray-worker-N.out is the N-th host's Ray worker; its token and secrets copies say theirs in
    copy-to-worker-N.out (the copies took the odd numbers before)."""
    hostfile = ready["tmp"] / "hosts"
    hostfile.write_text("10.0.0.2\n10.0.0.3\n10.0.0.4\n")
    plan = json.loads(train(ready, "--hostfile", str(hostfile), "--master-addr", "127.0.0.1",
                            recipe="megatron-multinode", dry=True, env={"WANDB_API_KEY": SECRET}).stdout)
    temp = str(ready["temp"])
    ssh = [p for p in plan["processes"] if p["argv"][0] == "ssh"]
    outputs = [(p["purpose"], p["output"]) for p in ssh]
    assert outputs == [item for n, host in enumerate(("10.0.0.2", "10.0.0.3", "10.0.0.4"), 1) for item in (
        (f"copy the Ray auth token to {host} (via stdin)", f"{temp}/copy-to-worker-{n}.out"),
        (f"copy the run's secrets to {host} (via stdin)", f"{temp}/copy-to-worker-{n}.out"),
        (f"Ray worker on {host}", f"{temp}/ray-worker-{n}.out"))], outputs
    workers = [p["argv"][-1] for p in ssh if p["purpose"].startswith("Ray worker")]
    assert [f"--temp-dir {temp}/worker-{n} " in w for n, w in enumerate(workers, 1)] == [True] * 3
    assert plan["processes"][0]["output"] == f"{temp}/ray-head.out"


def test_no_proxy_names_each_host_once(ready):
    plan = json.loads(train(ready, dry=True).stdout)
    (runtime_env,) = [json.loads(c) for c in plan["files"].values()]
    assert runtime_env["env_vars"]["no_proxy"] == "127.0.0.1"
    assert {p["env"].get("no_proxy") for p in plan["processes"]} == {"127.0.0.1"}
