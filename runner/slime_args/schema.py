"""slime's train.py flags at the pins, as data: what each option accepts.

runner/slime_args/data/slime_flags.json is extracted from slime's own parsers (Megatron
and FSDP backends; slime 3d7599aa, Megatron-LM 3714d81d + slime's patch,
sglang 0.5.6.post1) by tools/slime_flag_schema.py; `nix flake check`
(checks.slime-flags) and tests/test_slime_schema.py regenerate it and compare.
This module answers, without importing slime: is this an option, what does
it take, does this value parse the way argparse will parse it.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SCHEMA_FILE = Path(__file__).parent / "data" / "slime_flags.json"

# argparse's test for "this token is a negative number, not an option" (Python
# 3.10-3.12). Any other value starting with "-" is read as an option.
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
# Megatron's _eval_pattern: only these characters may appear in a layer pattern.
_PATTERN_CHARS = re.compile(r"[^,\d\[\]\(\)\+\*]")


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]  # every spelling, with leading "--"
    dest: str
    action: str  # store, store_true, store_false, boolean_optional, append, help, ...
    type: str  # none (switch), str, int, float, bool, json, json_list, enum, layer_pattern, int_tuple
    nargs: object  # None, "?", "*", "+", or an int (0 for switches)
    choices: tuple | None
    default: object

    @property
    def is_switch(self) -> bool:
        return self.nargs == 0

    @property
    def takes_several(self) -> bool:
        """Does one occurrence take a list of words (split like a shell would)?"""
        return self.nargs in ("*", "+") or (isinstance(self.nargs, int) and self.nargs > 1)

    def arity(self) -> str:
        n = self.nargs
        return {None: "one value", "?": "at most one value", "*": "any number of values",
                "+": "one or more values"}.get(n, f"{n} value{'s' if n != 1 else ''}")  # type: ignore[arg-type]

    def check_values(self, name: str, values: tuple[str, ...]) -> str | None:
        """None if argparse accepts `--name VALUES`; else a one-line reason and fix."""
        flag = f"--{name}"
        if self.is_switch:
            if values:
                return (f"{flag} is a switch and takes no value (got {' '.join(values)!r}): "
                        f"write --set {name}, or --unset {name} to remove it")
            return None
        n = self.nargs
        count = len(values)
        if ((n is None and count != 1) or (n == "?" and count > 1) or (n == "+" and count < 1)
                or (isinstance(n, int) and count != n)):
            example = f"--set {name}=VALUE" if n in (None, "?") else f"--set '{name}=V1 V2'"
            if not values:
                return f"{flag} takes {self.arity()} ({self.type}); give it, e.g. {example}"
            return f"{flag} takes {self.arity()}, got {count}: {' '.join(values)!r}; e.g. {example}"
        for value in values:
            problem = self._check_one(flag, value, several=count > 1)
            if problem:
                return problem
        return None

    def _check_one(self, flag: str, value: str, several: bool) -> str | None:
        if several and value.startswith("-") and not _NEGATIVE_NUMBER.match(value):
            return f"{flag} {value!r}: argparse would read {value!r} as an option, not a value"
        converted, error = convert(self.type, value)
        if error:
            return f"{flag} {value!r}: {error}"
        shape = _VALUE_SHAPES.get(self.dest)
        if shape is not None and shape(converted):
            # Not echoed: the value may hold a secret (a --train-env-vars key like WANDB_API_KEY).
            return f"{flag}: {shape(converted)}"
        if self.type == "bool" and value.strip().lower() in ("false", "0", "no", "off"):
            return (f"{flag} {value!r}: slime parses this flag with Python's bool(), so any non-empty value, "
                    f"{value!r} included, means True; leave the flag out (--unset) for False")
        if self.choices is not None and converted not in self.choices:
            shown = ", ".join(map(str, self.choices))
            close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"{flag} {value!r} is not one of: {shown}{hint}"
        return None


def convert(type_name: str, value: str):  # noqa: ANN201
    """(converted value, error) as argparse's type converter at the pins would see it."""
    if type_name in ("str", "bool", "enum"):
        return value, None
    if type_name == "int":
        try:
            return int(value), None
        except ValueError:
            return None, "not an integer"
    if type_name == "float":
        try:
            return float(value), None
        except ValueError:
            return None, "not a number"
    if type_name in ("json", "json_list"):
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            return None, (f"not valid JSON ({exc.msg} at character {exc.pos}); quote it for your shell, "
                          f"e.g. --set 'flag={{\"KEY\": \"value\"}}'")
        if type_name == "json_list" and not isinstance(parsed, list):
            return None, "must be a JSON list, e.g. [1, 2]"
        return parsed, None
    if type_name == "layer_pattern":
        if "[" in value:
            if _PATTERN_CHARS.search(value):
                return None, "a layer pattern may only contain digits and , [ ] ( ) + *"
            return _layer_pattern(value)
        try:
            return int(value), None
        except ValueError:
            return None, "must be an integer N or a list expression such as ([1]*3+[0])*12"
    if type_name == "int_tuple":
        try:
            return tuple(int(p) for p in value.strip("()").split(",")), None
        except ValueError:
            return None, "must be integers separated by commas, e.g. 128,0"
    return value, None


