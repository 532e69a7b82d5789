"""`report RUN [RUN ...]`: one self-contained HTML file with a run's curves, progress and provenance.

Curves (x: rollout id): raw reward, eval score, train loss, grad norm, KL,
entropy, response length, truncation, seconds per rollout split into
rollout / train / weight sync, tokens per second. Several runs overlay, one
colour each (a run and its resume, two learning rates). Then each run's
provenance (recipe, overrides, runner revision, pins, flake inputs,
packages), its attempts and incidents.

The file needs no network: no script, stylesheet or font from elsewhere (the
charts are inline SVG), so it opens on an offline cluster and can be mailed.
Default output: report.html in the first run's directory.

examples:
  python -m runner report megatron-8gpu-20261129-013012-a3f2
  python -m runner report RUN RESUMED_RUN -o ~/lr-1e-6.html        # a run and its resume, overlaid
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from runner.commands.options import add_runs_dir_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids (or unique prefixes) or run directories")
    add_runs_dir_argument(p)
    p.add_argument("--base-folder", help="$BASE_FOLDER: runs live in BASE_FOLDER/runs unless --runs-dir says otherwise")
    p.add_argument("-o", "--output", metavar="FILE.html", help="where to write (default: report.html in the first "
                                                              "run's directory)")


def run(args) -> int:
    from runner.commands.options import runs_root
    from runner.runs.html_report import render_report, series_index
    from runner.runs.identity import effective_state
    from runner.runs.layout import RunNotFound, find_run
    from runner.runs.record import BadRecord, load_record
    from runner.runs.watching import run_view

    root = runs_root(args)
    views = []
    for ref in args.runs:
        try:
            paths = find_run(root, ref)
            record = load_record(paths)
        except (RunNotFound, BadRecord) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        views.append((paths, run_view(paths, record, effective_state(record)[0])))
    output = Path(os.path.expanduser(args.output)) if args.output else views[0][0].dir / "report.html"
    if output.is_dir():
        print(f"error: -o {output} is a directory; name a file, e.g. -o {output / 'report.html'}", file=sys.stderr)
        return 2
    index = series_index([v for _, v in views])
    if args.dry_run:
        print(f"would write {output}: {len(views)} run(s), {len(index)} series")
        return 0
    html = render_report([v for _, v in views])
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, output)
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror or exc}; choose another file with -o", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"path": str(output), "runs": [v.id for _, v in views], "series": index}, indent=2))
    else:
        print(f"wrote {output} ({len(views)} run(s), {len(index)} series, {len(html) // 1024} KiB): open it in a "
              f"browser; it needs no network")
    return 0
