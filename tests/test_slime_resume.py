"""A resumed run continues at the checkpoint's rollout: slime's REAL code at the pin.

At slime 3d7599aa, slime_validate_args resets start_rollout_id to 0 in every
case, so create_training_models never takes the checkpoint's rollout id and a
resume trains from rollout 0 again, overwriting its checkpoints.
patches/slime/ carries the fix (upstream c1fd2bac1 + b91f59e2); the flake and
tools/without-nix.sh apply it; doctor and train's preflight judge SLIME_DIR by
running its own slime_validate_args (runner/checks/slime_resume.py).

Every test here runs slime's own code from the pinned tarball
(SLIME_UPSTREAM_SOURCES); the parse_args/create_training_models ones also need
the stack's Python (SLIME_STACK_PYTHON, tools/stack-env.sh). Each is run on
the unpatched tree too, where it must see the bug.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from runner.checks import slime_resume
from runner.recipes import RECIPES
from runner.recipes.qwen3_next import QWEN3_NEXT_80B
from runner.slime_args.render import train_flags
from tests.machine import make_machine, train
from tests.conftest import run_cli
from tests.slime_parser import megatron_tree, run_slime, slime_tree

ARGUMENTS = Path("slime/utils/arguments.py")

# The pinned block's two `args.start_rollout_id = 0` (bridge and raw branches).
PINNED_BLOCK = re.compile(r"    # TODO: During loading, we need to set the start_rollout_id here\.\n.*?\n\n", re.S)


def restructured(slime: Path, keeps: bool) -> Path:
    """The pinned slime with its start-id block rewritten as one `load_is_megatron`
    test, the shape upstream gave it later (written here, not copied): a newer
    slime must be judged by what it does, not by our patch's text."""
    text = (slime / ARGUMENTS).read_text()
    guard = "        if args.start_rollout_id is None:\n            args.start_rollout_id = 0\n" if keeps else ""
    block = (
        "    load_is_megatron = args.load is not None and os.path.exists(\n"
        "        os.path.join(args.load, \"latest_checkpointed_iteration.txt\"))\n"
        "    if not load_is_megatron:\n"
        "        args.no_load_optim = True\n"
        "        args.no_load_rng = True\n"
        "        args.finetune = True\n"
        "        args.load = args.ref_load\n"
        "        if args.ref_ckpt_step is not None:\n"
        "            args.ckpt_step = args.ref_ckpt_step\n"
        + guard
        + ("" if keeps else "    args.start_rollout_id = 0\n")
        + "\n"
    )
    new, n = PINNED_BLOCK.subn(lambda _: block, text)
    assert n == 1, "the pinned start-id block moved: update this test's anchor"
    (slime / ARGUMENTS).write_text(new)
    return slime


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slime-trees")
    patched, unpatched = slime_tree(tmp, patched=True), slime_tree(tmp, patched=False)
    fixed = restructured(shutil.copytree(unpatched, tmp / "restructured-fixed"), keeps=True)
    broken = restructured(shutil.copytree(unpatched, tmp / "restructured-broken"), keeps=False)
    return {"patched": patched, "unpatched": unpatched, "restructured-fixed": fixed, "restructured-broken": broken}


@pytest.mark.parametrize(("tree", "state"), [
    ("unpatched", slime_resume.RESETS),
    ("patched", slime_resume.KEEPS),
    ("restructured-fixed", slime_resume.KEEPS),
    ("restructured-broken", slime_resume.RESETS),
])
def test_the_check_runs_slimes_own_validate_args(trees, tree, state):
    verdict = slime_resume.check_resume(trees[tree])
    assert verdict.state == state, verdict.detail


def test_the_check_cannot_judge_a_slime_whose_validate_args_fails_early(trees, tmp_path):
    # A control, not a verdict: a slime that raises before its start-id logic is 'unknown', never 'keeps'.
    slime = shutil.copytree(trees["unpatched"], tmp_path / "slime")
    path = slime / ARGUMENTS
    path.write_text(path.read_text().replace("def slime_validate_args(args):\n",
                                             "def slime_validate_args(args):\n    raise ValueError('early')\n", 1))
    verdict = slime_resume.check_resume(slime)
    assert verdict.state == slime_resume.UNKNOWN and "ValueError: early" in verdict.detail


