"""Read a Hugging Face checkpoint's config.json and index, and compare sizes. No torch."""

from __future__ import annotations

import json
from pathlib import Path

# One error type and one config.json reader for plan, doctor, train and convert.
from runner.checks.checkpoint import CheckpointError, read_config_json
from runner.planner.params import ParamCounts
from runner.recipes.qwen3_next import QWEN3_NEXT_80B, Qwen3NextArchitecture

# The built-in 80B config: Qwen3-Next-80B-A3B checkpoints ship one MTP layer.
DEFAULT_MTP_LAYERS = 1



def load_architecture(checkpoint_dir: str | None) -> tuple[Qwen3NextArchitecture, int, dict]:
    """(architecture, MTP layers, facts) from DIR/config.json, or the built-in 80B defaults."""
    if not checkpoint_dir:
        return QWEN3_NEXT_80B, DEFAULT_MTP_LAYERS, {"source": "built-in Qwen3-Next-80B-A3B config"}
    path = Path(checkpoint_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; pass --hf-checkpoint a Hugging Face model folder")
    config = read_config_json(path)
    if config.get("model_type") not in (None, "qwen3_next"):
        raise CheckpointError(f"{path}: model_type is {config.get('model_type')!r}, expected 'qwen3_next'")
    try:
        arch = Qwen3NextArchitecture.from_hf_config(config)
    except TypeError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    mtp = int(config.get("mtp_num_hidden_layers", config.get("num_nextn_predict_layers", 0)) or 0)
    facts = {"source": str(path), "dtype": config.get("torch_dtype", config.get("dtype"))}
    return arch, mtp, facts


def index_total_size(checkpoint_dir: str | None) -> int | None:
    if not checkpoint_dir:
        return None
    path = Path(checkpoint_dir) / "model.safetensors.index.json"
    try:
        return int(json.loads(path.read_text())["metadata"]["total_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def compare_with_index(counts: ParamCounts, total_size: int | None, bytes_per_param: int = 2) -> dict:
    """Our bf16 byte count (model + MTP block) against the index's metadata.total_size."""
    ours = counts.checkpoint_total * bytes_per_param
    out = {"estimated_bytes": ours}
    if total_size is None:
        out["summary"] = (f"estimated {ours / 1e9:.2f} GB of bf16 weights incl. MTP "
                          f"(no model.safetensors.index.json to compare)")
        return out
    diff = (ours - total_size) / total_size
    out.update({"index_total_size": total_size, "relative_difference": diff,
                "summary": f"estimated {ours / 1e9:.3f} GB vs index total_size {total_size / 1e9:.3f} GB "
                           f"({diff:+.3%})"})
    return out
