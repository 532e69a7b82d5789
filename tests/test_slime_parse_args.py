"""slime's own parse_args at the pins, on exactly what `train` submits, on both backends.

For every recipe, and for README's override examples on every recipe, the
runner's CLI renders the job (`train --dry-run --json`: train.py's argv and
the Ray job's runtime env), and slime 3d7599aa's parse_args takes it in the
pinned stack's Python, with slime_validate_args, Megatron-LM's
validate_args (Megatron backend, Megatron-LM 3714d81d + slime's patch) and
sglang's validate_args (tests/slime_parser.py; stand-ins only for the GPU).
Checked:
  - slime accepts every recipe and reads every flag as the runner reads it
    (runner.slime_args.rules.Values: what the cross-flag rules and the planner
    use), apart from the changes slime and Megatron make on purpose, each
    named in `as_slime_leaves_it`;
  - README's examples: accepted, and the values they set arrive; where the
    runner refuses an example on another recipe, it says so in one line.
All cases run in one child process (about 25 s on CI). Without the stack's
Python (SLIME_STACK_PYTHON) or the pinned tarballs (SLIME_UPSTREAM_SOURCES)
these tests skip, saying why.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

from runner.flags import FlagSet
from runner.recipes import RECIPES
from runner.recipes.qwen3_next import QWEN3_NEXT_80B
from runner.slime_args.rules import Values
from runner.slime_args.schema import backend_flags
from tests.conftest import REPO, run_cli
from tests.slime_parser import megatron_tree, run_slime, slime_tree, stack_python

pytestmark = pytest.mark.slow


def readme_examples() -> list[list[str]]:
    """The `train` override examples of README.md ("Changing a recipe"), as arguments after the recipe."""
    examples = []
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("python -m runner train --recipe "):
            args = shlex.split(line, comments=True)[6:]
            if any(a in ("--set", "--unset", "--low-memory", "--") for a in args):
                examples.append(args)
    return examples


def readme_recipe(args: list[str]) -> str:
    """The recipe README gives the example with."""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("python -m runner train --recipe ") and shlex.split(line, comments=True)[6:] == args:
            return shlex.split(line, comments=True)[5]
    raise AssertionError(args)


def dry_run(recipe: str, args: list[str], base: Path, slime: Path, megatron: Path) -> dict:
    """`train --dry-run --json` of the recipe with `args`: {"argv", "env", "problems"} of the slime job."""
    own, raw = (args[:args.index("--")], args[args.index("--"):]) if "--" in args else (args, [])
    r = run_cli("train", "--recipe", recipe, *own, "--dry-run", "--json", "--base-folder", str(base),
                "--slime-dir", str(slime), "--megatron-dir", str(megatron), *raw)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    (job,) = [p["argv"] for p in plan["processes"] if "--" in p["argv"] and str(slime / "train.py") in p["argv"]]
    argv = job[job.index(str(slime / "train.py")) + 1:]
    env_file = job[job.index("--runtime-env-file") + 1]
    env = json.loads(plan["files"][env_file])["env_vars"]
    # The disk preflight's problem is this machine's (no terabyte free for the checkpoints), not the
    # example's; it names a new run directory, and a total that --num-rollout changes, each time.
    problems = [p["message"] for p in plan["problems"] if not p["message"].startswith("disk: ")]
    return {"argv": argv, "env": env, "problems": problems}


def expected_values(args: list[str], backend: str) -> dict[str, object]:
    """What each README example sets, by slime's dest, as the runner reads the values."""
    schema = backend_flags(backend)
    own, raw = (args[:args.index("--")], args[args.index("--") + 1:]) if "--" in args else (args, [])
    changed, expected, words = FlagSet.parse(raw), {}, iter(own)
    for word in words:
        if word == "--set":
            name, _, value = next(words).partition("=")
            changed.set(name, *([value] if value else []))
        elif word == "--unset":
            option = schema.get(next(words))
            expected[option.dest] = option.default
        elif word == "--low-memory":
            # The seed's OOM advice: gradients reduced in bf16 instead of accumulated in fp32.
            expected.update(grad_reduce_in_bf16=True, accumulate_allreduce_grads_in_fp32=False)
        else:
            raise AssertionError(f"README example option {word} is unknown to this test")
    values = Values(changed, schema)
    expected.update({schema.get(f.name).dest: values[f.name] for f in changed})
    return expected


