"""One torchrun rank of `runner smoke`: build, shard (FSDP2), train, measure.

Run by `python -m torch.distributed.run ... -m runner.smoke.worker`. Rank 0
writes the raw facts as JSON to --result; the parent process (runner.smoke.run)
judges them. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import traceback

from runner.smoke import config as C


def log(msg: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"[smoke] {msg}", file=sys.stderr, flush=True)


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="runner.smoke.worker")
    ap.add_argument("--device", choices=("cuda", "cpu"), required=True)
    ap.add_argument("--result", required=True, help="rank 0 writes its JSON report here")
    ap.add_argument("--run-id", default="", help="marks this run's processes (runner.smoke stops them by it)")
    ap.add_argument("--fsdp-cpu-offload", action="store_true",
                    help="FSDP2 CPUOffloadPolicy as slime's --fsdp-cpu-offload (runner.smoke.sharding)")
    for k in C.KNOBS:
        ap.add_argument("--" + k.name.replace("_", "-"), dest=k.name, type=k.type, required=True)
    return ap.parse_args(argv)


def versions() -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in ("torch", "transformers", "triton", "flash-linear-attention", "causal-conv1d"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    for mod in ("fla", "causal_conv1d"):  # also when on PYTHONPATH without metadata
        try:
            m = __import__(mod)
            out[f"{mod}.__version__"] = getattr(m, "__version__", "?")
            out[f"{mod}.path"] = os.path.dirname(m.__file__)
        except Exception:
            pass
    import torch

    out["torch.cuda"] = torch.version.cuda
    return out


def synthetic_batches(torch, knobs: dict, rank: int, device):
    """Noisy permutation chains over the first data_vocab ids.

    The next token is P[x] (a fixed random permutation) with probability
    1 - data_noise, else uniform over the data_vocab ids. A working model's
    loss falls from ln(vocab) to ln(data_vocab) (which ids occur), then
    towards `loss_floor` (which follows which); the noise keeps the targets
    from being learnt exactly, so the gradients stay informative and the
    curve flattens instead of collapsing to 0 and bouncing back. Each rank
    and step gets its own sequences.
    """
    n_ids = knobs["data_vocab"]
    gen = torch.Generator().manual_seed(knobs["seed"])
    perm = torch.randperm(n_ids, generator=gen)
    gen_r = torch.Generator().manual_seed(knobs["seed"] * 1000003 + rank + 1)
    n, length = knobs["steps"] * knobs["micro_batch"], knobs["seq_len"]
    noise = torch.rand(n, length, generator=gen_r) < knobs["data_noise"]
    random_ids = torch.randint(n_ids, (n, length), generator=gen_r)
    seq = torch.empty(n, length, dtype=torch.long)
    cur = torch.randint(n_ids, (n,), generator=gen_r)
    for t in range(length):
        cur = torch.where(noise[:, t], random_ids[:, t], cur)
        seq[:, t] = cur
        cur = perm[cur]
    return seq.to(device).view(knobs["steps"], knobs["micro_batch"], length)


def learning_rate_factor(step: int, steps: int) -> float:
    """Linear warm-up over the first tenth of the steps, then cosine decay to a tenth of --lr."""
    warm = max(1, steps // 10)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm - 1)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def host_memory() -> dict:
    """This process's resident and peak resident host memory (bytes), from /proc/self/status."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return {"rss": out.get("VmRSS"), "peak_rss": out.get("VmHWM")}


def pinned_memory(torch, cuda: bool) -> list[int] | None:
    """[reserved, allocated] bytes of torch's pinned host allocator (torch.cuda.host_memory_stats), or None."""
    if not cuda or not hasattr(torch.cuda, "host_memory_stats"):
        return None
    stats = torch.cuda.host_memory_stats()
    return [int(stats.get("reserved_bytes.current", 0)), int(stats.get("allocated_bytes.current", 0))]


def _gathered(torch, dist, values: list[float], device) -> list[list[float]]:
    """`values` of every rank, rank order."""
    mine = torch.tensor(values, dtype=torch.float64, device=device)
    out = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(out, mine)
    return [[float(x) for x in t.cpu()] for t in out]


