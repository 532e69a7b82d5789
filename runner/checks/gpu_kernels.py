"""GPU kernel self-checks for `doctor --gpu`: do the fast kernels Qwen3-Next needs run, and right?

- fla chunk_gated_delta_rule, forward and backward, at Qwen3-Next-80B-A3B's
  Gated DeltaNet shapes (32 value heads; q/k 16 heads expanded to 32; head dim
  128; use_qk_l2norm_in_kernel; bf16 inputs, float32 gate) against a float32
  token-by-token reference (runner.smoke.reference) through autograd.
- causal-conv1d forward and backward at the model's conv shape (dim 8192 =
  2*16*128 + 32*128, kernel 4, SiLU, channel-last layout as the model passes
  it) against torch's conv1d in float32.
- Whether fla's Blackwell workaround (inline PTX move around one tl.dot in
  prepare_wy_repr_bwd_kernel, fla/ops/gated_delta_rule/wy_fast.py) is in the
  installed fla, and whether this GPU needs it (compute capability 10.x).

Imports torch lazily; `import runner.checks.gpu_kernels` is free. The first fla call
in a fresh process compiles and autotunes Triton kernels (minutes; a
persistent TRITON_CACHE_DIR keeps them: `doctor --gpu` sets the one smoke and
train use, runner.kernel_cache).
"""

from __future__ import annotations

import os
import time

from runner.checks.rows import FAIL, OK, SKIP, Check

# Relative L2 error vs a float32 reference for bf16 kernels. Measured on H100
# (FACTS.md): fla 4e-3..8e-3, causal-conv1d 1.7e-3. Broken kernels are O(1).
TOL = 2e-2
GDN_SHAPE = {"T": 512, "HQK": 16, "H": 32, "K": 128, "V": 128}
CONV_SHAPE = {"T": 1024, "D": 2 * 16 * 128 + 32 * 128, "W": 4}
BLACKWELL_MARK = "inline_asm_elementwise"


def _rel(out, ref) -> float:
    import torch

    out, ref = out.detach().float(), ref.detach().float()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def _fmt(errs: dict) -> str:
    return ", ".join(f"{k} {v:.1e}" for k, v in errs.items())


def check_gdn(device, seed: int = 0) -> tuple[Check, dict]:
    import torch
    import torch.nn.functional as F

    from runner.smoke.reference import gated_delta_rule

    name = "fla chunk_gated_delta_rule fwd+bwd"
    try:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    except Exception as e:
        return Check(name, FAIL, f"fla does not import: {type(e).__name__}: {e}",
                     "install flash-linear-attention at the pinned commit 9714c595"), {}
    s = GDN_SHAPE
    gen = torch.Generator(device=device).manual_seed(seed)
    bf = torch.bfloat16

    def rnd(*shape, dtype=bf):
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32).to(dtype)

    q16, k16 = rnd(1, s["T"], s["HQK"], s["K"]), rnd(1, s["T"], s["HQK"], s["K"])
    v = rnd(1, s["T"], s["H"], s["V"])
    g = F.logsigmoid(rnd(1, s["T"], s["H"], dtype=torch.float32) + 2.0)  # decays in (0, 1), mostly near 1
    beta = torch.sigmoid(rnd(1, s["T"], s["H"])).to(bf)
    do = rnd(1, s["T"], s["H"], s["V"])
    leaves = [x.requires_grad_() for x in (q16, k16, v, g, beta)]
    t0 = time.perf_counter()
    rep = s["H"] // s["HQK"]
    o, _ = chunk_gated_delta_rule(q16.repeat_interleave(rep, 2), k16.repeat_interleave(rep, 2), v, g, beta,
                                  use_qk_l2norm_in_kernel=True)
    o.backward(do)
    torch.cuda.synchronize(device)
    first_call_s = time.perf_counter() - t0
    got = {"o": o.detach()} | {f"d{n}": x.grad for n, x in zip(("q", "k", "v", "g", "beta"), leaves)}
    refs = [x.detach().clone().requires_grad_() for x in leaves]
    o_ref = gated_delta_rule(refs[0][0], refs[1][0], refs[2][0], refs[3][0], refs[4][0], l2norm=True,
                             dtype=torch.float32)
    o_ref.backward(do[0].float())
    want = {"o": o_ref.detach()[None]} | {f"d{n}": x.grad for n, x in zip(("q", "k", "v", "g", "beta"), refs)}
    errs = {key: _rel(got[key], want[key]) for key in got}
    worst = max(errs.values())
    detail = (f"T={s['T']}, H={s['H']} (q/k {s['HQK']} expanded), K=V={s['K']}, qk l2norm, bf16: "
              f"rel err {_fmt(errs)} (tol {TOL:.0e}); first call {first_call_s:.1f}s")
    info = {"errors": errs, "first_call_s": first_call_s}
    if worst <= TOL:
        return Check(name, OK, detail), info
    return Check(name, FAIL, detail, "fla computes wrong results on this GPU: check the fla pin and the "
                                      "Blackwell patch (compute capability 10.x)"), info


