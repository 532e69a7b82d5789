"""Compare the planner's FSDP estimate with peak GPU memory measured by `runner smoke`.

docs/smoke-runs.json holds smoke results (runner.smoke.worker's JSON: one
result, a list of them, or {"runs": [...]}) with `model_config` (the
Qwen3NextConfig kwargs), `knobs` (seq_len, micro_batch), `world_size` and
`peak_mem_allocated_bytes` per rank (torch.cuda.max_memory_allocated after
the model was built and sharded, so it covers the first optimizer step).
The smoke model is built in fp32 (torch's default dtype), wrapped per layer
and at the root with fully_shard(bf16 compute, fp32 reduce), trained with
AdamW and without activation checkpointing; the estimate uses the same setup.
Runs with `fsdp_cpu_offload` (smoke --fsdp-cpu-offload, slime's
CPUOffloadPolicy) keep the sharded fp32 state on the host: the GPU estimate
drops it, and the host estimate (16 B/param / ranks per rank) is compared
with the growth of each rank's resident memory (`host_rss_end_bytes` minus
`host_rss_base_bytes`) when the run recorded it.
"""

from __future__ import annotations

import json
from pathlib import Path

from runner.planner.fsdp import FsdpSetup, estimate_peak_allocated_bytes, fsdp_tensor_terms
from runner.planner.params import count_params
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
                      gradient_checkpointing=False, cpu_offload=bool(run.get("fsdp_cpu_offload", False)))
    return arch, setup


def host_estimate_bytes(arch: Qwen3NextArchitecture, setup: FsdpSetup) -> float:
    """Host bytes per rank the offloaded state takes: fp32 params, grads and AdamW moments of its shard."""
    if not setup.cpu_offload:
        return 0.0
    return 16 * count_params(arch, mtp_layers=0).total / setup.ranks


def compare_run(run: dict) -> dict:
    arch, setup = smoke_setup(run)
    measured = max(int(x) for x in run["peak_mem_allocated_bytes"])
    estimated = estimate_peak_allocated_bytes(arch, setup)
    row = {
        "label": run.get("label") or f"{arch.num_hidden_layers}L x {arch.num_experts}E, "
                                      f"{setup.tokens} tokens, {setup.ranks} GPU(s)"
                                      + (", CPU offload" if setup.cpu_offload else ""),
        "cpu_offload": setup.cpu_offload,
        "gpu": run.get("gpu_name"),
        "measured_gib": measured / (1 << 30),
        "estimated_gib": estimated / (1 << 30),
        "estimate_over_measured": estimated / measured if measured else None,
        "terms": [t.to_json() for t in fsdp_tensor_terms(arch, setup)],
    }
    if run.get("host_rss_end_bytes") and run.get("host_rss_base_bytes"):
        grown = max(e - b for e, b in zip(run["host_rss_end_bytes"], run["host_rss_base_bytes"]))
        row["host_measured_gib"] = grown / (1 << 30)
        row["host_estimated_gib"] = host_estimate_bytes(arch, setup) / (1 << 30)
        row["host_peak_gib"] = max(run.get("host_rss_peak_bytes") or [0]) / (1 << 30)
    return row


def compare_file(path: Path | str = SMOKE_RUNS) -> list[dict]:
    return [compare_run(r) for r in load_runs(path)]


def render(rows: list[dict]) -> str:
    lines = ["| run | GPU | measured peak allocated (GiB) | planner estimate (GiB) | estimate / measured |",
             "|---|---|---|---|---|"]
    for r in rows:
        ratio = "n/a" if r["estimate_over_measured"] is None else f"{r['estimate_over_measured']:.2f}"
        lines.append(f"| {r['label']} | {r['gpu'] or '?'} | {r['measured_gib']:.2f} | {r['estimated_gib']:.2f} "
                     f"| {ratio} |")
    host = [r for r in rows if "host_measured_gib" in r]
    if host:
        lines += ["", "| run | host memory held per rank after training (GiB) | planner: offloaded state per rank "
                      "(GiB) | peak resident per rank (GiB) |", "|---|---|---|---|"]
        lines += [f"| {r['label']} | {r['host_measured_gib']:.2f} | {r['host_estimated_gib']:.2f} "
                  f"| {r['host_peak_gib']:.2f} |" for r in host]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m runner.planner.smoke_compare [docs/smoke-runs.json]
    import sys
    print(render(compare_file(sys.argv[1] if len(sys.argv) > 1 else SMOKE_RUNS)))
