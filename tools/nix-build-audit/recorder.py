"""Recording compiler wrappers for the build-environment audit.

A source build's real setup.py runs with these in place of gcc, g++, cc,
c++ (on PATH, as nixpkgs' cc-wrapper puts them) and of CUDA_HOME/bin/nvcc.
Each compile or link is written to the log (argv, working directory and the
variables the compiler reads itself); a compile is replayed with -E right
away (replay.py: the tree as the compile saw it, before setup.py cleans up),
and its outputs are created empty, so the build goes on to the next command
without compiling anything.
Anything else (version queries, -E, -dumpversion) runs the real compiler;
the stand-in nvcc answers `-V` the way nvcc 12.8.93 does.

    BUILD_AUDIT_LOG=LOG python3 recorder.py TOOL REAL [ARGS...]     (what the wrappers run)
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

# Variables a compiler reads on its own (gcc: CPATH and friends; nixpkgs'
# cc-wrapper: NIX_CFLAGS_COMPILE, NIX_LDFLAGS): recorded with each command.
COMPILER_ENV = ("CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "LIBRARY_PATH", "NIX_CFLAGS_COMPILE", "NIX_LDFLAGS")

# `nvcc -V` of CUDA 12.8.1's nvcc (12.8.93), as two independent public
# transcripts print it; setup.py files and torch parse the "release" line.
NVCC_VERSION = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2025 NVIDIA Corporation
Built on Fri_Feb_21_20:23:50_PST_2025
Cuda compilation tools, release 12.8, V12.8.93
Build cuda_12.8.r12.8/compiler.35583870_0
"""

WRAPPED = ("gcc", "g++", "cc", "c++")


def _value_after(argv: list[str], *flags: str) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg in flags:
            return argv[i + 1]
    for arg in argv:
        for flag in flags:
            if flag.startswith("--") and arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None


def _touch(path: str | None, text: str = "") -> None:
    if path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def kind(tool: str, argv: list[str]) -> str | None:
    """'compile', 'link', or None (a query the real compiler answers)."""
    if "-E" in argv or "-M" in argv or "-MM" in argv:
        return None
    if "-c" in argv or (tool == "nvcc" and ("--compile" in argv or "-dc" in argv)):
        return "compile"
    if "-o" in argv and any(a.endswith((".o", ".a", ".so")) for a in argv if not a.startswith("-")):
        return "link"
    return None


def append(log: Path, lines: list[dict]) -> None:
    with log.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("".join(json.dumps(l) + "\n" for l in lines))


def record(log: Path, tool: str, real: str, argv: list[str], what: str) -> dict:
    entry = {
        "type": "command",
        "tool": tool,
        "real": real,
        "kind": what,
        "argv": argv,
        "cwd": os.getcwd(),
        "env": {k: os.environ[k] for k in COMPILER_ENV if k in os.environ},
    }
    append(log, [entry])
    return entry


def replay_now(log: Path, entry: dict) -> None:
    """Preprocess this compile now (replay.py), while the tree is as it saw it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import replay

    includes = [d for d in os.environ.get("BUILD_AUDIT_NVCC_INCLUDES", "").split(":") if d]
    append(log, replay.replay_entry(entry, includes, log.parent / "replayed"))


def fake_outputs(tool: str, argv: list[str]) -> None:
    """The files a real run would leave: the object or library, a depfile."""
    out = _value_after(argv, "-o", "--output-file")
    _touch(out)
    depfile = _value_after(argv, "-MF", "--dependency-output", "-MF")
    if depfile:
        sources = [a for a in argv if a.endswith((".c", ".cc", ".cpp", ".cu", ".cxx"))]
        _touch(depfile, f"{out}: {' '.join(sources)}\n")


def main(argv: list[str]) -> int:
    log = Path(os.environ["BUILD_AUDIT_LOG"])
    tool, real, args = argv[0], argv[1], argv[2:]
    what = kind(tool, args)
    if tool == "nvcc":
        if what is None and any(a in ("-V", "--version") for a in args):
            sys.stdout.write(NVCC_VERSION)
            return 0
        entry = record(log, tool, real, args, what or "other")
        if what is None:
            print(f"stand-in nvcc: only compiles are recorded here, not {' '.join(args)}", file=sys.stderr)
            return 1
    else:
        if what is None:
            os.execv(real, [real, *args])
        entry = record(log, tool, real, args, what)
    if what == "compile":
        replay_now(log, entry)
    fake_outputs(tool, args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
