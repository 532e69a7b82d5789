"""Plain-torch references for the two fast kernels (shared by smoke and doctor --gpu).

Written from the definitions, token by token, so that they share no code with
fla, causal-conv1d or transformers' fallback. Differentiable (autograd), so
the gradient checks use them too. Imports torch lazily.
"""

from __future__ import annotations


def gated_delta_rule(q, k, v, g, beta, scale=None, l2norm=True, dtype=None):
    """Gated delta rule over one sequence: q, k [T, Hqk, K]; v [T, H, V]; g, beta [T, H].

    State S [H, K, V]; per token t: S = exp(g_t) S; delta = beta_t (v_t - k_t S);
    S = S + k_t^T delta; o_t = (scale q_t) S. With Hqk < H each q/k head serves
    H / Hqk consecutive value heads (repeat_interleave), as in Qwen3-Next.
    q and k are L2-normalised first when l2norm (use_qk_l2norm_in_kernel).
    Returns o [T, H, V] in `dtype` (default float32).
    """
    import torch

    dtype = dtype or torch.float32
    q, k, v, g, beta = (x.to(dtype) for x in (q, k, v, g, beta))
    hqk, h = q.shape[1], v.shape[1]
    if hqk != h:
        q = q.repeat_interleave(h // hqk, dim=1)
        k = k.repeat_interleave(h // hqk, dim=1)
    if l2norm:
        q = q * torch.rsqrt((q * q).sum(-1, keepdim=True) + 1e-6)
        k = k * torch.rsqrt((k * k).sum(-1, keepdim=True) + 1e-6)
    q = q * (scale if scale is not None else q.shape[-1] ** -0.5)
    t_len, _, dk = k.shape
    state = torch.zeros(h, dk, v.shape[-1], dtype=dtype, device=q.device)
    outs = []
    for t in range(t_len):
        state = state * g[t].exp()[:, None, None]
        kv = torch.einsum("hk,hkv->hv", k[t], state)
        delta = (v[t] - kv) * beta[t][:, None]
        state = state + k[t][:, :, None] * delta[:, None, :]
        outs.append(torch.einsum("hk,hkv->hv", q[t], state))
    return torch.stack(outs)


def causal_conv1d(x, weight, bias=None, activation="silu", dtype=None):
    """Depthwise causal conv: x [B, D, T], weight [D, W] -> [B, D, T], then SiLU."""
    import torch
    import torch.nn.functional as F

    dtype = dtype or torch.float32
    x, w = x.to(dtype), weight.to(dtype)
    b = None if bias is None else bias.to(dtype)
    y = F.conv1d(x, w.unsqueeze(1), b, padding=w.shape[-1] - 1, groups=x.shape[1])[..., : x.shape[-1]]
    if activation in ("silu", "swish"):
        y = F.silu(y)
    return y
