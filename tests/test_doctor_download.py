import json

import pytest

from runner.checks.stack import fla_patch_present, version_matches
from tests.conftest import free_port, run_cli
from tests.gpu_recordings import record
from tests.hf_fixtures import make_base_folder


def doctor(tmp_path, env, *extra):
    base = make_base_folder(tmp_path / "models")
    return run_cli("doctor", "--json", "--no-imports", "--base-folder", str(base), *extra, env=env)


def rows(result) -> dict:
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_doctor_reports_blackwell_megatron_as_blocking(tmp_path):
    env = record(tmp_path / "b200", 8, name="NVIDIA B200", mib=183359, cc="10.0")
    r = doctor(tmp_path, env, "--recipe", "megatron-8gpu")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["ready"] is False
    gpus = rows(r)["gpus"]
    assert gpus["status"] == "fail" and "Blackwell" in gpus["fix"] and "8 x NVIDIA B200" in gpus["detail"]


def test_doctor_table_names_what_blocks(tmp_path):
    env = record(tmp_path / "h100x4", 4)
    base = make_base_folder(tmp_path / "models")
    r = run_cli("doctor", "--no-imports", "--base-folder", str(base), "--recipe", "megatron-8gpu", env=env)
    assert r.returncode == 1
    assert "needs 8 GPUs on this node, found 4" in r.stdout
    assert "NOT READY for megatron-8gpu" in r.stdout
    # The checkpoint and data made by the fixture pass.
    table = {line.split()[1]: line.split()[0] for line in r.stdout.splitlines() if line[:4].strip() in
             ("OK", "FAIL", "WARN", "SKIP")}
    assert table["datasets"] == "OK" and table["hf"] == "OK"


def test_doctor_sees_missing_slime(tmp_path):
    env = record(tmp_path / "h100", 8)
    checks = rows(doctor(tmp_path, env))
    slime = checks["slime + Megatron-LM"]
    assert slime["status"] == "fail" and "SLIME_DIR is not set" in slime["detail"]


def test_fla_patch_detection(tmp_path):
    kernel = "def prepare_wy_repr_bwd_kernel(\n    x,\n):\n    b_dk += tl.dot(tl.trans(b_dA), b_kb)\n"
    (tmp_path / "ops" / "gated_delta_rule").mkdir(parents=True)
    path = tmp_path / "ops" / "gated_delta_rule" / "wy_fast.py"
    path.write_text(kernel)
    assert fla_patch_present(tmp_path) is False
    path.write_text(kernel.replace("tl.dot(tl.trans(b_dA), b_kb)",
                                   "tl.inline_asm_elementwise(asm='mov.f32 $0, $1;', args=[tl.dot(tl.trans(b_dA), b_kb)])"))
    assert fla_patch_present(tmp_path) is True
    assert fla_patch_present(tmp_path / "absent") is None


def test_version_matching_ignores_local_suffix():
    assert version_matches("2.9.1+cu128", "2.9.1")
    assert not version_matches("2.9.0", "2.9.1")


def test_download_dry_run_lists_model_and_datasets(tmp_path):
    r = run_cli("download", "--dry-run", "--json", "--base-folder", str(tmp_path / "m"), env={"HF_TOKEN": "hf_secret_token_value"})
    assert r.returncode == 0
    plan = json.loads(r.stdout)
    repos = [p["argv"][p["argv"].index("--repo") + 1] for p in plan["processes"]]
    assert repos == ["Qwen/Qwen3-Next-80B-A3B-Thinking", "zhuzilin/dapo-math-17k", "zhuzilin/aime-2024"]
    dirs = [p["argv"][p["argv"].index("--local-dir") + 1] for p in plan["processes"]]
    assert dirs == [str(tmp_path / "m" / d) for d in ("Qwen3-Next-80B-A3B-Thinking", "dapo-math-17k", "aime-2024")]
    assert "hf_secret_token_value" not in r.stdout
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_download_without_network_says_what_to_place_where(tmp_path):
    pytest.importorskip("huggingface_hub")
    # A closed local port stands in for an unreachable hub.
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    r = run_cli("download", "--skip-model", "--base-folder", str(tmp_path / "m"), env=env, timeout=300)
    assert r.returncode == 1
    error = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1, r.stderr[-2000:]
    assert "zhuzilin/dapo-math-17k" in error[0] and str(tmp_path / "m" / "dapo-math-17k") in error[0]
    assert "dapo-math-17k.jsonl" in error[0]


@pytest.mark.parametrize("recipe,gpu,mib,expected", [
    ("fsdp", "NVIDIA H200", 143771, "fsdp-h200"),
    ("fsdp", "NVIDIA H100 80GB HBM3", 81559, "fsdp-80gb"),
    ("megatron-8gpu", "NVIDIA H100 80GB HBM3", 81559, "megatron-8gpu-80gb"),
])
def test_doctor_memory_row_names_the_derived_recipe_that_fits(tmp_path, recipe, gpu, mib, expected):
    """As train does: a recipe that does not fit these GPUs points at its derived recipe that does."""
    r = doctor(tmp_path, record(tmp_path / "gpus", 8, name=gpu, mib=mib), "--recipe", recipe)
    row = rows(r)["memory plan"]
    assert row["status"] == "fail", row
    assert f"run `train --recipe {expected}`" in row["fix"], row


def test_doctor_memory_row_of_a_fitting_recipe(tmp_path):
    r = doctor(tmp_path, record(tmp_path / "gpus", 8, name="NVIDIA H200", mib=143771), "--recipe", "fsdp-h200")
    assert rows(r)["memory plan"]["status"] == "ok"


def test_doctor_has_a_runs_dir_row(tmp_path):
    env = record(tmp_path / "h200", 8, name="NVIDIA H200", mib=143771)
    ok = rows(doctor(tmp_path, env))["runs dir"]
    assert ok["status"] == "ok" and ok["detail"].startswith(str(tmp_path / "models" / "runs"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = run_cli("doctor", "--json", "--no-imports", "--base-folder", str(tmp_path / "models"), "--runs-dir",
                str(blocker / "runs"), env=env)
    bad = rows(r)["runs dir"]
    assert r.returncode == 1 and bad["status"] == "fail" and "is not writable" in bad["detail"], bad
    assert "--runs-dir DIR or $SLIME_RUNS_DIR" in bad["detail"]


def test_doctor_says_a_base_folder_that_is_a_file_once(tmp_path):
    env = record(tmp_path / "h200", 8, name="NVIDIA H200", mib=143771)
    base = tmp_path / "base-file"
    base.write_text("")
    r = run_cli("doctor", "--json", "--no-imports", "--base-folder", str(base), env=env)
    checks = json.loads(r.stdout)["checks"]
    failing = [c for c in checks if c["status"] == "fail" and "BASE_FOLDER" in c["detail"] + c["fix"]]
    assert [c["name"] for c in failing] == ["base folder"], failing
    skipped = {c["name"] for c in checks if c["status"] == "skip" and "see base folder" in c["detail"]}
    assert skipped == {"hf checkpoint", "torch_dist checkpoint", "datasets", "runs dir"}
    assert sum(c["name"] == "base folder" for c in checks) == 1
