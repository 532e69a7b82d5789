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
drops it, and the host estimate is compared with the growth of each rank's
resident memory (`host_rss_end_bytes` minus `host_rss_base_bytes`) when the
run recorded it. That estimate is the state (16 B/param / ranks) plus what
torch's pinned allocator adds: each tensor's padded param shard and its grad
shard rounded up to a power of two (runner.planner.pinned). The offload's
own cost is the growth minus that of the same run without offload, when the
file has one (same model, tokens, ranks and GPU). After the model is built
and sharded, before any step, only the pinned params are there
(`host_rss_after_build_bytes`).
"""

from __future__ import annotations

import json
from pathlib import Path

from runner.planner.fsdp import FsdpSetup, estimate_peak_allocated_bytes, fsdp_tensor_terms
from runner.planner.pinned import OffloadedBytes, offloaded_bytes
from runner.planner.shapes import parameter_shapes
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


def host_estimate(arch: Qwen3NextArchitecture, setup: FsdpSetup) -> OffloadedBytes | None:
    """Host bytes rank 0 (the largest shards) holds for the offloaded state; None without offload."""
    if not setup.cpu_offload:
        return None
    return offloaded_bytes([s for _, s in parameter_shapes(arch)], setup.ranks, [0])


OFFLOAD_SUFFIX = "-cpu-offload"


def _twin_key(run: dict) -> str:
    """What must match for a plain run to be an offload run's baseline: the pair's label (bench/smoke_offload.sh
    names the offload run LABEL-cpu-offload and runs both on one machine, one after the other) and the setup."""
    knobs = run.get("knobs", {})
    label = run.get("label") or ""
    pair = label[: -len(OFFLOAD_SUFFIX)] if label.endswith(OFFLOAD_SUFFIX) else label
    return json.dumps([pair, run.get("model_config"), knobs.get("seq_len"), knobs.get("micro_batch"),
                       run.get("world_size"), run.get("gpu_name")], sort_keys=True)


def _grown(run: dict, key: str) -> int:
    return max(e - b for e, b in zip(run[key], run["host_rss_base_bytes"]))


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
        "twin_key": _twin_key(run),
        "measured_gib": measured / (1 << 30),
        "estimated_gib": estimated / (1 << 30),
        "estimate_over_measured": estimated / measured if measured else None,
        "terms": [t.to_json() for t in fsdp_tensor_terms(arch, setup)],
    }
    if run.get("host_rss_end_bytes") and run.get("host_rss_base_bytes"):
        host = host_estimate(arch, setup)
        row["host_measured_gib"] = _grown(run, "host_rss_end_bytes") / (1 << 30)
        row["host_estimated_gib"] = (host.total if host else 0) / (1 << 30)
        row["host_state_gib"] = (host.state if host else 0) / (1 << 30)
        row["host_rounding_gib"] = (host.rounding if host else 0) / (1 << 30)
        row["host_peak_gib"] = max(run.get("host_rss_peak_bytes") or [0]) / (1 << 30)
        if run.get("host_rss_after_build_bytes"):
            row["host_after_build_measured_gib"] = _grown(run, "host_rss_after_build_bytes") / (1 << 30)
            row["host_after_build_estimated_gib"] = (host.params if host else 0) / (1 << 30)
    if host_pinned_allocated(run) and setup.cpu_offload:
        # torch's own count of its pinned blocks (torch.cuda.host_memory_stats: allocated_bytes counts
        # whole power-of-two blocks): what runner.planner.pinned predicts, without the process's other memory.
        host = host_estimate(arch, setup)
        built, end = host_pinned_allocated(run)
        row["pinned_after_build_measured_gib"] = built / (1 << 30)
        row["pinned_after_build_estimated_gib"] = host.params / (1 << 30)
        row["pinned_end_measured_gib"] = end / (1 << 30)
        row["pinned_end_estimated_gib"] = (host.params + host.grads) / (1 << 30)
    return row


def host_pinned_allocated(run: dict) -> tuple[int, int] | None:
    """(after build, at the end): the largest rank's pinned-allocator bytes, when the run recorded them."""
    built, end = run.get("host_pinned_allocated_after_build_bytes"), run.get("host_pinned_allocated_end_bytes")
    if not built or not end:
        return None
    return max(int(x) for x in built), max(int(x) for x in end)


def offload_costs(rows: list[dict]) -> dict[str, dict]:
    """For each offload row with a plain twin: what the offload itself added, measured and planned (GiB)."""
    plain = {r["twin_key"]: r for r in rows if not r["cpu_offload"] and "host_measured_gib" in r}
    out = {}
    for r in rows:
        base = plain.get(r.get("twin_key")) if r["cpu_offload"] and "host_measured_gib" in r else None
        if base is None:
            continue
        cost = {"end": r["host_measured_gib"] - base["host_measured_gib"], "planned_end": r["host_estimated_gib"]}
        if "host_after_build_measured_gib" in r and "host_after_build_measured_gib" in base:
            cost["after_build"] = r["host_after_build_measured_gib"] - base["host_after_build_measured_gib"]
            cost["planned_after_build"] = r["host_after_build_estimated_gib"]
        out[r["label"]] = cost
    return out


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
        costs = offload_costs(rows)
        lines += ["", "| run | host memory held per rank after training (GiB) | minus the same run without offload "
                      "(GiB) | planner: offloaded state + pinned rounding per rank (GiB) | of which padding + "
                      "rounding (GiB) | peak resident per rank (GiB) |", "|---|---|---|---|---|---|"]
        for r in host:
            cost = costs.get(r["label"])
            lines.append(f"| {r['label']} | {r['host_measured_gib']:.2f} | "
                         + (f"{cost['end']:.2f}" if cost else "n/a")
                         + f" | {r['host_estimated_gib']:.2f} | {r['host_rounding_gib']:.2f} "
                           f"| {r['host_peak_gib']:.2f} |")
    pinned = [r for r in rows if "pinned_end_measured_gib" in r]
    if pinned:
        lines += ["", "| run | pinned allocator after build: measured / planner (GiB) | at the end: measured / planner "
                      "(GiB) |", "|---|---|---|"]
        lines += [f"| {r['label']} | {r['pinned_after_build_measured_gib']:.3f} / "
                  f"{r['pinned_after_build_estimated_gib']:.3f} | {r['pinned_end_measured_gib']:.3f} / "
                  f"{r['pinned_end_estimated_gib']:.3f} |" for r in pinned]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m runner.planner.smoke_compare [docs/smoke-runs.json]
    import sys
    print(render(compare_file(sys.argv[1] if len(sys.argv) > 1 else SMOKE_RUNS)))
