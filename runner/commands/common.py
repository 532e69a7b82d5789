"""Options and output shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from runner.launch.plan import Plan
from runner.locations import Locations, resolve_locations
from runner.recipes.base import Recipe
from runner.secrets import REDACTED, redact_argv, redact_env, redact_json, redact_text
from runner.slime_args.overrides import CheckedOverrides, check_overrides
from runner.slime_args.render import recipe_flags


def add_location_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("locations (flags win over the environment)")
    g.add_argument("--base-folder", help="checkpoints and data live here ($BASE_FOLDER, default ./models)")
    g.add_argument("--slime-dir", help="slime checkout ($SLIME_DIR; the flake's apps set it)")
    g.add_argument("--megatron-dir", help="Megatron-LM checkout ($MEGATRON_DIR; the flake's apps set it)")
    g.add_argument("--master-addr", help="head node address ($MASTER_ADDR; default 127.0.0.1 on one node)")


def locations_from_args(args, environ, default_master_addr: str | None = "127.0.0.1") -> Locations:
    return resolve_locations(base_folder=getattr(args, "base_folder", None), slime_dir=getattr(args, "slime_dir", None),
                             megatron_dir=getattr(args, "megatron_dir", None),
                             master_addr=getattr(args, "master_addr", None), environ=environ,
                             default_master_addr=default_master_addr)


def checked_overrides(args, recipe: Recipe, base_folder: str) -> CheckedOverrides:
    """--set/--unset/--low-memory/raw flags of `args`, checked against slime's flags for `recipe`."""
    return check_overrides(
        recipe, recipe_flags(recipe, base_folder),
        set_texts=getattr(args, "set_flags", None) or (), unset=getattr(args, "unset", None) or (),
        extra_argv=getattr(args, "slime_args", None) or (), low_memory=getattr(args, "low_memory", False),
        runner_options=getattr(args, "own_options", None) or (),
        # A launch test's entrypoint stands in for train.py and takes its own flags.
        allow_unknown=bool(getattr(args, "test_entrypoint", None)),
    )


def _redact_file(content: str) -> str:
    """A planned file's content with the values of secret-named variables redacted (a JSON file whose
    env_vars a secret could be in, such as the runtime env); other content as is."""
    try:
        data = json.loads(content)
    except ValueError:
        return content
    if isinstance(data, dict) and isinstance(data.get("env_vars"), dict):
        data["env_vars"] = redact_env(data["env_vars"])
        return json.dumps(data, indent=2)
    return content


def plan_to_json(plan: Plan, secrets: list[str]) -> dict:
    """The plan as JSON, secrets redacted by name (environments, secret flags' values, files), then by value."""
    data = plan.to_json()
    for proc in data["processes"]:
        proc["env"] = redact_env(proc["env"])
        proc["argv"] = redact_argv(proc["argv"])
    data["files"] = {path: _redact_file(content) for path, content in data["files"].items()}
    return redact_json(data, secrets)


def render_plan_text(plan: Plan, secrets: list[str]) -> str:
    lines = [f"# {n}" for n in plan.notes]
    for i, proc in enumerate(plan.processes, 1):
        lines.append(f"[{i}] {proc.purpose}" if proc.purpose else f"[{i}]")
        if proc.cwd not in (".", ""):
            lines.append(f"    cwd: {proc.cwd}")
        env = redact_env(proc.env)
        if proc.unset_env:
            lines.append("    unset: " + " ".join(proc.unset_env) + " (not inherited)")
        if env:
            lines.append("    env: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
        stdin = f" < {proc.stdin_file}" if proc.stdin_file else ""
        lines.append("    $ " + shlex.join(redact_argv(proc.argv)) + stdin
                     + (f" > {proc.output} 2>&1" if proc.output else ""))
    for path, content in plan.files.items():
        lines.append(f"[file] {path} (mode 0600):")
        lines += ["    " + line for line in _redact_file(content).splitlines()]
    for path, names in plan.secret_files.items():
        lines.append(f"[file] {path} (mode 0600, removed at the end): "
                     + " ".join(f"{name}={REDACTED}" for name in names) + " (from this environment)")
    return redact_text("\n".join(lines), secrets)


def render_problems(plan: Plan, secrets: list[str]) -> str:
    return redact_text("\n".join(f"{p.severity}: {p.message}" for p in plan.problems), secrets)


def print_plan(plan: Plan, args, secrets: list[str], problems_only: bool = False) -> int:
    """Print a plan (dry-run) or just its problems.

    Returns 2 when a problem is an error, except for a dry-run, which lists
    missing inputs as problems and succeeds.
    """
    if getattr(args, "json", False) and not problems_only:
        print(json.dumps(plan_to_json(plan, secrets), indent=2))
    elif not problems_only:
        print(render_plan_text(plan, secrets))
        if plan.problems:
            print(render_problems(plan, secrets))
    elif plan.problems:
        print(render_problems(plan, secrets), file=sys.stderr)
    if getattr(args, "dry_run", False) and not problems_only:
        return 0
    return 2 if plan.errors else 0
