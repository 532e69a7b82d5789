"""Read the dict that one of slime's metric lines prints, without eval.

slime logs its metrics as f"... {log_dict}", i.e. the dict's Python repr:
string keys, values that are Python floats and ints, and sometimes numpy
scalars (numpy 2 prints `np.float64(0.25)`), `nan`, `inf` and `-inf` (repr
of float('nan') etc.), or a stray tensor repr. This module accepts exactly
that shape from Python's own syntax tree (ast.parse in "eval" mode, which
only parses) and walks the tree itself: no name is looked up and nothing is
called. Anything else is refused with ValueError.

Values come back as numbers or None: nan, inf and -inf become None (JSON has
no such numbers), as do values that are not numbers (a string, a list).

The dicts slime prints almost always have plain keys and number values; those
are read by one regular expression per item (no syntax tree: half the cost,
which matters to a collector reading a fast-growing log), and anything else
by the tree. Tests check that both paths agree.
"""

from __future__ import annotations

import ast
import math
import re

# A metric line is a few kilobytes; refuse absurd input before the parser sees it
# (deeply nested or enormous text costs memory and recursion in ast.parse).
MAX_TEXT = 1 << 20

# Bare names that a repr of a number can contain.
_NAMES = {"nan": math.nan, "inf": math.inf, "NaN": math.nan, "Infinity": math.inf, "True": 1, "False": 0,
          "None": None}
# Calls whose first argument is the number: numpy scalar reprs (numpy >= 2), float('nan'),
# torch's tensor(0.5, device='cuda:0').
_NUMERIC_CALLS = {"float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool_",
                  "longdouble", "float", "int", "tensor"}


class NotALiteral(ValueError):
    pass


# The common case, read without building a syntax tree: a dict repr whose keys are quoted without
# escapes and whose values are number reprs, nan/inf, or a numpy scalar's repr around one.
# Anything else (an escaped quote, a nested value, spacing repr never makes) falls back to the tree.
_NUMBER = r"-?(?:\d+(?:\.\d*)?(?:e[-+]?\d+)?|inf|nan)"
_ITEM = re.compile(rf"'([^'\\]*)': (?:(?:np|numpy)\.(?:float64|float32|int64|int32)\(({_NUMBER})\)|({_NUMBER})"
                   r"|(True|False|None))")


def _fast(text: str) -> dict | None:
    if not (text.startswith("{") and text.endswith("}")):
        return None
    out: dict[str, float | int | None] = {}
    end, pos = len(text) - 1, 1
    while pos < end:
        match = _ITEM.match(text, pos)
        if match is None:
            return None
        key, wrapped, bare, word = match.groups()
        number = wrapped if wrapped is not None else bare
        if number is not None:
            value = int(number) if number.lstrip("-").isdigit() else float(number)
        else:
            value = {"True": 1, "False": 0, "None": None}[word]
        out[key] = _finite(value)
        pos = match.end()
        if pos < end:
            if text.startswith(", ", pos):
                pos += 2
            else:
                return None
    return out


def parse_metric_dict(text: str) -> dict[str, float | int | None]:
    """The metric dict that `text` (a Python dict repr) holds, each value a number or None."""
    if len(text) > MAX_TEXT:
        raise NotALiteral(f"dict text of {len(text)} characters is too long")
    text = text.strip()
    fast = _fast(text)
    return fast if fast is not None else from_tree(text)


def from_tree(text: str) -> dict[str, float | int | None]:
    """parse_metric_dict's general path: Python's syntax tree, walked here (the fast path must agree)."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise NotALiteral(f"not a Python dict literal: {exc.__class__.__name__}") from None
    node = tree.body
    if not isinstance(node, ast.Dict):
        raise NotALiteral("not a dict")
    out: dict[str, float | int | None] = {}
    try:
        for key_node, value_node in zip(node.keys, node.values):
            if not (isinstance(key_node, ast.Constant) and isinstance(key_node.value, str)):
                raise NotALiteral("a key that is not a string")  # also `**other`, whose key node is None
            out[key_node.value] = _finite(_number(value_node))
    except RecursionError:  # e.g. thousands of nested unary minus signs
        raise NotALiteral("a value nested too deeply") from None
    return out


def _finite(value: float | int | None) -> float | int | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number(node: ast.AST) -> float | int | None:
    """A number, nan/inf, or None for a value that is not a number. Never evaluates anything."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, (int, float)):
            return value
        return None  # a string, bytes, None, a complex number
    if isinstance(node, ast.Name):
        return _NAMES.get(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        if inner is None:
            return None
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name not in _NUMERIC_CALLS:
            return None
        first = node.args[0]
        if name in ("float", "int") and isinstance(first, ast.Constant) and isinstance(first.value, str):
            try:  # float('nan'), float('inf')
                return float(first.value)
            except ValueError:
                return None
        return _number(first)
    return None  # a list, a nested dict, an expression
