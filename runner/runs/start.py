"""Start a planned run: take the machine lock, create the run directory and
its run.json, then supervise in the foreground or hand over to a detached
supervisor. The thin side-effect layer of `train` (planning is
runner.commands.train and runner.runs.setup)."""

from __future__ import annotations

import os
import shlex
import sys
from typing import Mapping

from runner.checks.preflight import other_ray_problem
from runner.kernel_cache import cache_entries
from runner.locations import Setting
from runner.runs import provenance
from runner.runs.bundle import LaunchBundle
from runner.runs.identity import hostname, identity
from runner.runs.machine_lock import MachineLockBusy, acquire
from runner.runs.manifest import RunContext, build_record
from runner.runs.record import create_record
from runner.runs.setup import run_dir_contents


def _log(msg: str) -> None:
    print(f"[runner] {msg}", file=sys.stderr, flush=True)


def run_ref(run_id: str, runs_dir: Setting) -> str:
    """How later commands name this run from any directory and shell: its id and --runs-dir (absolute).
    (While it runs, `status`, `logs` and `stop` also find it through the machine lock; once it ended,
    only its runs dir does.)"""
    return f"{run_id} --runs-dir {shlex.quote(runs_dir.value)}"


def start_run(tp, ctx: RunContext, secrets: list[str], environ: Mapping[str, str] = os.environ) -> int:  # noqa: ANN001
    setup = ctx.setup
    paths = setup.paths
    try:
        lock_fd = acquire(environ, setup.run_id, str(paths.dir), os.getpid())
    except MachineLockBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # A Ray that no run of ours started (slime's scripts, another user) blocks this one as surely.
    # Checked here rather than in the plan, so that a dry-run does not depend on what else runs.
    other = other_ray_problem()
    if other:
        os.close(lock_fd)
        print(f"error: {other}", file=sys.stderr)
        return 2
    software = provenance.collect(python=tp.job.argv[0], pythonpath=tp.runtime_env["env_vars"].get("PYTHONPATH"),
                                  slime_dir=ctx.locations.slime_dir.value,
                                  megatron_dir=ctx.locations.megatron_dir.value, environ=environ)
    entries = {var: cache_entries(path) for var, path in setup.kernel_cache.env.items()}
    record = build_record(tp, ctx, software, secrets, hostname(), entries)
    # This process owns the run until a detached supervisor records itself.
    record["supervisor"] = {**identity(os.getpid()), "detached": False}
    if setup.prepared:  # `train --slurm` made the directory and a queued run.json: take them over
        from runner.runs.slurm_run import claim

        problem = claim(paths, record)
        if problem:
            os.close(lock_fd)
            print(f"error: {problem}", file=sys.stderr)
            return 2
    else:
        create_record(paths, record)
    ref = run_ref(setup.run_id, setup.runs_dir)
    launch = LaunchBundle.of(tp)
    if ctx.detach:
        from runner.runs.detach import start_supervisor, wait_until_running

        _log(f"run {setup.run_id}: {paths.dir}; starting detached (the supervisor's output: {paths.runner_log})")
        popen = start_supervisor(launch, paths, ready_timeout=ctx.ready_timeout, lock_fd=lock_fd)
        os.close(lock_fd)  # the supervisor holds the lock now
        try:
            rc = wait_until_running(popen, paths)
        except KeyboardInterrupt:
            _log(f"stopped waiting; run {setup.run_id} goes on detached: `python -m runner stop {ref}` stops it")
            return 130
        if rc == 0:
            _log(f"run {setup.run_id} is running, detached: it goes on without this terminal.\n"
                 f"    python -m runner status {ref}\n"
                 f"    python -m runner logs -f {ref}\n"
                 f"    python -m runner stop {ref}\n"
                 f"  run directory: {paths.dir} ({run_dir_contents(setup, detach=True)})")
        else:
            _log(f"run {setup.run_id} ended before its job ran (exit {rc}); see {paths.runner_log}")
        return rc
    from runner.runs.supervisor import supervise

    _log(f"run {setup.run_id}: {paths.dir} ({run_dir_contents(setup, detach=False)})")
    _log("this run ends with this terminal (Ctrl-C stops it); to let a run outlive the terminal, start it with "
         f"--detach, then `python -m runner status|logs -f|stop {ref}`")
    try:
        return supervise(launch, paths, ctx.ready_timeout, detached=False)
    finally:
        os.close(lock_fd)
