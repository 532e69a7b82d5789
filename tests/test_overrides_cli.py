"""Overrides (--set, --unset, raw flags after --) are checked against slime's own flags
before anything starts: through the real CLI, one line each, exit 2, nothing started;
a dry-run lists them under problems and exits 0."""

from __future__ import annotations

import json

import pytest

from runner.recipes import RECIPES
from runner.slime_args.overrides import check_overrides
from runner.slime_args.render import recipe_flags, train_flags
from runner.slime_args.rules import RULES, cross_flag_problems
from tests.conftest import run_cli
from tests.machine import make_machine, refused, train


@pytest.fixture
def machine(tmp_path):
    return make_machine(tmp_path)


def test_the_recipes_pass_untouched(machine):
    for recipe in ("megatron-8gpu", "fsdp"):
        plan = json.loads(train(machine, recipe=recipe, dry=True).stdout)
        assert not [p for p in plan["problems"] if p["severity"] == "error"], plan["problems"]


@pytest.mark.parametrize("extra, fragment", [
    (["--set", "lrr=2e-6"], "--set lrr: slime (megatron backend) has no --lrr flag (did you mean --lr?)"),
    (["--set", "lr=abc"], "--lr 'abc': not a number"),
    (["--set", "lr"], "--lr takes one value (float)"),
    (["--set", "use-wandb=true"], "--use-wandb is a switch and takes no value"),
    (["--", "--no-such-flag", "1"], "--no-such-flag (after '--'): slime (megatron backend) has no --no-such-flag"),
    (["--set", "global-batch-size=48"],
     "--rollout-batch-size 16 x --n-samples-per-prompt 4 = 64 is not a multiple of --global-batch-size 48"),
    (["--set", "pipeline-model-parallel-size=abc"], "--pipeline-model-parallel-size 'abc': not an integer"),
    (["--set", "sglang-mem-fraction-static=high"], "--sglang-mem-fraction-static 'high': not a number"),
    (["--set", "max-tokens-per-gpu=2k"], "--max-tokens-per-gpu '2k': not an integer"),
    (["--", "--max-tokens-per-gpu", "2k"], "--max-tokens-per-gpu '2k': not an integer (after '--')"),
    (["--set", "train-env-vars={A:1}"], "--train-env-vars '{A:1}': not valid JSON"),
    (["--set", "attention-backend=flashh"], "not one of: auto, flash, fused, local, unfused (did you mean flash?)"),
    (["--unset", "balance-dat"], "--unset balance-dat: slime (megatron backend) has no --balance-dat flag "
                                 "(did you mean --balance-data?"),
    (["--set", "train-backend=fsdp"], "--train-backend fsdp: this recipe runs the megatron backend"),
    (["--", "--dry-run"], "--dry-run is the runner's own option, but it comes after '--'"),
    (["--set", "sglang-ep-size=2", "--", "--sglang-expert-parallel-size", "4"],
     "--sglang-ep-size and --sglang-expert-parallel-size set the same slime option"),
])
def test_bad_override_is_one_line_and_starts_nothing(machine, extra, fragment):
    refused(machine, train(machine, *extra), fragment)


def test_fsdp_abbreviation_is_refused_though_slime_would_expand_it(machine):
    # slime's FSDP parser keeps allow_abbrev=True: it would take --sglang-mem-fraction-static,
    # while the runner's planner read the recipe's value.
    line = refused(machine, train(machine, "--", "--sglang-mem-fraction", "0.7", recipe="fsdp"),
                   "slime (fsdp backend) has no --sglang-mem-fraction flag")
    assert "did you mean --sglang-mem-fraction-static? slime takes full names only" in line


def test_fsdp_rejects_megatron_only_flags(machine):
    refused(machine, train(machine, "--set", "tensor-model-parallel-size=2", recipe="fsdp"),
            "slime (fsdp backend) has no --tensor-model-parallel-size flag")


def test_dry_run_lists_bad_overrides_under_problems_and_exits_0(machine):
    r = train(machine, "--set", "pipeline-model-parallel-size=abc", "--set", "lrr=1", "--", "--lr", "x", dry=True)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    errors = [p["message"] for p in json.loads(r.stdout)["problems"] if p["severity"] == "error"]
    assert any("--pipeline-model-parallel-size 'abc': not an integer" in e for e in errors)
    assert any("no --lrr flag" in e for e in errors)
    assert any("--lr 'x': not a number (after '--')" in e for e in errors)
    assert not machine["temp"].exists()


