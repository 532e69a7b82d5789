"""`smoke`: train a tiny, randomly initialised Qwen3-Next with FSDP2 on this machine.

Proves that the stack trains Qwen3-Next correctly and on the fast path
(fla chunk_gated_delta_rule, causal-conv1d) before spending node-hours:
loss falls, kernels used, tokens/s, step time, peak memory, MFU.
"""

from __future__ import annotations

import argparse
import os
import sys

from runner.commands.options import add_kernel_cache_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from runner.smoke import config as C

    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda: FSDP2 over NCCL on the GPUs, fast kernels required (default); "
                             "cpu: tiny model, gloo, transformers' torch fallback")
    parser.add_argument("--nproc", type=int, default=None,
                        help="processes (GPUs) to use; default: every visible GPU (cuda), 2 (cpu)")
    parser.add_argument("--fsdp-cpu-offload", action="store_true",
                        help="keep the fp32 parameters, gradients and AdamW state on the CPU (FSDP2 "
                             "CPUOffloadPolicy), as slime's --fsdp-cpu-offload does; reports host memory too "
                             "(no MFU floor unless --min-mfu is given: the optimizer step runs on the CPU)")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON instead of a table")
    add_kernel_cache_argument(parser, "Triton/flashinfer/torch-extension caches under DIR (default: the "
                                      "environment's, else ~/.cache/slime-qwen3-next/kernels); an empty DIR times "
                                      "a cold start")
    parser.add_argument("--result-file", default=None,
                        help="where the worker writes its JSON (default: a file in the temp directory, removed after)")
    sizes = parser.add_argument_group("smoke model and training (defaults depend on --device)")
    for k in C.KNOBS:
        sizes.add_argument("--" + k.name.replace("_", "-"), dest=k.name, type=k.type, default=None,
                           help=f"{k.help} (cuda {k.cuda}, cpu {k.cpu})")


def request_from_args(args: argparse.Namespace):  # noqa: ANN201 - a smoke.SmokeRequest
    from runner.smoke import SmokeRequest
    from runner.smoke import config as C

    return SmokeRequest(device=args.device, nproc=args.nproc, fsdp_cpu_offload=args.fsdp_cpu_offload, json=args.json,
                        kernel_cache=args.kernel_cache, result_file=args.result_file,
                        dry_run=getattr(args, "dry_run", False), knobs={k: getattr(args, k) for k in C.KNOB_NAMES})


def run(args) -> int:
    from runner import smoke
    from runner.commands.common import print_plan

    request = request_from_args(args)
    if args.dry_run:
        plan = smoke.build_plan(request)
        for problem in smoke.machine_problems(request, os.environ):
            plan.error(problem)
        return print_plan(plan, args, [])
    sys.stdout.flush()
    return smoke.run(request)
