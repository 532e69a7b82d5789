"""Find out which Gated DeltaNet and conv implementations the model really runs.

Two layers of evidence, both installed before the first forward:

1. Kernel spies: fla's `ChunkGatedDeltaRuleFunction` and causal-conv1d's
   `CausalConv1dFn` are torch.autograd.Functions; `Function.apply` looks up
   `forward`/`backward` on the class at call time, so replacing those two
   static methods with counting wrappers counts every forward and backward
   that went through the fast kernels, however transformers imported them.
2. Call-site spies: the function the Qwen3NextGatedDeltaNet module calls
   (an instance attribute in transformers 4.57-5.0, a module global of
   modeling_qwen3_next in later 5.x) is wrapped to keep one slice of the first
   call's inputs and output, so that the worker can compare it against a
   float64 reference (catches a fast kernel that runs but computes the wrong
   thing, e.g. un-expanded q/k heads passed to an fla that doesn't expand).

Imports torch lazily (only the worker imports this module).
"""

from __future__ import annotations

import functools

GDN_CLASS = "Qwen3NextGatedDeltaNet"
CAPTURE_TOKENS = 256  # tokens of sequence 0 kept for the parity checks


def _arg(args, kwargs, index, name, default=None):
    """A call's argument by position or by keyword."""
    if len(args) > index:
        return args[index]
    return kwargs.get(name, {"query": kwargs.get("q"), "key": kwargs.get("k"), "value": kwargs.get("v")}.get(name, default))


class Spies:
    def __init__(self, capture: bool):
        self.counts = {"fla_gdn_fwd": 0, "fla_gdn_bwd": 0, "causal_conv1d_fwd": 0, "causal_conv1d_bwd": 0,
                       "gdn_calls": 0, "conv_calls": 0}
        self.capture = capture
        self.gdn_capture = None
        self.conv_capture = None
        self.gdn_call_site = None
        self.conv_call_site = None
        self.gdn_heads = None  # (q heads, v heads) as passed at the call site

    # ------------------------------------------------------------ kernels
    def _wrap_function_class(self, cls, fwd_key: str, bwd_key: str) -> None:
        if getattr(cls, "_smoke_spied", False):
            return
        orig_fwd, orig_bwd = cls.forward, cls.backward
        counts = self.counts

        def forward(ctx, *args, **kwargs):
            counts[fwd_key] += 1
            return orig_fwd(ctx, *args, **kwargs)

        def backward(ctx, *args, **kwargs):
            counts[bwd_key] += 1
            return orig_bwd(ctx, *args, **kwargs)

        cls.forward = staticmethod(forward)
        cls.backward = staticmethod(backward)
        cls._smoke_spied = True

    def install_kernel_spies(self) -> dict:
        """Wrap the fast kernels that import; returns {name: 'ok' | import error}."""
        status = {}
        try:
            from fla.ops.gated_delta_rule import chunk as fla_chunk

            self._wrap_function_class(fla_chunk.ChunkGatedDeltaRuleFunction, "fla_gdn_fwd", "fla_gdn_bwd")
            status["fla"] = "ok"
        except Exception as e:  # ImportError, or a Triton/driver error raised at import
            status["fla"] = f"{type(e).__name__}: {e}"
        try:
            from causal_conv1d import causal_conv1d_interface as cc

            self._wrap_function_class(cc.CausalConv1dFn, "causal_conv1d_fwd", "causal_conv1d_bwd")
            status["causal_conv1d"] = "ok"
        except Exception as e:
            status["causal_conv1d"] = f"{type(e).__name__}: {e}"
        return status

    # ------------------------------------------------------------ call sites
    def _gdn_wrapper(self, fn):
        spies = self

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            spies.counts["gdn_calls"] += 1
            out = fn(*args, **kwargs)
            query, key, value = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
            if spies.gdn_heads is None:
                spies.gdn_heads = (int(query.shape[2]), int(value.shape[2]))
            if spies.capture and spies.gdn_capture is None:
                n = CAPTURE_TOKENS
                o = out[0] if isinstance(out, tuple) else out
                spies.gdn_capture = {
                    "q": query[0, :n].detach().clone(),
                    "k": key[0, :n].detach().clone(),
                    "v": value[0, :n].detach().clone(),
                    "g": _arg(args, kwargs, 3, "g")[0, :n].detach().clone(),
                    "beta": _arg(args, kwargs, 4, "beta")[0, :n].detach().clone(),
                    "scale": kwargs.get("scale"),
                    "l2norm": bool(kwargs.get("use_qk_l2norm_in_kernel", False)),
                    "o": o[0, :n].detach().clone(),
                }
            return out

        return wrapped

    def _conv_wrapper(self, fn):
        spies = self

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            # transformers 5.0 calls with keywords (x=..., weight=...), later 5.x positionally.
            spies.counts["conv_calls"] += 1
            out = fn(*args, **kwargs)
            x, weight = _arg(args, kwargs, 0, "x"), _arg(args, kwargs, 1, "weight")
            bias, activation = _arg(args, kwargs, 2, "bias"), _arg(args, kwargs, 3, "activation")
            if spies.capture and spies.conv_capture is None:
                n = CAPTURE_TOKENS
                spies.conv_capture = {
                    "x": x[0:1, :, :n].detach().clone(),
                    "w": weight.detach().clone(),
                    "b": None if bias is None else bias.detach().clone(),
                    "activation": activation,
                    "y": out[0:1, :, :n].detach().clone(),
                }
            return out

        return wrapped

    def install_call_site_spies(self, model, modeling) -> None:
        gdn = [m for m in model.modules() if type(m).__name__ == GDN_CLASS]
        if gdn and hasattr(gdn[0], "chunk_gated_delta_rule"):  # transformers 4.57 .. 5.0
            for m in gdn:
                m.chunk_gated_delta_rule = self._gdn_wrapper(m.chunk_gated_delta_rule)
            self.gdn_call_site = "module attribute chunk_gated_delta_rule"
        elif hasattr(modeling, "torch_chunk_gated_delta_rule"):  # later 5.x: module global
            modeling.torch_chunk_gated_delta_rule = self._gdn_wrapper(modeling.torch_chunk_gated_delta_rule)
            self.gdn_call_site = "modeling_qwen3_next.torch_chunk_gated_delta_rule"
        if gdn and hasattr(gdn[0], "causal_conv1d_fn"):
            if gdn[0].causal_conv1d_fn is not None:
                for m in gdn:
                    m.causal_conv1d_fn = self._conv_wrapper(m.causal_conv1d_fn)
                self.conv_call_site = "module attribute causal_conv1d_fn"
            else:
                self.conv_call_site = "nn.Conv1d (causal_conv1d_fn is None)"
        elif hasattr(modeling, "causal_conv1d_fn"):
            modeling.causal_conv1d_fn = self._conv_wrapper(modeling.causal_conv1d_fn)
            self.conv_call_site = "modeling_qwen3_next.causal_conv1d_fn"


