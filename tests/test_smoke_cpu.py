"""`runner smoke`: planning, FLOP accounting, and a real CPU training run under torchrun + gloo.

The CPU run is the same code path as on GPUs (FSDP2 fully_shard, synthetic
data, the kernel and call-site spies, the float64 parity checks) with
transformers' torch fallback. GPU tests are marked `gpu` and skip without CUDA.
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_cli

import runner.smoke as smoke
from runner.smoke import config as C
from runner.smoke import verdict

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
needs_stack = pytest.mark.skipif(not (HAS_TORCH and HAS_TRANSFORMERS),
                                 reason="needs torch and transformers>=4.57 (Qwen3NextForCausalLM)")


def has_cuda() -> bool:
    if not HAS_TORCH:
        return False
    import torch

    return torch.cuda.is_available()


def parse(*argv):
    p = argparse.ArgumentParser()
    smoke.add_arguments(p)
    args = p.parse_args(list(argv))
    args.dry_run = False
    return args


def test_import_does_not_import_torch():
    code = "import sys, runner.smoke, runner.smoke.verdict, runner.checks.gpu_kernels; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_plan_cuda_defaults_is_pure_and_fast(monkeypatch):
    monkeypatch.delenv("NCCL_NVLS_ENABLE", raising=False)
    t0 = time.perf_counter()
    plan = smoke.build_plan(parse())
    assert time.perf_counter() - t0 < 0.5
    assert not plan.errors
    (proc,) = plan.processes
    argv = list(proc.argv)
    assert argv[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert argv[argv.index("--nproc-per-node") + 1] == "gpu"  # torchrun counts the visible GPUs
    assert argv[argv.index("-m", 3) + 1] == "runner.smoke.worker"
    assert argv[argv.index("--seq-len") + 1] == "4096"
    assert proc.env["NCCL_NVLS_ENABLE"] == "0"
    # the exact model config is part of the plan
    cfg = json.loads(plan.notes[1].split(": ", 1)[1])
    assert cfg["layer_types"] == ["linear_attention"] * 3 + ["full_attention"] + ["linear_attention"] * 3 + [
        "full_attention"]
    assert (cfg["linear_num_value_heads"], cfg["linear_num_key_heads"], cfg["linear_key_head_dim"]) == (32, 16, 128)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == (16, 2, 256)


def test_plan_keeps_callers_nvls_choice(monkeypatch):
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "1")
    (proc,) = smoke.build_plan(parse()).processes
    assert "NCCL_NVLS_ENABLE" not in proc.env


def test_plan_cpu_and_bad_knobs():
    plan = smoke.build_plan(parse("--device", "cpu", "--nproc", "3"))
    argv = list(plan.processes[0].argv)
    assert argv[argv.index("--nproc-per-node") + 1] == "3"
    assert plan.processes[0].env["CUDA_VISIBLE_DEVICES"] == ""
    plan = smoke.build_plan(parse("--top-k", "40", "--layers", "2", "--nproc", "0"))
    msgs = " | ".join(p.message for p in plan.errors)
    assert "--top-k (40) can't exceed --experts (32)" in msgs
    assert "--layers (2) must be >= 4" in msgs
    assert "--nproc must be >= 1" in msgs


def test_plan_cpu_offload_has_no_mfu_floor_unless_asked():
    def argv_of(*extra):
        argv = list(smoke.build_plan(parse(*extra)).processes[0].argv)
        return argv, argv[argv.index("--min-mfu") + 1]

    argv, floor = argv_of("--fsdp-cpu-offload")
    assert "--fsdp-cpu-offload" in argv and floor == "0.0"
    assert argv_of()[1] == "0.04"
    assert argv_of("--fsdp-cpu-offload", "--min-mfu", "0.01")[1] == "0.01"


def test_flops_accounting_by_hand():
    cfg = C.model_config(C.resolve("cuda", {}))
    p = C.param_counts(cfg)
    h = 2048
    gdn = h * (2 * 2048 + 2 * 4096) + h * 64 + 4096 * h + 8192 * 4
    attn = h * 16 * 256 * 2 + 2 * h * 2 * 256 + 16 * 256 * h
    moe_active = 10 * 3 * h * 512 + 3 * h * 512 + h + h * 32
    assert p["matmul_active"] == 6 * gdn + 2 * attn + 8 * moe_active + 151936 * h
    f = C.flops_per_token(cfg, 4096)
    assert f["attention"] == 2 * 3 * 2 * 16 * 256 * 4096
    assert f["total"] == 6 * p["matmul_active"] + f["attention"] + f["gdn"]
    assert C.peak_bf16("NVIDIA H100 80GB HBM3") == 989.4e12
    assert C.peak_bf16("NVIDIA H100 PCIe") == 756e12
    assert C.peak_bf16("NVIDIA GH200 480GB") == 989.4e12
    assert C.peak_bf16("Some New GPU") is None


@needs_stack
def test_param_count_matches_transformers():
    import torch
    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

    cfg = C.model_config(C.resolve("cpu", {}))
    with torch.device("meta"):
        model = Qwen3NextForCausalLM(Qwen3NextConfig(**cfg))
    assert sum(t.numel() for t in model.parameters()) == C.param_counts(cfg)["total"]


@needs_stack
def test_gdn_reference_matches_transformers_fallback():
    import torch
    from transformers.models.qwen3_next import modeling_qwen3_next as m

    from runner.smoke.reference import gated_delta_rule

    fallback = getattr(m.torch_chunk_gated_delta_rule, "__wrapped__", m.torch_chunk_gated_delta_rule)
    g = torch.Generator().manual_seed(0)
    T, hqk, h, d = 70, 2, 4, 16  # T not a multiple of the chunk size
    q, k = torch.randn(1, T, hqk, d, generator=g), torch.randn(1, T, hqk, d, generator=g)
    v = torch.randn(1, T, h, d, generator=g)
    gate = torch.nn.functional.logsigmoid(torch.randn(1, T, h, generator=g) + 2)
    beta = torch.rand(1, T, h, generator=g)
    expand = (lambda x: x.repeat_interleave(h // hqk, dim=2))
    o, _ = fallback(expand(q), expand(k), v, g=gate, beta=beta, use_qk_l2norm_in_kernel=True)
    ref = gated_delta_rule(q[0], k[0], v[0], gate[0], beta[0], l2norm=True, dtype=torch.float64)
    assert float((o[0].double() - ref).norm() / ref.norm()) < 1e-4


def _step_losses(stderr: str) -> list[float]:
    """The per-step losses the worker logs: `[smoke] step i/n loss X ...`."""
    return [float(line.split(" loss ")[1].split()[0]) for line in stderr.splitlines()
            if line.startswith("[smoke] step ")]


@needs_stack
def test_cpu_smoke_trains_and_reports():
    r = run_cli("smoke", "--device", "cpu", "--json", timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["world_size"] == 2 and res["device"] == "cpu"
    statuses = {c["name"]: c["status"] for c in res["checks"]}
    assert statuses["loss falls"] == "ok"
    assert statuses["GDN output vs float64 reference"] == "ok"
    assert all(s in ("ok", "skip") for s in statuses.values()), statuses
    assert res["calls_min_over_ranks"]["gdn_calls"] == 3 * res["knobs"]["steps"]  # 3 GDN layers, every rank
    assert res["params"]["counted_by_torch"] == res["params"]["total"]
    assert res["model_config"]["layer_types"][3] == "full_attention"
    assert res["tokens_per_s"] > 0
    # One loss per step, the same in the log, the result and the verdict: the mean over ranks.
    losses = res["losses"]
    assert _step_losses(r.stderr) == pytest.approx(losses, abs=5e-5)
    loss_check = next(c for c in res["checks"] if c["name"] == "loss falls")
    assert loss_check["detail"].startswith(f"{losses[0]:.4f} -> {losses[-1]:.4f} ")
    # A curve that reads as learning: every step lower, ending well above the task's floor and below the start.
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert res["loss_floor"] < losses[-1] < losses[0] - 0.5
    # FSDP2 applied as slime applies it: each decoder layer and the untied input embedding, then the root.
    assert res["fsdp_wrapped"] == ["model.embed_tokens"] + [f"model.layers.{i}" for i in range(4)]
    assert res["fsdp_cpu_offload"] is False and res["process_group_backend"] == "gloo"


@needs_stack
def test_cpu_smoke_with_fsdp_cpu_offload_trains_the_same():
    """slime's --fsdp-cpu-offload path (CPUOffloadPolicy, AdamW on host tensors, gloo for host collectives)."""
    plain = json.loads(run_cli("smoke", "--device", "cpu", "--json", "--steps", "4", "--warmup", "1",
                               timeout=180).stdout)
    r = run_cli("smoke", "--device", "cpu", "--json", "--steps", "4", "--warmup", "1", "--fsdp-cpu-offload",
                timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["fsdp_cpu_offload"] is True
    assert res["losses"] == pytest.approx(plain["losses"], rel=1e-4)
    assert all(x > 0 for x in res["host_rss_end_bytes"]) and len(res["host_rss_peak_bytes"]) == 2
    text = verdict.render(res, verdict.judge(res))
    assert "FSDP2 with CPU offload on 2 x cpu" in text and "host memory per rank" in text


def test_smoke_without_gpus_says_use_cpu(no_gpu_env, tmp_path):
    """One line naming --device cpu, exit 2, instead of torchrun's traceback; nothing started."""
    from tests.gpu_recordings import record

    two_hidden = {**record(tmp_path / "two", 2), "CUDA_VISIBLE_DEVICES": ""}
    for env in (no_gpu_env, two_hidden):
        r = run_cli("smoke", env=env, timeout=60)
        assert r.returncode == 2, r.stderr
        assert r.stdout == ""
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith("smoke: error: no NVIDIA GPU visible here") and "--device cpu" in line, line
    r = run_cli("smoke", "--nproc", "4", env=record(tmp_path / "two", 2), timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == ("smoke: error: --nproc 4 but 2 GPU(s) are visible here "
                                                      f"(recording {tmp_path / 'two'}); use --nproc 2 or fewer")
    dry = run_cli("smoke", "--dry-run", "--json", env=no_gpu_env, timeout=60)
    assert dry.returncode == 0
    assert any("--device cpu" in p["message"] for p in json.loads(dry.stdout)["problems"])


@needs_stack
def test_ctrl_c_during_smoke_is_one_line(tmp_path):
    """A real Ctrl-C: SIGINT to the runner's process group (what a terminal does) while torchrun's
    gloo workers train; one line, exit 130, no process of the run left."""
    import os
    import signal

    from runner.launch.processes import processes_with_marker

    marker = str(tmp_path / "result.json")
    env = {k: v for k, v in os.environ.items() if k not in ("BASE_FOLDER",)}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "runner", "smoke", "--device", "cpu", "--steps", "400",
                             "--result-file", marker], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    before = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        before.append(line)
        if line.startswith("[smoke] step 2/") or not line:
            break
    assert before[-1].startswith("[smoke] step 2/"), "".join(before)[-3000:]
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.decode().splitlines() == ["smoke: interrupted (Ctrl-C): torchrun and its workers are stopped"]
    assert out == b""
    assert not processes_with_marker(marker)
    assert not os.path.exists(marker)


@needs_stack
def test_cpu_smoke_failed_assertion_is_one_clear_line():
    r = run_cli("smoke", "--device", "cpu", "--steps", "4", "--min-loss-drop", "0.99", timeout=180)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("smoke: FAIL: loss falls: first "), last


def test_verdict_flags_torch_fallback_on_cuda():
    res = {"device": "cuda", "knobs": {"min_loss_drop": 0.05}, "losses": [12.0, 8.0, 7.0, 6.0],
           "calls_min_over_ranks": {"fla_gdn_fwd": 0, "fla_gdn_bwd": 0, "causal_conv1d_fwd": 0,
                                    "causal_conv1d_bwd": 0, "gdn_calls": 6},
           "parity": {}, "tokens_per_s": 1.0, "tokens_per_s_per_gpu": 1.0, "step_time_s_median": 1.0,
           "peak_mem_allocated_bytes": [1], "mfu": None, "gpu_name": "X"}
    checks = {c.name: c for c in verdict.judge(res)}
    assert checks["loss falls"].status == "ok"
    assert checks["fla chunk_gated_delta_rule used"].status == "fail"
    assert "torch_chunk_gated_delta_rule" in checks["fla chunk_gated_delta_rule used"].fix
    assert checks["causal-conv1d used"].status == "fail"
    assert checks["GDN output vs float64 reference"].status == "fail"
    aborted = verdict.judge({"device": "cuda", "aborted": "fast-path kernels don't import: fla: ImportError"})
    assert aborted[0].blocking and "9714c595" in aborted[0].fix


def test_verdict_holds_the_mfu_floor():
    base = {"device": "cuda", "losses": [12.0, 8.0, 7.0, 6.0], "parity": {}, "tokens_per_s": 1.0,
            "tokens_per_s_per_gpu": 1.0, "step_time_s_median": 1.0, "peak_mem_allocated_bytes": [1],
            "peak_bf16_flops": 989.4e12, "gpu_name": "NVIDIA H100 80GB HBM3",
            "calls_min_over_ranks": {"fla_gdn_fwd": 1, "fla_gdn_bwd": 1, "causal_conv1d_fwd": 1,
                                     "causal_conv1d_bwd": 1, "gdn_calls": 6}}
    knobs = {"min_loss_drop": 0.05, "min_mfu": 0.04}
    low = {c.name: c for c in verdict.judge({**base, "knobs": knobs, "mfu": 0.031})}["MFU"]
    assert low.status == "fail" and "3.1%" in low.detail and "floor 4%" in low.detail
    ok = {c.name: c for c in verdict.judge({**base, "knobs": knobs, "mfu": 0.057})}["MFU"]
    assert ok.status == "ok"
    off = {c.name: c for c in verdict.judge({**base, "knobs": {**knobs, "min_mfu": 0.0}, "mfu": 0.001})}["MFU"]
    assert off.status == "ok"


@pytest.mark.gpu
@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU with fla and causal-conv1d installed")
def test_cuda_smoke_one_gpu_fast_path():
    r = run_cli("smoke", "--device", "cuda", "--nproc", "1", "--layers", "4", "--experts", "16", "--steps", "10",
                "--json", env={"CUDA_VISIBLE_DEVICES": "0"}, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert all(c["status"] == "ok" for c in res["checks"]), res["checks"]
    assert res["mfu"] is not None and res["peak_mem_allocated_bytes"][0] > 0
