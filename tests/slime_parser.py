"""Run slime's own `parse_args` on CPU, at the pins, on argv the runner rendered.

What runs: slime 3d7599aa's slime.utils.arguments.parse_args (with its
validate functions and sglang 0.5.6.post1's server arguments, as train.py
calls it), in the pinned stack's Python (SLIME_STACK_PYTHON, default
/work/venvs/stack/bin/python: `uv sync --extra stack` without flash-attn and
Transformer Engine). slime's source comes from SLIME_NIX_SLIME_SRC or the
project mirror (tests/nix/nixtools.upstream_tree). Without either the
callers skip.

Only the FSDP backend is covered: its parser imports no Megatron. One
stand-in: `flash_attn`, a CUDA-only package that slime's FSDP actor module
imports (through ring_flash_attn) when the parser loads the FSDP arguments;
its functions are never called while parsing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.nix.nixtools import PINS, upstream_tree

DEFAULT_STACK_PYTHON = "/work/venvs/stack/bin/python"

_FLASH_ATTN_STANDIN = '''\
"""Stand-in for the CUDA-only flash_attn: importable, never called while parsing."""


def __getattr__(name):
    def unavailable(*args, **kwargs):
        raise RuntimeError(f"flash_attn.{name}: stand-in module (no CUDA kernels on this machine)")

    return unavailable
'''

_DRIVER = '''\
import contextlib, io, json, sys
from slime.utils.arguments import parse_args

cases, wanted, result = json.load(open(sys.argv[1])), sys.argv[2].split(","), sys.argv[3]
out = {}
for name, argv in cases.items():
    sys.argv = ["train.py", *argv]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parse_args()
        out[name] = {"args": {k: getattr(args, k, "<missing>") for k in wanted}}
    except SystemExit as exc:  # argparse: usage error on stderr, exit 2
        out[name] = {"error": (err.getvalue().strip().splitlines() or [f"exit {exc.code}"])[-1]}
    except Exception as exc:  # slime's validate functions assert / raise
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
json.dump(out, open(result, "w"), default=repr)
'''


def stack_python() -> str:
    exe = os.environ.get("SLIME_STACK_PYTHON", DEFAULT_STACK_PYTHON)
    if not Path(exe).exists():
        pytest.skip(f"no pinned stack Python at {exe} (set SLIME_STACK_PYTHON to one with sglang 0.5.6.post1)")
    return exe


def parse_with_slime(cases: dict[str, list[str]], wanted: list[str], tmp: Path) -> dict[str, dict]:
    """{case: {"args": {attr: value}} or {"error": last stderr line}} from slime's parse_args."""
    python = stack_python()
    slime = upstream_tree("slime", "SLIME_NIX_SLIME_SRC", PINS["sources"]["slime"]["rev"], tmp / "slime")
    standins = tmp / "standins" / "flash_attn"
    standins.mkdir(parents=True)
    (standins / "__init__.py").write_text(_FLASH_ATTN_STANDIN)
    (standins / "flash_attn_interface.py").write_text(_FLASH_ATTN_STANDIN)
    (tmp / "cases.json").write_text(json.dumps(cases))
    (tmp / "driver.py").write_text(_DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = f"{slime}{os.pathsep}{standins.parent}"
    proc = subprocess.run([python, str(tmp / "driver.py"), str(tmp / "cases.json"), ",".join(wanted),
                           str(tmp / "out.json")], capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / "out.json").read_text())