def as_slime_leaves_it(dest: str, value: object, values: Values, backend: str) -> object:
    """The runner's reading of a flag, after what slime's and Megatron's validation change on purpose."""
    if dest == "load":
        # A fresh run: no checkpoint in --load yet, so slime loads the reference (Megatron: --ref-load)
        # or the HF weights (FSDP: load None).
        return values["ref-load"] if backend == "megatron" else None
    if dest == "sequence_parallel" and backend == "megatron" and values["tensor-model-parallel-size"] == 1:
        return False  # Megatron turns sequence parallelism off at TP1
    if dest == "moe_aux_loss_coeff" and isinstance(value, list) and len(value) == 1:
        return value[0]  # Megatron keeps a single coefficient as a number
    return value


def slime_value(value: object) -> object:
    """An enum member as its name (the child reports repr() of what it cannot write as JSON)."""
    if isinstance(value, str):
        member = re.fullmatch(r"<\w+\.(\w+): .+>", value)
        if member:
            return member.group(1)
    return value


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    """Every recipe plain and with every README example, rendered by the CLI and parsed by slime."""
    stack_python()  # skip early, before the trees are made
    tmp = tmp_path_factory.mktemp("slime-parse-args")
    slime = slime_tree(tmp)
    megatron = megatron_tree(tmp, slime)
    base = tmp / "base"
    hf = base / "Qwen3-Next-80B-A3B-Thinking"
    hf.mkdir(parents=True)
    # Megatron's hf_validate_args compares the model flags with the checkpoint's config.
    (hf / "config.json").write_text(json.dumps({"model_type": "qwen3_next", **dataclasses.asdict(QWEN3_NEXT_80B)}))
    examples = readme_examples()
    jobs, cases = {}, {}
    for recipe in RECIPES:
        for n, args in enumerate([[], *examples]):
            job = jobs[recipe, n] = dry_run(recipe, args, base, slime, megatron)
            cases[f"{recipe} {n}"] = {"argv": job["argv"], "env": job["env"]}
    wanted = sorted({backend_flags(RECIPES[r].backend).get(f.name).dest
                     for (r, _), job in jobs.items() for f in FlagSet.parse(job["argv"])})
    out = run_slime(cases, wanted, tmp / "run", slime=slime, megatron=megatron)
    return examples, jobs, {key: out[f"{key[0]} {key[1]}"] for key in jobs}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_slime_reads_every_flag_of_the_recipe_as_the_runner_does(parsed, recipe):
    _, jobs, out = parsed
    backend = RECIPES[recipe].backend
    got = out[recipe, 0].get("args") or pytest.fail(f"slime refuses {recipe}: {out[recipe, 0]}")
    flags = FlagSet.parse(jobs[recipe, 0]["argv"])
    schema, values = backend_flags(backend), Values(flags, backend_flags(backend))
    assert got["train_backend"] == backend and len(flags) > 40
    differ = {}
    for f in flags:
        dest = schema.get(f.name).dest
        want = as_slime_leaves_it(dest, values[f.name], values, backend)
        if slime_value(got[dest]) != want:
            differ[f.name] = (want, got[dest])
    assert differ == {}


def test_readmes_examples_reach_slime_on_every_recipe(parsed):
    examples, jobs, out = parsed
    assert len(examples) >= 3  # --low-memory; --set and --unset; raw flags after --
    accepted = 0
    for n, args in enumerate(examples, 1):
        for recipe, r in RECIPES.items():
            added = [p for p in jobs[recipe, n]["problems"] if p not in jobs[recipe, 0]["problems"]]
            if added:
                # The runner refuses the example here (a Megatron-only option on an FSDP recipe, a flag
                # this recipe does not pass): one line naming an option of the example, never on
                # the recipe README gives it with.
                assert recipe != readme_recipe(args), (args, added)
                assert all("\n" not in p and any(a.lstrip("-").split("=")[0] in p for a in args) for p in added), added
                continue
            got = out[recipe, n].get("args") or pytest.fail(f"slime refuses {args} on {recipe}: {out[recipe, n]}")
            want = expected_values(args, r.backend)
            assert {d: got[d] for d in want} == want, (recipe, args)
            accepted += 1
    assert accepted >= len(RECIPES) + 3
