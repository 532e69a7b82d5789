"""Kernel benchmarks behind docs/benchmarks.md (one GPU): `python3 bench/kernels.py {gdn,conv}`.

gdn: fla chunk_gated_delta_rule forward and forward+backward at Qwen3-Next
     shapes (B=1, 32 value heads, q/k 16 heads expanded, head dim 128, qk
     l2-norm in kernel, bf16; g float32 as the model passes it), optionally vs
     transformers' pure-torch fallback. Which fla (plain or with the Blackwell
     patch) is whatever `import fla` finds: the caller sets PYTHONPATH.
conv: causal-conv1d vs torch conv1d + SiLU (the transformers fallback), dim
     8192, kernel 4, channel-last input.

Timing: device events around CUDA-graph replays when the work can be
captured (short calls are launch-bound otherwise), eager otherwise; median of
--reps after warm-up; every row says which.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

# Run as a script from anywhere: the runner package (runner.checks.gpu_kernels) is one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _timer(torch, fn, reps: int, graph: bool):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    run, mode = fn, "eager"
    if graph:
        try:
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(2):
                    fn()
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                fn()
            run, mode = g.replay, "cuda_graph"
            run()
            torch.cuda.synchronize()
        except Exception as e:
            torch.cuda.synchronize()
            run, mode = fn, f"eager (graph capture failed: {type(e).__name__})"
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        run()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return {"median_ms": statistics.median(times), "min_ms": times[0], "p90_ms": times[int(0.9 * (len(times) - 1))],
            "reps": reps, "timing": mode}


def gdn_inputs(torch, T: int, B: int = 1, seed: int = 0):
    import torch.nn.functional as F

    gen = torch.Generator(device="cuda").manual_seed(seed)
    bf = torch.bfloat16

    def rnd(*shape, dtype=bf):
        return torch.randn(*shape, generator=gen, device="cuda").to(dtype)

    q = rnd(B, T, 16, 128).repeat_interleave(2, 2).contiguous()
    k = rnd(B, T, 16, 128).repeat_interleave(2, 2).contiguous()
    v = rnd(B, T, 32, 128)
    g = F.logsigmoid(rnd(B, T, 32, dtype=torch.float32) + 2.0)
    beta = torch.sigmoid(rnd(B, T, 32)).to(bf)
    do = rnd(B, T, 32, 128)
    return [x.requires_grad_() for x in (q, k, v, g, beta)], do


def bench_gdn(args) -> list[dict]:
    import torch

    rows = []
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule

    import runner.checks.gpu_kernels as gc

    present, path = gc.blackwell_patch_present()
    variant = "patched" if present else "plain"
    impls = [("fla", lambda q, k, v, g, b: chunk_gated_delta_rule(q, k, v, g, b, use_qk_l2norm_in_kernel=True)[0])]
    if args.fallback:
        from transformers.models.qwen3_next import modeling_qwen3_next as m

        ref = getattr(m.torch_chunk_gated_delta_rule, "__wrapped__", m.torch_chunk_gated_delta_rule)
        impls.append(("transformers_torch_fallback",
                      lambda q, k, v, g, b: ref(q, k, v, g=g, beta=b, use_qk_l2norm_in_kernel=True)[0]))
    for T in args.T:
        leaves, do = gdn_inputs(torch, T, args.B)
        for name, f in impls:
            if name != "fla" and T > args.fallback_max_T:
                continue
            graph = name == "fla"
            reps = args.reps if name == "fla" else max(5, args.reps // 10)

            def fwd():
                with torch.no_grad():
                    f(*leaves)

            def fwd_bwd():
                o = f(*leaves)
                o.backward(do)

            for what, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
                r = _timer(torch, fn, reps, graph)
                r.update({"bench": "gdn", "impl": name, "fla_variant": variant if name == "fla" else None,
                          "fla_path": path, "what": what, "B": args.B, "T": T, "H": 32, "HQK": 16, "K": 128,
                          "V": 128, "gpu": torch.cuda.get_device_name()})
                rows.append(r)
                print(f"gdn {name:28s} {variant if name == 'fla' else '':8s} T={T:6d} {what:8s} "
                      f"{r['median_ms']:9.3f} ms (min {r['min_ms']:.3f}, {r['timing']})", flush=True)
            for x in leaves:
                x.grad = None
    return rows


def bench_conv(args) -> list[dict]:
    import torch
    import torch.nn.functional as F
    from causal_conv1d import causal_conv1d_fn

    rows = []
    D, W = 8192, 4
    for T in args.T:
        gen = torch.Generator(device="cuda").manual_seed(1)
        x = torch.randn(args.B, T, D, generator=gen, device="cuda").to(torch.bfloat16).transpose(1, 2)
        x.requires_grad_()
        w = torch.randn(D, W, generator=gen, device="cuda").to(torch.bfloat16).requires_grad_()
        dy = torch.randn(args.B, D, T, generator=gen, device="cuda").to(torch.bfloat16)

        def torch_conv(x, w):
            return F.silu(F.conv1d(x, w.unsqueeze(1), None, padding=W - 1, groups=D)[..., :T])

        for name, f in (("causal_conv1d", lambda x, w: causal_conv1d_fn(x, w, None, activation="silu")),
                        ("torch_conv1d_silu", torch_conv)):
            def fwd():
                with torch.no_grad():
                    f(x, w)

            def fwd_bwd():
                f(x, w).backward(dy)

            for what, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
                r = _timer(torch, fn, args.reps, True)
                r.update({"bench": "conv", "impl": name, "what": what, "B": args.B, "T": T, "D": D, "W": W,
                          "gpu": torch.cuda.get_device_name()})
                rows.append(r)
                print(f"conv {name:20s} T={T:6d} {what:8s} {r['median_ms']:9.3f} ms "
                      f"(min {r['min_ms']:.3f}, {r['timing']})", flush=True)
            x.grad = None
            w.grad = None
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/kernels.py")
    ap.add_argument("what", choices=("gdn", "conv"))
    ap.add_argument("--T", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--B", type=int, default=1)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--fallback", action="store_true", help="gdn: also time transformers' torch fallback")
    ap.add_argument("--fallback-max-T", type=int, default=4096)
    ap.add_argument("--out", help="append JSON rows to this file")
    args = ap.parse_args(argv)
    import torch

    rows = bench_gdn(args) if args.what == "gdn" else bench_conv(args)
    env = {"torch": torch.__version__, "cuda": torch.version.cuda}
    for mod in ("triton", "transformers", "fla", "causal_conv1d"):
        try:
            env[mod] = getattr(__import__(mod), "__version__", "?")
        except Exception:
            env[mod] = None
    for r in rows:
        r["versions"] = env
    if args.out:
        with open(args.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
