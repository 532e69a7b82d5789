"""The options several subcommands share, declared once: locations, the recipe's overrides, the kernel
cache, a run and where to look for it; and the lookups of a named run they print their errors for.

argparse lives in runner/commands/ only: the rest of the runner takes typed values, which the
`..._from_args` helpers here read off a parsed Namespace.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from runner.locations import Locations, resolve_locations
from runner.runs.layout import RunPaths

if TYPE_CHECKING:  # `runs` and `status` answer fast: they import none of what checks a request
    from runner.checks.request import OverrideLayer
    from runner.runs.setup import RunRequest


def add_location_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("locations (flags win over the environment)")
    g.add_argument("--base-folder", help="checkpoints and data live here ($BASE_FOLDER, default ./models)")
    g.add_argument("--slime-dir", help="slime checkout ($SLIME_DIR; the flake's apps set it)")
    g.add_argument("--megatron-dir", help="Megatron-LM checkout ($MEGATRON_DIR; the flake's apps set it)")
    g.add_argument("--master-addr", help="head node address ($MASTER_ADDR; default 127.0.0.1 on one node)")


def locations_from_args(args: argparse.Namespace, environ: Mapping[str, str],
                        default_master_addr: str | None = "127.0.0.1") -> Locations:
    return resolve_locations(base_folder=getattr(args, "base_folder", None), slime_dir=getattr(args, "slime_dir", None),
                             megatron_dir=getattr(args, "megatron_dir", None),
                             master_addr=getattr(args, "master_addr", None), environ=environ,
                             default_master_addr=default_master_addr)


def add_override_arguments(p: argparse.ArgumentParser) -> None:
    o = p.add_argument_group("changing the recipe")
    o.add_argument("--set", dest="set_flags", action="append", default=[], metavar="FLAG=VALUE",
                   help="set a slime flag, e.g. --set lr=2e-6, --set 'sglang-cuda-graph-bs=1 2 4', "
                        "--set use-wandb (switch); repeatable")
    o.add_argument("--unset", action="append", default=[], metavar="FLAG", help="remove a recipe flag; repeatable")
    o.add_argument("--low-memory", action="store_true",
                   help="the seed's OOM advice: drop --accumulate-allreduce-grads-in-fp32, add --grad-reduce-in-bf16")


def override_layer_from_args(args: argparse.Namespace) -> OverrideLayer:
    """This invocation's --set/--unset/--low-memory and the slime flags after `--`."""
    from runner.checks.request import OverrideLayer

    return OverrideLayer(tuple(getattr(args, "set_flags", None) or ()), tuple(getattr(args, "unset", None) or ()),
                         bool(getattr(args, "low_memory", False)), tuple(getattr(args, "slime_args", None) or ()))


def run_request_from_args(args: argparse.Namespace) -> RunRequest:
    """`train`'s options about its run (runner.runs.setup)."""
    from runner.runs.setup import RunRequest

    return RunRequest(recipe=getattr(args, "recipe", None), layer=override_layer_from_args(args).to_record(),
                      resume=getattr(args, "resume", None), accept_changes=bool(getattr(args, "accept_changes", False)),
                      runs_dir=getattr(args, "runs_dir", None), base_folder=getattr(args, "base_folder", None),
                      kernel_cache=getattr(args, "kernel_cache", None),
                      keep_checkpoints=getattr(args, "keep_checkpoints", None),
                      notify_cmd=getattr(args, "notify_cmd", None))


