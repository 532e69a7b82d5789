"""Recipe -> train.py argv and the job's runtime environment. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from runner.flags import Flag, FlagSet
from runner.recipes.base import Recipe
from runner.recipes.qwen3_next import QWEN3_NEXT_80B, Qwen3NextArchitecture, megatron_model_flags

BASE_FOLDER_TOKEN = "${BASE_FOLDER}"


@dataclass(frozen=True)
class Overrides:
    """What the user changes on top of a recipe, applied in this order."""

    low_memory: bool = False
    set_flags: tuple[Flag, ...] = ()
    unset: tuple[str, ...] = ()
    # Raw slime arguments given after `--`; last one wins, as in argparse.
    extra_argv: tuple[str, ...] = ()
    # Recipe flags that an override replaces under another spelling of the same
    # option (runner.slime_args.overrides); dropped first.
    superseded: tuple[str, ...] = ()


class OverrideError(ValueError):
    pass


def with_base_folder(value: str, base_folder: str) -> str:
    """Resolve the literal "${BASE_FOLDER}" the recipes write, as the scripts' shell would."""
    return value.replace(BASE_FOLDER_TOKEN, base_folder)


def recipe_flags(recipe: Recipe, base_folder: str, arch: Qwen3NextArchitecture = QWEN3_NEXT_80B) -> FlagSet:
    """The recipe's flags exactly as slime's script passes them (no overrides)."""
    flags = FlagSet()
    layout_flags = recipe.layout.flags()
    actor = [f for f in layout_flags if not f.name.startswith("rollout-")]
    rollout = [f for f in layout_flags if f.name.startswith("rollout-")]
    for f in actor:
        flags.set(f.name, *f.values)
    if recipe.with_model_args:
        for f in megatron_model_flags(arch):
            flags.set(f.name, *f.values)
    for group in recipe.groups:
        if group.name == "PERF_ARGS" and recipe.parallel is not None:
            for f in recipe.parallel.flags():
                flags.set(f.name, *f.values)
        if group.name == "SGLANG_ARGS":
            for f in rollout:
                flags.set(f.name, *f.values)
        for f in group.flags:
            flags.set(f.name, *(with_base_folder(v, base_folder) for v in f.values))
    return flags


def apply_overrides(flags: FlagSet, recipe: Recipe, overrides: Overrides) -> FlagSet:
    out = flags.copy()
    for name in overrides.superseded:
        out.drop(name)
    if overrides.low_memory:
        if recipe.backend != "megatron":
            raise OverrideError(f"--low-memory applies to Megatron recipes; {recipe.name} uses {recipe.backend}")
        # The seed doc's OOM advice: fp32 gradient accumulation doubles gradient memory.
        out.drop("accumulate-allreduce-grads-in-fp32")
        out.set("grad-reduce-in-bf16")
    for f in overrides.set_flags:
        out.set(f.name, *f.values)
    for name in overrides.unset:
        # runner.slime_args.overrides refuses names the recipe does not pass; one that is already gone here
        # (dropped by --low-memory, by another spelling, by an earlier layer) stays gone.
        out.drop(name)
    if overrides.extra_argv:
        try:
            out.update(FlagSet.parse(overrides.extra_argv))
        except ValueError as exc:
            raise OverrideError(f"extra slime arguments after '--': {exc}") from None
    return out


def train_flags(recipe: Recipe, base_folder: str, overrides: Overrides = Overrides(),
                arch: Qwen3NextArchitecture = QWEN3_NEXT_80B, before: tuple[Overrides, ...] = ()) -> FlagSet:
    """The recipe, then each layer of `before` (a run's checkpoint folder, a resumed run's recorded
    overrides), then `overrides`: later layers win."""
    flags = recipe_flags(recipe, base_folder, arch)
    for layer in before:
        flags = apply_overrides(flags, recipe, layer)
    return apply_overrides(flags, recipe, overrides)


def train_entrypoint(python: str, slime_dir: str, flags: FlagSet, train_py: str | None = None) -> list[str]:
    """`python slime/train.py FLAGS...`; train_py replaces slime's script in launch tests."""
    script = train_py or str(PurePosixPath(slime_dir) / "train.py")
    return [python, script, *flags.argv()]


def job_pythonpath(recipe: Recipe, megatron_dir: str, slime_dir: str) -> str:
    parts = [megatron_dir, slime_dir] + [str(PurePosixPath(slime_dir) / p) for p in recipe.pythonpath_in_slime]
    return ":".join(parts)


def no_proxy_value(master_addr: str) -> str:
    """Hosts reached without a proxy: this node's loopback and MASTER_ADDR, each once (the scripts give
    127.0.0.1 twice on one node)."""
    hosts = ["127.0.0.1"] + ([master_addr] if master_addr != "127.0.0.1" else [])
    return ",".join(hosts)


def runtime_env_vars(recipe: Recipe, *, megatron_dir: str, slime_dir: str, master_addr: str,
                     nccl_nvls_enable: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The env_vars of the Ray job's runtime env (slime's RUNTIME_ENV_JSON, corrected)."""
    env = {
        "PYTHONPATH": job_pythonpath(recipe, megatron_dir, slime_dir),
        "CUDA_DEVICE_MAX_CONNECTIONS": "1",
        "NCCL_NVLS_ENABLE": nccl_nvls_enable,
        "no_proxy": no_proxy_value(master_addr),
        "MASTER_ADDR": master_addr,
        # The scripts export the misspelt PYTHONBUFFERED=16, which does nothing.
        "PYTHONUNBUFFERED": "1",
        # Ray folds look-alike lines of different processes into one "[repeated Nx across cluster]";
        # the run's metrics collector must see every line slime prints (runner.runs.collector).
        "RAY_DEDUP_LOGS": "0",
    }
    env.update(extra or {})
    return env
