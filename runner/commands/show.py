"""`show RUN`: what a run was, readably: recipe and overrides, checkpoint folder,
locations, hosts and GPUs, Ray, logs, kernel caches, the software (runner
revision, pins digest, flake inputs, store paths, package versions), and the
job's argv and environment (secrets were never recorded). --json prints
run.json itself.

examples:
  python -m runner show megatron-8gpu-20261129-013012-a3f2
  python -m runner show megatron-8gpu --json     # a unique prefix is enough
"""

from __future__ import annotations

import argparse
import json

from runner.commands.options import add_lookup_arguments, load_named_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lookup_arguments(p)


def run(args) -> int:
    from runner.runs.identity import effective_state
    from runner.runs.report import show_lines

    found = load_named_run(args)
    if found is None:
        return 2
    _, record = found
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print("\n".join(show_lines(record, *effective_state(record))))
    return 0
