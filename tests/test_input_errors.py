"""What a new user got wrong, through the real CLI: one line naming the value and
the fix, exit 2, nothing started or written (issue 12, item 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv

import pytest

from tests.conftest import REPO, run_cli
from tests.hub_standin import HubStandIn
from tests.machine import refused, train


# ---- multinode: MASTER_ADDR and the hostfile

def _hostfile(machine, text: str) -> str:
    path = machine["tmp"] / "hosts"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("addr", ["127.0.0.1", "localhost"])
def test_multinode_refuses_a_loopback_master_addr(machine, addr):
    hosts = _hostfile(machine, "10.0.0.2\n10.0.0.3\n10.0.0.4\n")
    r = train(machine, "--hostfile", hosts, recipe="megatron-multinode", env={"MASTER_ADDR": addr})
    line = refused(machine, r, f"MASTER_ADDR {addr}")
    assert "from $MASTER_ADDR, is a loopback address: every worker would connect to itself" in line


@pytest.mark.parametrize("text, fragment", [
    ("10.0.0.2\n10.0.0.3:22\n10.0.0.4\n", "line 2: '10.0.0.3:22': a port is not part of a hostfile entry"),
    ("node-b,node-c\n", "line 1: 'node-b,node-c': one host per line"),
    ("# workers\nnode-b gpus=8\n", "line 2: 'node-b gpus=8': unexpected 'gpus=8' after the host"),
    ("node_b\n", "line 1: 'node_b': not a host name or IP address"),
])
def test_hostfile_lines_that_are_not_hosts(machine, text, fragment):
    r = train(machine, "--hostfile", _hostfile(machine, text), "--master-addr", "192.0.2.2",
              recipe="megatron-multinode", dry=True)
    assert r.returncode == 0  # a dry-run lists it
    errors = [p["message"] for p in json.loads(r.stdout)["problems"] if p["severity"] == "error"]
    assert any(fragment in e and "each line is HOST or HOST slots=N" in e for e in errors), errors


def test_hostfile_in_slimes_mpi_format_is_accepted(machine):
    # slime's script reads the first column of an MPI rack hostfile (`HOST slots=8`).
    hosts = _hostfile(machine, "node-a slots=8\nroot@node-b slots=8  # rack 2\nnode-c\n10.0.0.4 slots=8\n")
    plan = json.loads(train(machine, "--hostfile", hosts, "--master-addr", "10.0.0.4",
                            recipe="megatron-multinode", dry=True).stdout)
    workers = [p["argv"] for p in plan["processes"] if p["argv"][0] == "ssh" and "--block" in p["argv"][-1]]
    assert [w[-2] for w in workers] == ["node-a", "root@node-b", "node-c"]
    assert not any("hostfile" in p["message"] for p in plan["problems"])


# ---- hints name flags that exist

def test_missing_checkpoint_hint_names_a_real_option(machine):
    import shutil

    shutil.rmtree(machine["base"] / "Qwen3-Next-80B-A3B-Thinking")
    line = refused(machine, train(machine), "does not exist; run `python -m runner download`")
    assert "--hf-checkpoint" not in line and "--base-folder" in line  # train has no --hf-checkpoint


def test_doctor_says_to_set_slime_dir_before_convert(tmp_path):
    from tests.hf_fixtures import make_base_folder

    base = make_base_folder(tmp_path / "models")
    (base / "Qwen3-Next-80B-A3B-Thinking_torch_dist" / "latest_checkpointed_iteration.txt").unlink()
    r = run_cli("doctor", "--json", "--no-imports", "--base-folder", str(base))
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    fix = checks["torch_dist checkpoint"]["fix"]
    assert fix.startswith("set SLIME_DIR and MEGATRON_DIR") and fix.endswith("then run `python -m runner convert`")


# ---- BASE_FOLDER is a file; config.json is not JSON: every subcommand the same

@pytest.mark.parametrize("argv", [["plan"], ["plan", "--recipe", "megatron-8gpu"], ["download"], ["convert"]])
def test_base_folder_that_is_a_file(tmp_path, argv):
    path = tmp_path / "models"
    path.write_text("not a folder")
    r = run_cli(*argv, env={"BASE_FOLDER": str(path)})
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert f"error: BASE_FOLDER {path} (from $BASE_FOLDER) is a file, not a folder" in errors[0], errors
    assert path.read_text() == "not a folder"


def test_base_folder_that_is_a_file_train_and_doctor(machine):
    path = machine["tmp"] / "afile"
    path.write_text("x")
    line = refused(machine, train(machine, "--base-folder", str(path)), f"BASE_FOLDER {path} (from --base-folder)")
    assert "is a file, not a folder" in line
    r = run_cli("doctor", "--json", "--no-imports", "--base-folder", str(path), env=machine["env"])
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert r.returncode == 1 and checks["base folder"]["status"] == "fail"


def test_config_json_that_is_not_json_reads_the_same_everywhere(machine):
    config = machine["base"] / "Qwen3-Next-80B-A3B-Thinking" / "config.json"
    config.write_text("{not json")
    expected = f"{config}: not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"
    base = ["--base-folder", str(machine["base"])]
    for argv in (["plan", *base], ["plan", "--recipe", "megatron-8gpu", *base]):
        r = run_cli(*argv, env=machine["env"])
        assert r.returncode == 2 and refused(None, r, code=None).startswith(f"error: {expected}"), r.stderr
    r = run_cli("doctor", "--json", "--no-imports", *base, env=machine["env"])
    hf = {c["name"]: c for c in json.loads(r.stdout)["checks"]}["hf checkpoint"]
    assert r.returncode == 1 and hf["status"] == "fail" and hf["detail"].startswith(expected)
    assert refused(machine, train(machine), expected)


# ---- the runner's own options

def test_runner_option_after_double_dash_is_not_passed_to_slime(machine):
    line = refused(machine, train(machine, "--", "--dry-run"), "--dry-run is the runner's own option")
    assert "put --dry-run before '--'" in line


def test_abbreviated_runner_option_is_refused_with_the_subcommands_usage(machine):
    r = train(machine, "--forc")
    assert r.returncode == 2
    assert r.stderr.startswith("usage: python -m runner train")
    assert "python -m runner train: error: unrecognized arguments: --forc (did you mean --force?" in r.stderr
    assert not machine["temp"].exists()


def test_misspelt_option_shows_the_subcommands_usage_and_a_suggestion():
    r = run_cli("train", "--recip", "megatron-8gpu", "--dry-run")  # not "--recipe is required"
    assert r.returncode == 2
    assert r.stderr.startswith("usage: python -m runner train")
    assert "unrecognized arguments: --recip (did you mean --recipe?" in r.stderr
    r = run_cli("doctor", "--no-import")
    assert r.stderr.startswith("usage: python -m runner doctor") and "did you mean --no-imports?" in r.stderr


def test_dry_run_help_says_exit_code_stays_0():
    out = run_cli("train", "--help").stdout
    assert "problems found are listed and the exit code stays 0" in " ".join(out.split())


# ---- the Python that submits the job must import ray

def test_ray_on_path_from_another_python_is_caught_before_anything_starts(machine, tmp_path):
    # `pip install -e .` into a fresh venv (no stack): the `ray` on PATH belongs to another Python.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, system_site_packages=False)
    ray_dir = tmp_path / "otherbin"
    ray_dir.mkdir()
    other_python = sys.executable
    (ray_dir / "ray").write_text(f"#!{other_python}\nimport sys\nsys.exit(0)\n")
    (ray_dir / "ray").chmod(0o755)
    env = {**os.environ, **machine["env"], "PYTHONPATH": str(REPO), "PATH": f"{ray_dir}:{os.environ['PATH']}"}
    r = subprocess.run([str(env_dir / "bin" / "python"), "-m", "runner", "train", "--recipe", "megatron-8gpu",
                        *machine["args"]], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    line = refused(machine, r, f"ray is not installed for {env_dir / 'bin' / 'python'}")
    assert f"the `ray` on PATH ({ray_dir / 'ray'}) belongs to {other_python}" in line
    assert f"`{other_python} -m runner ...`" in line


# ---- download: free disk and nothing to do

MODEL = ("model", "Qwen/Qwen3-Next-80B-A3B-Thinking")
DAPO = ("dataset", "zhuzilin/dapo-math-17k")
AIME = ("dataset", "zhuzilin/aime-2024")


def _download(hub, base, *extra):
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "5"}
    return run_cli("download", "--base-folder", str(base), *extra, env=env, timeout=120)


def test_download_refuses_when_the_disk_cannot_hold_the_files(tmp_path):
    files = {"config.json": 700, "model-00001-of-00001.safetensors": 10**16}  # 10 PB: no disk here has it
    with HubStandIn({MODEL: files, DAPO: {"dapo-math-17k.jsonl": 10}, AIME: {"aime-2024.jsonl": 10}}) as hub:
        r = _download(hub, tmp_path / "models")
    line = refused(None, r, code=None)
    assert r.returncode == 2
    assert line.startswith("error: the download needs 10000000.0 GB but ") and "GB free" in line
    assert "--base-folder" in line
    assert not (tmp_path / "models").exists()
    assert not any("/resolve/" in p for p in hub.requests), hub.requests  # metadata only, no file fetched


def test_download_says_when_there_is_nothing_to_do(tmp_path):
    base = tmp_path / "models"
    for name in ("dapo-math-17k", "aime-2024"):
        (base / name).mkdir(parents=True)
        (base / name / f"{name}.jsonl").write_text('{"prompt": "p", "label": "1"}\n')
    size = len('{"prompt": "p", "label": "1"}\n')
    with HubStandIn({DAPO: {"dapo-math-17k.jsonl": size}, AIME: {"aime-2024.jsonl": size}}) as hub:
        r = _download(hub, base, "--skip-model")
    assert r.returncode == 0, r.stderr
    assert "nothing to download: every file is already in BASE_FOLDER" in r.stderr
    assert not any("/resolve/" in p for p in hub.requests), hub.requests  # no file was fetched


def test_download_with_both_skips_has_nothing_to_do(tmp_path):
    r = run_cli("download", "--skip-model", "--skip-datasets", "--base-folder", str(tmp_path / "m"))
    assert r.returncode == 2
    assert refused(None, r, code=None) == ("error: --skip-model and --skip-datasets together leave nothing to download; "
                            "drop one of them")
    assert not (tmp_path / "m").exists()


# ---- quieter output

def test_plan_lists_its_assumptions_only_with_verbose():
    quiet = run_cli("plan", "--recipe", "megatron-8gpu", "--gpu", "h200").stdout
    loud = run_cli("plan", "--recipe", "megatron-8gpu", "--gpu", "h200", "--verbose").stdout
    assert "assumptions (docs/planner.md):" not in quiet and "--verbose lists them" in quiet
    assert "assumptions (docs/planner.md):" in loud


# ---- README's test command is what CI runs, and it does the set-up itself

def test_readme_test_command_is_the_one_ci_runs():
    readme = (REPO / "README.md").read_text()
    two_commands = readme[readme.index("## The two commands"):readme.index("## First run")]
    assert "```bash\nbash tests/run.sh\n```" in two_commands
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "echo"))]
    assert ci[-1] == "bash tests/run.sh"
    script = (REPO / "tests" / "run.sh").read_text()
    assert "pip install -q -e '.[test]'" in script and script.rstrip().endswith('exec "$PYTHON" -m pytest -q -rfEs --durations=15 "$@"')


# Options of the other programs the runner starts or names (ray start, srun, nvidia-smi,
# torchrun, uv, its own helper modules), and placeholders in docstrings and messages.
OTHER_PROGRAMS = {
    "--address", "--block", "--disable-usage-stats", "--head", "--node-ip-address", "--num-gpus", "--port",
    "--temp-dir",  # ray start
    "--exclude", "--kill-on-bad-exit", "--nodelist", "--nodes", "--ntasks", "--ntasks-per-node", "--overlap",  # srun
    "--job-name", "--exclusive", "--gres", "--output", "--chdir", "--no-requeue", "--parsable", "--test-only",  # sbatch
    "--batch", "--signal",  # scancel (and sbatch's --signal)
    "--states",  # squeue
    "--format", "--query-gpu", "--query-compute-apps",  # nvidia-smi
    "--detail", "--limit",  # ray list actors (runner.runs.incidents)
    "--standalone",  # torchrun
    "--extra",  # uv sync --extra stack
    "--expect", "--local-dir", "--repo", "--repo-type",  # runner.commands.hf_fetch
    "--runtime-env-file", "--stop-timeout", "--submission-id", "--submit-timeout",  # runner.runs.ray_job
    "--log-file", "--quiet", "--run-dir", "--lock-fd",  # runner.runs.ray_job, runner.runs.supervisor
    "--porcelain", "--untracked-files",  # git status (runner.runs.provenance)
    "--result", "--run-id",  # runner.smoke.worker
    "--logdir",  # tensorboard (runner.runs.sinks: how to open a run's TensorBoard files)
    "--flag", "--name", "--switch", "--x", "--no-", "--actor-", "--rollout-", "--forc", "--version",  # text
}


def test_every_option_a_message_names_exists():
    """A hint must name an option the user can pass: the runner's own, slime's, or the named program's."""
    import ast
    import re

    from runner.cli import build_parser
    from runner.slime_args.schema import backend_flags

    parser = build_parser()
    known = {o for sub in parser.subcommand_parsers.values() for o in sub._option_string_actions}
    known |= {f"--{n}" for b in ("megatron", "fsdp") for n in backend_flags(b).options}
    unknown = {}
    for path in (REPO / "runner").rglob("*.py"):
        tree = ast.parse(path.read_text())
        # Docstrings may describe other programs' options, except the subcommands' (their --help text).
        docstrings = set() if path.parent.name == "commands" else {
            id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", node.value):
                    if option not in known | OTHER_PROGRAMS:
                        unknown.setdefault(option, str(path.relative_to(REPO)))
    assert not unknown, unknown


# ---- --unset and --set: what the renderer already removed, names, switches

def _dry(machine, *extra, recipe="megatron-8gpu", env=None):
    r = train(machine, *extra, recipe=recipe, dry=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    plan = json.loads(r.stdout)
    errors = [p["message"] for p in plan["problems"] if p["severity"] == "error"]
    return plan["processes"][-1]["argv"], errors


@pytest.mark.parametrize("extra, gone", [
    # --low-memory drops the flag first; removing it again is a no-op.
    (["--low-memory", "--unset", "accumulate-allreduce-grads-in-fp32"], "--accumulate-allreduce-grads-in-fp32"),
    (["--unset", "lr", "--unset", "lr"], "--lr"),
    (["--unset", "sglang-ep-size", "--unset", "sglang-expert-parallel-size"], "--sglang-ep-size"),
])
def test_unset_of_a_flag_already_removed_is_a_no_op(machine, extra, gone):
    argv, errors = _dry(machine, *extra, recipe="megatron-8gpu-80gb" if "sglang-ep-size" in extra else "megatron-8gpu")
    assert gone not in argv
    assert not [e for e in errors if "unset" in e or "the recipe" in e], errors


def test_unset_of_an_option_the_command_also_sets_is_one_problem(machine):
    argv, errors = _dry(machine, "--set", "sglang-expert-parallel-size=2", "--unset", "sglang-ep-size",
                        recipe="megatron-8gpu-80gb")
    assert [e for e in errors if "--unset" in e] == [
        "--unset sglang-ep-size: this command also sets --sglang-expert-parallel-size, the same slime option "
        "(sglang_expert_parallel_size); give one or the other"]
    argv, errors = _dry(machine, "--set", "lr=1e-6", "--unset", "lr")
    assert any(e.startswith("--unset lr: this command also sets --lr") for e in errors), errors


def test_plan_with_a_repeated_unset_has_no_traceback(machine):
    r = run_cli("plan", "--recipe", "megatron-8gpu", "--gpu", "h200", "--unset", "lr", "--unset", "lr",
                env=machine["env"])
    assert "Traceback" not in r.stderr and "error" not in r.stderr, r.stderr
    assert r.returncode in (0, 1) and "topology: ok" in r.stdout


@pytest.mark.parametrize("extra, expected", [
    (["--unset", ""], "--unset '': expected a slime flag name, e.g. --unset use-wandb"),
    (["--set", "use-tis="], "--set 'use-tis=': --use-tis is a switch and takes no value: write --set use-tis "
                            "(or --unset use-tis to remove it)"),
    (["--set", "no-such-flag="], "--set no-such-flag: slime (megatron backend) has no --no-such-flag flag"),
])
def test_names_and_switches_are_checked_before_the_value(machine, extra, expected):
    line = refused(machine, train(machine, *extra), expected)
    assert "abbreviates" not in line and "empty value" not in line


def test_a_megatron_flag_on_fsdp_is_named_as_such(machine):
    line = refused(machine, train(machine, "--set", "tensor-model-parallel-size=2", recipe="fsdp"),
                   "slime (fsdp backend) has no --tensor-model-parallel-size flag: it is a Megatron-backend flag")
    assert "sglang" not in line


@pytest.mark.parametrize("argv, hint", [
    (["--lr=1e-6"], "(--lr is a slime flag: slime flags go after `--`, or use --set lr=1e-6)"),
    (["--num-rollout", "3"], "(--num-rollout is a slime flag: slime flags go after `--`, or use --set "
                             "num-rollout=VALUE)"),
    (["--use-wandb"], "or use --set use-wandb)"),
])
def test_a_slime_flag_given_as_a_runner_option(argv, hint):
    for cmd in (["train", "--recipe", "fsdp", "--dry-run"], ["plan", "--recipe", "fsdp"]):
        r = run_cli(*cmd, *argv)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        line = r.stderr.strip().splitlines()[-1]
        assert line.endswith(hint) and "--help" not in line, line


# ---- parallel sizes, layer patterns, JSON shapes: refused before the planner or Ray

@pytest.mark.parametrize("flag", ["expert-model-parallel-size", "expert-tensor-parallel-size",
                                  "tensor-model-parallel-size", "rollout-num-gpus-per-engine"])
def test_a_parallel_size_of_0_is_one_line_in_train_and_plan(machine, flag):
    argv, errors = _dry(machine, "--set", f"{flag}=0")
    assert f"--{flag} 0: a parallel size must be >= 1 (e.g. --set {flag}=1)" in errors, errors
    assert not any(e.startswith("memory plan") for e in errors), errors  # no estimate on a broken topology
    plan = ["plan", "--recipe", "megatron-8gpu", "--gpu", "h200", "--set", f"{flag}=0"]
    r = run_cli(*plan, env=machine["env"])
    assert r.returncode == 2
    assert refused(None, r, code=None) == f"error: --{flag} 0: a parallel size must be >= 1 (e.g. --set {flag}=1)"
    assert "GiB" not in r.stdout  # the estimate is skipped
    r = run_cli(*plan, "--dry-run", env=machine["env"])
    assert r.returncode == 0 and "a parallel size must be >= 1" in refused(None, r, code=None)


def test_plan_checks_the_topology_before_estimating(machine):
    r = run_cli("plan", "--recipe", "megatron-8gpu", "--gpu", "h200", "--set", "pipeline-model-parallel-size=5",
                env=machine["env"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error: 48 layers are not divisible by --pipeline-model-parallel-size 5" in r.stderr
    assert "GiB" not in r.stdout


@pytest.mark.parametrize("value, fragment", [
    ("[1,,1]", "--moe-layer-freq '[1,,1]': not a valid Python list expression"),
    ("0", "--moe-layer-freq 0 must be an integer >= 1"),
    ("[1]*47", "--moe-layer-freq lists 47 layers but --num-layers is 48 (Megatron asserts the lengths match)"),
    ("[[1]]*48", "must evaluate to a list of integers"),
    ("[1]*9**9**9", "not a layer pattern"),  # Megatron's eval would not finish; refused at once
])
def test_layer_patterns_are_evaluated_as_megatron_does(machine, value, fragment):
    argv, errors = _dry(machine, "--set", f"moe-layer-freq={value}")
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize("value", ["([1]*3+[0])*12", "[1]*48", "2"])
def test_layer_patterns_megatron_accepts(machine, value):
    argv, errors = _dry(machine, "--set", f"moe-layer-freq={value}")
    assert not [e for e in errors if "moe-layer-freq" in e], errors
    assert argv[argv.index("--moe-layer-freq") + 1] == value


@pytest.mark.parametrize("value", ['["A"]', '{"A": 1}', '"A=1"'])
def test_train_env_vars_must_be_an_object_of_strings(machine, value):
    line = refused(machine, train(machine, "--set", f"train-env-vars={value}"),
                   "--train-env-vars: must be a JSON object of strings")
    assert "e.g. --set 'train-env-vars={" in line


def test_hidden_size_and_heads_are_checked_only_without_kv_channels(machine):
    # Megatron asserts hidden_size % num_attention_heads == 0 only when kv_channels is None;
    # the recipes pass --kv-channels 256.
    _, errors = _dry(machine, "--set", "num-attention-heads=3")
    assert not [e for e in errors if "--hidden-size" in e], errors
    _, errors = _dry(machine, "--set", "num-attention-heads=3", "--unset", "kv-channels")
    assert "--hidden-size 2048 is not divisible by --num-attention-heads 3 (Megatron asserts it)" in errors


# One table of odd inputs: each is listed by a dry-run as an `error:` line, exit 0, no traceback.
ODD_INPUTS = [
    ["--low-memory", "--unset", "accumulate-allreduce-grads-in-fp32", "--set", "lr=x"],
    ["--unset", "lr", "--unset", "lr", "--set", "lr=x"],
    ["--set", "sglang-expert-parallel-size=2", "--unset", "sglang-ep-size"],
    ["--set", "expert-model-parallel-size=0"],
    ["--set", "expert-tensor-parallel-size=0"],
    ["--set", "tensor-model-parallel-size=0"],
    ["--set", "pipeline-model-parallel-size=0"],
    ["--set", "context-parallel-size=0"],
    ["--set", "rollout-num-gpus-per-engine=0"],
    ["--set", "actor-num-gpus-per-node=0"],
    ["--set", "actor-num-nodes=-1"],
    ["--set", "sglang-ep-size=0"],
    ["--set", "moe-layer-freq=[1,,1]"],
    ["--set", "moe-layer-freq=0"],
    ["--set", "moe-layer-freq=[1]*47"],
    ["--set", "moe-layer-freq=(1,0)"],
    ["--set", "no-rope-freq=5"],
    ["--set", "train-env-vars=[\"A\"]"],
    ["--set", "train-env-vars={\"A\":1}"],
    ["--set", "train-env-vars=null"],
    ["--set", "num-attention-heads=3", "--unset", "kv-channels"],
    ["--unset", ""],
    ["--unset", " "],
    ["--set", "use-tis="],
    ["--set", "k="],
    ["--set", "="],
    ["--set", "lr="],
    ["--", "--lr"],
    ["--", "3"],
    ["--set", "sglang-cuda-graph-bs=1 'x"],
]


@pytest.mark.parametrize("extra", ODD_INPUTS, ids=lambda e: " ".join(e))
def test_odd_inputs_are_listed_by_a_dry_run(machine, extra):
    r = run_cli("train", "--recipe", "megatron-8gpu", *machine["args"], "--dry-run", *extra, env=machine["env"])
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert any(line.startswith("error: ") for line in r.stdout.splitlines()), r.stdout[-2000:]


# ---- one table of value rules, every recipe

BAD_VALUES = {  # flag: (a value argparse takes and slime would run with, the rule's words)
    "micro-batch-size": ("0", "must be >= 1"), "global-batch-size": ("-4", "must be >= 1"),
    "n-samples-per-prompt": ("0", "must be >= 1"), "num-rollout": ("0", "must be >= 1"),
    "save-interval": ("0", "must be >= 1"), "eval-interval": ("-1", "must be >= 1"),
    "rollout-max-response-len": ("0", "must be >= 1"), "max-tokens-per-gpu": ("0", "must be >= 1"),
    "lr": ("-1", "must be > 0"), "min-lr": ("-1e-7", "must be >= 0"), "weight-decay": ("-0.1", "must be >= 0"),
    "rollout-temperature": ("-0.5", "must be >= 0"), "rollout-top-p": ("0", "must be in (0, 1]"),
    "sglang-mem-fraction-static": ("1.5", "must be in (0, 1)"),
}


@pytest.mark.parametrize("recipe", sorted(__import__("runner.recipes", fromlist=["RECIPES"]).RECIPES))
def test_value_rules_hold_on_every_recipe(machine, recipe):
    from runner.slime_args.rules import VALUE_RULES

    assert set(BAD_VALUES) <= {r.flag for r in VALUE_RULES}
    sets = [a for flag, (value, _) in BAD_VALUES.items() for a in ("--set", f"{flag}={value}")]
    hostfile = machine["tmp"] / "hosts"
    hostfile.write_text("10.0.0.2\n10.0.0.3\n10.0.0.4\n")
    multinode = ["--hostfile", str(hostfile), "--master-addr", "10.0.0.1"] if "multinode" in recipe else []
    _, errors = _dry(machine, *sets, *multinode, recipe=recipe)
    for flag, (value, words) in BAD_VALUES.items():
        line = f"--{flag} {float(value):g} {words}"
        assert [e for e in errors if e.startswith(line)], (line, errors)
    # The same on good values: none of these lines.
    _, clean = _dry(machine, "--set", "num-rollout=1", "--set", "lr=1e-5", *multinode, recipe=recipe)
    assert not [e for e in clean if " must be " in e], clean
    # A real start is refused with one line: micro-batch-size=0 started an FSDP run before. (Multinode
    # would also need MASTER_ADDR to be this machine's non-loopback address: its dry-run above suffices.)
    if not multinode:
        refused(machine, train(machine, "--set", "micro-batch-size=0", recipe=recipe),
                "--micro-batch-size 0 must be >= 1")


# ---- Ray's own arguments: one line, exit 2, nothing created

@pytest.mark.parametrize("given, words", [
    (("--ray-port", "70000"), "argument --ray-port: 70000 is not a TCP port (1-65535)"),
    (("--dashboard-port", "-1"), "argument --dashboard-port: -1 is not a TCP port (1-65535)"),
    (("--ready-timeout", "-5"), "argument --ready-timeout: -5 must be a number of seconds > 0"),
    (("--ready-timeout", "0"), "argument --ready-timeout: 0 must be a number of seconds > 0"),
])
def test_ray_arguments_out_of_range_are_usage_errors(machine, given, words):
    for dry in (False, True):  # usage errors: exit 2 even for a dry-run, no traceback
        r = train(machine, *given, dry=dry)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1].endswith(words), r.stderr
    assert not machine["temp"].exists() and not (machine["base"] / "runs").exists()


@pytest.mark.parametrize("given, words", [
    (("--ray-port", "8300", "--dashboard-port", "8300"), "--ray-port and --dashboard-port are both 8300"),
    (("--ray-port", "10001"), "--ray-port 10001 is the port of Ray's client server"),
    (("--dashboard-port", "52365"), "--dashboard-port 52365 is the port of Ray's dashboard agent"),
    (("--dashboard-port", "15000"), "--dashboard-port 15000 is in Ray's worker port range (10002-19999)"),
])
def test_ports_ray_cannot_use_are_refused_before_anything_starts(machine, given, words):
    refused(machine, train(machine, *given), words)
    assert not (machine["base"] / "runs").exists()
    _, errors = _dry(machine, *given)
    assert [e for e in errors if words in e], errors


def _ray_socket_names() -> list[str]:
    """The sockets Ray makes in the head's sockets dir, from Ray's own code: plasma_store and raylet
    (ray/_private/node.py), and dash_<module> for every dashboard subprocess module Ray itself finds."""
    utils = pytest.importorskip("ray.dashboard.utils", reason="needs ray[default]")
    from ray.dashboard.subprocesses.module import SubprocessModule

    return ["plasma_store", "raylet", *("dash_" + m.__name__ for m in utils.get_all_modules(SubprocessModule))]


def _socket_limit() -> int:
    """The private directory's longest length: Ray's longest socket path on the head,
    <dir>/head/session_<%Y-%m-%d_%H-%M-%S_%f>_<pid>/sockets/<name>, must stay within 107 bytes
    (ray/_private/utils.py validate_socket_filepath); pids have as many digits as pid_max - 1."""
    digits = len(str(int(open("/proc/sys/kernel/pid_max").read()) - 1))
    name = max(_ray_socket_names(), key=len)
    return 107 - len("/head/session_") - len("2026-12-05_04-32-46_467549") - 1 - digits - len("/sockets/") - len(name)


def test_ray_temp_dir_too_long_for_rays_socket_paths_is_refused(machine):
    limit = _socket_limit()
    at_limit = "/tmp/" + "x" * (limit - len("/tmp/"))
    assert len(at_limit) == limit
    _, errors = _dry(machine, "--ray-temp-dir", at_limit)
    assert not [e for e in errors if "--ray-temp-dir" in e], errors
    line = refused(machine, train(machine, "--ray-temp-dir", at_limit + "y"), f"is {limit + 1} bytes")
    assert f"use one of at most {limit} bytes" in line
    assert not os.path.exists(at_limit + "y")
    # Multinode: each worker's Ray temp dir (worker-N/) is longer than the head's (head/), but its sockets
    # are only plasma_store and raylet: the head's dashboard sockets still decide.
    hostfile = machine["tmp"] / "hosts"
    hostfile.write_text("10.0.0.2\n10.0.0.3\n10.0.0.4\n")
    multinode = ("--hostfile", str(hostfile), "--master-addr", "10.0.0.1")
    _, errors = _dry(machine, "--ray-temp-dir", at_limit, *multinode, recipe="megatron-multinode")
    assert not [e for e in errors if "--ray-temp-dir" in e], errors
    _, errors = _dry(machine, "--ray-temp-dir", at_limit + "y", *multinode, recipe="megatron-multinode")
    (line,) = [e for e in errors if "--ray-temp-dir" in e]
    assert f"{at_limit}y/head/session_<time>_<pid>/sockets/dash_" in line and f"at most {limit} bytes" in line


def test_the_socket_path_limit_is_rays_own():
    """The runner's limit, against Ray's own check of the longest socket path it would make there."""
    import datetime

    from ray.dashboard.subprocesses.utils import get_socket_path

    from runner.launch.cluster.ray_args import dashboard_modules, max_private_dir_len, pid_digits
    from runner.launch.cluster.spec import ClusterSpec

    digits = pid_digits()
    spec = ClusterSpec(ray="ray", master_addr="127.0.0.1", gcs_port=6379, dashboard_host="127.0.0.1",
                       dashboard_port=8265, gpus_per_node=0, nodes=1, temp_dir="/tmp/x", token_auth=True)
    limit = max_private_dir_len(spec, digits, dashboard_modules())
    assert limit == _socket_limit()
    longest = max((n for n in _ray_socket_names() if n.startswith("dash_")), key=len)
    session = f"session_{datetime.datetime.today().strftime('%Y-%m-%d_%H-%M-%S_%f')}_{'9' * digits}"
    for length, fits in ((limit, True), (limit + 1, False)):
        sockets = f"{'/' + 'x' * (length - 1)}/head/{session}/sockets"
        if fits:  # Ray's own function makes and checks the path
            get_socket_path(sockets, longest.removeprefix("dash_"))
        else:
            with pytest.raises(OSError, match="AF_UNIX path length"):
                get_socket_path(sockets, longest.removeprefix("dash_"))


def test_a_second_run_is_refused_with_the_lock_line_only(machine, tmp_path):
    """While a run holds the machine (the lock, and its Ray on the ports), a second train says that, and
    not that the ports are in use with a --ray-port hint that could not help."""
    import socket
    import subprocess
    import sys

    from tests.conftest import REPO

    lock = str(tmp_path / "lock")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time\nfrom runner.runs.machine_lock import acquire\n"
         "acquire({'SLIME_RUNNER_LOCK': sys.argv[1]}, 'run-x', '/runs/run-x', os.getpid())\n"
         "print('held', flush=True)\ntime.sleep(600)", lock],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    ports = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]  # what the active run's Ray holds
    try:
        assert holder.stdout.readline().strip() == "held"
        given = ("--ray-port", str(ports[0].getsockname()[1]), "--dashboard-port", str(ports[1].getsockname()[1]))
        line = refused(machine, train(machine, *given, env={"SLIME_RUNNER_LOCK": lock}),
                       "run run-x is still active on this machine")
        assert "--ray-port" not in line
        _, errors = _dry(machine, *given, env={"SLIME_RUNNER_LOCK": lock})
        assert [e for e in errors if "still active" in e] and not [e for e in errors if "in use" in e], errors
    finally:
        holder.kill()
        holder.wait()
        for s in ports:
            s.close()
    assert not (machine["base"] / "runs").exists()


# ---- IPv6: refused everywhere with one line (the pinned Ray cannot start a node on one)

@pytest.mark.parametrize("given, env, named", [
    ((), {"MASTER_ADDR": "::1"}, "MASTER_ADDR ::1 (from $MASTER_ADDR)"),
    (("--master-addr", "[fd00::2]"), {}, "MASTER_ADDR [fd00::2] (from --master-addr)"),
    (("--master-addr", "fe80::1%eth0"), {}, "MASTER_ADDR fe80::1%eth0 (from --master-addr)"),
    (("--dashboard-host", "::1"), {}, "--dashboard-host ::1"),
])
def test_ipv6_addresses_are_refused_with_one_line(machine, given, env, named):
    line = refused(machine, train(machine, *given, env=env), f"{named} is an IPv6 address")
    assert "the pinned Ray (2.53) cannot start a node on an IPv6 address" in line and "IPv4" in line
    assert "Address family" not in line
    _, errors = _dry(machine, *given, env=env)
    assert len([e for e in errors if "IPv6" in e]) == 1, errors


@pytest.mark.parametrize("entry", ["fd00::3", "[fd00::3]", "root@fd00::3", "[fd00::3] slots=8"])
def test_ipv6_hostfile_entries_are_refused_bare_or_bracketed(machine, entry):
    hostfile = machine["tmp"] / "hosts"
    hostfile.write_text(f"10.0.0.2\n{entry}\n10.0.0.4\n")
    _, errors = _dry(machine, "--hostfile", str(hostfile), "--master-addr", "10.0.0.1", recipe="megatron-multinode")
    (line,) = [e for e in errors if "hostfile" in e]
    assert f"line 2: {entry!r}: an IPv6 address: the pinned Ray (2.53)" in line, line


def test_a_name_that_resolves_to_ipv6_only_is_refused(monkeypatch):
    """No name resolves to IPv6 only on this machine: the resolver stands in (the check is the runner's)."""
    import socket

    from runner.checks.inputs import ipv6_problem

    def resolve(host, port, family=0, *rest):  # noqa: ANN001, ANN202
        if host == "v6only.example" and family == socket.AF_INET:
            raise socket.gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00::9", 0, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    line = ipv6_problem("v6only.example", "MASTER_ADDR", "$MASTER_ADDR")
    assert line.startswith("MASTER_ADDR v6only.example (from $MASTER_ADDR) resolves to IPv6 addresses only")
    assert ipv6_problem("10.0.0.1", "MASTER_ADDR") is None
