"""The keeper's cost and speed (docs/benchmarks.md, "Keeping a run"). Not a test: numbers.

    python3 bench/keeper_bench.py monitor [--gb 1]     # supervisor CPU over a 1 GB job log, with/without the monitor
    python3 bench/keeper_bench.py ticks [--n 20000]    # one monitor tick on its own
    python3 bench/keeper_bench.py reaction [--runs 3]  # real Ray: from a crash to the restart decision

monitor: a job log of --gb GB (sglang's decode-batch lines with one rollout's metric lines every 2,000
lines, as bench/watch_scale.py's "typical" log) is read from its start by the collector thread the
supervisor runs (runner.runs.collector.CollectorThread, polls every 2 s), in a process of its own, once
without and once with the keeper's monitor ticking after each poll (runner.runs.monitor); the process's
CPU (rusage, user + sys) of each, and the difference.

ticks: --n monitor ticks on a progress state in the middle of training, the tracker file stat'ed each time.

reaction: a detached run of tests/standin_train.py through a real Ray head (the runner's own `train
--test-entrypoint`) whose training raises at rollout 2, once; the crash time is the stand-in's marker file
(written just before it raises), the rest is run.json's attempts[0].timings: the job's end as the keeper
saw it, incidents/1/ captured (ray status, ray list actors, ray stack, nvidia-smi, while Ray is up), the
run's Ray down, the restart decided, GPUs checked and the checkpoint chosen. Needs ray[default]; hold
/tmp/agents-heavy.lock-style serialisation yourself if other Ray tests run on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def env_for_runner() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


# ------------------------------------------------------------------------------------------------ monitor

def _consume(run_dir: str, with_monitor: str) -> None:
    """A supervisor's reading of the whole log: the collector thread (and the monitor) until the offset
    reaches the end."""
    from runner.runs.collector import CollectorThread, RunCollector
    from runner.runs.hang import parse_hang_timeouts
    from runner.runs.monitor import Monitor
    from runner.runs.progress import RunShape

    collector = RunCollector(Path(run_dir), RunShape(num_rollout=100000, steps_per_rollout=4, eval_interval=5))
    thread = CollectorThread(collector, interval=2.0, log=sys.stderr)
    if with_monitor == "yes":
        monitor = Monitor(limits=parse_hang_timeouts([]), resumed=None, save_dir=str(Path(run_dir) / "checkpoints"),
                          global_dataset=True, keep=None, checkpoint_bytes=None, baseline_progress_seen=None)
        thread.after_poll = monitor.tick
    size = Path(run_dir, "job.log").stat().st_size
    start = time.monotonic()
    thread.start()
    while collector.collector.offset < size:
        time.sleep(0.2)
    thread.stop()
    print(json.dumps({"wall_s": time.monotonic() - start, "records": collector.metrics_size}))


def bench_monitor(gb: float) -> None:
    from tests.job_logs import job_log

    piece = job_log(range(0, 40), steps=4, eval_interval=5, noise=2000).encode()
    root = Path(tempfile.mkdtemp(prefix="keeper-bench-"))
    try:
        log = root / "job.log"
        with open(log, "wb") as f:
            written = 0
            while written < gb * 1e9:
                f.write(piece)
                written += len(piece)
        lines = piece.count(b"\n") * (written // len(piece))
        print(f"job log: {written / 1e9:.2f} GB, {lines:,} lines", flush=True)
        results = {}
        for with_monitor in ("no", "yes", "no", "yes"):
            run = root / f"run-{with_monitor}"
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir()
            os.link(log, run / "job.log")
            proc = subprocess.Popen([sys.executable, __file__, "_consume", str(run), with_monitor],
                                    stdout=subprocess.PIPE, env=env_for_runner(), cwd=REPO)
            _, status, usage = os.wait4(proc.pid, 0)
            out = json.loads(proc.stdout.read())
            cpu = usage.ru_utime + usage.ru_stime
            results.setdefault(with_monitor, []).append(cpu)
            print(f"  collector{' + monitor' if with_monitor == 'yes' else ''}: CPU {cpu:.2f} s, wall "
                  f"{out['wall_s']:.1f} s", flush=True)
        without, with_ = min(results["no"]), min(results["yes"])
        print(f"monitor's share over {written / 1e9:.2f} GB: {with_ - without:+.2f} s CPU "
              f"({without:.2f} s without, {with_:.2f} s with; best of two each)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_ticks(n: int) -> None:
    from runner.runs.hang import parse_hang_timeouts
    from runner.runs.monitor import Monitor

    root = Path(tempfile.mkdtemp(prefix="keeper-ticks-"))
    (root / "latest_checkpointed_iteration.txt").write_text("19")
    monitor = Monitor(limits=parse_hang_timeouts([]), resumed={"iteration": 19, "backend": "megatron"},
                      save_dir=str(root), global_dataset=True, keep=None, checkpoint_bytes=None,
                      baseline_progress_seen=None)
    progress = {"phase": "train", "weights_synced": True, "first_rollout": 20, "last_progress_seen": time.time(),
                "rollout_ends": [[20, 1.0], [21, 2.0]], "phase_durations": {"train": [300.0] * 10}}
    start_cpu, start = time.process_time(), time.perf_counter()
    for _ in range(n):
        monitor.tick(progress)
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start
    print(f"{n} ticks: {1e6 * wall / n:.1f} us wall, {1e6 * cpu / n:.1f} us CPU per tick "
          f"(one per 2 s poll: {100 * cpu / n / 2:.4f}% of a core)")
    shutil.rmtree(root)


# ----------------------------------------------------------------------------------------------- reaction

def bench_reaction(runs: int) -> None:
    sys.path.insert(0, str(REPO))
    from tests.conftest import free_port

    rows = []
    for i in range(runs):
        root = Path(tempfile.mkdtemp(prefix="kb", dir="/tmp"))
        env = {**env_for_runner(), "NCCL_NVLS_ENABLE": "0", "PYTHONUNBUFFERED": "1",
               "SLIME_RUNNER_LOCK": str(root / "lock")}
        argv = [sys.executable, "-m", "runner", "train", "--recipe", "megatron-8gpu", "--test-entrypoint",
                str(REPO / "tests" / "standin_train.py"), "--ray-temp-dir", f"{root}/t", "--ray-port",
                str(free_port()), "--dashboard-port", str(free_port()), "--runs-dir", str(root / "runs"),
                "--kernel-cache", str(root / "k"), "--detach", "--max-restarts", "1", "--restart-backoff", "0",
                "--", "--num-rollout", "4", "--save-interval", "2", "--standin-seconds", "0.2",
                "--standin-crash-at", "2", "--standin-once-dir", str(root / "once"), "--standin-start-id", "patched"]
        done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        (run,) = [p for p in (root / "runs").iterdir()]
        deadline = time.monotonic() + 300
        while json.loads((run / "run.json").read_text())["state"] not in ("succeeded", "failed", "stopped"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{run} did not end")
            time.sleep(0.5)
        record = json.loads((run / "run.json").read_text())
        crash = (root / "once" / "crash-2").stat().st_mtime
        t = record["attempts"][0]["timings"]
        row = {"job end seen": t["job_ended"] - crash, "incident captured": t["incident_captured"] - crash,
               "Ray down": t["ray_down"] - crash, "restart decided": t["decided"] - crash,
               "restart ready (GPUs, checkpoint)": t["restart_prepared"] - crash}
        rows.append(row)
        print(f"run {i + 1} ({record['state']}, {len(record['attempts'])} attempts): "
              + ", ".join(f"{k} +{v:.1f} s" for k, v in row.items()), flush=True)
        shutil.rmtree(root, ignore_errors=True)
    print("median: " + ", ".join(f"{k} +{statistics.median(r[k] for r in rows):.1f} s" for k in rows[0]))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_consume":
        _consume(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(prog="python3 bench/keeper_bench.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("monitor", "ticks", "reaction"))
    p.add_argument("--gb", type=float, default=1.0)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    {"monitor": lambda: bench_monitor(args.gb), "ticks": lambda: bench_ticks(args.n),
     "reaction": lambda: bench_reaction(args.runs)}[args.what]()


if __name__ == "__main__":
    main()
