"""Does SLIME_DIR's slime resume at the checkpoint's rollout? Judged by behaviour.

slime 3d7599aa's slime_validate_args sets `args.start_rollout_id = 0` in every
case, and create_training_models takes the checkpoint's rollout id only when
it is None: a resumed run trains from rollout 0 again and overwrites its
checkpoints (patches/slime/resume-start-rollout-id-from-checkpoint.patch).

The check runs SLIME_DIR's own `slime_validate_args`, on arguments from
slime's own parser (its defaults), in a child interpreter, twice:
  resume: --load names a folder whose latest_checkpointed_iteration.txt says
          19: slime must leave start_rollout_id unset (None), so that the
          checkpoint decides;
  fresh:  --load names an empty folder: slime must set 0. This is the
          control: it shows the child reached slime's start-id logic at all.
Only what the function writes to start_rollout_id counts, so a newer slime
that restructured the block (upstream did) passes as long as it behaves.

The child imports no third-party package: the few that slime's arguments
module imports at its top (yaml, transformers, sglang_router, and slime's
sglang bridge, which imports sglang) are replaced by empty modules; none of
them decides the rollout id. Attributes that only Megatron's or FSDP's parser
would add read as None; whatever slime does after the start-id block (its
other assertions may trip on such values) is caught and ignored.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PATCH = "patches/slime/resume-start-rollout-id-from-checkpoint.patch"
ARGUMENTS = Path("slime") / "utils" / "arguments.py"
KEEPS, RESETS, UNKNOWN, ABSENT = "keeps", "resets", "unknown", "absent"

_CHILD = r'''
import argparse, json, os, sys, types

slime_dir, resume_dir, fresh_dir = sys.argv[1:4]
sys.path.insert(0, slime_dir)


def empty_module(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


class _NoCliArgs:
    @staticmethod
    def add_cli_args(parser, *args, **kwargs):
        return parser


empty_module("yaml", safe_load=lambda *a, **k: {}, dump=lambda *a, **k: "")
empty_module("transformers", AutoConfig=None)
empty_module("sglang_router")
empty_module("sglang_router.launch_router", RouterArgs=_NoCliArgs)
empty_module("slime.backends.sglang_utils.arguments", add_sglang_arguments=lambda parser: parser,
             validate_args=lambda args: None)

from slime.utils import arguments as slime_arguments  # noqa: E402

parser = argparse.ArgumentParser(allow_abbrev=False)
slime_arguments.get_slime_extra_args_provider()(parser)
for action in parser._actions:  # defaults are all we want: required flags read as None
    action.required = False


class Args(argparse.Namespace):
    """slime's parsed defaults; what Megatron's/FSDP's parser would add reads as None."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def __setattr__(self, name, value):
        if name == "start_rollout_id":
            writes.append(value)
        super().__setattr__(name, value)


result = {}
for case, load in (("resume", resume_dir), ("fresh", fresh_dir)):
    writes = []
    namespace, _ = parser.parse_known_args(["--load", load, "--save", load])
    args = Args(**vars(namespace))
    writes.clear()  # the parser's own default, not slime_validate_args
    error = None
    try:
        slime_arguments.slime_validate_args(args)
    except BaseException as exc:  # later assertions on stand-in values: after the start-id logic
        error = f"{type(exc).__name__}: {exc}"[:300]
    result[case] = {"writes": [repr(w) for w in writes], "error": error}
json.dump(result, sys.stdout)
'''


@dataclass(frozen=True)
class ResumeVerdict:
    state: str  # KEEPS, RESETS, UNKNOWN (could not tell), ABSENT (no slime arguments module)
    detail: str


def _run_child(slime_dir: Path, python: str, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="slime-resume-check-") as tmp:
        resume, fresh = Path(tmp, "resume"), Path(tmp, "fresh")
        (resume / "iter_0000019").mkdir(parents=True)
        (resume / "latest_checkpointed_iteration.txt").write_text("19")
        fresh.mkdir()
        # -I -S: no PYTHONPATH, user site or site-packages: only slime's code and the standard library.
        proc = subprocess.run([python, "-I", "-S", "-c", _CHILD, str(slime_dir), str(resume), str(fresh)],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise RuntimeError(last)
    return json.loads(proc.stdout)


def check_resume(slime_dir: str | Path, python: str = sys.executable, timeout: float = 60) -> ResumeVerdict:
    """Run slime's own slime_validate_args from `slime_dir` on a resume and a fresh start."""
    slime_dir = Path(slime_dir)
    if not (slime_dir / ARGUMENTS).is_file():
        return ResumeVerdict(ABSENT, f"no {ARGUMENTS} under {slime_dir}")
    try:
        result = _run_child(slime_dir, python, timeout)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        return ResumeVerdict(UNKNOWN, f"could not run slime's slime_validate_args from {slime_dir}: {exc}")
    fresh, resume = result["fresh"], result["resume"]
    if "0" not in fresh["writes"]:
        why = fresh["error"] or f"it wrote {fresh['writes'] or 'nothing'} to start_rollout_id"
        return ResumeVerdict(UNKNOWN, f"slime's slime_validate_args in {slime_dir} did not set start_rollout_id "
                                      f"= 0 for a fresh start ({why}): cannot tell how it resumes")
    reset = [w for w in resume["writes"] if w != "None"]
    if reset:
        return ResumeVerdict(RESETS, f"slime in {slime_dir} restarts a resumed run at rollout {reset[-1]}: its "
                                     f"slime_validate_args overwrites the checkpoint's start_rollout_id, so a resume "
                                     f"trains from the start again and overwrites its checkpoints")
    return ResumeVerdict(KEEPS, f"slime in {slime_dir} leaves start_rollout_id to the checkpoint on resume")


def fix_hint(slime_dir: str | Path, repo_root: Path | None = None) -> str:
    patch = (repo_root / PATCH) if repo_root else Path(PATCH)
    return (f"apply {PATCH} (backports upstream c1fd2bac1 and b91f59e2): patch -p1 -d {slime_dir} < {patch}; "
            f"the flake's apps and tools/without-nix.sh apply it")
