import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# A shell's background job (e.g. `bash .ci/run &` in a script) starts with SIGINT ignored, and an
# ignored signal stays ignored in every process started from it: the runners these tests start would
# then shrug off the Ctrl-C the tests send them. A terminal's Ctrl-C reaches a user's runner; so here.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


RUNNER_ENV = {"BASE_FOLDER", "SLIME_DIR", "MEGATRON_DIR", "MASTER_ADDR", "NCCL_NVLS_ENABLE", "WANDB_API_KEY",
              "HF_TOKEN", "SLURM_JOB_NODELIST", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "SLIME_RUNS_DIR",
              "TRITON_CACHE_DIR", "FLASHINFER_WORKSPACE_BASE", "TORCH_EXTENSIONS_DIR", "XDG_CACHE_HOME"}


def run_cli(*args: str, env: dict | None = None, cwd: str | None = None, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m runner ARGS` as a real subprocess (what users run)."""
    # Start from the caller's environment minus what the runner reads, so a
    # developer's own BASE_FOLDER or MASTER_ADDR cannot change test results.
    inherited = {k: v for k, v in os.environ.items() if k not in RUNNER_ENV and not k.startswith("SLIME_RUNNER_")}
    full_env = {**inherited, **(env or {})}
    # A real run active on this machine must not change test results (runner.runs.machine_lock).
    full_env.setdefault("SLIME_RUNNER_LOCK", os.path.join(tempfile.gettempdir(), f"slime-runner-tests-{os.getpid()}.lock"))
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "runner", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or str(REPO), timeout=timeout, input=input)


def free_port() -> int:
    """A free port outside Ray's default worker port range (10002-19999)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not 10002 <= port <= 19999:
            return port


def unused_short_path() -> Path:
    """A short path under /tmp that does not exist: a run's --ray-temp-dir for tests that must start
    nothing (Ray's socket paths allow it about 40 bytes; pytest's tmp_path is longer)."""
    import secrets

    return Path("/tmp") / f"rt-unused-{secrets.token_hex(5)}"


@pytest.fixture
def short_tmp():
    # Ray's unix socket paths must stay under ~107 bytes: pytest's tmp_path is too deep.
    path = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    yield path
    subprocess.run(["rm", "-rf", path])


@pytest.fixture
def machine(request, tmp_path):
    """A machine that has everything a recipe needs (tests/machine.py: make_machine). A test or a module
    picks its GPUs and --force with @pytest.mark.machine(gpu="h100", force=False)."""
    from tests.machine import make_machine

    marker = request.node.get_closest_marker("machine")
    return make_machine(tmp_path, **(marker.kwargs if marker else {}))


@pytest.fixture
def no_gpu_env(tmp_path):
    """An environment where GPU facts come from an empty recording (no GPUs)."""
    rec = tmp_path / "nogpu"
    rec.mkdir()
    (rec / "query.csv").write_text("")
    (rec / "topo.txt").write_text("")
    return {"SLIME_RUNNER_GPU_RECORDING": str(rec)}