def add_kernel_cache_argument(p, help: str) -> None:  # noqa: ANN001 - a parser or an argument group
    p.add_argument("--kernel-cache", metavar="DIR", default=None, help=help)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the run (a directory with run.json, job.log and checkpoints/; README \"Long runs\")")
    g.add_argument("--detach", action="store_true",
                   help="return once the job runs; Ray and the job go on without this terminal "
                        "(then: status, logs -f, stop)")
    g.add_argument("--resume", metavar="RUN",
                   help="continue RUN (an id or run directory) from its latest complete checkpoint (an incomplete "
                        "newer one is skipped with slime's --ckpt-step, and the plan says why) with its recorded recipe "
                        "and overrides (changing them needs --accept-changes), or continue a checkpoint folder that "
                        "no run wrote (give --recipe)")
    add_runs_dir_argument(g)
    g.add_argument("--keep-checkpoints", type=positive_int, metavar="K",
                   help="keep the K newest complete checkpoints in --save and delete older ones as new ones "
                        "complete (never the tracker's, nor one being written); default: keep all, as slime "
                        "does (about 1 TB each at 80B: `plan` shows the size). Recorded; --resume carries it")
    g.add_argument("--notify-cmd", metavar="CMD",
                   help="run CMD (through the shell) on start, failure, restart, hang, low disk, resume "
                        "misalignment and end, with the event as JSON on stdin, e.g. --notify-cmd "
                        "'mail -s slime me@example.org'. Recorded in run.json: keep secrets out of CMD (read "
                        "them from the environment). A Slack-compatible webhook: export "
                        "SLIME_NOTIFY_WEBHOOK=URL (a secret: never recorded). --resume carries CMD")
    add_keeper_arguments(p)
    add_kernel_cache_argument(
        g, "Triton, flashinfer and torch-extension caches under DIR, e.g. on storage all nodes share "
           "(default: the environment's TRITON_CACHE_DIR etc., else ~/.cache/slime-qwen3-next/kernels)")


