"""Host bytes of FSDP2 CPU offload (slime's --fsdp-cpu-offload): pinned, padded, power-of-two blocks. Pure.

What torch does (docs/planner.md, "Pinned host memory", with file and line
references for torch 2.9.1, the stack's pin, and 2.11.0, the measured one):

- FSDP2 shards every parameter on its own along dim 0: each rank gets
  `torch.chunk`'s rows, ceil(d0 / ranks), and keeps a *padded* shard of that
  many rows even when its own rows are fewer (`padded_sharded_param`,
  chunks[0]'s size). With CPUOffloadPolicy(pin_memory=True), slime's default,
  that padded shard is copied to pinned memory (`pin_memory()`).
- Each reduced gradient goes to the CPU with `.to("cpu", non_blocking=True)`
  when it is not accumulated into an existing one; a non-blocking
  device-to-host copy allocates its output pinned. Its size is the rank's own
  rows (not padded). A rank with no rows allocates nothing.
- Every pinned allocation goes through torch's CachingHostAllocator, which
  rounds the size up to the next power of two (`PowerOf2Ceil`) and keeps freed
  blocks cached (they are never handed back while the process runs).
- AdamW's moments are `zeros_like(param)`: ordinary pageable memory of the
  rank's own rows, 8 B/param, not rounded.

So a rank holds, in fp32, for every parameter tensor: pow2(padded shard) for
the parameter, pow2(own shard) for its gradient, and 8 B x own elements of
moments. tests/test_pinned_host.py checks this against the 1 x H200
measurement in docs/smoke-runs.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from runner.planner.shapes import Shape

FP32 = 4


def pinned_block_bytes(nbytes: int) -> int:
    """What the CachingHostAllocator reserves for `nbytes`: the next power of two (0 stays 0)."""
    return 0 if nbytes <= 0 else 1 << (nbytes - 1).bit_length()


def shard_rows(dim0: int, ranks: int, rank: int) -> tuple[int, int]:
    """(padded rows every rank allocates, rows this rank owns) for FSDP2's dim-0 sharding."""
    chunk = -(-dim0 // ranks)  # torch.chunk's chunk size; chunk 0 is always full
    return chunk, min(chunk, max(0, dim0 - rank * chunk))


@dataclass(frozen=True)
class OffloadedBytes:
    """Host bytes of the offloaded fp32 training state, summed over some ranks."""

    params: int  # pinned blocks of the padded parameter shards
    grads: int  # pinned blocks of the gradient shards
    moments: int  # AdamW exp_avg + exp_avg_sq, pageable
    elements: int  # parameter elements these ranks own (unpadded)
    state_bytes_per_element: int = 16  # fp32 param + grad + 2 moments; 4 for a frozen model

    @property
    def state(self) -> int:
        """What the state needs without padding or rounding: 16 B per owned element when trained."""
        return self.state_bytes_per_element * self.elements

    @property
    def total(self) -> int:
        return self.params + self.grads + self.moments

    @property
    def rounding(self) -> int:
        """Padding and power-of-two rounding beyond the state."""
        return self.total - self.state


def offloaded_bytes(shapes: Iterable[Shape], ranks: int, on_these: Iterable[int], *,
                    grads: bool = True, moments: bool = True) -> OffloadedBytes:
    """Host bytes of the ranks in `on_these` (e.g. one node's) when `ranks` FSDP2 ranks shard `shapes`.

    grads=False, moments=False: a model that is only offloaded, never trained
    (slime's reference model, always under CPUOffloadPolicy).
    """
    shapes = list(shapes)
    p = g = m = owned = 0
    for rank in on_these:
        for shape in shapes:
            rest = 1
            for d in shape[1:]:
                rest *= d
            padded, own = shard_rows(shape[0], ranks, rank)
            p += pinned_block_bytes(FP32 * padded * rest)
            owned += own * rest
            if grads:
                g += pinned_block_bytes(FP32 * own * rest)
            if moments:
                m += 2 * FP32 * own * rest
    per_element = FP32 * (1 + int(grads) + 2 * int(moments))
    return OffloadedBytes(params=p, grads=g, moments=m, elements=owned, state_bytes_per_element=per_element)