def test_json_value_reaches_slime_intact(machine):
    plan = json.loads(train(machine, "--set", 'train-env-vars={"A": "1", "B": "x y"}', dry=True).stdout)
    entry = plan["processes"][-1]["argv"]
    assert json.loads(entry[entry.index("--train-env-vars") + 1]) == {"A": "1", "B": "x y"}


def test_several_values_are_split_like_shell_words(machine):
    plan = json.loads(train(machine, "--set", "sglang-cuda-graph-bs=1 2 4", "--set", "lr=-1e-6", dry=True).stdout)
    entry = plan["processes"][-1]["argv"]
    i = entry.index("--sglang-cuda-graph-bs")
    assert entry[i + 1:i + 4] == ["1", "2", "4"]
    assert "--lr=-1e-6" in entry  # a separate "-1e-6" would be read by argparse as an option


def test_another_spelling_replaces_the_recipe_flag(machine):
    plan = json.loads(train(machine, "--set", "sglang-expert-parallel-size=2", recipe="megatron-8gpu-80gb",
                            dry=True).stdout)
    entry = plan["processes"][-1]["argv"]
    assert "--sglang-ep-size" not in entry  # the recipe's spelling of the same option is gone
    assert entry[entry.index("--sglang-expert-parallel-size") + 1] == "2"


def test_plan_checks_overrides_too(machine):
    r = run_cli("plan", "--recipe", "megatron-8gpu", "--gpu", "h200", "--set", "lr=abc", env=machine["env"])
    assert r.returncode == 2 and "error: --lr 'abc': not a number" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("plan", "--recipe", "megatron-8gpu", "--gpu", "h200", "--set", "pipeline-model-parallel-size=x",
                "--dry-run", env=machine["env"])
    assert r.returncode == 0 and "not an integer" in r.stderr and "Traceback" not in r.stderr


# ---- the rules themselves, fast, without the CLI

def _problems(recipe_name, *, set_texts=(), extra=(), unset=()):
    recipe = RECIPES[recipe_name]
    checked = check_overrides(recipe, recipe_flags(recipe, "/root"), set_texts=set_texts, extra_argv=extra,
                              unset=unset)
    flags = train_flags(recipe, "/root", checked.overrides)
    return checked.problems + cross_flag_problems(flags, recipe.backend)


@pytest.mark.parametrize("set_texts, fragment", [
    (("num-steps-per-rollout=3",), "--num-steps-per-rollout 3 = 21 (slime asserts it)"),
    (("num-steps-per-rollout=2", "global-batch-size=64"), "!= --rollout-batch-size 16 x --n-samples-per-prompt 4"),
    (("over-sampling-batch-size=8",), "--over-sampling-batch-size 8 must be >= --rollout-batch-size 16"),
    (("kl-coef=0.1", "kl-loss-coef=0.1"), "slime allows only one of them to be non-zero"),
    (("advantage-estimator=reinforce_plus_plus",), "needs --normalize-advantages"),
    (("use-rollout-logprobs", "use-tis"), "--use-rollout-logprobs and --use-tis cannot be used together"),
    (("use-dynamic-batch-size",), None),  # the recipe sets --max-tokens-per-gpu
    (("eval-prompt-data=aime /a.jsonl extra",), "--eval-prompt-data takes NAME PATH pairs, got 3 words"),
    (("rollout-max-context-len=100", "rollout-max-prompt-len=100"), "must be <= --rollout-max-context-len 100 - 1"),
    (("sglang-dp-size=2",), "needs --sglang-enable-dp-attention"),
    (("min-lr=1",), "--min-lr 1.0 is above --lr"),
    (("batch-size=4",), "--batch-size is no longer valid in Megatron"),
    (("checkpoint-activations",), "--checkpoint-activations makes Megatron print a notice and exit"),
    (("num-layers-per-virtual-pipeline-stage=2", "num-virtual-stages-per-pipeline-rank=2"), "at most one of them"),
    (("overlap-param-gather",), "--overlap-param-gather needs --overlap-grad-reduce"),
    (("tp-comm-overlap",), "--tp-comm-overlap needs --sequence-parallel"),
    (("save-retain-interval=3",), "--save-retain-interval 3 must be a positive multiple of --save-interval 20"),
    (("enable-mtp-training",), "--enable-mtp-training needs --mtp-num-layers"),
    (("onnx-safe=False",), "any non-empty value, 'False' included, means True"),
])
def test_cross_flag_rules_megatron(set_texts, fragment):
    problems = _problems("megatron-8gpu", set_texts=set_texts)
    if fragment is None:
        assert not problems
    else:
        assert len(problems) == 1 and fragment in problems[0], problems