def test_doctor_and_train_refuse_a_slime_that_restarts_resumed_runs(trees, tmp_path):
    machine = make_machine(tmp_path)
    slime_arg = machine["args"].index("--slime-dir") + 1
    for tree, refused in (("unpatched", True), ("patched", False)):
        machine["args"][slime_arg] = str(trees[tree])
        # The FSDP recipe: the Megatron patch check (this fixture's Megatron-LM is an excerpt) is not involved.
        r = train(machine, recipe="fsdp")
        errors = [line for line in r.stderr.splitlines() if "restarts a resumed run at rollout 0" in line]
        if refused:
            assert r.returncode == 2 and len(errors) == 1, r.stderr
            assert "patches/slime/resume-start-rollout-id-from-checkpoint.patch" in errors[0]
            assert not machine["temp"].exists(), "nothing may be started"
        else:
            assert not errors, r.stderr
        doctor = run_cli("doctor", "--recipe", "fsdp", "--no-imports", "--json", *machine["args"][:4],
                         "--slime-dir", str(trees[tree]), env=machine["env"])
        row = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "slime resume")
        assert row["status"] == ("fail" if refused else "ok"), row


def _resume_argv(recipe: str, base: Path, load: Path, hf: Path) -> list[str]:
    argv = train_flags(RECIPES[recipe], str(base)).argv()
    for flag, value in (("--load", load), ("--save", load), ("--hf-checkpoint", hf)):
        argv[argv.index(flag) + 1] = str(value)
    return argv


@pytest.fixture
def resume_inputs(tmp_path):
    """A --load folder that holds iteration 19, and an HF config of the 80B model (Megatron's hf_validate_args)."""
    load = tmp_path / "checkpoints"
    (load / "iter_0000019").mkdir(parents=True)
    (load / "latest_checkpointed_iteration.txt").write_text("19")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "qwen3_next", **dataclasses.asdict(QWEN3_NEXT_80B)}))
    return load, hf


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["megatron-8gpu", "fsdp"])
def test_slimes_parse_args_leaves_the_start_to_the_checkpoint(trees, resume_inputs, tmp_path, recipe):
    load, hf = resume_inputs
    argv = _resume_argv(recipe, tmp_path / "base", load, hf)
    wanted = ["start_rollout_id", "load", "train_backend"]
    results = {}
    for tree in ("patched", "unpatched"):
        megatron = megatron_tree(tmp_path / tree, trees[tree]) if recipe.startswith("megatron") else None
        out = run_slime({"resume": {"argv": argv}}, wanted, tmp_path / tree, slime=trees[tree], megatron=megatron)
        results[tree] = out["resume"].get("args") or pytest.fail(f"{tree}: {out['resume']}")
    assert results["patched"]["load"] == str(load)
    assert results["patched"]["start_rollout_id"] is None  # create_training_models takes the checkpoint's
    assert results["unpatched"]["start_rollout_id"] == 0  # the bug at the pin: every resume starts at 0


@pytest.mark.slow
def test_create_training_models_continues_after_the_checkpoint(trees, resume_inputs, tmp_path):
    """slime's parse_args, then slime's create_training_models, whose actors report 20 (the checkpoint's
    iteration 19 + 1, as MegatronTrainRayActor.init returns it): the run starts at rollout 20 and the rollout
    manager loads the data position saved with iteration 19."""
    load, hf = resume_inputs
    argv = _resume_argv("fsdp", tmp_path / "base", load, hf)  # rollout_global_dataset: slime's default, on
    case = {"argv": argv, "then": "create_training_models", "actor_reports": [20]}
    got = {tree: run_slime({"resume": case}, ["start_rollout_id"], tmp_path / tree, slime=trees[tree])["resume"]
           for tree in ("patched", "unpatched")}
    assert got["patched"]["create_training_models"] == {"start_rollout_id": 20, "rollout_manager_loads": [19]}
    assert got["unpatched"]["create_training_models"] == {"start_rollout_id": 0, "rollout_manager_loads": [-1]}
