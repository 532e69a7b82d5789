from runner.gpus import count_nvlinks, nccl_nvls_value, parse_query_csv, query_gpus
from tests.conftest import DATA

H100X4 = DATA / "gpus" / "h100x4"


def test_parses_a_real_h100_recording():
    facts = query_gpus({"SLIME_RUNNER_GPU_RECORDING": str(H100X4)})
    assert facts.error is None and facts.count == 4
    gpu = facts.gpus[0]
    assert gpu.name == "NVIDIA H100 80GB HBM3" and gpu.compute_capability == (9, 0)
    assert round(gpu.memory_gib, 1) == 79.6 and not gpu.is_blackwell and gpu.arch_name == "Hopper"
    # 4 GPUs, each NV18 to the 3 others: 12 cells, as slime's grep counts them.
    assert facts.nvlink_links == 12 and facts.has_nvlink


def test_nvls_from_detection_unless_the_caller_set_it():
    facts = query_gpus({"SLIME_RUNNER_GPU_RECORDING": str(H100X4)})
    assert nccl_nvls_value(facts, {}) == ("1", "NVLink detection (12 NVLink entries)")
    assert nccl_nvls_value(facts, {"NCCL_NVLS_ENABLE": "0"})[0] == "0"


def test_pcie_topology_and_unknown_capability():
    assert count_nvlinks("GPU0\t X \tPHB\nGPU1\tPHB\t X \nLegend: NV# = bonded NVLinks") == 0
    (gpu,) = parse_query_csv("0, Tesla T4, 15360, [N/A], 535.0, GPU-x\n")
    assert gpu.compute_capability is None and gpu.arch_name == "unknown"


def test_missing_recording_is_an_error_not_a_crash(tmp_path):
    facts = query_gpus({"SLIME_RUNNER_GPU_RECORDING": str(tmp_path / "absent")})
    assert facts.count == 0 and "cannot read" in facts.error
