"""Command-line flags as data, with argparse's "last one wins" semantics.

slime's scripts pass some flags twice (e.g. --moe-token-dispatcher-type in
both MODEL_ARGS and MISC_ARGS); argparse keeps the last value. A `FlagSet`
applies the same rule, so two argv lists can be compared the way train.py
would see them, and overrides (`--set`, extra args) simply replace values.
Except for slime's action="append" options (--router-prefill, --router-decode:
runner.slime_args.schema.accumulating_flags), where argparse keeps every
occurrence as a group of values, and so does a FlagSet.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Iterable, Iterator


@dataclass(frozen=True)
class Flag:
    """One flag; no values means a store_true switch."""

    name: str  # without the leading "--"
    values: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        if len(self.values) == 1 and self.values[0].startswith("-"):
            # argparse reads a separate "-1e-6" as an option; "--lr=-1e-6" is unambiguous.
            return [f"--{self.name}={self.values[0]}"]
        return [f"--{self.name}", *self.values]


def flag(name: str, *values: object) -> Flag:
    return Flag(name, tuple(str(v) for v in values))


class FlagSet:
    """An ordered mapping flag name -> values; setting an existing flag replaces it in place."""

    def __init__(self, flags: Iterable[Flag] = ()) -> None:
        self._values: dict[str, tuple[str, ...]] = {}
        # Occurrences of accumulating flags, in order (_values holds them flattened).
        self._groups: dict[str, list[tuple[str, ...]]] = {}
        for f in flags:
            self.set(f.name, *f.values)

    @classmethod
    def parse(cls, argv: Iterable[str]) -> "FlagSet":
        """Parse `--name v1 v2 --switch ...`; a token starting with "--" starts a flag."""
        result = cls()
        name: str | None = None
        values: list[str] = []
        for token in argv:
            if token.startswith("--") and len(token) > 2:
                if name is not None:
                    result.set(name, *values)
                name, values = token[2:], []
                if "=" in name:  # --name=value form
                    name, value = name.split("=", 1)
                    values.append(value)
            elif name is None:
                raise ValueError(f"argument {token!r} does not follow a --flag")
            else:
                values.append(token)
        if name is not None:
            result.set(name, *values)
        return result

    def set(self, name: str, *values: str) -> None:
        """Replace the flag's value; for an accumulating flag, add one more occurrence (as argparse does)."""
        name = name.removeprefix("--")
        if _accumulates(name):
            self._groups.setdefault(name, []).append(tuple(values))
            self._values[name] = tuple(v for group in self._groups[name] for v in group)
            return
        self._values[name] = tuple(values)

    def drop(self, name: str) -> bool:
        name = name.removeprefix("--")
        self._groups.pop(name, None)
        return self._values.pop(name, None) is not None

    def occurrences(self, name: str) -> list[tuple[str, ...]]:
        """Each occurrence's values: several for an accumulating flag, else at most one."""
        name = name.removeprefix("--")
        if name in self._groups:
            return list(self._groups[name])
        return [self._values[name]] if name in self._values else []

    def get(self, name: str) -> tuple[str, ...] | None:
        return self._values.get(name.removeprefix("--"))

    def has(self, name: str) -> bool:
        return name.removeprefix("--") in self._values

    def value(self, name: str, default: str | None = None) -> str | None:
        """The single value of a flag (the first when several)."""
        values = self.get(name)
        if not values:
            return default
        return values[0]

    def int(self, name: str, default: int) -> int:
        return self._number(name, default, int, "an integer")

    def float(self, name: str, default: float) -> float:
        return self._number(name, default, float, "a number")

    def _number(self, name, default, cast, kind):  # noqa: ANN001
        raw = self.value(name)
        if raw is None:
            return default
        try:
            return cast(raw)
        except ValueError:
            raise ValueError(f"--{name} must be {kind}, got {raw!r}") from None

    def update(self, other: "FlagSet") -> None:
        for f in other:
            for values in other.occurrences(f.name):
                self.set(f.name, *values)

    def copy(self) -> "FlagSet":
        out = FlagSet()
        out._values = dict(self._values)
        out._groups = {k: list(v) for k, v in self._groups.items()}
        return out

    def __iter__(self) -> Iterator[Flag]:
        for name, values in self._values.items():
            yield Flag(name, values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)

    def as_dict(self) -> dict[str, tuple[str, ...]]:
        return dict(self._values)

    def argv(self) -> list[str]:
        out: list[str] = []
        for f in self:
            for values in self.occurrences(f.name):
                out.extend(Flag(f.name, values).argv())
        return out

    def __eq__(self, other: object) -> bool:
        # argparse semantics: order does not matter, values do (and an accumulating flag's groups).
        return isinstance(other, FlagSet) and self._values == other._values and self._groups == other._groups

    def __repr__(self) -> str:
        return f"FlagSet({shlex.join(self.argv())})"


def _accumulates(name: str) -> bool:
    from runner.slime_args.schema import accumulating_flags

    return name in accumulating_flags()
