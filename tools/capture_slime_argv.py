#!/usr/bin/env python3
"""Record the exact train.py argv that slime's Qwen3-Next scripts pass.

Runs each script from a slime checkout with `ray`, `ssh`, `pkill`, `sleep`
and `nvidia-smi` replaced by stubs on PATH, so nothing is started or killed:
the `ray job submit` stub writes its argv to a file. The result is the
golden data the runner's recipes are tested against
(tests/data/slime_argv/<recipe>.json), with its provenance.

usage: tools/capture_slime_argv.py SLIME_CHECKOUT [--base-folder /root]

SLIME_CHECKOUT must be a work tree at the pinned commit (git archive REV |
tar -x), e.g. made from `git archive 3d7599aa... | tar -x -C /tmp/slime`.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPTS = {
    "megatron-8gpu": "scripts/run-qwen3-next-80B-A3B-8gpus.sh",
    "megatron-multinode": "scripts/run-qwen3-next-80B-A3B.sh",
    "fsdp": "scripts/run-qwen3-next-80B-A3B-fsdp.sh",
}

# `ray job submit ... -- python3 train.py ARGS`: keep everything after "--".
RAY_STUB = """#!/bin/sh
if [ "$1" = job ] && [ "$2" = submit ]; then
  python3 - "$@" <<'PY'
import json, os, sys
argv = sys.argv[1:]
with open(os.environ["CAPTURE_OUT"], "w") as f:
    json.dump(argv, f)
PY
fi
exit 0
"""
NOOP_STUB = "#!/bin/sh\nexit 0\n"


def _stub_dir(root: Path) -> Path:
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for name, body in {"ray": RAY_STUB, "ssh": NOOP_STUB, "pkill": NOOP_STUB,
                       "sleep": NOOP_STUB, "nvidia-smi": NOOP_STUB}.items():
        path = bin_dir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def capture(slime: Path, script: str, base_folder: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        bin_dir = _stub_dir(tmp_path)
        out = tmp_path / "argv.json"
        # An empty cwd: the scripts' unquoted $MOE_LAYER_FREQ is a glob
        # pattern, so a file named "1" in cwd would change the result.
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HOME": tmp,
            "BASE_FOLDER": base_folder,
            "MASTER_ADDR": "127.0.0.1",
            "CAPTURE_OUT": str(out),
        }
        subprocess.run(["bash", str(slime / script)], cwd=cwd, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ray_argv = json.loads(out.read_text())
    sep = ray_argv.index("--")
    runtime_env = None
    for arg in ray_argv[:sep]:
        if arg.startswith("--runtime-env-json="):
            runtime_env = arg.split("=", 1)[1]
    return {"ray_job_submit_options": ray_argv[2:sep], "runtime_env_json_text": runtime_env,
            "entrypoint": ray_argv[sep + 1:]}


# The seed doc's conversion command (docs/en/examples/qwen3-next-80B-A3B.md),
# run from the slime checkout with a torchrun stub that records its argv.
SEED_CONVERT = """
source scripts/models/qwen3-next-80B-A3B.sh
PYTHONPATH=/root/Megatron-LM/ torchrun --nproc-per-node 8 \\
   tools/convert_hf_to_torch_dist.py \\
   ${MODEL_ARGS[@]} \\
   --hf-checkpoint /root/Qwen3-Next-80B-A3B-Thinking/ \\
   --save /root/Qwen3-Next-80B-A3B-Thinking_torch_dist/
"""
TORCHRUN_STUB = """#!/bin/sh
python3 -c 'import json, os, sys; json.dump({"argv": sys.argv[1:], "PYTHONPATH": os.environ.get("PYTHONPATH")}, open(os.environ["CAPTURE_OUT"], "w"))' "$@"
"""


def capture_convert(slime: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = Path(tmp) / "bin"
        bin_dir.mkdir()
        stub = bin_dir / "torchrun"
        stub.write_text(TORCHRUN_STUB)
        stub.chmod(0o755)
        out = Path(tmp) / "argv.json"
        env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": tmp, "CAPTURE_OUT": str(out)}
        subprocess.run(["bash", "-c", SEED_CONVERT], cwd=slime, env=env, check=True)
        recorded = json.loads(out.read_text())
    return {"torchrun_argv": recorded["argv"], "PYTHONPATH": recorded["PYTHONPATH"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("slime", type=Path)
    parser.add_argument("--commit", required=True, help="the commit the checkout was made from")
    parser.add_argument("--base-folder", default="/root")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/data/slime_argv")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for recipe, script in SCRIPTS.items():
        record = {"recipe": recipe, "source": {"repo": "THUDM/slime", "commit": args.commit, "file": script},
                  "base_folder": args.base_folder,
                  "how": "tools/capture_slime_argv.py: the script run with stubbed ray/ssh/pkill/nvidia-smi",
                  **capture(args.slime, script, args.base_folder)}
        (args.out / f"{recipe}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{recipe}: {len(record['entrypoint'])} entrypoint words")
    convert = {"what": "the seed doc's torchrun conversion command",
               "source": {"repo": "THUDM/slime", "commit": args.commit,
                          "file": "scripts/models/qwen3-next-80B-A3B.sh + seed doc command"},
               "how": "tools/capture_slime_argv.py: MODEL_ARGS sourced in bash, torchrun stubbed",
               **capture_convert(args.slime)}
    (args.out / "convert.json").write_text(json.dumps(convert, indent=1) + "\n")
    print(f"convert: {len(convert['torchrun_argv'])} torchrun words")
    return 0


if __name__ == "__main__":
    sys.exit(main())
