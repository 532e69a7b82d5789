"""The planner's per-token logits bytes, measured on CPU through the real loss code.

A TorchDispatchMode sees every tensor an ATen op creates; a weakref on each
storage says when it is freed. The peak of live bytes over a forward and
backward, divided by tokens x vocab (vocab much larger than hidden, so the
logits dominate), is what the planner's `logits` term assumes per token:
- transformers' ForCausalLMLoss (the smoke runs): act.LOGIT_BYTES;
- slime 3d7599aa's FSDP policy loss, its own functions from
  slime/backends/fsdp_utils/actor.py (log-probs with temperature, entropy):
  fsdp.SLIME_LOGIT_BYTES.
And the basis of the FSDP estimate's 16 B/param: the pinned transformers
(5.0.0rc0, in the stack's Python) loads a bf16 checkpoint as fp32 when
from_pretrained gets no dtype, as slime calls it.
"""

from __future__ import annotations

import ast
import importlib.util
import weakref

import pytest

from runner.planner import activations as act
from runner.planner import fsdp as fs
from tests.nix.nixtools import PINS, upstream_tree

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")

T, V, H = 512, 8192, 32


class LiveBytes:
    """Peak bytes of tensor storage alive at once, counted from op outputs."""

    def __init__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        tracker = self
        self.current = self.peak = 0
        self._alive: set[int] = set()

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in tree_flatten(out)[0]:
                    if isinstance(t, torch.Tensor):
                        tracker._track(t.untyped_storage())
                return out

        self.mode = Mode()

    def _track(self, storage) -> None:
        key, n = storage.data_ptr(), storage.nbytes()
        if n == 0 or key in self._alive:
            return
        self._alive.add(key)
        self.current += n
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._freed, key, n)

    def _freed(self, key: int, n: int) -> None:
        self._alive.discard(key)
        self.current -= n


def _inputs():
    import torch

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, T, H, generator=g).bfloat16().requires_grad_()
    head = (torch.randn(V, H, generator=g) / H**0.5).bfloat16().requires_grad_()
    tokens = torch.randint(V, (T,), generator=g)
    return hidden, head, tokens


def _per_token_vocab(run) -> float:
    hidden, head, tokens = _inputs()
    live = LiveBytes()
    with live.mode:
        loss = run(hidden, head, tokens)
        loss.backward()
    return live.peak / (T * V)


def test_transformers_loss_fits_the_smoke_logits_term():
    pytest.importorskip("transformers")
    import torch
    from transformers.loss.loss_utils import ForCausalLMLoss

    def run(hidden, head, tokens):
        logits = torch.nn.functional.linear(hidden, head)  # what Qwen3NextForCausalLM returns (bf16)
        return ForCausalLMLoss(logits, tokens[None], V)

    measured = _per_token_vocab(run)
    assert 0.8 * act.LOGIT_BYTES <= measured <= act.LOGIT_BYTES + 0.5, measured


def _slime_functions(tmp_path) -> dict:
    """get_logprob_and_entropy_with_cp and friends, as slime's actor.py defines them."""
    import torch
    import torch.nn.functional as F

    slime = upstream_tree("slime", "SLIME_NIX_SLIME_SRC", PINS["sources"]["slime"]["rev"], tmp_path / "slime")
    source = (slime / "slime" / "backends" / "fsdp_utils" / "actor.py").read_text()
    wanted = {"selective_log_softmax_raw", "gather_log_probs_packed", "get_logprob_and_entropy_with_cp",
              "sum_of_sample_mean"}
    tree = ast.parse(source)
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    assert {d.name for d in defs} == wanted
    ns = {"torch": torch, "F": F}
    exec(compile(ast.Module(body=defs, type_ignores=[]), "slime/backends/fsdp_utils/actor.py", "exec"), ns)
    # slime wraps the raw function in torch.compile; allow_compile=False below takes the raw one.
    ns["selective_log_softmax_compiled"] = ns["selective_log_softmax_raw"]
    return ns


def test_slime_policy_loss_fits_the_fsdp_logits_term(tmp_path):
    import torch

    ns = _slime_functions(tmp_path)

    def run(hidden, head, tokens):
        # FSDPTrainRayActor._train_step: logits -> log-probs and entropy -> loss (GSPO-style terms
        # are per token and small; entropy is in the graph even at --entropy-coef 0).
        logits = torch.nn.functional.linear(hidden, head).squeeze(0).float()
        log_probs, entropy = ns["get_logprob_and_entropy_with_cp"](
            logits=logits, target_tokens=tokens, cp_rank=0, cp_size=1, cp_group=None,
            model_input_ids=tokens[None], allow_compile=False, temperature=0.8)
        masks = [torch.ones(T - 1)]
        pg = ns["sum_of_sample_mean"](-log_probs, [T - 1], masks)
        ent = ns["sum_of_sample_mean"](entropy, [T - 1], masks)
        return pg - 0.0 * ent

    measured = _per_token_vocab(run)
    assert 0.8 * fs.SLIME_LOGIT_BYTES <= measured <= fs.SLIME_LOGIT_BYTES + 0.5, measured


_LOAD_DTYPES = '''\
import json, sys, tempfile, torch, transformers
from transformers import AutoModelForCausalLM, Qwen3NextConfig, Qwen3NextForCausalLM

cfg = Qwen3NextConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16,
                      linear_value_head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                      shared_expert_intermediate_size=32, intermediate_size=320, vocab_size=256)
path = tempfile.mkdtemp()
Qwen3NextForCausalLM(cfg).to(torch.bfloat16).save_pretrained(path)  # a bf16 checkpoint, as Qwen ships
# slime 3d7599aa FSDPTrainRayActor.init: no dtype argument.
plain = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True, attn_implementation="sdpa")
auto = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True, attn_implementation="sdpa", dtype="auto")
json.dump({"version": transformers.__version__,
           "saved": json.load(open(path + "/config.json")).get("dtype"),
           "plain": sorted({str(p.dtype) for p in plain.parameters()}),
           "auto": sorted({str(p.dtype) for p in auto.parameters()})}, sys.stdout)
'''


def test_pinned_transformers_loads_fp32_when_slime_gives_no_dtype():
    """The basis of 16 B/param: transformers 5.0.0rc0 upcasts a bf16 checkpoint to fp32 without dtype."""
    import json
    import os
    import subprocess

    from tests.slime_parser import stack_python

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = subprocess.run([stack_python(), "-c", _LOAD_DTYPES], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    assert got["version"] == "5.0.0rc0"
    assert got["saved"] == "bfloat16"
    assert got["plain"] == ["torch.float32"]
    assert got["auto"] == ["torch.bfloat16"]