def _max_restarts(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of restarts (0 or more)")
    return value


def _backoff(text: str) -> str:
    """Checked here, kept as typed (train --slurm passes it on to the batch script's train)."""
    from runner.runs.restart_policy import parse_backoff

    try:
        parse_backoff(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
    return text


def _hang_timeout(text: str) -> str:
    from runner.runs.hang import HangSpecError, parse_hang_timeouts

    try:
        parse_hang_timeouts([text])
    except HangSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
    return text


def add_keeper_arguments(p: argparse.ArgumentParser) -> None:
    from runner.runs.restart_policy import DEFAULT_BACKOFF_S, DEFAULT_MAX_RESTARTS

    k = p.add_argument_group("keeping a long run (README \"When things fail\")")
    k.add_argument("--max-restarts", type=_max_restarts, metavar="N",
                   help=f"detached runs: restart a failed or hung attempt from the latest complete checkpoint up to "
                        f"N times (default {DEFAULT_MAX_RESTARTS}; 0 never restarts); foreground runs never restart")
    k.add_argument("--restart-backoff", type=_backoff, metavar="S,S,...",
                   help="seconds to wait before restart 1, 2, ...; the last repeats (default "
                        f"{','.join(f'{s:g}' for s in DEFAULT_BACKOFF_S)})")
    k.add_argument("--hang-timeout", action="append", default=[], type=_hang_timeout, metavar="PHASE=MINUTES",
                   help="minutes a phase may go without progress (a floor: the limit grows to 5x the phase's "
                        "longest recent duration); PHASE: startup, train, update_weights, save_model, rollout, "
                        "eval, offload, other; repeatable; `off` turns hang detection off")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def add_runs_dir_argument(p) -> None:  # noqa: ANN001 - a parser or an argument group
    p.add_argument("--runs-dir", metavar="DIR",
                   help="where runs live ($SLIME_RUNS_DIR; default $BASE_FOLDER/runs)")


def add_lookup_arguments(p: argparse.ArgumentParser, run_required: bool | None = True) -> None:
    """RUN and where to look for it (runs, show, status, logs, stop)."""
    if run_required is not None:
        p.add_argument("run", nargs=None if run_required else "?", metavar="RUN",
                       help="a run id (or a unique prefix of one), or the path of a run directory"
                            + ("" if run_required else "; default: every active run"))
    add_runs_dir_argument(p)
    p.add_argument("--base-folder", help="$BASE_FOLDER: runs live in BASE_FOLDER/runs unless --runs-dir says otherwise")


def listable_runs_root(args: argparse.Namespace) -> Path | None:
    """runs_root(args) for a listing, or None once the reason is on stderr (the command exits 2): a runs
    dir that is a file (or cannot be listed) is not an empty one."""
    import os
    import sys

    from runner.runs.layout import resolve_runs_dir

    setting = resolve_runs_dir(getattr(args, "runs_dir", None), getattr(args, "base_folder", None), os.environ)
    root = runs_root(args)
    if root.exists() and not root.is_dir():
        print(f"error: runs dir {root} (from {setting.source}) is a file, not a directory; name the runs dir with "
              f"--runs-dir DIR or $SLIME_RUNS_DIR", file=sys.stderr)
        return None
    if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
        print(f"error: runs dir {root} (from {setting.source}) cannot be read; name another with --runs-dir DIR",
              file=sys.stderr)
        return None
    return root


def runs_root(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Path:
    import os

    from runner.runs.layout import resolve_runs_dir

    environ = os.environ if environ is None else environ
    return Path(resolve_runs_dir(getattr(args, "runs_dir", None), getattr(args, "base_folder", None),
                                 environ).value)


def active_run(environ: Mapping[str, str] | None = None) -> RunPaths | None:
    """RunPaths of the run active on this machine (it holds the machine lock), whatever the runs dir,
    or None."""
    import os

    from runner.runs.layout import RUN_JSON
    from runner.runs.machine_lock import active_holder

    holder = active_holder(os.environ if environ is None else environ)
    if holder is None or not os.path.isabs(str(holder["run_dir"])):
        return None
    paths = RunPaths(Path(holder["run_dir"]))
    return paths if (paths.dir / RUN_JSON).is_file() else None


def find_named_run(args: argparse.Namespace) -> RunPaths | None:
    """The run directory args.run names, or None once the reason is on stderr (the command exits 2).

    Under the runs dir first; else the run active on this machine when RUN names it (its id, a prefix
    of it, or its directory): found from any directory and shell, whatever BASE_FOLDER says there."""
    import os
    import sys

    from runner.runs.layout import RunNotFound, find_run

    try:
        return find_run(runs_root(args), args.run)
    except RunNotFound as exc:
        active = active_run()
        if active is not None and (active.id.startswith(args.run) or os.path.abspath(args.run) == str(active.dir)):
            print(f"(run {active.id} is active on this machine: {active.dir})", file=sys.stderr)
            return active
        print(f"error: {exc}", file=sys.stderr)
        return None


def load_named_run(args: argparse.Namespace) -> tuple[RunPaths, dict] | None:
    """(run directory, its run.json) for args.run, or None once the reason is on stderr (the command exits 2).
    A run directory copied or moved elsewhere is read where it is (runner.runs.record.relocated)."""
    import sys

    from runner.runs.record import BadRecord, load_record, relocated

    paths = find_named_run(args)
    if paths is None:
        return None
    try:
        return paths, relocated(load_record(paths), paths.dir)
    except BadRecord as exc:
        print(f"error: run {paths.id}: {exc}", file=sys.stderr)
        return None


def readable_runs(root: Path) -> list[tuple[RunPaths, dict]]:
    """(run directory, run.json) of every run under root, oldest first; an unreadable run.json is skipped
    with a one-line warning on stderr (a listing must not hide it, nor fail over it)."""
    import sys

    from runner.runs.layout import list_runs
    from runner.runs.record import BadRecord, load_record, relocated

    out = []
    for paths in list_runs(root):
        try:
            out.append((paths, relocated(load_record(paths), paths.dir)))
        except BadRecord as exc:
            print(f"warning: skipped run {paths.id}: {exc}", file=sys.stderr)
    return out
