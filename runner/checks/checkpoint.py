"""Validate a Hugging Face checkpoint and read safetensors headers, without torch.

A safetensors file starts with an 8-byte little-endian header length, then a
JSON header mapping tensor names to dtype, shape and byte offsets.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
# Headers are small (a few hundred KB); refuse absurd lengths from corrupt files.
MAX_HEADER_BYTES = 100 * 2**20


class CheckpointError(Exception):
    """One-line, user-facing description of what is wrong and what to do."""


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: dict
    metadata: dict
    data_bytes: int


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    try:
        with path.open("rb") as f:
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise CheckpointError(f"{path}: unreadable safetensors header (file has {len(raw_len)} bytes); "
                                      f"re-download this shard")
            (length,) = struct.unpack("<Q", raw_len)
            if length == 0 or length > MAX_HEADER_BYTES:
                raise CheckpointError(f"{path}: unreadable safetensors header (declared length {length}); "
                                      f"re-download this shard")
            raw = f.read(length)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) < length:
        raise CheckpointError(f"{path}: truncated safetensors header ({len(raw)} of {length} bytes); "
                              f"re-download this shard")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors header ({exc}); re-download this shard") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: unreadable safetensors header (not a JSON object); re-download this shard")
    metadata = header.pop("__metadata__", {}) or {}
    end = 0
    for name, info in header.items():
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError):
            raise CheckpointError(f"{path}: tensor {name!r} has no valid data_offsets; re-download this shard") from None
    size = path.stat().st_size
    if size < 8 + length + end:
        raise CheckpointError(f"{path}: truncated ({size} bytes, header promises {8 + length + end}); "
                              f"re-download this shard")
    return SafetensorsHeader(header, metadata, end)


@dataclass(frozen=True)
class CheckpointSummary:
    path: Path
    model_type: str
    config: dict
    shards: tuple[str, ...]
    tensors: int
    total_bytes: int
    index_total_size: int | None


def read_config_json(config_path: Path) -> dict:
    """A checkpoint's config.json as a dict; the one message for an unreadable one (plan, doctor, train, convert)."""
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                              f"re-download it (`python -m runner download` resumes) or restore the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path}: unreadable ({getattr(exc, 'strerror', None) or exc}); "
                              f"re-download it (`python -m runner download` resumes) or restore the file") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: not a JSON object; re-download it (`python -m runner download`)")
    return config


def load_config(path: Path, expected_model_type: str) -> dict:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{config_path} is missing: {path} is not a complete Hugging Face checkpoint; "
                              f"run `python -m runner download`, or point BASE_FOLDER (--base-folder) at the "
                              f"folder that holds the model")
    config = read_config_json(config_path)
    model_type = config.get("model_type")
    if model_type != expected_model_type:
        raise CheckpointError(f"{config_path}: model_type is {model_type!r}, expected {expected_model_type!r}: "
                              f"this recipe needs a Qwen3-Next checkpoint")
    return config


def validate_hf_checkpoint(path: Path, expected_model_type: str = "qwen3_next") -> CheckpointSummary:
    """Raise CheckpointError naming the first problem; return a summary when complete."""
    if not path.exists():
        raise CheckpointError(f"Hugging Face checkpoint {path} does not exist; run `python -m runner download`, "
                              f"or point BASE_FOLDER (--base-folder) at the folder that holds it")
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a folder: a Hugging Face checkpoint is a folder with config.json "
                              f"and safetensors shards; run `python -m runner download`")
    config = load_config(path, expected_model_type)

    index_path = path / INDEX_NAME
    index_total = None
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
            weight_map = index["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index_path}: unreadable index ({exc}); re-download it") from None
        index_total = (index.get("metadata") or {}).get("total_size")
        by_shard: dict[str, list[str]] = {}
        for tensor, shard in weight_map.items():
            by_shard.setdefault(shard, []).append(tensor)
    elif (path / SINGLE_NAME).is_file():
        by_shard = {SINGLE_NAME: []}
    else:
        raise CheckpointError(f"{path} has neither {INDEX_NAME} nor {SINGLE_NAME}: weights are missing; "
                              f"run `python -m runner download`")

    missing = sorted(s for s in by_shard if not (path / s).is_file())
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise CheckpointError(f"{path / missing[0]}{more} missing (named in {INDEX_NAME}): the download is "
                              f"incomplete; run `python -m runner download` again (it resumes)")
    tensors = 0
    total = 0
    for shard, names in sorted(by_shard.items()):
        header = read_safetensors_header(path / shard)
        absent = [n for n in names if n not in header.tensors]
        if absent:
            raise CheckpointError(f"{path / shard}: tensor {absent[0]!r} listed in {INDEX_NAME} is not in the "
                                  f"shard; re-download this shard")
        tensors += len(header.tensors)
        total += header.data_bytes
    return CheckpointSummary(path, config["model_type"], config, tuple(sorted(by_shard)), tensors, total, index_total)


TRACKER_NAME = "latest_checkpointed_iteration.txt"


def torch_dist_complete(path: Path) -> bool:
    """A converted Megatron checkpoint is complete once its tracker names an existing iteration.

    slime's converter writes the tracker ("release") only after every rank saved.
    """
    try:
        content = (path / TRACKER_NAME).read_text().strip()
    except OSError:
        return False
    if content == "release":
        return (path / "release").is_dir()
    if content.isdigit():
        return (path / f"iter_{int(content):07d}").is_dir()
    return False
