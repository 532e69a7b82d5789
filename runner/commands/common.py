"""Output shared by the subcommands: a plan as text or JSON, secrets redacted (their shared options:
runner.commands.options)."""

from __future__ import annotations

import json
import shlex
import sys

from runner.launch.plan import Plan
from runner.secrets import REDACTED, redact_argv, redact_env, redact_json, redact_text


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
