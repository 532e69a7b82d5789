"""Scale of watching runs (docs/benchmarks.md, "Watching a run at scale"): whole commands, several runs.

    python3 bench/watch_scale.py collector [--seconds 60] [--rate-mb 10]   # collector CPU vs a growing log
    python3 bench/watch_scale.py commands [--runs 7]                       # metrics/report, 300 x 8 lines
    python3 bench/watch_scale.py listing [--runs 7] [--count 2000]         # status/runs over 2,000 runs
    ... --keep DIR                                 # keep the run directories (commands, listing)
    python3 bench/watch_scale.py listing --reuse DIR --pythonpath OLD     # another runner, same directories

collector: a writer appends a job log at --rate-mb MB per minute while the
collector (runner.runs.collector's thread, as the supervisor runs it, in a
process of its own) reads it; the collector process's CPU time (its rusage,
user + sys) over the wall time is its share of one core. Two logs: "typical"
(sglang's decode-batch lines, with one rollout's metric lines every 2,000
lines) and "metrics only" (nothing but slime's metric and Timer lines, the
parser's worst case). At the end: the bytes it had not read yet.

commands: a run of 300 rollouts x 8 metric lines (2 perf, rollout, 4 steps,
eval), collected, then `metrics` (table, --json, --csv) and `report`, each
timed as a whole process. listing: --count run directories with run.json as
`train` writes it (a real plan's record, about 17 KB) and progress.json, one
of them running (owned by this process), then `runs` and `status`.

Prints, per command, wall seconds min / median / max over --runs runs (after
one warm-up) and the median CPU seconds (user + sys).
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


def timed(argv: list[str], runs: int, env: dict) -> dict:
    """Run argv `runs` times after one warm-up; wall and CPU seconds of each whole process."""
    walls, cpus = [], []
    for i in range(runs + 1):
        start = time.perf_counter()
        # Not from the checkout: `python -m` would import ./runner first, whatever PYTHONPATH says.
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                cwd=tempfile.gettempdir())
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
        if i:  # the first run warms the page cache
            walls.append(wall)
            cpus.append(usage.ru_utime + usage.ru_stime)
    return {"min": min(walls), "median": statistics.median(walls), "max": max(walls),
            "cpu_median": statistics.median(cpus)}


def show(name: str, t: dict) -> None:
    print(f"{name:<44} wall {t['min']:.3f} / {t['median']:.3f} / {t['max']:.3f} s   cpu {t['cpu_median']:.3f} s",
          flush=True)


RUNNER_PATH = [str(REPO)]  # --pythonpath: time another checkout's runner over the same directories


def env_for_runner() -> dict:
    return {**os.environ, "PYTHONPATH": RUNNER_PATH[0]}


# ---------------------------------------------------------------------------------------------- collector

def _collect(run_dir: str, seconds: float) -> None:
    """The collector process: the thread the supervisor runs, for `seconds`, then its final drain."""
    from runner.runs.collector import CollectorThread, RunCollector
    from runner.runs.progress import RunShape

    collector = RunCollector(Path(run_dir), RunShape(num_rollout=100000, steps_per_rollout=4, eval_interval=5))
    thread = CollectorThread(collector, interval=2.0, log=sys.stderr).start()
    time.sleep(seconds)
    behind = Path(run_dir, "job.log").stat().st_size - collector.collector.offset
    thread.stop()
    print(json.dumps({"behind_bytes_before_final_poll": behind, "offset": collector.collector.offset,
                      "records": collector.metrics_size}))


def _log_text(kind: str, rollouts: int) -> bytes:
    from tests.job_logs import job_log

    if kind == "typical":
        return job_log(range(0, rollouts), steps=4, eval_interval=5, noise=2000).encode()
    return job_log(range(0, rollouts), steps=4, eval_interval=1).encode()


def bench_collector(seconds: float, rate_mb: float) -> None:
    rate = rate_mb * 1e6 / 60  # bytes per second
    for kind in ("typical", "metrics only"):
        text = _log_text(kind, 40)
        run_dir = Path(tempfile.mkdtemp(prefix="watch-collector-"))
        log = run_dir / "job.log"
        log.write_bytes(b"")
        proc = subprocess.Popen([sys.executable, __file__, "_collect", str(run_dir), str(seconds)],
                                stdout=subprocess.PIPE, env=env_for_runner(), cwd=REPO)
        start, written, pos = time.monotonic(), 0, 0
        with open(log, "ab") as f:
            while time.monotonic() - start < seconds:
                due = int((time.monotonic() - start) * rate) - written
                while due > 0:
                    piece = text[pos:pos + due]
                    if not piece:
                        pos = 0
                        continue
                    f.write(piece)
                    f.flush()
                    written += len(piece)
                    due -= len(piece)
                    pos += len(piece)
                time.sleep(0.05)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        out = json.loads(proc.stdout.read())
        cpu = usage.ru_utime + usage.ru_stime
        metric_share = sum(1 for line in text.splitlines() if b": {" in line or b"Timer " in line)
        total_lines = text.count(b"\n")
        print(f"collector, {kind} log ({metric_share} of {total_lines} lines slime's), {rate_mb:g} MB/min, "
              f"{seconds:g} s: wrote {written / 1e6:.1f} MB; collector CPU {cpu:.2f} s = {100 * cpu / wall:.2f}% of "
              f"one core (incl. its interpreter start); {out['behind_bytes_before_final_poll'] / 1e3:.0f} kB "
              f"unread at the end (less than one 2 s poll: {rate * 2 / 1e3:.0f} kB)", flush=True)
        shutil.rmtree(run_dir)


# ---------------------------------------------------------------------------------------------- commands

def _record(run_id: str, run_dir: Path, runs_dir: Path, state: str, software: dict) -> dict:
    """run.json as `train` writes it: runner.runs.manifest.build_record over a real (read-only) plan."""
    from runner.cli import build_parser
    from runner.commands.train import gather
    from runner.runs.identity import identity
    from runner.runs.manifest import build_record

    args = build_parser(only="train").parse_args(["train", "--recipe", "megatron-8gpu", "--dry-run", "--force",
                                                  "--runs-dir", str(runs_dir)])
    tp, _ = gather(args)
    record = build_record(tp, tp.run, software, [], "node-0", {})
    record.update(id=run_id, dir=str(run_dir), state=state, started_at=record["created_at"],
                  supervisor={**identity(os.getpid()), "detached": True})
    if state != "running":
        record.update(ended_at=record["created_at"], exit_code=0, detail="the job exited with code 0")
    return record


def _software() -> dict:
    from runner.runs import provenance

    return provenance.collect(python=sys.executable, pythonpath=None, slime_dir=None, megatron_dir=None,
                              environ=os.environ)


def _root(keep: str | None, prefix: str) -> Path:
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=False)
        return Path(keep) / "runs"
    return Path(tempfile.mkdtemp(prefix=prefix)) / "runs"


def bench_commands(runs: int, keep: str | None = None) -> None:
    from runner.runs.collector import RunCollector
    from runner.runs.progress import RunShape
    from runner.runs.record import write_json_atomic
    from tests.job_logs import job_log

    root = _root(keep, "watch-commands-")
    run_id = "megatron-8gpu-20261205-010000-a0a0"
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    record = _record(run_id, run_dir, root, "succeeded", _software())
    write_json_atomic(run_dir / "run.json", record)
    (run_dir / "job.log").write_text(job_log(range(0, 300), steps=4, eval_interval=1, noise=50))
    RunCollector(run_dir, RunShape(num_rollout=300, steps_per_rollout=4, eval_interval=1)).poll(final=True)
    lines = sum(1 for _ in open(run_dir / "metrics.jsonl"))
    size = (run_dir / "job.log").stat().st_size
    print(f"one run: 300 rollouts, {lines} metric records ({lines / 300:.0f} per rollout), job log {size / 1e6:.1f} MB")
    base = [sys.executable, "-m", "runner"]
    where = ["--runs-dir", str(root)]
    for name, argv in (("metrics RUN (table)", ["metrics", run_id]),
                       ("metrics RUN --json", ["metrics", run_id, "--json"]),
                       ("metrics RUN --csv", ["metrics", run_id, "--csv"]),
                       ("report RUN", ["report", run_id, "-o", str(root / "r.html")])):
        show(name, timed(base + argv + where, runs, env_for_runner()))
    if keep:
        print(f"kept: {root} (run {run_id})")
        return
    for name in ("metrics.jsonl", "progress.json", ".collector.json"):
        (run_dir / name).unlink()
    show("metrics RUN --json, from the job log alone", timed(base + ["metrics", run_id, "--json"] + where, runs,
                                                             env_for_runner()))
    show("report RUN, from the job log alone", timed(base + ["report", run_id, "-o", str(root / "r.html")] + where,
                                                     runs, env_for_runner()))
    shutil.rmtree(root.parent)


# ---------------------------------------------------------------------------------------------- listing

def bench_listing(runs: int, count: int, keep: str | None = None, reuse: str | None = None) -> None:
    if reuse:
        root = Path(reuse) / "runs"
        print(f"{len(os.listdir(root))} run directories kept in {root}; runner from {RUNNER_PATH[0]}")
        base = [sys.executable, "-m", "runner"]
        for name, argv in (("runs", ["runs"]), ("status", ["status"])):
            show(f"{name} ({len(os.listdir(root))} runs)", timed(base + argv + ["--runs-dir", str(root)], runs,
                                                                 env_for_runner()))
        return
    from runner.runs.collector import RunCollector
    from runner.runs.progress import RunShape
    from runner.runs.record import write_json_atomic
    from tests.job_logs import job_log

    root = _root(keep, "watch-listing-")
    root.mkdir(parents=True)
    template = _record("x", root / "x", root, "succeeded", _software())
    progress_dir = root.parent / "progress-source"
    progress_dir.mkdir()
    (progress_dir / "run.json").write_text("{}")
    (progress_dir / "job.log").write_text(job_log(range(0, 30), eval_interval=5))
    RunCollector(progress_dir, RunShape(num_rollout=300, steps_per_rollout=1, eval_interval=5)).poll(final=True)
    progress = (progress_dir / "progress.json").read_bytes()
    for i in range(count):
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(1_765_000_000 + 3600 * i))
        run_id = f"megatron-8gpu-{stamp}-{i:04x}"
        run_dir = root / run_id
        state = "running" if i == count - 1 else ("failed" if i % 7 == 0 else "succeeded")
        record = dict(template, id=run_id, dir=str(run_dir), state=state)
        if state == "running":
            record.update(ended_at=None, exit_code=None)
        write_json_atomic(run_dir / "run.json", record)
        (run_dir / "progress.json").write_bytes(progress)
    size = (root / run_id / "run.json").stat().st_size
    print(f"{count} run directories (run.json {size / 1e3:.1f} kB each, progress.json {len(progress)} bytes), "
          f"one running")
    base = [sys.executable, "-m", "runner"]
    for name, argv in (("runs", ["runs"]), ("status", ["status"]), ("runs --json", ["runs", "--json"])):
        show(f"{name} ({count} runs)", timed(base + argv + ["--runs-dir", str(root)], runs, env_for_runner()))
    if keep:
        print(f"kept: {root}")
        return
    shutil.rmtree(root.parent)


def main() -> None:
    if sys.argv[1:2] == ["_collect"]:
        _collect(sys.argv[2], float(sys.argv[3]))
        return
    p = argparse.ArgumentParser(prog="python3 bench/watch_scale.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("collector", "commands", "listing", "all"))
    p.add_argument("--runs", type=int, default=7, help="timed runs of each command (after one warm-up)")
    p.add_argument("--count", type=int, default=2000, help="listing: run directories")
    p.add_argument("--seconds", type=float, default=60.0, help="collector: how long the log grows")
    p.add_argument("--rate-mb", type=float, default=10.0, help="collector: MB per minute")
    p.add_argument("--pythonpath", metavar="DIR", help="the runner to time (default: this checkout); e.g. "
                                                       "`git archive REV runner | tar -x -C DIR` for an older one")
    p.add_argument("--reuse", metavar="DIR", help="listing: time over run directories kept by --keep before")
    p.add_argument("--keep", metavar="DIR", help="commands, listing: make the run directories under DIR (new) "
                                                 "and keep them, to time the commands with other tools")
    args = p.parse_args()
    if args.pythonpath:
        RUNNER_PATH[0] = str(Path(args.pythonpath).resolve())
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if args.what in ("collector", "all"):
        bench_collector(args.seconds, args.rate_mb)
    if args.what in ("commands", "all"):
        bench_commands(args.runs, args.keep if args.what == "commands" else None)
    if args.what in ("listing", "all"):
        bench_listing(args.runs, args.count, args.keep if args.what == "listing" else None, args.reuse)


if __name__ == "__main__":
    main()
