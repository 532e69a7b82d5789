"""Build small but real Hugging Face checkpoints (real safetensors files) for tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def make_checkpoint(path: Path, model_type: str = "qwen3_next", shards: int = 2) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": model_type, "num_hidden_layers": 48,
                                                  "hidden_size": 2048}))
    weight_map = {}
    total = 0
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {f"model.layers.{i}.weight": np.full((4, 8), i, dtype=np.float32),
                   f"model.layers.{i}.bias": np.zeros(8, dtype=np.float32)}
        save_file(tensors, str(path / name))
        for t, arr in tensors.items():
            weight_map[t] = name
            total += arr.nbytes
    (path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}))
    return path


def make_dataset(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def make_base_folder(base: Path) -> Path:
    """BASE_FOLDER with the layout slime's scripts expect (tiny stand-ins)."""
    make_checkpoint(base / "Qwen3-Next-80B-A3B-Thinking")
    td = base / "Qwen3-Next-80B-A3B-Thinking_torch_dist"
    (td / "release").mkdir(parents=True)
    (td / "latest_checkpointed_iteration.txt").write_text("release")
    make_dataset(base / "dapo-math-17k" / "dapo-math-17k.jsonl",
                 [{"prompt": "1+1?", "label": "2"}, {"prompt": "2+2?", "label": "4"}])
    make_dataset(base / "aime-2024" / "aime-2024.jsonl", [{"prompt": "p", "label": "1"}])
    return base
