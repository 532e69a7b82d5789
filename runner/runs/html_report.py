"""One self-contained HTML page about one or more runs: curves, progress, provenance, attempts.

Pure: run records and their metric records in, a string out. No script, no
stylesheet, font or image from elsewhere: the page opens on an offline
cluster and survives being mailed (mail clients drop scripts; this page has
none, and needs none: tooltips are SVG <title> elements and the long parts
are <details>). Several runs share each chart, one colour per run, so a run
and its resume, or two learning rates, overlay on one rollout axis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from html import escape
from typing import Callable

from runner.runs.progress import is_eval_score
from runner.runs.progress_text import duration
from runner.runs.svg_chart import DASHES, PALETTE, Chart, Series, fmt_number, render_chart

TRAIN_SIDE = "train_metric_utils.py"
ROLLOUT_SIDE = "rollout.py"


@dataclass(frozen=True)
class RunView:
    record: dict  # run.json
    records: list  # metrics.jsonl's records
    state: str  # as `status` shows it (a vanished owner is "lost")
    progress: dict | None = None  # progress.json
    incidents: tuple[str, ...] = ()  # what incidents/ holds
    checkpoint: str | None = None  # the tracker's iteration

    @property
    def id(self) -> str:
        return str(self.record.get("id") or "?")


@dataclass(frozen=True)
class Metric:
    """Which values make one line: a key (or a test on keys), from which kinds of line and file."""

    key: str | Callable[[str], bool]
    label: str = ""
    kinds: tuple[str, ...] = ()
    source: str | None = None

    def keys(self, available: set[str]) -> list[str]:
        if callable(self.key):
            return sorted(k for k in available if self.key(k))
        return [self.key] if self.key in available else []


def _eval_truncation(key: str) -> bool:
    return key.startswith("eval/") and key.endswith("truncated_ratio")


CHARTS: tuple[tuple[str, tuple[Metric, ...]], ...] = (
    ("Raw reward", (Metric("rollout/raw_reward", kinds=("rollout",)),)),
    ("Eval score", (Metric(is_eval_score, kinds=("eval",)),)),
    ("Train loss", (Metric("train/loss", kinds=("step",)), Metric("train/pg_loss", kinds=("step",)))),
    ("Grad norm", (Metric("train/grad_norm", kinds=("step",)),)),
    ("KL", (Metric("train/ppo_kl", kinds=("step",)), Metric("train/kl_loss", kinds=("step",)))),
    ("Entropy", (Metric("train/entropy_loss", kinds=("step",)),)),
    ("Response length (tokens)", (Metric("rollout/response_len/mean", kinds=("perf",), source=ROLLOUT_SIDE),)),
    ("Truncated ratio", (Metric("rollout/truncated_ratio", kinds=("perf",), source=ROLLOUT_SIDE),
                         Metric(_eval_truncation, kinds=("eval",)))),
    ("Seconds per rollout: rollout / train / weight sync", (
        Metric("perf/rollout_time", "rollout", ("perf",), ROLLOUT_SIDE),
        Metric("perf/train_time", "train", ("perf",), TRAIN_SIDE),
        Metric("perf/update_weights_time", "weight sync", ("perf",), TRAIN_SIDE))),
    ("Tokens per second", (Metric("perf/tokens_per_gpu_per_sec", "rollout, per GPU", ("perf",), ROLLOUT_SIDE),
                           Metric("perf/actor_train_tok_per_s", "training", ("perf",), TRAIN_SIDE))),
)


def per_rollout(records: list, key: str, kinds: tuple[str, ...] = (), source: str | None = None) -> list:
    """[(rollout id, value)] of `key`, one point per rollout: the mean over that rollout's steps, and
    for a rollout logged again (a later attempt that trained it again) the later attempt's values."""
    groups: dict[int, tuple[int, list]] = {}
    for r in records:
        rid = r.get("rollout_id")
        if rid is None or (kinds and r.get("kind") not in kinds) or (source and r.get("source") != source):
            continue
        value = (r.get("values") or {}).get(key, "absent")
        if value == "absent":
            continue
        attempt = r.get("attempt") or 1
        kept = groups.get(rid)
        if kept is None or attempt > kept[0]:
            groups[rid] = (attempt, [value])
        elif attempt == kept[0]:
            kept[1].append(value)
    points = []
    for rid in sorted(groups):
        numbers = [v for v in groups[rid][1] if isinstance(v, (int, float))]
        points.append((rid, sum(numbers) / len(numbers) if numbers else None))
    return points