def force_torch_fallback(model, modeling) -> None:
    """Make the GDN modules use transformers' pure-torch implementations (for --device cpu).

    Needed when fla or causal-conv1d import on a CPU-only machine: transformers
    would pick them and their kernels can't run on CPU.
    """
    gdn = [m for m in model.modules() if type(m).__name__ == GDN_CLASS]
    if gdn and hasattr(gdn[0], "chunk_gated_delta_rule"):
        for m in gdn:
            m.chunk_gated_delta_rule = modeling.torch_chunk_gated_delta_rule
            if hasattr(m, "causal_conv1d_fn"):
                m.causal_conv1d_fn = None
    else:
        for name in ("torch_chunk_gated_delta_rule", "causal_conv1d_fn"):
            fn = getattr(modeling, name, None)
            if fn is not None:
                setattr(modeling, name, getattr(fn, "__wrapped__", fn))


def gdn_reference(cap: dict):
    """float64 reference for a captured call (see runner.smoke.reference)."""
    from runner.smoke.reference import gated_delta_rule

    import torch

    return gated_delta_rule(cap["q"], cap["k"], cap["v"], cap["g"], cap["beta"], cap["scale"], cap["l2norm"],
                            dtype=torch.float64)


def conv_reference(cap: dict):
    import torch

    from runner.smoke.reference import causal_conv1d

    return causal_conv1d(cap["x"], cap["w"], cap["b"], cap["activation"], dtype=torch.float64)


def rel_err(out, ref) -> float:
    import torch

    out = out.double()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))
