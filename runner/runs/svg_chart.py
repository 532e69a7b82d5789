"""Line charts as inline SVG, from the standard library only. Pure: numbers in, markup out.

Why hand-written SVG and not a plotting library: the report must be one file
that opens offline and can be mailed, and the runner has no dependencies of
its own (pyproject.toml). A library from the lock (matplotlib is not even in
it) would add a heavy import to a command that must answer in under a
second, and PNGs or a JavaScript bundle inlined into the page would make it
larger and unreadable as text. A few hundred points per series need nothing
more than polylines, axes and ticks; SVG scales when the page is zoomed or
printed, and each series stays a DOM element that a test can find.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 560, 250
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 62, 14, 12, 34
# Colour-blind-safe qualitative palette (Okabe and Ito), one colour per run.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = ("", "6 3", "2 3", "10 3 2 3")  # one dash style per metric within a chart


@dataclass(frozen=True)
class Series:
    run: str  # the run id: which run this line belongs to
    key: str  # the metric key
    label: str
    points: tuple[tuple[float, float | None], ...]  # (x, y); y None breaks the line
    color: str = PALETTE[0]
    dash: str = ""


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[Series, ...]
    x_label: str = "rollout"
    notes: tuple[str, ...] = field(default_factory=tuple)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def fmt_number(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-3:
        return f"{value:.2g}"
    if magnitude >= 100:
        return f"{value:.0f}"
    return f"{value:.4g}"


def _bounds(series: tuple[Series, ...]) -> tuple[float, float, float, float] | None:
    xs = [x for s in series for x, y in s.points if y is not None]
    ys = [y for s in series for _, y in s.points if y is not None]
    if not xs:
        return None
    return min(xs), max(xs), min(ys), max(ys)


def render_chart(chart: Chart, width: int = WIDTH, height: int = HEIGHT) -> str:
    """An <svg> with axes, ticks and one <path class="series"> per series (data-run, data-key)."""
    bounds = _bounds(chart.series)
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(chart.title)}">',
             f"<title>{escape(chart.title)}</title>"]
    plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = height - MARGIN_TOP - MARGIN_BOTTOM
    if bounds is None:
        parts.append(f'<text class="empty" x="{width / 2}" y="{height / 2}" text-anchor="middle">'
                     f"no data yet</text></svg>")
        return "".join(parts)
    x_lo, x_hi, y_lo, y_hi = bounds
    xt = nice_ticks(x_lo, x_hi, 6)
    yt = nice_ticks(y_lo, y_hi, 5)
    x0, x1 = xt[0], xt[-1]
    y0, y1 = yt[0], yt[-1]

    def px(x: float) -> float:
        return MARGIN_LEFT + (x - x0) / ((x1 - x0) or 1) * plot_w

    def py(y: float) -> float:
        return MARGIN_TOP + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    parts.append('<g class="grid">')
    for y in yt:
        parts.append(f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}"/>')
        parts.append(f'<text class="tick" x="{MARGIN_LEFT - 6}" y="{py(y):.1f}" dy="0.32em" '
                     f'text-anchor="end">{fmt_number(y)}</text>')
    for x in xt:
        parts.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{MARGIN_TOP}" y2="{MARGIN_TOP + plot_h}"/>')
        parts.append(f'<text class="tick" x="{px(x):.1f}" y="{MARGIN_TOP + plot_h + 14}" '
                     f'text-anchor="middle">{fmt_number(x)}</text>')
    parts.append("</g>")
    parts.append(f'<text class="axis-label" x="{MARGIN_LEFT + plot_w / 2}" y="{height - 4}" '
                 f'text-anchor="middle">{escape(chart.x_label)}</text>')
    for s in chart.series:
        parts.append(_series_path(s, px, py))
    parts.append("</svg>")
    return "".join(parts)


def _series_path(s: Series, px, py) -> str:  # noqa: ANN001
    """One path per series; a None value lifts the pen. Lone points get a dot, so they show."""
    commands, run = [], []
    dots = []
    for x, y in list(s.points) + [(None, None)]:
        if y is None or x is None:
            if len(run) == 1:
                dots.append(run[0])
            if run:
                commands.append("M" + " L".join(f"{a:.1f},{b:.1f}" for a, b in run))
            run = []
            continue
        run.append((px(x), py(y)))
    dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
    attrs = (f'class="series" data-run="{escape(s.run)}" data-key="{escape(s.key)}" '
             f'data-points="{sum(1 for _, y in s.points if y is not None)}"')
    out = [f'<g {attrs}><title>{escape(s.label)}</title>',
           f'<path d="{" ".join(commands)}" fill="none" stroke="{s.color}" stroke-width="1.6"{dash}/>']
    out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.2" fill="{s.color}"/>' for a, b in dots]
    out.append("</g>")
    return "".join(out)
