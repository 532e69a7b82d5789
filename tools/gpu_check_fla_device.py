"""On a GPU machine: does doctor's fla device check (runner/checks/fla_device.py)
see what really happens, and does nix/find-libcuda.sh work on a real host?

    python3 tools/gpu_check_fla_device.py --fla-src DIR [--out FILE]

DIR holds fla at 9714c595 (the directory that contains fla/). Each case runs
doctor's own probe (the real fla, the real Triton) in a fresh process with a
fresh Triton cache (a cached launcher would hide a missing compiler), and
prints one JSON line: the case, fla's answer, and doctor's likely cause.

Expected: plain -> cuda; no-compiler -> cpu, "no C compiler";
no-ldconfig -> cpu, "Triton cannot locate libcuda" (needs `unshare -m`,
else reported as skipped); finder -> cuda, with the finder's exports, and
finder-no-ldconfig -> cuda (TRITON_LIBCUDA_PATH from the finder replaces
/sbin/ldconfig, as on NixOS).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runner.checks.fla_device import FlaDevice, compiler_error, likely_cause  # noqa: E402


def finder_env(base: dict) -> dict:
    """The environment after the wrappers' `source nix/find-libcuda.sh`."""
    out = subprocess.run(["bash", "-c", f'set -euo pipefail; source "{REPO / "nix" / "find-libcuda.sh"}"; env -0'],
                         env=base, capture_output=True, check=True)
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


def hide_sbin(cmd: list[str]) -> list[str] | None:
    """Run cmd with an empty directory over /sbin (where Triton looks for
    ldconfig), in a private mount namespace; None where that is not allowed."""
    empty = tempfile.mkdtemp(prefix="empty-sbin-")
    sbin = os.path.realpath("/sbin")
    wrap = ["unshare", "-m", "sh", "-c", f'mount --bind "{empty}" "{sbin}" && exec "$0" "$@"']
    if shutil.which("unshare") is None or subprocess.run([*wrap, "true"], capture_output=True).returncode:
        return None
    return [*wrap, *cmd]


def probe(env: dict, hide_ldconfig: bool = False) -> dict:
    env = {**env, "TRITON_CACHE_DIR": tempfile.mkdtemp(prefix="triton-cache-")}
    cmd = [sys.executable, "-c", (REPO / "runner" / "checks" / "fla_device.py").read_text()]
    if hide_ldconfig:
        cmd = hide_sbin(cmd)
        if cmd is None:
            return {"skipped": "cannot hide /sbin/ldconfig here (unshare -m not permitted)"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": proc.stderr[-2000:]}
    if "import_error" in data:
        return data
    result = FlaDevice(data["device"], torch_cuda=data.get("torch_cuda"), triton_error=data.get("triton_error", ""),
                       compiler_error=compiler_error(proc.stderr))
    out = {"device": result.device}
    if result.device != "cuda":
        out["cause"], out["fix"] = likely_cause(result, env)
        out["triton_error"] = result.triton_error
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fla-src", required=True, type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not (args.fla_src / "fla" / "utils.py").is_file():
        print(f"error: {args.fla_src}/fla/utils.py not found: --fla-src must hold fla 9714c595", file=sys.stderr)
        return 2
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLIME_RUNNER_", "TRITON_"))}
    base["PYTHONPATH"] = os.pathsep.join([str(args.fla_src), base.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    base["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="xdg-cache-")
    no_compiler = {k: v for k, v in base.items() if k not in ("CC", "CXX")}
    no_compiler["PATH"] = "/nonexistent"
    found = finder_env(base)
    finder = {k: found.get(k, "") for k in ("SLIME_RUNNER_LIBCUDA_SOURCE", "SLIME_RUNNER_LIBCUDA_DIR",
                                            "SLIME_RUNNER_DRIVER_LIBS", "TRITON_LIBCUDA_PATH", "LD_LIBRARY_PATH")}
    if found.get("SLIME_RUNNER_DRIVER_LIBS"):
        finder["driver_libs"] = sorted(os.listdir(found["SLIME_RUNNER_DRIVER_LIBS"]))
    cases = {
        "plain": lambda: probe(base),
        "no-compiler": lambda: probe(no_compiler),
        "no-ldconfig": lambda: probe(base, hide_ldconfig=True),
        "finder": lambda: {**probe(found), "finder": finder},
        "finder-no-ldconfig": lambda: probe(found, hide_ldconfig=True),
    }
    lines = []
    for name, run in cases.items():
        line = json.dumps({"case": name, **run()})
        print(line, flush=True)
        lines.append(line)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
