"""Compare the planner's FSDP estimate with peak GPU memory measured by `runner smoke`.

docs/smoke-runs.json holds smoke results (runner.smoke.worker's JSON: one
result, a list of them, or {"runs": [...]}) with `model_config` (the
Qwen3NextConfig kwargs), `knobs` (seq_len, micro_batch), `world_size` and
`peak_mem_allocated_bytes` per rank (torch.cuda.max_memory_allocated after
the model was built and sharded, so it covers the first optimizer step).
The smoke model is built in fp32 (torch's default dtype), wrapped per layer
and at the root with fully_shard(bf16 compute, fp32 reduce), trained with
AdamW and without activation checkpointing; the estimate uses the same setup.
"""

from __future__ import annotations

import json
from pathlib import Path

from runner.planner.fsdp import FsdpSetup, estimate_peak_allocated_bytes, fsdp_tensor_terms
from runner.recipes.qwen3_next import Qwen3NextArchitecture

SMOKE_RUNS = Path("docs/smoke-runs.json")


def load_runs(path: Path | str = SMOKE_RUNS) -> list[dict]:
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict) and "runs" in data:
        data = data["runs"]
    if isinstance(data, dict):
        data = [data]
    return [r for r in data if isinstance(r, dict) and r.get("model_config") and r.get("peak_mem_allocated_bytes")]


def smoke_setup(run: dict) -> tuple[Qwen3NextArchitecture, FsdpSetup]:
    arch = Qwen3NextArchitecture.from_hf_config(run["model_config"])
    knobs = run.get("knobs", {})
    tokens = int(knobs.get("seq_len", 4096)) * int(knobs.get("micro_batch", 1))
    setup = FsdpSetup(ranks=int(run.get("world_size", 1)), tokens=tokens, param_bytes=4,
                      gradient_checkpointing=False, cpu_offload=False)
    return arch, setup


def compare_run(run: dict) -> dict:
    arch, setup = smoke_setup(run)
    measured = max(int(x) for x in run["peak_mem_allocated_bytes"])
    estimated = estimate_peak_allocated_bytes(arch, setup)
    return {
        "label": run.get("label") or f"{arch.num_hidden_layers}L x {arch.num_experts}E, "
                                      f"{setup.tokens} tokens, {setup.ranks} GPU(s)",
        "gpu": run.get("gpu_name"),
        "measured_gib": measured / (1 << 30),
        "estimated_gib": estimated / (1 << 30),
        "estimate_over_measured": estimated / measured if measured else None,
        "terms": [t.to_json() for t in fsdp_tensor_terms(arch, setup)],
    }


def compare_file(path: Path | str = SMOKE_RUNS) -> list[dict]:
    return [compare_run(r) for r in load_runs(path)]


def render(rows: list[dict]) -> str:
    lines = ["| run | GPU | measured peak allocated (GiB) | planner estimate (GiB) | estimate / measured |",
             "|---|---|---|---|---|"]
    for r in rows:
        ratio = "n/a" if r["estimate_over_measured"] is None else f"{r['estimate_over_measured']:.2f}"
        lines.append(f"| {r['label']} | {r['gpu'] or '?'} | {r['measured_gib']:.2f} | {r['estimated_gib']:.2f} "
                     f"| {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m runner.planner.smoke_compare [docs/smoke-runs.json]
    import sys
    print(render(compare_file(sys.argv[1] if len(sys.argv) > 1 else SMOKE_RUNS)))
