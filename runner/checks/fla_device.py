"""What device does fla think it is on, and if not CUDA, why?

fla 9714c595 decides once, at import (fla/utils.py, get_available_device):
the backend of Triton's active driver, or 'cpu' when that raises anything,
with only a UserWarning. Triton 3.5 builds a small C launcher when its CUDA
driver starts, so on a GPU machine fla says 'cpu' when there is no C compiler,
when TRITON_LIBCUDA_PATH is unset and /sbin/ldconfig is absent (NixOS) or
lists no libcuda, or when -lcuda cannot be linked. Training then fails far
from the cause.

Run as a program (its source given to `python -c`: standard library only at
the top, and the runner's directory, whose secrets.py would shadow the
standard library's, stays off sys.path) it is the probe: it imports the real fla in the environment under test, asks it,
and, when the answer is not 'cuda', repeats Triton's driver start to catch
the exception fla swallowed. The doctor runs it in a subprocess and turns its
JSON into a likely cause and a fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


# ---- child side (runs in the environment under test) -------------------------

def describe(exc: BaseException) -> str:
    """'Type: message' on one line, short enough for a report row."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:400]


def probe() -> dict:
    import warnings

    out: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fla's "roll back to CPU" warning: we report it ourselves
            import fla.utils
        out["device"] = fla.utils.get_available_device()
    except BaseException as exc:  # noqa: BLE001 - any import failure is the answer
        out["import_error"] = describe(exc)
        return out
    if out["device"] == "cuda":
        return out
    try:
        import torch

        out["torch_cuda"] = bool(torch.cuda.is_available())
    except BaseException as exc:  # noqa: BLE001
        out["torch_cuda"] = False
        out["torch_error"] = describe(exc)
    try:
        import triton

        triton.runtime.driver.active.get_current_target()
        out["triton_error"] = ""
    except BaseException as exc:  # noqa: BLE001 - the exception fla swallowed
        out["triton_error"] = describe(exc)
    return out


# ---- parent side (the doctor) -------------------------------------------------

@dataclass(frozen=True)
class FlaDevice:
    device: str | None  # fla's answer; None when the probe did not get one
    error: str = ""  # fla does not import, or the probe itself failed
    torch_cuda: bool | None = None
    triton_error: str = ""
    compiler_error: str = ""  # what the C compiler printed, when Triton ran it


def run_probe(python: str = sys.executable, env: Mapping[str, str] | None = None,
              timeout: float = 300.0) -> FlaDevice:
    try:
        proc = subprocess.run([python, "-c", Path(__file__).read_text()], capture_output=True, text=True, timeout=timeout,
                              env=None if env is None else dict(env))
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        return FlaDevice(None, error=f"the fla device probe did not finish: {exc}")
    if "import_error" in data:
        return FlaDevice(None, error=data["import_error"])
    return FlaDevice(data["device"], torch_cuda=data.get("torch_cuda"), triton_error=data.get("triton_error", ""),
                     compiler_error=compiler_error(proc.stderr))


def compiler_error(stderr: str) -> str:
    """The compiler's or linker's own complaint (Triton lets it print to
    stderr and raises only CalledProcessError with the command line)."""
    lines = [line.strip() for line in stderr.splitlines()]
    # The cause before the summary: "ld: cannot find -lcuda" comes before
    # "collect2: error: ld returned 1 exit status".
    for marker in ("cannot find", "fatal error", "undefined reference", "error"):
        hits = [line for line in lines if marker in line.lower()]
        if hits:
            return hits[-1][:300]
    return ""


def likely_cause(result: FlaDevice, environ: Mapping[str, str]) -> tuple[str, str]:
    """(cause, fix) for an answer other than 'cuda', from what Triton raised."""
    err = result.triton_error
    lib = environ.get("TRITON_LIBCUDA_PATH", "")
    if result.torch_cuda is False:
        return ("torch sees no CUDA device (torch.cuda.is_available() is False), so Triton has no active driver",
                "check the libcuda row (the driver library must load) and CUDA_VISIBLE_DEVICES")
    if "Failed to find C compiler" in err:
        return ("no C compiler: Triton compiles a launcher when its CUDA driver starts",
                "set CC or put gcc/clang on PATH (the flake's apps and devShell do)")
    if "ldconfig" in err or "libcuda.so cannot found" in err:
        return ("Triton cannot locate libcuda: TRITON_LIBCUDA_PATH is unset and /sbin/ldconfig is missing "
                "(NixOS) or lists no libcuda.so.1",
                "export TRITON_LIBCUDA_PATH=<directory holding libcuda.so> (the flake's apps do)")
    if "CalledProcessError" in err:
        if "-lcuda" in result.compiler_error or (lib and not Path(lib, "libcuda.so").exists()):
            return (f"Triton cannot link its launcher with -lcuda: TRITON_LIBCUDA_PATH={lib or '(unset)'} "
                    f"holds no libcuda.so",
                    "point TRITON_LIBCUDA_PATH at a directory with libcuda.so (a link to libcuda.so.1 will do)")
        return (f"Triton could not compile its launcher: {result.compiler_error or err}",
                "check CC (a working C compiler) and the Python headers")
    return (f"Triton's CUDA driver did not start: {err or 'no error raised on a second try'}", "")


if __name__ == "__main__":
    print(json.dumps(probe()))
