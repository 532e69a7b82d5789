"""convert: golden argv against the seed's command, bad inputs, and a real
torchrun (CPU, gloo) run of a stand-in converter to check temp-dir + rename,
skip, --force and failure handling."""

import json
import os

import pytest

from runner.flags import FlagSet
from tests.conftest import DATA, run_cli
from tests.hf_fixtures import make_checkpoint

GOLDEN = json.loads((DATA / "slime_argv" / "convert.json").read_text())

# A stand-in for slime's tools/convert_hf_to_torch_dist.py: joins a real gloo
# process group under torchrun and writes a checkpoint the way Megatron does
# (rank 0 writes the tracker last).
FAKE_CONVERTER = """\
import argparse, os, sys
import torch.distributed as dist
p = argparse.ArgumentParser()
p.add_argument("--hf-checkpoint"); p.add_argument("--save"); p.add_argument("--fail", action="store_true")
args, _ = p.parse_known_args()
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
os.makedirs(os.path.join(args.save, "release"), exist_ok=True)
open(os.path.join(args.save, "release", f"shard_{rank}_of_{world}.distcp"), "w").write(args.hf_checkpoint)
dist.barrier()
if os.environ.get("FAKE_CONVERT_FAIL"):
    sys.exit(3)
if rank == 0:
    open(os.path.join(args.save, "latest_checkpointed_iteration.txt"), "w").write("release")
dist.barrier()
dist.destroy_process_group()
"""


@pytest.fixture
def layout(tmp_path):
    base = tmp_path / "models"
    make_checkpoint(base / "Qwen3-Next-80B-A3B-Thinking")
    slime = tmp_path / "slime"
    (slime / "tools").mkdir(parents=True)
    (slime / "tools" / "convert_hf_to_torch_dist.py").write_text(FAKE_CONVERTER)
    megatron = tmp_path / "Megatron-LM"
    (megatron / "megatron").mkdir(parents=True)
    return {"base": base, "slime": slime, "megatron": megatron,
            "args": ["--base-folder", str(base), "--slime-dir", str(slime), "--megatron-dir", str(megatron)]}


def _dry_run_json(layout, *extra):
    r = run_cli("convert", "--dry-run", "--json", "--nproc-per-node", "8", *layout["args"], *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_convert_argv_matches_the_seed_command(layout):
    plan = _dry_run_json(layout)
    assert plan["problems"] == []
    (proc,) = plan["processes"]
    argv = proc["argv"]
    golden = GOLDEN["torchrun_argv"]
    # torchrun options, then the converter script inside SLIME_DIR.
    assert argv[1:3] == golden[:2] == ["--nproc-per-node", "8"]
    assert argv[3] == f"{layout['slime']}/tools/convert_hf_to_torch_dist.py"
    assert golden[2] == "tools/convert_hf_to_torch_dist.py"
    ours, seed = FlagSet.parse(argv[4:]), FlagSet.parse(golden[3:])
    # Paths differ by design: BASE_FOLDER instead of /root, and the output goes to a
    # temporary sibling that is renamed on success.
    for f in (ours, seed):
        f.drop("hf-checkpoint"), f.drop("save")
    assert ours == seed
    ours_all = FlagSet.parse(argv[4:])
    assert ours_all.value("hf-checkpoint") == str(layout["base"] / "Qwen3-Next-80B-A3B-Thinking")
    save = ours_all.value("save")
    assert os.path.dirname(save) == str(layout["base"])
    assert os.path.basename(save).startswith(".Qwen3-Next-80B-A3B-Thinking_torch_dist.partial-")
    assert proc["env"]["PYTHONPATH"] == f"{layout['megatron']}:{layout['slime']}"
    assert GOLDEN["PYTHONPATH"] == "/root/Megatron-LM/"  # the seed puts only Megatron-LM there
    assert proc["cwd"] == str(layout["slime"])


def test_bad_checkpoint_is_refused_before_starting(layout):
    (layout["base"] / "Qwen3-Next-80B-A3B-Thinking" / "model-00002-of-00002.safetensors").unlink()
    r = run_cli("convert", "--nproc-per-node", "2", *layout["args"])
    assert r.returncode == 2
    assert "model-00002-of-00002.safetensors missing" in r.stderr
    assert not (layout["base"] / "Qwen3-Next-80B-A3B-Thinking_torch_dist").exists()
    # A dry-run lists the same problem and still succeeds.
    plan = _dry_run_json(layout)
    assert any("missing" in p["message"] for p in plan["problems"])


def test_existing_incomplete_output_is_not_touched(layout):
    out = layout["base"] / "Qwen3-Next-80B-A3B-Thinking_torch_dist"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    r = run_cli("convert", "--nproc-per-node", "2", *layout["args"])
    assert r.returncode == 2
    assert "exists but is not a complete torch_dist checkpoint" in r.stderr and "--force" in r.stderr
    assert (out / "precious.txt").read_text() == "mine"


def test_too_many_processes(layout):
    r = run_cli("convert", "--nproc-per-node", "64", *layout["args"])
    assert r.returncode == 2 and "--nproc-per-node 64 must be between 1 and 48" in r.stderr


@pytest.mark.slow
def test_real_torchrun_convert_rename_skip_force_and_failure(layout):
    pytest.importorskip("torch")
    out = layout["base"] / "Qwen3-Next-80B-A3B-Thinking_torch_dist"
    r = run_cli("convert", "--nproc-per-node", "2", *layout["args"], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "latest_checkpointed_iteration.txt").read_text() == "release"
    assert sorted(p.name for p in (out / "release").iterdir()) == ["shard_0_of_2.distcp", "shard_1_of_2.distcp"]
    assert not [p for p in layout["base"].iterdir() if ".partial-" in p.name]

    again = run_cli("convert", "--nproc-per-node", "2", *layout["args"])
    assert again.returncode == 0 and "nothing to do" in again.stderr

    failed = run_cli("convert", "--nproc-per-node", "2", "--force", *layout["args"], env={"FAKE_CONVERT_FAIL": "1"},
                     timeout=300)
    assert failed.returncode != 0 and "conversion failed" in failed.stderr
    assert (out / "latest_checkpointed_iteration.txt").exists()  # the good output survived
    assert not [p for p in layout["base"].iterdir() if ".partial-" in p.name]

    forced = run_cli("convert", "--nproc-per-node", "2", "--force", *layout["args"], timeout=300)
    assert forced.returncode == 0, forced.stderr[-3000:]
    aside = [p for p in layout["base"].iterdir() if ".replaced-" in p.name]
    assert len(aside) == 1 and (aside[0] / "latest_checkpointed_iteration.txt").exists()  # moved aside, not deleted