def check_conv(device, seed: int = 0) -> tuple[Check, dict]:
    import torch

    from runner.smoke.reference import causal_conv1d as conv_ref

    name = "causal-conv1d fwd+bwd"
    try:
        from causal_conv1d import causal_conv1d_fn
    except Exception as e:
        return Check(name, FAIL, f"causal_conv1d does not import: {type(e).__name__}: {e}",
                     "install causal-conv1d v1.5.4 built for this GPU (CAUSAL_CONV1D_FORCE_BUILD=TRUE)"), {}
    s = CONV_SHAPE
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    bf = torch.bfloat16
    # Channel-last storage, as Qwen3NextGatedDeltaNet passes mixed_qkv.transpose(1, 2).
    x = torch.randn(1, s["T"], s["D"], generator=gen, device=device).to(bf).transpose(1, 2).requires_grad_()
    w = (torch.randn(s["D"], s["W"], generator=gen, device=device) * 0.5).to(bf).requires_grad_()
    dy = torch.randn(1, s["D"], s["T"], generator=gen, device=device).to(bf)
    y = causal_conv1d_fn(x, w, None, activation="silu")
    y.backward(dy)
    torch.cuda.synchronize(device)
    xr, wr = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    yr = conv_ref(xr, wr, None, "silu", dtype=torch.float32)
    yr.backward(dy.float())
    errs = {"y": _rel(y, yr), "dx": _rel(x.grad, xr.grad), "dw": _rel(w.grad, wr.grad)}
    detail = (f"dim {s['D']}, kernel {s['W']}, T={s['T']}, channel-last, SiLU, bf16: rel err {_fmt(errs)} "
              f"(tol {TOL:.0e})")
    if max(errs.values()) <= TOL:
        return Check(name, OK, detail), {"errors": errs}
    return Check(name, FAIL, detail, "rebuild causal-conv1d for this GPU's architecture"), {"errors": errs}


def blackwell_patch_present() -> tuple[bool | None, str]:
    """(present?, path) from the installed fla's wy_fast.py source; None when fla is absent."""
    # find_spec of the top-level package doesn't execute fla/__init__.py (which imports triton).
    import importlib.util

    try:
        spec = importlib.util.find_spec("fla")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return None, ""
    path = os.path.join(os.path.dirname(spec.origin), "ops", "gated_delta_rule", "wy_fast.py")
    if not os.path.exists(path):
        return None, path
    with open(path, encoding="utf-8") as f:
        src = f.read()
    return BLACKWELL_MARK in src, path


def check_blackwell_patch(capability: tuple[int, int] | None) -> Check:
    present, path = blackwell_patch_present()
    needs = capability is not None and capability[0] == 10
    name = "fla Blackwell patch (wy_fast.py)"
    cc = "unknown" if capability is None else f"{capability[0]}.{capability[1]}"
    if present is None:
        return Check(name, FAIL if needs else SKIP, "fla not installed",
                     "install flash-linear-attention at 9714c595 with the Blackwell patch" if needs else "")
    state = "present" if present else "absent"
    if needs and not present:
        return Check(name, FAIL, f"{state} in {path}; compute capability {cc} needs it "
                                 "(Triton miscompiles prepare_wy_repr_bwd_kernel on sm_100)",
                     "apply patches/ fla Blackwell patch (the flake's fla does) or use fla with the upstream fix")
    why = "needed" if needs else "not needed"
    return Check(name, OK, f"{state} in {path}; {why} on compute capability {cc}")


def kernel_caches() -> str:
    """Where the kernels compiled here go, as this process's environment says (doctor sets it)."""
    from runner.kernel_cache import CACHE_VARS

    return ", ".join(f"{var}={os.environ.get(var) or '(unset: the library default)'}" for var in CACHE_VARS)


def run_gpu_checks() -> list[Check]:
    try:
        import torch
    except Exception as e:
        return [Check("torch", FAIL, f"torch does not import: {type(e).__name__}: {e}", "install the stack")]
    if not torch.cuda.is_available():
        return [Check("CUDA GPU", SKIP, f"torch sees no CUDA GPU: kernel checks skipped (caches: {kernel_caches()})")]
    device = torch.device("cuda", torch.cuda.current_device())
    cap = torch.cuda.get_device_capability(device)
    checks = [Check("CUDA GPU", OK, f"{torch.cuda.get_device_name(device)}, compute capability {cap[0]}.{cap[1]}, "
                                    f"torch {torch.__version__} (CUDA {torch.version.cuda}); kernels compile into "
                                    f"{kernel_caches()}")]
    for fn in (check_gdn, check_conv):
        try:
            checks.append(fn(device)[0])
        except Exception as e:  # a kernel that crashes is a failed check, not a crashed doctor
            checks.append(Check(fn.__name__.replace("check_", "") + " kernel", FAIL,
                                f"raised {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                                "run the check alone for the traceback: python -c 'import runner.checks.gpu_kernels as g; "
                                "print(g.run_gpu_checks())'"))
    checks.append(check_blackwell_patch(cap))
    return checks
