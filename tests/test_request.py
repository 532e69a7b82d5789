"""The one validation pipeline (runner.checks.request): every kind of problem listed by kind, a resumed
run's recorded layers checked again, and along `train` the flags' training shape derived once, the
memory planner taking it as it is."""

from __future__ import annotations

import pytest

from runner import cli
from runner.checks.request import OverrideLayer, check_request
from runner.commands.train import gather
from runner.planner import plan_for
from runner.planner.topology import CheckedShape, check_shape
from runner.recipes import RECIPES
from runner.recipes.base import TrainingShape
from runner.recipes.qwen3_next import QWEN3_NEXT_80B
from runner.slime_args.render import train_flags

MEGATRON = RECIPES["megatron-8gpu"]


def test_every_kind_of_problem_is_listed_by_kind():
    request = check_request(MEGATRON, "/models", OverrideLayer(
        set=("lrr=1", "global-batch-size=48", "lr=0", "tensor-model-parallel-size=3")))
    assert [p for p in request.override_problems if p.startswith("--set lrr:")]  # slime's flag schema
    rules = " | ".join(request.rule_problems)
    assert "is not a multiple of --global-batch-size 48" in rules  # a cross-flag rule slime asserts
    assert "--lr 0 must be > 0" in rules  # VALUE_RULES
    assert any("--tensor-model-parallel-size 3 does not divide" in p for p in request.topology)
    # The flags carry what passed, every layer applied: rendered once, as train.py gets them.
    assert request.flags.value("global-batch-size") == "48" and not request.flags.has("lrr")
    assert request.checked_shape.shape is not None and request.checked_shape.shape.parallel.tp == 3
    assert request.fatal is None and not request.replay_problems


def test_a_resumed_runs_recorded_layers_are_checked_again_and_named():
    request = check_request(MEGATRON, "/models", OverrideLayer(set=("lr=2e-6",)),
                            replay=[OverrideLayer(set=("num-rollout=7", "lrr=1"))], replayed_run="run-a")
    assert request.replay_problems == [p for p in request.replay_problems
                                       if p.startswith("--resume run-a: a recorded override: --set lrr:")]
    assert len(request.replay_problems) == 1 and not request.override_problems
    # Recorded layers first, then this invocation's: both reach the flags.
    assert request.flags.value("num-rollout") == "7" and request.flags.value("lr") == "2e-6"


def test_the_planner_takes_the_requests_shape_as_it_is():
    flags = train_flags(MEGATRON, "/models")
    own = check_shape(flags, "megatron", QWEN3_NEXT_80B, nodes=1, gpus_per_node=8)
    marked = CheckedShape(own.shape, ("given by the request",))
    report = plan_for(MEGATRON, flags, 140.0, checked=marked)
    assert report.topology_problems == ("given by the request",)  # not checked again
    assert plan_for(MEGATRON, flags, 140.0).topology_problems == own.problems == ()


@pytest.mark.machine(gpu="h200", force=True)
def test_train_derives_the_training_shape_once(machine, monkeypatch):
    calls = []
    derive = TrainingShape.from_flags.__func__

    def counted(cls, *args, **kwargs):  # the real derivation, counted
        calls.append(kwargs.get("backend"))
        return derive(cls, *args, **kwargs)

    monkeypatch.setattr(TrainingShape, "from_flags", classmethod(counted))
    args = cli.build_parser("train").parse_args(["train", "--recipe", "megatron-8gpu", *machine["args"], "--dry-run"])
    environ = {**machine["env"], "MASTER_ADDR": "127.0.0.1"}
    tp, plan = gather(args, environ)
    assert tp is not None, [p.message for p in plan.problems]
    assert not [p.message for p in plan.errors if "memory plan" in p.message]  # the planner ran and fits
    assert calls == ["megatron"]  # topology check, memory plan and TP x CP warning share one shape
