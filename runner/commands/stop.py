"""`stop RUN`: stop a run's job, then the Ray processes that run started, and nothing else.

The run's runner (a detached run's supervisor, or the foreground `train`)
gets SIGTERM: it stops the job through Ray, then its Ray head and workers,
and records "stopped". If that runner is gone (killed, or the machine
rebooted), whatever is left of the run is found through its run directory
(its run id in the processes' environment, its Ray temp dir in their command
lines) and stopped. Never by name. Run it on the head node.

examples:
  python -m runner stop megatron-8gpu-20261129-013012-a3f2
  python -m runner stop megatron-8gpu-20261129-013012-a3f2 --dry-run
"""

from __future__ import annotations

import argparse

from runner.commands.options import add_lookup_arguments, load_named_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lookup_arguments(p)
    p.add_argument("--timeout", type=float, default=180.0,
                   help="seconds the runner gets to stop the job and Ray before SIGKILL (default %(default)s)")


def run(args) -> int:
    from runner.runs.stop import describe_stop, stop_run

    found = load_named_run(args)  # an unreadable run.json: one line, exit 2, nothing signalled
    if found is None:
        return 2
    paths = found[0]
    if args.dry_run:
        print("\n".join(describe_stop(paths)))
        return 0
    return stop_run(paths, timeout=args.timeout)