_PATTERN_MAX = 1_000_000  # entries (or size of an int) a layer pattern may reach: a model has far fewer layers


def _layer_pattern(text: str):  # noqa: ANN202
    """(list of ints, error): Megatron's _eval_pattern evaluates `text` with eval() after its character
    filter (digits , [ ] ( ) + *). The same grammar is evaluated here from the syntax tree, with sizes
    bounded, and the result must be the list of ints that Megatron's layer specs index."""
    import ast

    def ev(node):  # noqa: ANN001, ANN202
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.List):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(ev(e) for e in node.elts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult, ast.Pow)):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow):
                small = type(left) is int and type(right) is int and 0 <= right
                if not small or right * max(abs(left), 2).bit_length() > 64:
                    raise ValueError("** here must raise a small integer to a small power")
                return left ** right
            if isinstance(node.op, ast.Mult):
                size = [len(x) if isinstance(x, (list, tuple)) else abs(x) for x in (left, right)]
                if size[0] * size[1] > _PATTERN_MAX:
                    raise ValueError(f"it would have more than {_PATTERN_MAX} entries")
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError("not a list expression")

    try:
        result = ev(ast.parse(text.strip(), mode="eval"))
    except SyntaxError as exc:
        return None, f"not a valid Python list expression ({exc.msg}); e.g. ([1]*3+[0])*12"
    except (ValueError, TypeError) as exc:
        return None, f"not a layer pattern ({exc}); e.g. ([1]*3+[0])*12"
    if not isinstance(result, list) or not all(type(x) is int for x in result):
        return None, "must evaluate to a list of integers, e.g. [1,0,1] or ([1]*3+[0])*12"
    return result, None


def _env_object(value) -> str | None:  # noqa: ANN001
    from runner.secrets import secret_env_vars_problem

    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return ('must be a JSON object of strings (slime passes it to Ray as environment variables), '
                'e.g. --set \'train-env-vars={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}\'')
    return secret_env_vars_problem(value)


# What a parsed value must look like beyond its type, by destination.
_VALUE_SHAPES = {"train_env_vars": _env_object}


@dataclass(frozen=True)
class BackendFlags:
    backend: str
    options: dict[str, Option]  # spelling without "--" -> option

    def get(self, name: str) -> Option | None:
        return self.options.get(name.removeprefix("--"))

    def suggestion(self, name: str) -> str:
        """ ' (did you mean --x?)' for a near miss or an abbreviation, else ''."""
        name = name.removeprefix("--")
        longer = sorted(n for n in self.options if n.startswith(name))
        if len(longer) == 1:
            return f" (did you mean --{longer[0]}? slime takes full names only)"
        close = difflib.get_close_matches(name, list(self.options), n=1, cutoff=0.75)
        if close:
            return f" (did you mean --{close[0]}?)"
        if longer:
            return f" (it abbreviates {len(longer)} options, e.g. --{longer[0]}; slime takes full names only)"
        return ""

    def by_dest(self, dest: str) -> Option | None:
        return next((o for o in self.options.values() if o.dest == dest), None)

    def same_option(self, name: str) -> list[str]:
        """Other spellings that set the same destination (argparse: the last one wins)."""
        option = self.get(name)
        if option is None:
            return []
        return sorted(n for n, o in self.options.items() if o.dest == option.dest and n != name.removeprefix("--"))


@lru_cache(maxsize=None)
def _load() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def provenance() -> dict:
    return _load()["provenance"]


@lru_cache(maxsize=None)
def backend_flags(backend: str) -> BackendFlags:
    data = _load()["backends"][backend]
    options: dict[str, Option] = {}
    for raw in data["options"]:
        option = Option(
            flags=tuple(raw["flags"]), dest=raw["dest"], action=raw["action"], type=raw["type"],
            nargs=raw["nargs"], choices=tuple(raw["choices"]) if raw["choices"] is not None else None,
            default=raw["default"],
        )
        for spelling in option.flags:
            if spelling.startswith("--"):
                options[spelling[2:]] = option
    return BackendFlags(backend, options)


@lru_cache(maxsize=None)
def accumulating_flags() -> frozenset[str]:
    """Spellings (without --) of slime's argparse action="append" options, on either backend (e.g.
    --router-prefill URL [PORT], --router-decode URL): every occurrence adds a value group, none replaces."""
    return frozenset(name for backend in _load()["backends"] for name, option in backend_flags(backend).options.items()
                     if option.action == "append")