def charts(runs: list[RunView]) -> list[Chart]:
    out = []
    for title, metrics in CHARTS:
        series = []
        for index, run in enumerate(runs):
            color = PALETTE[index % len(PALETTE)]
            available = {k for r in run.records for k in (r.get("values") or {})}
            style = 0
            for metric in metrics:
                for key in metric.keys(available):
                    points = per_rollout(run.records, key, metric.kinds, metric.source)
                    if any(v is not None for _, v in points):
                        label = f"{run.id}: {metric.label or key}"
                        series.append(Series(run.id, key, label, tuple(points), color, DASHES[style % len(DASHES)]))
                    style += 1
        out.append(Chart(title, tuple(series)))
    return out


def series_index(runs: list[RunView]) -> list[dict]:
    """Every series the page draws: chart, run, key, number of points (`report --json`)."""
    return [{"chart": c.title, "run": s.run, "key": s.key, "points": sum(1 for _, y in s.points if y is not None)}
            for c in charts(runs) for s in c.series]


def _summary_row(run: RunView, color: str) -> str:
    p = run.progress or {}
    done, total = p.get("rollouts_done"), p.get("num_rollout")
    progress = "-" if done is None else f"{done}" + (f" / {total}" if total else "")
    last_eval = (p.get("last_eval") or {}).get("values") or {}
    evals = ", ".join(f"{k.removeprefix('eval/')} {fmt_number(v)}" for k, v in last_eval.items() if v is not None)
    eta = duration(p.get("eta_seconds")) if run.state in ("running", "starting") and p.get("eta_seconds") else "-"
    cells = [f'<span class="swatch" style="background:{color}"></span>{escape(run.id)}',
             escape(str(run.record.get("recipe") or "?")), escape(run.state),
             escape(str(p.get("phase") or "-")) if run.state in ("running", "starting") else "-",
             progress, fmt_number(p["last_reward"]) if p.get("last_reward") is not None else "-", escape(evals or "-"),
             duration(p.get("seconds_per_rollout")) if p.get("seconds_per_rollout") else "-", eta,
             escape(run.checkpoint or "none")]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _provenance(run: RunView) -> str:
    from runner.runs.manifest import describe_request

    rec = run.record
    sw = rec.get("software") or {}
    runner = sw.get("runner") or {}
    pins = sw.get("pins") or {}
    gpu_names = sorted({d.get("name") or "?" for d in (rec.get("gpus") or {}).get("devices") or []})
    rows = [("recipe", describe_request(rec.get("request") or {})),
            ("resumes", _resumed(rec.get("resumed_from"))),
            ("changed on resume", "; ".join(rec.get("changes_on_resume") or []) or "-"),
            ("checkpoints", f"{(rec.get('checkpoint') or {}).get('save')} (every "
                            f"{(rec.get('checkpoint') or {}).get('save_interval')} rollouts)"),
            ("runner", f"{runner.get('version')} at {runner.get('rev') or 'unknown revision'}"
                       f"{' (uncommitted changes)' if runner.get('dirty') else ''}"),
            ("pins", f"sha256 {pins.get('sha256')}"),
            ("created", f"{rec.get('created_at')}; ended {rec.get('ended_at') or '-'}"),
            ("hosts", f"head {(rec.get('hosts') or {}).get('head')}, workers "
                      f"{', '.join((rec.get('hosts') or {}).get('workers') or []) or 'none'}"),
            ("GPUs", f"{(rec.get('gpus') or {}).get('count')} x {', '.join(gpu_names) or '-'}")]
    for name, node in (sw.get("flake_lock") or {}).items():
        if isinstance(node, dict):
            rows.append((f"flake input {name}", f"{node.get('owner')}/{node.get('repo')} {node.get('rev')}"))
    for name, path in (sw.get("store_paths") or {}).items():
        rows.append((f"store path {name}", str(path)))
    packages = sw.get("packages") or {}
    found = [f"{k} {v}" for k, v in packages.items() if v and not k.endswith(" path") and k != "error"]
    rows.append(("packages", ", ".join(found) or "-"))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    argv = " ".join((rec.get("job") or {}).get("entrypoint") or [])
    return (f'<table class="kv">{body}</table><details><summary>job argv</summary><pre>{escape(argv)}</pre>'
            f"</details>")


