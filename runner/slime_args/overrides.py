"""Check what the user changes on a recipe against slime's own flags, before anything runs.

`--set FLAG=VALUE`, `--unset FLAG` and raw flags after `--` are checked one by
one against the flag schema of the recipe's backend (runner/slime_args/schema.py):
exact option names only (slime's FSDP parser would silently expand an
abbreviation; the runner refuses it on both backends), switches vs valued
flags, arity, value types and choices as slime's argparse will see them.
Each bad piece becomes a one-line problem and is left out; the rest is
returned as `Overrides` for the renderer. Pure: no files, no processes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Iterable

from runner.flags import Flag, FlagSet
from runner.slime_args.render import Overrides
from runner.slime_args.schema import BackendFlags, Option, backend_flags


@dataclass
class CheckedOverrides:
    overrides: Overrides
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Given:
    """One flag as the user gave it, and where (for messages)."""

    name: str
    values: tuple[str, ...]
    where: str  # "--set", "after --"


def check_overrides(recipe, recipe_flags: FlagSet, *, set_texts: Iterable[str] = (), unset: Iterable[str] = (),  # noqa: ANN001
                    extra_argv: Iterable[str] = (), low_memory: bool = False,
                    runner_options: Iterable[str] = (), allow_unknown: bool = False) -> CheckedOverrides:
    """Validate the user's changes to `recipe` (whose rendered flags are `recipe_flags`).

    runner_options: the runner's own options for this subcommand (a `--dry-run`
    after `--` gets "put it before --" instead of "not a slime flag").
    allow_unknown: a launch test's entrypoint takes flags slime does not have.
    """
    schema = backend_flags(recipe.backend)
    own = {o for o in runner_options if o.startswith("--")}
    problems: list[str] = []

    if low_memory and recipe.backend != "megatron":
        problems.append(f"--low-memory applies to Megatron recipes; {recipe.name} uses {recipe.backend}: "
                        f"drop --low-memory")
        low_memory = False

    set_flags: list[_Given] = []
    for text in set_texts:
        given = _parse_set(text, schema, problems)
        if given is not None:
            set_flags.append(given)
    extra = _parse_extra(tuple(extra_argv), problems)

    good_set = [g for g in set_flags if _flag_ok(g, schema, own, allow_unknown, problems)]
    good_extra = [g for g in extra if _flag_ok(g, schema, own, allow_unknown, problems)]
    _same_option_twice([*good_set, *good_extra], schema, problems)

    # Another spelling of an option the recipe already passes replaces it
    # (e.g. --sglang-expert-parallel-size for the recipe's --sglang-ep-size), so
    # the runner's own reading of the flags (planner, topology) sees the user's value.
    # The renderer removes these, and what --low-memory drops, before any --unset.
    superseded = sorted({other for g in [*good_set, *good_extra] for other in schema.same_option(g.name)
                         if other in recipe_flags and other != g.name})
    removed_first = set(superseded) | ({"accumulate-allreduce-grads-in-fp32"} if low_memory else set())
    present = set(recipe_flags.as_dict()) | {g.name for g in good_set}
    if low_memory:
        present.add("grad-reduce-in-bf16")
    given_dests = {o.dest: g.name for g in [*good_set, *good_extra] if (o := schema.get(g.name)) is not None}
    good_unset: list[str] = []
    unset_dests: set[str] = set()
    for raw in unset:
        name = raw.strip().removeprefix("--")
        if not name or any(c.isspace() for c in name):
            problems.append(f"--unset {raw!r}: expected a slime flag name, e.g. --unset use-wandb")
            continue
        option = schema.get(name)
        if option is None and not allow_unknown:
            problems.append(f"--unset {name}: slime ({recipe.backend} backend) has no --{name} flag"
                            f"{_missing_flag_hint(name, schema)}")
            continue
        if option is not None and option.dest in given_dests:
            other = given_dests[option.dest]
            problems.append(f"--unset {name}: this command also sets --{other}, the same slime option "
                            f"({option.dest}); give one or the other")
            continue
        spelled = name if name in present else next((s for s in schema.same_option(name) if s in present), None)
        if spelled is None:
            problems.append(f"--unset {name}: the recipe {recipe.name} does not pass --{name}; nothing to remove")
            continue
        dest = option.dest if option is not None else name
        if dest in unset_dests or spelled in removed_first:
            continue  # given twice, or already removed (--low-memory): the flag is gone either way
        unset_dests.add(dest)
        good_unset.append(spelled)

    return CheckedOverrides(
        Overrides(
            low_memory=low_memory,
            set_flags=tuple(Flag(g.name, g.values) for g in good_set),
            unset=tuple(good_unset),
            extra_argv=tuple(token for g in good_extra for token in Flag(g.name, g.values).argv()),
            superseded=tuple(superseded),
        ),
        problems,
    )


def _parse_set(text: str, schema: BackendFlags, problems: list[str]) -> _Given | None:
    name, sep, raw = text.partition("=")
    name = name.strip().removeprefix("--")
    if not name or any(c.isspace() for c in name):
        problems.append(f"--set {text!r}: expected FLAG=VALUE (e.g. --set lr=2e-6) or FLAG for a switch")
        return None
    option = schema.get(name)
    if not sep or (option is None and not raw.strip()):
        return _Given(name, (), "--set")  # an unknown name is _flag_ok's to explain
    if option is not None and option.is_switch and not raw.strip():
        problems.append(f"--set {text!r}: --{name} is a switch and takes no value: write --set {name} "
                        f"(or --unset {name} to remove it)")
        return None
    if not raw.strip():
        problems.append(f"--set {text!r}: empty value; give one (--set {name}=VALUE) or remove the flag "
                        f"with --unset {name}")
        return None
    if option is not None and not option.takes_several:
        # One value: taken verbatim, so JSON and other quoted text reach slime intact.
        return _Given(name, (raw,), "--set")
    try:
        return _Given(name, tuple(shlex.split(raw)), "--set")
    except ValueError as exc:
        problems.append(f"--set {text!r}: {exc} (values are split like shell words: check the quotes)")
        return None


def _parse_extra(argv: tuple[str, ...], problems: list[str]) -> list[_Given]:
    """Raw slime flags after `--`: `--name [values...]` or `--name=value`."""
    out: list[_Given] = []
    name: str | None = None
    values: list[str] = []
    for token in argv:
        if token.startswith("--") and len(token) > 2:
            if name is not None:
                out.append(_Given(name, tuple(values), "after --"))
            name, values = token[2:], []
            if "=" in name:
                name, value = name.split("=", 1)
                values.append(value)
        elif name is None:
            problems.append(f"after '--': {token!r} does not follow a --flag; slime takes flags only "
                            f"(e.g. -- --num-rollout 10)")
        else:
            values.append(token)
    if name is not None:
        out.append(_Given(name, tuple(values), "after --"))
    return out


def _flag_ok(given: _Given, schema: BackendFlags, own: set[str], allow_unknown: bool, problems: list[str]) -> bool:
    option = schema.get(given.name)
    flag = f"--{given.name}"
    if option is None:
        if flag in own:
            if given.where == "after --":
                problems.append(f"{flag} is the runner's own option, but it comes after '--', which passes flags "
                                f"to slime: put {flag} before '--'")
            else:
                problems.append(f"--set {given.name}: {flag} is the runner's own option, not slime's: "
                                f"pass it as {flag}")
            return False
        if allow_unknown:
            return True
        where = "--set " + given.name if given.where == "--set" else f"{flag} (after '--')"
        problems.append(f"{where}: slime ({schema.backend} backend) has no {flag} flag"
                        f"{_missing_flag_hint(given.name, schema)}")
        return False
    if option.action in ("help", "version"):
        problems.append(f"{flag} would make slime print its help and exit; see `python {{SLIME_DIR}}/train.py --help` "
                        f"instead")
        return False
    problem = option.check_values(given.name, given.values)
    if problem:
        problems.append(problem if given.where == "--set" else f"{problem} (after '--')")
        return False
    return True


def _same_option_twice(given: list[_Given], schema: BackendFlags, problems: list[str]) -> None:
    """argparse keeps the last of two spellings of one option; that is easy to get wrong, so refuse it."""
    seen: dict[str, str] = {}
    for g in given:
        option: Option | None = schema.get(g.name)
        if option is None:
            continue
        other = seen.setdefault(option.dest, g.name)
        if other != g.name:
            problems.append(f"--{other} and --{g.name} set the same slime option ({option.dest}); give only one")


def _missing_flag_hint(name: str, schema: BackendFlags) -> str:
    """Why `name` is not an option of this backend, and what to do: a Megatron-backend flag on an
    FSDP recipe, else a near miss ("did you mean") or nothing."""
    if schema.backend != "megatron" and backend_flags("megatron").get(name) is not None:
        return ": it is a Megatron-backend flag (use a megatron recipe, or drop it)"
    return schema.suggestion(name)
