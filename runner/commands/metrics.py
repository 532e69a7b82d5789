"""`metrics RUN`: the metrics slime printed during a run, as the run's owner collected them.

The supervisor (or a foreground train) reads the job log as it grows into
metrics.jsonl in the run directory: one record per metric line of slime's
(rollout, perf from the rollout side and from the trainer, step, eval, ...).
Without --json or --csv: one row per rollout, the main keys or those asked
for (steps averaged per rollout). --keys takes exact keys or patterns
('eval/*'). A run whose collector is behind (killed owner, older run) is read
from its job log, writing nothing.

  --json   one JSON object per line: {"kind", "rollout_id", "step", "time", "attempt", "source",
           "values": {key: number or null}}; "source" is the file that logged the line (the two
           `perf N` lines: rollout.py and train_metric_utils.py); nan and inf are null
  --csv    one row per record: kind, rollout_id, step, time, attempt, source, then one column per key

examples:
  python -m runner metrics megatron-8gpu-20261129-013012-a3f2
  python -m runner metrics megatron-8gpu-2026 --keys rollout/raw_reward 'eval/*' --csv > curve.csv
  python -m runner metrics RUN --json --kind step | jq '.values["train/grad_norm"]'
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import sys

from runner.commands.options import add_lookup_arguments, load_named_run

DEFAULT_COLUMNS = ("rollout/raw_reward", "eval/*", "train/loss", "train/grad_norm", "rollout/response_len/mean",
                   "perf/step_time")
KINDS = ("rollout", "perf", "step", "eval", "critic-step", "multi_turn", "passrate")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lookup_arguments(p)
    p.add_argument("--keys", nargs="+", metavar="KEY", help="only these keys: exact names or patterns like 'eval/*'")
    p.add_argument("--kind", action="append", choices=KINDS, help="only these kinds of line (repeatable)")
    p.add_argument("--csv", action="store_true", help="CSV, one row per record (see above)")


def select(records: list[dict], patterns: list[str] | None, kinds: list[str] | None) -> list[dict]:
    """Records of the asked kinds, their values narrowed to the asked keys; records left with none dropped."""
    out = []
    for r in records:
        if kinds and r.get("kind") not in kinds:
            continue
        values = r.get("values") or {}
        if patterns:
            values = {k: v for k, v in values.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}
            if not values:
                continue
        out.append({**r, "values": values})
    return out


def rollout_table(records: list[dict], patterns: list[str]) -> str:
    """One row per rollout id; a column per key that matched (step values averaged per rollout)."""
    from runner.runs.html_report import per_rollout
    from runner.runs.svg_chart import fmt_number

    keys = sorted({k for r in records for k in r["values"]},
                  key=lambda k: (next(i for i, p in enumerate(patterns) if fnmatch.fnmatchcase(k, p)), k))
    columns = {}
    for key in keys:
        kinds = sorted({r["kind"] for r in records if key in r["values"]})
        # A key that two files log (none at the pin) would mix: the first file that has it wins.
        sources = sorted({r["source"] for r in records if key in r["values"]})
        columns[key] = dict(per_rollout(records, key, tuple(kinds), sources[0] if len(sources) > 1 else None))
    rollouts = sorted({rid for col in columns.values() for rid in col})
    header = ["rollout", *keys]
    rows = [header] + [[str(rid)] + [_cell(columns[k].get(rid, "absent"), fmt_number) for k in keys]
                       for rid in rollouts]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
                     for row in rows)


def _cell(value, fmt) -> str:  # noqa: ANN001
    if value == "absent":
        return ""
    return "-" if value is None else fmt(value)


def run(args) -> int:
    from runner.runs.watching import current

    found = load_named_run(args)
    if found is None:
        return 2
    paths, record = found
    records, _ = current(paths, record)
    chosen = select(records, args.keys, args.kind)
    out = sys.stdout
    if args.json:
        for r in chosen:
            out.write(json.dumps(r, separators=(", ", ": ")) + "\n")
        return 0
    if args.csv:
        keys = sorted({k for r in chosen for k in r["values"]})
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["kind", "rollout_id", "step", "time", "attempt", "source", *keys])
        for r in chosen:
            values = r["values"]
            writer.writerow([r.get("kind"), _blank(r.get("rollout_id")), _blank(r.get("step")), _blank(r.get("time")),
                             _blank(r.get("attempt")), r.get("source"), *(_blank(values.get(k)) for k in keys)])
        return 0
    patterns = list(args.keys or DEFAULT_COLUMNS)
    table_records = select(records, patterns, args.kind)
    if not args.keys:  # by default, of the eval keys only the scores (not truncation or pass rates)
        from runner.runs.progress import is_eval_score

        table_records = select(table_records, [k for k in {k for r in table_records for k in r["values"]}
                                               if not k.startswith("eval/") or is_eval_score(k)], None)
    if not table_records:
        what = "no metric lines yet" if not records else f"no values of {' '.join(patterns)}"
        print(f"run {paths.id}: {what} (job log: {paths.job_log})", file=sys.stderr)
        return 0
    print(rollout_table(table_records, patterns))
    return 0


def _blank(value) -> str:  # noqa: ANN001
    return "" if value is None else str(value)
