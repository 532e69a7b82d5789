"""One torchrun rank of `runner smoke`: build, shard (FSDP2), train, measure.

Run by `python -m torch.distributed.run ... -m runner.smoke.worker`. Rank 0
writes the raw facts as JSON to --result; the parent process (runner.smoke.run)
judges them. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
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
    """Token sequences that follow a fixed random permutation (x[t+1] = P[x[t]]) of the first data_vocab ids.

    The next token is a function of the current one, so a working model's loss
    falls quickly: first towards ln(data_vocab) (which ids occur), then below
    (which follows which). Each rank and step gets its own starts.
    """
    gen = torch.Generator().manual_seed(knobs["seed"])
    perm = torch.randperm(knobs["data_vocab"], generator=gen)
    gen_r = torch.Generator().manual_seed(knobs["seed"] * 1000003 + rank + 1)
    n = knobs["steps"] * knobs["micro_batch"]
    cur = torch.randint(knobs["data_vocab"], (n,), generator=gen_r)
    perm, cur = perm.to(device), cur.to(device)
    seq = torch.empty(n, knobs["seq_len"], dtype=torch.long, device=device)
    for t in range(knobs["seq_len"]):
        seq[:, t] = cur
        cur = perm[cur]
    return seq.view(knobs["steps"], knobs["micro_batch"], knobs["seq_len"])


def train(args) -> dict:
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    knobs = {k: getattr(args, k) for k in C.KNOB_NAMES}
    cuda = args.device == "cuda"
    res: dict = {"device": args.device, "world_size": world, "knobs": knobs}
    t0 = time.perf_counter()

    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda but torch sees no CUDA GPU")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        dist.init_process_group("nccl", device_id=device)
        res["gpu_name"] = torch.cuda.get_device_name(device)
        res["gpu_capability"] = list(torch.cuda.get_device_capability(device))
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        dist.init_process_group("gloo")
        res["gpu_name"] = None

    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
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

    torch.manual_seed(knobs["seed"])
    cfg = Qwen3NextConfig(**cfg_kwargs)
    cfg._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen3NextForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    res["params"]["counted_by_torch"] = n_params
    if not cuda:
        force_torch_fallback(model, modeling)
    spies.install_call_site_spies(model, modeling)
    res["call_sites"] = {"gdn": spies.gdn_call_site, "conv": spies.conv_call_site}

    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    opt = torch.optim.AdamW(model.parameters(), lr=knobs["lr"], betas=(0.9, 0.95), weight_decay=0.0)
    data = synthetic_batches(torch, knobs, rank, device)
    if cuda:
        torch.cuda.synchronize()
        res["mem_after_build_bytes"] = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    res["build_s"] = time.perf_counter() - t0
    log(f"built {n_params / 1e6:.1f}M params ({res['params']['matmul_active'] / 1e6:.1f}M active matmul) "
        f"on {world} x {res['gpu_name'] or 'cpu'} in {res['build_s']:.1f}s")

    model.train()
    losses, times = [], []
    for step in range(knobs["steps"]):
        ts = time.perf_counter()
        out = model(input_ids=data[step], labels=data[step])
        loss = out.loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - ts)
        losses.append(loss.detach().float())
        log(f"step {step + 1}/{knobs['steps']} loss {losses[-1].item():.4f} {times[-1] * 1e3:.1f} ms")

    loss_t = torch.stack(losses)
    dist.all_reduce(loss_t, op=dist.ReduceOp.SUM)
    res["losses"] = [float(x) / world for x in loss_t.cpu()]
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
        mem = torch.tensor([torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)],
                           dtype=torch.float64, device=device)
        gathered = [torch.zeros_like(mem) for _ in range(world)]
        dist.all_gather(gathered, mem)
        res["peak_mem_allocated_bytes"] = [int(g[0]) for g in gathered]
        res["peak_mem_reserved_bytes"] = [int(g[1]) for g in gathered]

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
    sys.exit(main())
