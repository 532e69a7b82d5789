"""`smoke`: train a tiny, randomly initialised Qwen3-Next with FSDP2 on this machine.

Proves that the stack trains Qwen3-Next correctly and on the fast path
(fla chunk_gated_delta_rule, causal-conv1d) before spending node-hours:
loss falls, kernels used, tokens/s, step time, peak memory, MFU.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from runner import smoke

    smoke.add_arguments(p)


def run(args) -> int:
    from runner import smoke
    from runner.commands.common import print_plan

    if args.dry_run:
        plan = smoke.build_plan(args)
        for problem in smoke.machine_problems(args, os.environ):
            plan.error(problem)
        return print_plan(plan, args, [])
    sys.stdout.flush()
    return smoke.run(args)