def _resumed(resumed: dict | None) -> str:
    if not resumed:
        return "- (a fresh run)"
    return f"{resumed.get('run') or resumed.get('checkpoint')} at iteration {resumed.get('iteration')}"


def _attempts(run: RunView) -> str:
    rec = run.record
    attempts = rec.get("attempts")
    if not isinstance(attempts, list) or not attempts:
        attempts = [{"attempt": 1, "started_at": rec.get("started_at") or rec.get("created_at"),
                     "ended_at": rec.get("ended_at"), "state": run.state, "exit_code": rec.get("exit_code"),
                     "reason": rec.get("detail")}]
    rows = []
    for i, a in enumerate(attempts, 1):
        a = a if isinstance(a, dict) else {"reason": str(a)}
        rows.append("<tr>" + "".join(f"<td>{escape(str(v if v is not None else '-'))}</td>" for v in (
            a.get("attempt", i), a.get("started_at"), a.get("ended_at"), a.get("state"), a.get("exit_code"),
            a.get("reason") or a.get("detail"))) + "</tr>")
    incidents = list(run.incidents) + [str(x) for x in rec.get("incidents") or [] if str(x) not in run.incidents]
    table = ("<table><tr><th>attempt</th><th>started</th><th>ended</th><th>state</th><th>exit code</th>"
             f"<th>reason</th></tr>{''.join(rows)}</table>")
    listed = "".join(f"<li>{escape(i)}</li>" for i in incidents) or "<li>none</li>"
    return f"{table}<p>Incidents:</p><ul>{listed}</ul>"


STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1220px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:0 0 2px}.muted{color:#666}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;
vertical-align:top}table.kv th{white-space:nowrap;color:#555;font-weight:normal}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(580px,1fr));gap:16px 20px}
.chart-box{border:1px solid #e4e4e4;border-radius:6px;padding:8px 8px 4px}
.legend{font-size:12px;color:#444;margin:2px 0 4px}.legend span{margin-right:12px;white-space:nowrap}
svg.chart{max-width:100%;height:auto;font-size:11px}svg .grid line{stroke:#eee}svg .tick{fill:#666}
svg .axis-label{fill:#444}svg .empty{fill:#999}pre{white-space:pre-wrap;word-break:break-all;font-size:12px}
"""


def _legend(chart: Chart) -> str:
    """Which dash is which metric (runs are told apart by colour, in the table above)."""
    seen: dict[str, str] = {}
    for s in chart.series:
        seen.setdefault(s.label.split(": ", 1)[1], s.dash)
    if len(seen) < 2:
        return f'<div class="legend">{escape(next(iter(seen), ""))}</div>'

    items = []
    for label, dash in seen.items():
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        items.append(f'<span><svg width="26" height="8" aria-hidden="true"><line x1="0" y1="4" x2="26" y2="4" '
                     f'stroke="#555" stroke-width="2"{dash_attr}/></svg> {escape(label)}</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def render_report(runs: list[RunView], generated_at: float | None = None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(generated_at or time.time()))
    ids = ", ".join(r.id for r in runs)
    head = ("<tr><th>run</th><th>recipe</th><th>state</th><th>phase</th><th>rollouts</th><th>last reward</th>"
            "<th>last eval</th><th>per rollout</th><th>ETA</th><th>checkpoint</th></tr>")
    summary = "".join(_summary_row(r, PALETTE[i % len(PALETTE)]) for i, r in enumerate(runs))
    boxes = []
    for chart in charts(runs):
        boxes.append(f'<div class="chart-box"><h3>{escape(chart.title)}</h3>{_legend(chart)}{render_chart(chart)}'
                     f"</div>")
    details = []
    for i, run in enumerate(runs):
        details.append(f'<h2><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>'
                       f"{escape(run.id)}</h2><h3>Provenance</h3>{_provenance(run)}<h3>Attempts</h3>{_attempts(run)}")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>slime runs: {escape(ids)}</title><style>{STYLE}</style></head><body>"
            f"<h1>slime runs</h1><p class=\"muted\">{escape(ids)} &middot; made {escape(when)} by "
            "<code>python -m runner report</code>; x axes: rollout id (steps averaged per rollout)</p>"
            f"<table>{head}{summary}</table><h2>Curves</h2><div class=\"charts\">{''.join(boxes)}</div>"
            f"{''.join(details)}</body></html>\n")
