"""`runner smoke`: prove that this machine's stack trains Qwen3-Next on the fast path.

Builds a small, randomly initialised transformers Qwen3NextForCausalLM shaped
like Qwen3-Next-80B-A3B (3 Gated DeltaNet : 1 gated attention, MoE with a
shared expert and top-k routing, the 80B head dims), trains it for a few steps
with FSDP2 (`fully_shard`) under torchrun on every visible GPU in bf16, and
checks: the loss falls; fla's chunk_gated_delta_rule and causal-conv1d ran
(forward and backward, on every rank) and agree with a float64 reference;
then reports tokens/s, step time, peak GPU memory and MFU.

`--device cpu` runs the same code with transformers' torch fallback and gloo
on a tiny model (CI, under a minute on 2 cores).

Plan first: `build_plan` is pure (no torch); `run` executes the plan and
judges the worker's JSON (runner.smoke.verdict).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile

from runner.interpreter import own_python, own_python_env
from runner.kernel_cache import resolve_kernel_cache
from runner.launch.plan import Plan, Process
from runner.smoke import config as C

WORKER = "runner.smoke.worker"


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--kernel-cache", metavar="DIR", default=None,
                        help="Triton/flashinfer/torch-extension caches under DIR (default: the environment's, else "
                             "~/.cache/slime-qwen3-next/kernels); an empty DIR times a cold start")
    parser.add_argument("--result-file", default=None,
                        help="where the worker writes its JSON (default: a file in the temp directory, removed after)")
    sizes = parser.add_argument_group("smoke model and training (defaults depend on --device)")
    for k in C.KNOBS:
        sizes.add_argument("--" + k.name.replace("_", "-"), dest=k.name, type=k.type, default=None,
                           help=f"{k.help} (cuda {k.cuda}, cpu {k.cpu})")


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _given(args) -> dict:
    return {k: getattr(args, k, None) for k in C.KNOB_NAMES}


def _result_path(args) -> str:
    return getattr(args, "result_file", None) or os.path.join(
        tempfile.gettempdir(), f"runner-smoke-{os.getpid()}.json")


def build_plan(args) -> Plan:
    plan = Plan()
    device = getattr(args, "device", "cuda") or "cuda"
    given = _given(args)
    if getattr(args, "fsdp_cpu_offload", False) and given.get("min_mfu") is None:
        # The AdamW step runs on the CPU: throughput measures the host, not the GPU kernels.
        given["min_mfu"] = 0.0
    knobs = C.resolve(device, given)
    for e in C.validate(knobs):
        plan.error(e)
    nproc = getattr(args, "nproc", None)
    if nproc is not None and nproc < 1:
        plan.error(f"--nproc must be >= 1, got {nproc}")
    if nproc is None:
        # torchrun's "gpu" counts the visible GPUs itself; no torch import here.
        nproc_arg = "gpu" if device == "cuda" else "2"
    else:
        nproc_arg = str(nproc)
    result = _result_path(args)
    # A token only this run's processes carry on their command line: a Ctrl-C sweep finds
    # exactly them.
    run_id = f"smoke-{os.getpid()}-{secrets.token_hex(4)}"
    argv = [*own_python(), "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", nproc_arg,
            "-m", WORKER, "--device", device, "--result", result, "--run-id", run_id]
    offload = bool(getattr(args, "fsdp_cpu_offload", False))
    if offload:
        argv.append("--fsdp-cpu-offload")
    for k in C.KNOBS:
        argv += ["--" + k.name.replace("_", "-"), str(knobs[k.name])]
    env = {"PYTHONUNBUFFERED": "1", **own_python_env()}  # torchrun starts the workers: -P through the env
    caches = resolve_kernel_cache(getattr(args, "kernel_cache", None), os.environ)
    env.update(caches.env)  # compiled kernels outlive this run (runner.kernel_cache)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # same path on a GPU box: never touch a GPU
        threads = max(1, (os.cpu_count() or 1) // (nproc or 2))
        env["OMP_NUM_THREADS"] = str(threads)
    else:
        # NVLink SHARP/multicast: keep the caller's choice, default off (FACTS: some hosts require it off).
        if "NCCL_NVLS_ENABLE" not in os.environ:
            env["NCCL_NVLS_ENABLE"] = "0"
    cfg = C.model_config(knobs)
    p = C.param_counts(cfg)
    plan.processes.append(Process(
        argv=tuple(argv), env=env, cwd=os.getcwd(),
        purpose=f"train a {_count(p['total'])}-parameter ({_count(p['matmul_active'])} active) Qwen3-Next "
                f"for {knobs['steps']} steps with FSDP2{' (CPU offload)' if offload else ''} on {device} "
                f"({nproc_arg} processes)"))
    plan.notes.append(f"result JSON: {result}")
    plan.notes.append("model config: " + json.dumps(cfg, sort_keys=True))
    plan.notes += caches.describe()
    return plan


NO_GPU_FIX = "run `python -m runner smoke --device cpu` to check the same path on CPU, or run smoke on a GPU node"


def visible_gpus(environ) -> tuple[int, str]:
    """(GPUs a CUDA program started here would see, where that number comes from). Reads the machine."""
    from runner.gpus import query_gpus

    facts = query_gpus(environ)
    if facts.error:
        return 0, facts.error
    mask = environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return facts.count, facts.source
    # CUDA reads the list up to its first invalid entry: "" and "-1" hide every GPU.
    seen = 0
    for entry in (e.strip() for e in mask.split(",")):
        if entry.startswith(("GPU-", "MIG-")) or (entry.isdigit() and int(entry) < facts.count):
            seen += 1
        else:
            break
    return min(seen, facts.count), f"CUDA_VISIBLE_DEVICES={mask!r}, {facts.count} on the machine"


def machine_problems(args, environ) -> list[str]:
    """What this machine lacks for the planned run: one line each, with the fix."""
    if (getattr(args, "device", "cuda") or "cuda") != "cuda":
        return []
    count, source = visible_gpus(environ)
    if count == 0:
        return [f"no NVIDIA GPU visible here ({source}); {NO_GPU_FIX}"]
    nproc = getattr(args, "nproc", None)
    if nproc is not None and nproc > count:
        return [f"--nproc {nproc} but {count} GPU(s) are visible here ({source}); use --nproc {count} or fewer"]
    return []


def _run_torchrun(proc, env: dict, run_id: str) -> int:
    """torchrun in its own session, its output forwarded to stderr. Ctrl-C stops it and its
    workers (torchrun puts each in a session of its own) and raises KeyboardInterrupt; what they
    print while dying is dropped."""
    from runner.launch.processes import _die_with_parent, sweep_marked

    child = subprocess.Popen(list(proc.argv), env=env, cwd=proc.cwd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    assert child.stdout is not None
    try:
        for line in iter(child.stdout.readline, b""):
            sys.stderr.buffer.write(line)
            sys.stderr.flush()
        return child.wait()
    except KeyboardInterrupt:
        try:
            os.killpg(child.pid, signal.SIGTERM)  # torchrun stops its workers on SIGTERM
            child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
        except ProcessLookupError:
            pass
        with open(os.devnull, "w") as quiet:
            sweep_marked(run_id, grace=10.0, log=quiet)  # workers torchrun could not stop
        raise


def run(args) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("smoke: interrupted (Ctrl-C): torchrun and its workers are stopped", file=sys.stderr)
        return 130


def _run(args) -> int:
    from runner.smoke import verdict

    plan = build_plan(args)
    if plan.errors:
        for p in plan.errors:
            print(f"smoke: error: {p.message}", file=sys.stderr)
        return 2
    if getattr(args, "dry_run", False):
        print(plan.dumps())
        return 0
    problems = machine_problems(args, os.environ)
    if problems:
        for p in problems:
            print(f"smoke: error: {p}", file=sys.stderr)
        return 2
    proc = plan.processes[0]
    result = _result_path(args)
    keep = getattr(args, "result_file", None) is not None
    if os.path.exists(result):
        os.unlink(result)
    env = dict(os.environ)
    env.update(proc.env)
    print(f"smoke: {proc.purpose}", file=sys.stderr, flush=True)
    rc = None
    try:
        # The worker's logs go to stderr so that --json leaves stdout clean.
        rc = _run_torchrun(proc, env, proc.argv[proc.argv.index("--run-id") + 1])
        with open(result) as f:
            res = json.load(f)
    except (OSError, ValueError) as e:
        print(f"smoke: FAIL: the worker wrote no result ({type(e).__name__}: {e}); torchrun exited {rc}",
              file=sys.stderr)
        return 1
    finally:
        if not keep and os.path.exists(result):
            os.unlink(result)
    checks = verdict.judge(res, torchrun_rc=rc)
    res["checks"] = [c.to_json() for c in checks]
    if getattr(args, "json", False):
        print(json.dumps(res, indent=2))
    else:
        print(verdict.render(res, checks))
    failed = [c for c in checks if c.blocking]
    if failed:
        print(f"smoke: FAIL: {failed[0].name}: {failed[0].detail}", file=sys.stderr)
        return 1
    return 0
