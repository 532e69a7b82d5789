import json
import struct

import pytest

from runner.checks.checkpoint import CheckpointError, read_safetensors_header, torch_dist_complete, validate_hf_checkpoint
from runner.checks.dataset import DatasetError, validate_jsonl
from tests.hf_fixtures import make_checkpoint, make_dataset


def test_complete_checkpoint_validates(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m", shards=3)
    summary = validate_hf_checkpoint(ckpt)
    assert summary.model_type == "qwen3_next"
    assert len(summary.shards) == 3 and summary.tensors == 6
    assert summary.total_bytes == summary.index_total_size  # headers agree with the index


def test_missing_shard_is_named(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m", shards=3)
    (ckpt / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model-00002-of-00003\.safetensors missing .*download"):
        validate_hf_checkpoint(ckpt)


def test_wrong_model_type(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m", model_type="qwen3_moe")
    with pytest.raises(CheckpointError, match=r"model_type is 'qwen3_moe', expected 'qwen3_next'"):
        validate_hf_checkpoint(ckpt)


def test_missing_config_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        validate_hf_checkpoint(tmp_path / "absent")
    ckpt = make_checkpoint(tmp_path / "m")
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        validate_hf_checkpoint(ckpt)


@pytest.mark.parametrize("damage", ["garbage_header", "truncated_data", "empty"])
def test_unreadable_or_truncated_shard(tmp_path, damage):
    ckpt = make_checkpoint(tmp_path / "m")
    shard = ckpt / "model-00001-of-00002.safetensors"
    raw = shard.read_bytes()
    if damage == "garbage_header":
        shard.write_bytes(struct.pack("<Q", 40) + b"{not json" + b"x" * 40)
    elif damage == "truncated_data":
        shard.write_bytes(raw[:-16])
    else:
        shard.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"model-00001-of-00002\.safetensors: (unreadable|truncated)"):
        validate_hf_checkpoint(ckpt)


def test_index_tensor_absent_from_shard(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m")
    index = json.loads((ckpt / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.extra.weight"] = "model-00001-of-00002.safetensors"
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="'model.extra.weight' listed in model.safetensors.index.json"):
        validate_hf_checkpoint(ckpt)


def test_header_reader_reads_real_safetensors(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m", shards=1)
    header = read_safetensors_header(ckpt / "model-00001-of-00001.safetensors")
    assert header.tensors["model.layers.0.weight"]["shape"] == [4, 8]
    assert header.data_bytes == 4 * 8 * 4 + 8 * 4


def test_torch_dist_completeness(tmp_path):
    out = tmp_path / "td"
    assert not torch_dist_complete(out)
    (out / "release").mkdir(parents=True)
    assert not torch_dist_complete(out)  # no tracker yet: conversion still running or died
    (out / "latest_checkpointed_iteration.txt").write_text("release\n")
    assert torch_dist_complete(out)


def test_dataset_keys(tmp_path):
    good = make_dataset(tmp_path / "d.jsonl", [{"prompt": "a", "label": "b"}] * 3)
    assert validate_jsonl(good, ("prompt", "label")) == 3
    bad = make_dataset(tmp_path / "bad.jsonl", [{"prompt": "a", "label": "b"}, {"prompt": "a", "answer": "b"}])
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: missing key 'label' \(keys present: answer, prompt\)"):
        validate_jsonl(bad, ("prompt", "label"))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a", "label": "b"}\n{oops\n')
    with pytest.raises(DatasetError, match=r"broken\.jsonl:2: not valid JSON"):
        validate_jsonl(broken, ("prompt", "label"))
