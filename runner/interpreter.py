"""How the runner starts Python processes of its own (the detached supervisor, the job submitter, the
hub fetcher, the smoke workers): the same interpreter, and the same isolation from the working directory.

The flake's apps run `python -P -m runner` (nix/apps.nix): -P (Python 3.11+) keeps the working
directory off sys.path, so that a checkout's ./runner cannot stand in for the flake's. A child started
as `python -m runner.x` would put the working directory first again; so it gets -P as well whenever
this process has it. Python 3.10 has no -P (and no sys.flags.safe_path): nothing is added there.
"""

from __future__ import annotations

import sys

# What torchrun, which starts the smoke workers with its own argv, passes on instead of -P.
SAFE_PATH_ENV = "PYTHONSAFEPATH"


def safe_path() -> bool:
    return bool(getattr(sys.flags, "safe_path", False))


def own_python(python: str = sys.executable) -> list[str]:
    """argv[0:] for `python -m runner...` children."""
    return [python, "-P"] if safe_path() else [python]


def own_python_env() -> dict[str, str]:
    """Environment for children that start Python themselves (torchrun's workers)."""
    return {SAFE_PATH_ENV: "1"} if safe_path() else {}
