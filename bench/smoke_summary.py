"""Collect smoke results into smoke-runs.json and summary.md (bench/smoke_offload.sh run).

    python3 bench/smoke_summary.py OUT RESULT.json [RESULT.json ...]

Each RESULT is `runner smoke --json` output (one run). smoke-runs.json has
the format docs/smoke-runs.json and `python -m runner.planner.smoke_compare`
read; summary.md compares the planner's estimates with the measured GPU peak
and host memory, and lists throughput, checks and the loss curves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Run as a script: the runner package is one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.planner import smoke_compare  # noqa: E402

GIB = 2**30


def load(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        try:
            res = json.loads(Path(p).read_text())
        except (OSError, ValueError) as exc:
            res = {"error": f"no result: {exc}"}
        res.setdefault("label", Path(p).stem)
        runs.append(res)
    return runs


def summary(runs: list[dict]) -> str:
    lines = ["# smoke: planner vs measured", ""]
    comparable = [r for r in runs if r.get("peak_mem_allocated_bytes") and r.get("model_config")]
    if comparable:
        lines += [smoke_compare.render([smoke_compare.compare_run(r) for r in comparable]), ""]
    lines += ["| run | tokens/s | step (median) | MFU | GPU peak allocated / reserved (GiB) "
              "| host resident at end / peak, per rank (GiB) | checks |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        if "tokens_per_s" not in r:
            lines.append(f"| {r['label']} | failed: {r.get('error') or r.get('aborted') or 'see logs'} | | | | | |")
            continue
        mfu = f"{r['mfu'] * 100:.1f}%" if r.get("mfu") else "n/a"
        gpu = (f"{max(r['peak_mem_allocated_bytes']) / GIB:.2f} / {max(r['peak_mem_reserved_bytes']) / GIB:.2f}"
               if r.get("peak_mem_allocated_bytes") else "n/a")
        host = (f"{max(r['host_rss_end_bytes']) / GIB:.2f} / {max(r['host_rss_peak_bytes']) / GIB:.2f}"
                if r.get("host_rss_end_bytes") else "n/a")
        checks = ", ".join(f"{c['name']}: {c['status']}" for c in r.get("checks", [])) or "n/a"
        lines.append(f"| {r['label']} | {r['tokens_per_s']:.0f} | {r['step_time_s_median'] * 1e3:.0f} ms | {mfu} "
                     f"| {gpu} | {host} | {checks} |")
    lines += ["", "Loss per step (mean over ranks):", ""]
    for r in runs:
        if r.get("losses"):
            floor = f" (task floor {r['loss_floor']:.3f})" if "loss_floor" in r else ""
            lines.append(f"- {r['label']}{floor}: " + " ".join(f"{x:.3f}" for x in r["losses"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    runs = load(argv[1:])
    (out / "smoke-runs.json").write_text(json.dumps({"runs": runs}, indent=1))
    text = summary(runs)
    (out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