def test_rules_on_fsdp_and_unsets():
    derived = _problems("megatron-8gpu", set_texts=("num-steps-per-rollout=3",), unset=("global-batch-size",))
    assert derived == ["--rollout-batch-size 16 x --n-samples-per-prompt 4 = 64 is not a multiple of "
                       "--global-batch-size 21 (slime asserts it); use a divisor of 64"]
    assert any("--save-interval needs --save DIR" in p for p in _problems("fsdp", unset=("save",)))
    assert any("slime needs --num-rollout or --num-epoch" in p for p in _problems("fsdp", unset=("num-rollout",)))
    assert _problems("fsdp", set_texts=("num-epoch=2",)) == []  # --num-rollout still given: slime ignores num_epoch
    assert any("does not pass --use-wandb" in p for p in _problems("fsdp", unset=("use-wandb",)))
    assert _problems("fsdp", extra=("--offload-train",)) == []
    assert any("--offload-train and --no-offload-train" in p
               for p in _problems("fsdp", extra=("--offload-train", "--no-offload-train")))


def test_every_rule_reads_only_options_its_backends_have():
    from runner.flags import FlagSet
    from runner.slime_args.rules import Values
    from runner.slime_args.schema import backend_flags

    for rule in RULES:
        for backend in rule.backends:
            rule.check(Values(FlagSet(), backend_flags(backend)), backend)  # KeyError for an unknown option


def test_every_problem_is_one_line():
    problems = _problems("megatron-8gpu", set_texts=("lr=abc", "x y=1", "=3", "lr=", "eval-prompt-data='a"),
                         extra=("stray", "--help"))
    assert len(problems) == 7, problems
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize("recipe", ["megatron-8gpu", "fsdp-h200"])
def test_append_options_keep_every_occurrence_as_argparse_does(machine, recipe):
    """slime's --router-prefill URL [PORT] and --router-decode URL are argparse action="append": every
    occurrence adds a group. Given through --set and after --, and on a resume's replay, all reach train.py
    in order, as argparse itself collects them from the rendered argv."""
    import argparse

    from runner.slime_args.schema import accumulating_flags, backend_flags

    assert accumulating_flags() == {"router-prefill", "router-decode"}
    given = ["--set", "router-prefill=http://p1:30000 8998", "--set", "router-prefill=http://p2:30000",
             "--", "--router-decode", "http://d1:30001", "--router-decode=http://d2:30001"]
    plan = json.loads(train(machine, *given, recipe=recipe, dry=True).stdout)
    assert not [p for p in plan["problems"] if "router" in p["message"]], plan["problems"]
    entry = plan["processes"][-1]["argv"]
    entry = entry[entry.index("--") + 1:][2:]  # python train.py FLAGS
    # Real argparse, with the two options as slime's schema records them (action, nargs).
    parser = argparse.ArgumentParser(allow_abbrev=False)
    schema = backend_flags(RECIPES[recipe].backend)
    for name in sorted(accumulating_flags()):
        option = schema.get(name)
        parser.add_argument(f"--{name}", action=option.action, nargs=option.nargs)
    parsed, _ = parser.parse_known_args(entry)
    assert parsed.router_prefill == [["http://p1:30000", "8998"], ["http://p2:30000"]]
    assert parsed.router_decode == [["http://d1:30001"], ["http://d2:30001"]]
    # An ordinary flag given twice still has one value, the last.
    twice = json.loads(train(machine, "--set", "lr=1e-5", "--", "--lr", "2e-5", recipe=recipe, dry=True).stdout)
    entry = twice["processes"][-1]["argv"]
    assert entry.count("--lr") == 1 and entry[entry.index("--lr") + 1] == "2e-5"
