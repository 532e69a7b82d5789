"""slime's flag schema (runner/slime_args/data/slime_flags.json): provenance, content, and
agreement with slime's real parser where the pinned sources and the stack are here.

The schema is extracted by tools/slime_flag_schema.py from slime 3d7599aa,
Megatron-LM 3714d81d + slime's patch and sglang 0.5.6.post1. The slow
tests rebuild slime's parsers with that code: the stack's Python
(SLIME_STACK_PYTHON, tools/stack-env.sh) and slime and Megatron-LM from the
pinned tarballs (SLIME_UPSTREAM_SOURCES), as the tool's `--sources` reads
them; CI has both, elsewhere they skip, saying why. `nix flake check`
regenerates the schema too (checks.slime-flags).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

from runner.flags import FlagSet
from runner.recipes import RECIPES
from runner.slime_args.overrides import check_overrides
from runner.slime_args.render import recipe_flags, train_flags
from runner.slime_args.schema import SCHEMA_FILE, backend_flags
from tests.conftest import REPO
from tests.slime_parser import stack_python

sys.path.insert(0, str(REPO / "tools"))
import slime_flag_schema as tool  # noqa: E402
import upstream_sources  # noqa: E402

PINS = json.loads((REPO / "nix" / "pins.json").read_text())


def test_provenance_is_the_pins():
    schema = json.loads(SCHEMA_FILE.read_text())
    prov = schema["provenance"]
    assert prov["slime"]["commit"] == PINS["sources"]["slime"]["rev"]
    assert prov["megatron_lm"]["commit"] == PINS["sources"]["megatron-lm"]["rev"]
    assert prov["megatron_lm"]["patches_from_slime"] == PINS["sources"]["megatron-lm"]["patches_from_slime"]
    assert prov["sglang"] == PINS["python_packages"]["sglang"]
    assert "tools/slime_flag_schema.py" in prov["how"]
    assert set(prov["unimported_gpu_only_modules"]) == {"transformer_engine",
                                                        "slime.backends.fsdp_utils (package __init__)"}
    # The file is exactly what the tool writes (one option per line), so a regeneration diffs cleanly.
    assert tool.dumps(schema) == SCHEMA_FILE.read_text()


def test_schema_knows_what_the_parsers_do():
    meg, fsdp = backend_flags("megatron"), backend_flags("fsdp")
    schema = json.loads(SCHEMA_FILE.read_text())["backends"]
    assert schema["megatron"]["allow_abbrev"] is False and schema["fsdp"]["allow_abbrev"] is True
    assert meg.get("lr").type == "float" and meg.get("lr").nargs is None
    assert meg.get("use-wandb").is_switch and fsdp.get("use-wandb").is_switch
    assert meg.get("train-env-vars").type == "json"
    assert meg.get("eval-prompt-data").nargs == "+"
    assert meg.get("attention-backend").type == "enum" and "flash" in meg.get("attention-backend").choices
    assert meg.get("moe-layer-freq").type == "layer_pattern"
    assert meg.get("tensor-model-parallel-size") is not None and fsdp.get("tensor-model-parallel-size") is None
    # One option, three spellings (sglang's ServerArgs aliases, prefixed by slime).
    assert meg.same_option("sglang-ep-size") == ["sglang-ep", "sglang-expert-parallel-size"]
    # Megatron-LM without slime's patch has no --use-gated-attention: the schema is the patched one.
    assert meg.get("use-gated-attention") is not None


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_flag_is_a_valid_slime_flag(name):
    recipe = RECIPES[name]
    schema = backend_flags(recipe.backend)
    for f in recipe_flags(recipe, "/root"):
        option = schema.get(f.name)
        assert option is not None, f.name
        assert option.check_values(f.name, f.values) is None


# Each case: (backend, raw flags after `--`, what slime's argparse does without the runner,
# and whether the runner refuses it). Where the two differ, the reason is stated.
CASES = [
    ("megatron", ["--lr", "2e-6"], True, False),
    ("megatron", ["--lrr", "2e-6"], False, True),
    ("megatron", ["--lr", "abc"], False, True),
    ("megatron", ["--lr"], False, True),
    ("megatron", ["--use-wandb", "true"], False, True),
    ("megatron", ["--no-such-flag", "1"], False, True),
    ("megatron", ["--max-tokens-per-gpu", "2k"], False, True),
    ("megatron", ["--pipeline-model-parallel-size", "abc"], False, True),
    ("megatron", ["--sglang-mem-fraction", "0.7"], False, True),
    # Megatron's enum converter raises KeyError here: a traceback from slime, not a usage error.
    ("megatron", ["--attention-backend", "flashh"], False, True),
    ("megatron", ["--attention-backend", "flash"], True, False),
    ("megatron", ["--moe-layer-freq", "([1]*3+[0])*12"], True, False),
    ("megatron", ["--moe-layer-freq", "x1"], False, True),
    ("megatron", ["--train-env-vars", '{"A": "1"}'], True, False),
    ("megatron", ["--train-env-vars", "{A:1}"], False, True),
    ("megatron", ["--sglang-cuda-graph-bs", "1", "2", "4"], True, False),
    ("megatron", ["--eval-prompt-data"], False, True),
    ("megatron", ["--empty-unused-memory-level", "3"], False, True),
    ("megatron", ["--sglang-piecewise-cuda-graph-tokens", "[1, 2]"], True, False),
    ("fsdp", ["--sglang-mem-fraction-static", "0.7"], True, False),
    ("fsdp", ["--tensor-model-parallel-size", "2"], False, True),
    ("fsdp", ["--lr", "x"], False, True),
    # FSDP's parser keeps allow_abbrev=True: slime silently takes the abbreviation;
    # the runner refuses it (its own planner would read another flag).
    ("fsdp", ["--sglang-mem-fraction", "0.7"], True, True),
    ("fsdp", ["--num-roll", "3"], True, True),
    # bool('False') is True: slime accepts it and turns the option on; the runner refuses it.
    ("megatron", ["--onnx-safe", "False"], True, True),
    # sglang's json_list_type takes any JSON; the option is a list of token counts, so the runner wants a list.
    ("megatron", ["--sglang-piecewise-cuda-graph-tokens", "3"], True, True),
    # Megatron's moe_freq_type evals the pattern: a SyntaxError, which argparse does not catch (a traceback).
    ("megatron", ["--moe-layer-freq", "[1,,1]"], False, True),
    # json.loads takes any JSON; slime spreads the value into the Ray actors' env dict (actor_group.py).
    ("megatron", ["--train-env-vars", '["A"]'], True, True),
    ("megatron", ["--train-env-vars", '{"A": 1}'], True, True),
    # argparse reads a separate "-1e-6" as an option; the runner renders --lr=-1e-6, which it accepts.
    ("megatron", ["--lr", "-1e-6"], False, False),
]


def _recipe_for(backend):
    return RECIPES["megatron-8gpu" if backend == "megatron" else "fsdp"]


def test_runner_verdicts_on_the_cases():
    """Fast, everywhere: the runner's side of CASES (the slow test below checks slime's side)."""
    for backend, extra, _, runner_refuses in CASES:
        recipe = _recipe_for(backend)
        checked = check_overrides(recipe, recipe_flags(recipe, "/root"), extra_argv=extra)
        assert bool(checked.problems) == runner_refuses, (backend, extra, checked.problems)
        assert all("\n" not in p for p in checked.problems)


@pytest.fixture(scope="module")
def pinned_sources():
    """slime and patched Megatron-LM as `slime_flag_schema.py --sources` prepares them."""
    python = stack_python()
    folder = upstream_sources.sources_dir()
    if folder is None:
        pytest.skip("no pinned upstream tarballs (set SLIME_UPSTREAM_SOURCES; .ci/run does)")
    with tempfile.TemporaryDirectory(prefix="slime-schema-test-") as tmp:
        try:
            slime, megatron = tool.prepare_from_archives(folder, Path(tmp))
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
        yield python, slime, megatron


@pytest.mark.slow
def test_schema_regenerates_from_the_pinned_sources(pinned_sources):
    python, slime, megatron = pinned_sources
    schema = tool.build_schema(python, slime, megatron)
    committed = json.loads(SCHEMA_FILE.read_text())
    for key in tool.COMPARED:
        assert schema[key] == committed[key], f"{key} differs: regenerate with {tool.HOW}"


@pytest.mark.slow
def test_runner_and_slime_parser_agree(pinned_sources):
    python, slime, megatron = pinned_sources
    cases, accepted = [], []
    for backend, extra, _, _ in CASES:
        recipe = _recipe_for(backend)
        argv = recipe_flags(recipe, "/root").argv()
        # What slime got before the runner checked: the recipe's argv plus the raw flags.
        cases.append({"backend": backend, "argv": argv + extra})
    for backend, extra, _, refused in CASES:
        if not refused:
            # What slime gets now: the runner's rendered argv (with its own spelling, e.g. --lr=-1e-6).
            recipe = _recipe_for(backend)
            checked = check_overrides(recipe, recipe_flags(recipe, "/root"), extra_argv=extra)
            flags = train_flags(recipe, "/root", checked.overrides)
            dest = backend_flags(backend).get(extra[0][2:]).dest
            cases.append({"backend": backend, "argv": flags.argv(), "dests": [dest]})
            accepted.append((backend, extra, dest))
    results = tool.run_in_child(python, slime, megatron, "parse_cases", cases)
    for (backend, extra, slime_accepts, _), result in zip(CASES, results):
        assert result["ok"] == slime_accepts, (backend, extra, result["error"])
    for (backend, extra, dest), result in zip(accepted, results[len(CASES):]):
        assert result["ok"], (backend, extra, result["error"])
        value = result["values"][dest]
        if extra[0] == "--lr":
            assert value == float(extra[1])
        if extra[0] == "--train-env-vars":
            assert value == {"A": "1"}  # valid JSON reached slime's json.loads


def test_final_argv_parses_back_to_the_same_flags():
    recipe = RECIPES["fsdp"]
    checked = check_overrides(recipe, recipe_flags(recipe, "/root"), set_texts=['train-env-vars={"A": "1"}'])
    flags = train_flags(recipe, "/root", checked.overrides)
    assert not checked.problems
    assert FlagSet.parse(flags.argv()).get("train-env-vars") == ('{"A": "1"}',)


# Cross-flag rules against slime's own validate functions, on both backends: slime's parse_args
# runs slime_validate_args, Megatron's validate_args (Megatron backend) and sglang's validate_args
# (tests/slime_parser.py runs it). RULE_CASES on both; MEGATRON_RULE_CASES on the Megatron backend.
RULE_CASES = {
    "ok": {},
    "batch": {"set": ["global-batch-size=5"]},
    "steps": {"set": ["num-steps-per-rollout=2"]},  # 4 x 3 // 2 = 6 != 12
    "steps-only": {"set": ["num-steps-per-rollout=2"], "unset": ["global-batch-size"]},
    "over-sampling": {"set": ["over-sampling-batch-size=2"]},
    # A KL term makes slime check --ref-load first (the FSDP recipes pass none): {ref} is an existing one.
    "kl": {"set": ["kl-coef=0.1", "kl-loss-coef=0.1", "ref-load={ref}"]},
    "kl-ok": {"set": ["kl-coef=0.1", "ref-load={ref}"]},
    "reinforce": {"set": ["advantage-estimator=reinforce_plus_plus"]},
    "reinforce-ok": {"set": ["advantage-estimator=reinforce_plus_plus", "normalize-advantages"]},
    "tis": {"set": ["use-rollout-logprobs", "use-tis"]},
    "mismatch": {"set": ["get-mismatch-metrics"]},
    "dynamic-batch": {"set": ["use-dynamic-batch-size"], "unset": ["max-tokens-per-gpu"]},
    "debug": {"set": ["debug-rollout-only", "debug-train-only"]},
    "mtp": {"set": ["enable-mtp-training"]},
    "prompt-len": {"set": ["rollout-max-context-len=100", "rollout-max-prompt-len=100"]},
    "prompt-len-ok": {"set": ["rollout-max-context-len=100", "rollout-max-prompt-len=99"]},
    "prefill": {"set": ["prefill-num-servers=1", "rollout-external"]},
    "sglang-dp": {"set": ["sglang-dp-size=2"]},
    "sglang-dp-ok": {"set": ["sglang-dp-size=2", "sglang-enable-dp-attention"]},
    "eval-pairs": {"set": ["eval-prompt-data=aime /a.jsonl extra"]},
    "eval-without-data": {"unset": ["eval-prompt-data"]},
    "save-interval-without-save": {"unset": ["save"]},
    "no-rollouts": {"unset": ["num-rollout"]},
    "epochs": {"set": ["num-epoch=2", "disable-rollout-global-dataset"], "unset": ["num-rollout"]},
    "epochs-ok": {"set": ["num-epoch=2"], "unset": ["num-rollout"]},
}


# Megatron's validate_args (megatron/training/arguments.py at 3714d81d), on the megatron-8gpu recipe
# (TP1, PP6, sequence parallelism, dynamic batch, full uniform recompute, --save every 20 rollouts).
# Not here: hidden_size % heads (changing the model's shape fails slime's hf_validate_args against
# the checkpoint's config first) and the layer patterns (asserted when the model is built, not parsed).
MEGATRON_RULE_CASES = {
    "micro-batch": {"set": ["micro-batch-size=0"]},
    "min-lr": {"set": ["min-lr=1e-5"]},
    "min-lr-ok": {"set": ["min-lr=1e-7"]},
    "save-without-interval": {"unset": ["save-interval"]},
    "retain": {"set": ["save-retain-interval=30"]},
    "retain-ok": {"set": ["save-retain-interval=40"]},
    "batch-size": {"set": ["batch-size=4"]},
    "warmup": {"set": ["warmup=10"]},
    "model-parallel-size": {"set": ["model-parallel-size=1"]},
    "checkpoint-activations": {"set": ["checkpoint-activations"]},
    "virtual-pipeline": {"set": ["num-layers-per-virtual-pipeline-stage=2", "num-virtual-stages-per-pipeline-rank=4"]},
    "virtual-pipeline-ok": {"set": ["num-layers-per-virtual-pipeline-stage=2"]},
    "overlap-param-gather": {"set": ["overlap-param-gather"]},
    "tp-comm-overlap": {"set": ["tp-comm-overlap"]},
    "selective-recompute": {"set": ["recompute-granularity=selective"]},
    "selective-recompute-ok": {"set": ["recompute-granularity=selective"],
                               "unset": ["recompute-method", "recompute-num-layers"]},
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["fsdp", "megatron"])
def test_cross_flag_rules_agree_with_slimes_validate_functions(tmp_path, backend):
    import dataclasses

    from runner.recipes.qwen3_next import QWEN3_NEXT_80B
    from runner.slime_args.render import runtime_env_vars
    from runner.slime_args.rules import cross_flag_problems
    from tests.slime_parser import megatron_tree, run_slime, slime_tree

    recipe = _recipe_for(backend)
    base = tmp_path / "base"
    hf = base / "Qwen3-Next-80B-A3B-Thinking"
    hf.mkdir(parents=True)
    # Megatron's hf_validate_args compares the model flags with the checkpoint's config.
    (hf / "config.json").write_text(json.dumps({"model_type": "qwen3_next", **dataclasses.asdict(QWEN3_NEXT_80B)}))
    ref = base / "Qwen3-Next-80B-A3B-Thinking_torch_dist"
    ref.mkdir()
    slime = slime_tree(tmp_path) if backend == "megatron" else None
    megatron = megatron_tree(tmp_path, slime) if backend == "megatron" else None
    # The Ray job's env (Megatron asserts CUDA_DEVICE_MAX_CONNECTIONS=1 with TP or CP > 1).
    env = runtime_env_vars(recipe, megatron_dir="", slime_dir="", master_addr="127.0.0.1", nccl_nvls_enable="0")
    rule_cases = {**RULE_CASES, **(MEGATRON_RULE_CASES if backend == "megatron" else {})}
    cases, runner_refuses = {}, {}
    for name, case in rule_cases.items():
        set_texts = [text.format(ref=ref) for text in case.get("set", ())]
        checked = check_overrides(recipe, recipe_flags(recipe, str(base)), set_texts=set_texts,
                                  unset=case.get("unset", ()))
        assert not checked.problems, (name, checked.problems)  # every case is a valid flag by itself
        flags = train_flags(recipe, str(base), checked.overrides)
        cases[name] = {"argv": flags.argv(), "env": env}
        runner_refuses[name] = cross_flag_problems(flags, recipe.backend)
    out = run_slime(cases, ["global_batch_size"], tmp_path / "run", slime=slime, megatron=megatron)
    disagree = {name: (out[name], runner_refuses[name]) for name in rule_cases
                if ("error" in out[name]) != bool(runner_refuses[name])}
    assert disagree == {}
    # Refused by a rule, not for a missing input (slime's os.path.exists on a missing --ref-load).
    assert [name for name in rule_cases if out[name].get("error", "").startswith(("FileNotFound", "TypeError"))] == []
