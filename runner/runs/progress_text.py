"""How `status` and `runs` show a run's progress (progress.json). Pure: data in, text out."""

from __future__ import annotations

import time

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list) -> str:
    """One character per value, its height by value between the smallest and the largest; gaps blank."""
    numbers = [v for v in values if isinstance(v, (int, float))]
    if len(numbers) < 2:
        return ""
    lo, hi = min(numbers), max(numbers)
    span = (hi - lo) or 1.0
    return "".join(" " if not isinstance(v, (int, float)) else SPARKS[min(7, int((v - lo) / span * 8))]
                   for v in values)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if 0 < seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def number(value) -> str:  # noqa: ANN001
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.4g}"


def eta_left(progress: dict, now: float) -> float | None:
    """Seconds left: the collector's ETA counts from the end of the last rollout, so the time since counts."""
    eta, since = progress.get("eta_seconds"), progress.get("last_rollout_end")
    if eta is None:
        return None
    return max(0.0, eta - (now - since)) if since is not None else eta


def progress_cell(progress: dict | None, active: bool) -> str:
    """The `runs` column: rollouts done of N, and the phase while the run is active."""
    if not progress or progress.get("rollouts_done") is None:
        return (progress or {}).get("phase") or "-" if active else "-"
    done, total = progress["rollouts_done"], progress.get("num_rollout")
    text = f"{done}/{total}" if total else f"{done}"
    return f"{text} {progress.get('phase')}" if active and progress.get("phase") else text


def progress_lines(progress: dict | None, *, active: bool, checkpoint: tuple, now: float | None = None) -> list[str]:
    """What `status` adds about progress: phase, rollout i of N, rate, ETA, reward, eval, checkpoint age."""
    now = time.time() if now is None else now
    iteration, age = checkpoint
    lines = []
    if not progress:
        lines.append("  progress:   no metric line collected yet")
    else:
        if active:
            since = progress.get("phase_since")
            attempt = progress.get("attempt")
            lines.append(f"  phase:      {progress.get('phase') or '-'}"
                         + (f" (for {duration(now - since)})" if since else "")
                         + (f"; attempt {attempt}" if attempt and attempt > 1 else ""))
        done, total = progress.get("rollouts_done"), progress.get("num_rollout")
        per = progress.get("seconds_per_rollout")
        if done is None:
            lines.append("  progress:   no rollout trained yet")
        else:
            text = f"rollout {progress.get('rollout')} done, {done}" + (f" of {total} ({100 * done // total}%)"
                                                                      if total else "")
            if per:
                text += f"; {duration(per)} per rollout"
            left = eta_left(progress, now) if active else None
            if left is not None and total:
                text += f"; ETA {duration(left)} ({time.strftime('%a %H:%M', time.localtime(now + left))})"
            lines.append(f"  progress:   {text}")
        rewards = progress.get("rewards") or []
        if progress.get("last_reward") is not None:
            spark = sparkline(rewards)
            lines.append(f"  reward:     {number(progress['last_reward'])}"
                         + (f"  {spark}  (last {len(rewards)} rollouts)" if spark else ""))
        last_eval = progress.get("last_eval") or {}
        scores = ", ".join(f"{k.removeprefix('eval/')} {number(v)}" for k, v in (last_eval.get("values") or {}).items())
        if scores:
            lines.append(f"  eval:       {scores} at rollout {last_eval.get('rollout_id')}")
    saved = f"iteration {iteration}, {duration(age)} ago" if iteration else "no checkpoint yet"
    lines.append(f"  saved:      {saved}")
    return lines