def train(args) -> dict:
    import torch
    import torch.distributed as dist

    from runner.smoke import sharding

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    knobs = {k: getattr(args, k) for k in C.KNOB_NAMES}
    cuda = args.device == "cuda"
    offload = bool(args.fsdp_cpu_offload)
    backend = sharding.process_group_backend(args.device, offload)
    res: dict = {"device": args.device, "world_size": world, "knobs": knobs, "fsdp_cpu_offload": offload,
                 "process_group_backend": backend}
    t0 = time.perf_counter()

    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda but torch sees no CUDA GPU")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        dist.init_process_group(backend, device_id=device)
        res["gpu_name"] = torch.cuda.get_device_name(device)
        res["gpu_capability"] = list(torch.cuda.get_device_capability(device))
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        dist.init_process_group(backend)
        res["gpu_name"] = None

    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM
    from transformers.models.qwen3_next import modeling_qwen3_next as modeling

    from runner.smoke.spies import Spies, conv_reference, force_torch_fallback, gdn_reference, rel_err

    res["versions"] = versions()
    spies = Spies(capture=(rank == 0))
    res["kernel_import"] = spies.install_kernel_spies() if cuda else {"fla": "not used on cpu",
                                                                       "causal_conv1d": "not used on cpu"}
    if cuda:
        bad = {k: v for k, v in res["kernel_import"].items() if v != "ok"}
        if bad:
            # Fail before spending minutes on the slow path: the verdict names the import error.
            res["aborted"] = "fast-path kernels don't import: " + "; ".join(f"{k}: {v}" for k, v in bad.items())
            return res

    cfg_kwargs = C.model_config(knobs)
    res["model_config"] = cfg_kwargs
    res["params"] = C.param_counts(cfg_kwargs)
    res["flops_per_token"] = C.flops_per_token(cfg_kwargs, knobs["seq_len"])
    res["loss_floor"] = C.loss_floor(knobs)
    host_base = host_memory()

    torch.manual_seed(knobs["seed"])
    cfg = Qwen3NextConfig(**cfg_kwargs)
    cfg._attn_implementation = "sdpa"
    # With offload the fp32 parameters live on the CPU, as slime's are after loading.
    with torch.device("cpu" if offload else device):
        model = Qwen3NextForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    res["params"]["counted_by_torch"] = n_params
    if not cuda:
        force_torch_fallback(model, modeling)
    spies.install_call_site_spies(model, modeling)
    res["call_sites"] = {"gdn": spies.gdn_call_site, "conv": spies.conv_call_site}

    res["fsdp_wrapped"] = sharding.apply_fsdp2(model, cpu_offload=offload, pin_memory=cuda)
    if offload:
        sharding.buffers_to(model, device)
    opt = torch.optim.AdamW(model.parameters(), lr=knobs["lr"], betas=(0.9, 0.95), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: learning_rate_factor(step, knobs["steps"]))
    data = synthetic_batches(torch, knobs, rank, device)
    if cuda:
        torch.cuda.synchronize()
        res["mem_after_build_bytes"] = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    host_built = host_memory()
    pinned_built = pinned_memory(torch, cuda)
    res["build_s"] = time.perf_counter() - t0
    log(f"built {n_params / 1e6:.1f}M params ({res['params']['matmul_active'] / 1e6:.1f}M active matmul) "
        f"on {world} x {res['gpu_name'] or 'cpu'} in {res['build_s']:.1f}s"
        + (" (params, grads, AdamW on the CPU: --fsdp-cpu-offload)" if offload else ""))

    model.train()
    losses, times, lrs = [], [], []
    for step in range(knobs["steps"]):
        ts = time.perf_counter()
        loss = model(input_ids=data[step], labels=data[step]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        lrs.append(schedule.get_last_lr()[0])
        opt.step()
        schedule.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - ts)
        # One loss per step, the same on every rank: the mean over ranks (what the report shows).
        mean = loss.detach().float().clone()
        dist.all_reduce(mean, op=dist.ReduceOp.SUM)
        losses.append(float(mean) / world)
        log(f"step {step + 1}/{knobs['steps']} loss {losses[-1]:.4f} {times[-1] * 1e3:.1f} ms")

    res["losses"] = losses
    res["learning_rates"] = lrs
    # A step ends for everyone when the slowest rank ends it.
    time_t = torch.tensor(times, dtype=torch.float64, device=device)
    dist.all_reduce(time_t, op=dist.ReduceOp.MAX)
    res["step_times_s"] = [float(x) for x in time_t.cpu()]
    timed = res["step_times_s"][knobs["warmup"]:]
    res["timed_steps"] = len(timed)
    res["step_time_s_median"] = statistics.median(timed)
    tokens_per_step = world * knobs["micro_batch"] * knobs["seq_len"]
    res["tokens_per_step"] = tokens_per_step
    res["tokens_per_s"] = tokens_per_step / res["step_time_s_median"]
    res["tokens_per_s_per_gpu"] = res["tokens_per_s"] / world
    res["achieved_flops_per_gpu"] = res["flops_per_token"]["total"] * res["tokens_per_s_per_gpu"]
    peak = C.peak_bf16(res["gpu_name"]) if cuda else None
    res["peak_bf16_flops"] = peak
    res["mfu"] = res["achieved_flops_per_gpu"] / peak if peak else None

    if cuda:
        mem = _gathered(torch, dist, [torch.cuda.max_memory_allocated(device),
                                      torch.cuda.max_memory_reserved(device)], device)
        res["peak_mem_allocated_bytes"] = [int(m[0]) for m in mem]
        res["peak_mem_reserved_bytes"] = [int(m[1]) for m in mem]
    # Host memory per rank: before the model existed, after sharding, at the end, and the peak
    # (which includes the full fp32 model every rank builds before sharding it).
    host_end = host_memory()
    if all(h["rss"] is not None for h in (host_base, host_built, host_end)):
        host = _gathered(torch, dist, [host_base["rss"], host_built["rss"], host_end["rss"],
                                       host_end["peak_rss"]], device)
        res["host_rss_base_bytes"] = [int(h[0]) for h in host]
        res["host_rss_after_build_bytes"] = [int(h[1]) for h in host]
        res["host_rss_end_bytes"] = [int(h[2]) for h in host]
        res["host_rss_peak_bytes"] = [int(h[3]) for h in host]
    pinned_end = pinned_memory(torch, cuda)
    if pinned_built is not None and pinned_end is not None:
        # The pinned allocator's own count (power-of-two blocks, cached ones included): what
        # runner.planner.pinned models, without the rest of the process's resident memory.
        pinned = _gathered(torch, dist, [*pinned_built, *pinned_end], device)
        res["host_pinned_reserved_after_build_bytes"] = [int(h[0]) for h in pinned]
        res["host_pinned_allocated_after_build_bytes"] = [int(h[1]) for h in pinned]
        res["host_pinned_reserved_end_bytes"] = [int(h[2]) for h in pinned]
        res["host_pinned_allocated_end_bytes"] = [int(h[3]) for h in pinned]

    counts = torch.tensor([spies.counts[k] for k in sorted(spies.counts)], dtype=torch.float64, device=device)
    dist.all_reduce(counts, op=dist.ReduceOp.MIN)  # every rank must have used the path
    res["calls_min_over_ranks"] = {k: int(v) for k, v in zip(sorted(spies.counts), counts.cpu())}
    res["gdn_heads_at_call"] = spies.gdn_heads

    if rank == 0:
        parity = {}
        if spies.gdn_capture is not None:
            cap = spies.gdn_capture
            parity["gdn"] = {"rel_err": rel_err(cap["o"], gdn_reference(cap)), "tokens": int(cap["q"].shape[0]),
                             "dtype": str(cap["o"].dtype).replace("torch.", "")}
        if spies.conv_capture is not None:
            cap = spies.conv_capture
            parity["conv"] = {"rel_err": rel_err(cap["y"], conv_reference(cap)), "tokens": int(cap["x"].shape[-1]),
                              "dtype": str(cap["y"].dtype).replace("torch.", "")}
        res["parity"] = parity
    res["wall_s"] = time.perf_counter() - t0
    return res


def main(argv=None) -> int:
    args = parse(argv)
    rank = int(os.environ.get("RANK", "0"))
    rc = 0
    try:
        res = train(args)
    except Exception as e:
        traceback.print_exc()
        res = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:500], "device": args.device}
        rc = 1
    if rank == 0:
        tmp = args.result + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f, indent=2)
        os.replace(tmp, args.result)
    try:
        import torch.distributed as dist

        if dist.is_initialized():
            if rc == 0:
                dist.barrier()
            dist.destroy_process_group()
    except Exception:
        pass
    return rc


if __name__ == "__main__":
    code = main()
    # Leave without the interpreter's teardown: under CPU load the C++
    # destructors that run at exit (after destroy_process_group, with the
    # result already written) abort now and then with "terminate called
    # without an active exception" (SIGABRT, ~3% of CPU smoke runs on a busy
    # 2-core machine), which torchrun reports as a failed run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
