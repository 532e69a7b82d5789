"""Text for `runs`, `show` and `status`. Pure: records (and facts read by the caller) in, lines out."""

from __future__ import annotations

import re
import shlex
import time
from datetime import datetime, timedelta, timezone

# now_iso's format, %Y-%m-%dT%H:%M:%S%z, read without strptime (`runs` reads two per run, 2,000 runs).
_STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)([+-])(\d\d):?(\d\d)$")


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    match = _STAMP.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, sign, off_h, off_m = match.groups()
    offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    try:
        # The offset is kept (time.mktime would read the clock time as local time and drop it).
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        tzinfo=timezone(offset)).timestamp()
    except ValueError:
        return None


def duration(record: dict, now: float | None = None) -> str:
    start = _parse_time(record.get("started_at") or record.get("created_at"))
    if start is None:
        return "-"
    end = _parse_time(record.get("ended_at")) or (time.time() if now is None else now)
    seconds = max(0, int(end - start))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def exit_text(record: dict) -> str:
    """'exit code N', or what stands for it when the run has none (lost, or never started its job)."""
    code = record.get("exit_code")
    return f"exit code {code}" if isinstance(code, int) else "no exit code"


def iteration_text(iteration) -> str:  # noqa: ANN001
    return f"iteration {iteration}" if iteration is not None else "no checkpoint yet"


def runs_table(rows: list[tuple[dict, str]], progress: list[str] | None = None) -> str:
    """rows: (record, effective state); progress: one cell per row (runner.runs.progress_text)."""
    header = ("RUN", "RECIPE", "STATE", "PROGRESS", "STARTED", "DURATION")
    lines = [header]
    for i, (record, state) in enumerate(rows):
        lines.append((record.get("id", "?"), record.get("recipe") or "?", state, progress[i] if progress else "-",
                      (record.get("started_at") or record.get("created_at") or "-")[:19].replace("T", " "),
                      duration(record)))
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)


def status_lines(record: dict, state: str, note: str, *, iteration: str | None, ray_processes: int | None,
                 last_log_line: str | None) -> list[str]:
    from runner.runs.manifest import describe_request  # heavy: not for `runs`

    sup = record.get("supervisor") or {}
    owner = "none yet"  # a run queued in Slurm
    if sup:
        owner = f"pid {sup.get('pid')} on {sup.get('host')}" + (", detached" if sup.get("detached") else "")
    lines = [f"run {record.get('id')}: {state}" + (f" ({note})" if note else ""),
             f"  recipe:     {describe_request(record.get('request') or {})}"]
    if record.get("resumed_from"):
        r = record["resumed_from"]
        lines.append(f"  resumes:    {r.get('run') or r.get('checkpoint')} at {iteration_text(r.get('iteration'))}")
    started = (record.get("started_at") or record.get("created_at") or "-")
    if record.get("ended_at"):
        lines.append(f"  ran:        {started} .. {record['ended_at']} ({duration(record)}), {exit_text(record)}: "
                     f"{record.get('detail') or ''}".rstrip(": "))
    else:
        lines.append(f"  started:    {started} ({duration(record)} ago); owner {owner}")
    lines += attempt_lines(record)
    ckpt = record.get("checkpoint") or {}
    lines.append(f"  checkpoint: {ckpt.get('save')} (latest iteration: {iteration or 'none yet'})")
    logs = record.get("logs") or {}
    lines.append(f"  job log:    {logs.get('job')}")
    if last_log_line:
        lines.append(f"              last line: {last_log_line[:160]}")
    if logs.get("runner"):
        lines.append(f"  runner log: {logs['runner']}")
    ray = record.get("ray") or {}
    alive = "" if ray_processes is None else f"; {ray_processes} process(es) of this run alive"
    lines.append(f"  Ray:        {ray.get('temp_dir')} (logs: {ray.get('logs')}){alive}")
    return lines


def attempt_lines(record: dict) -> list[str]:
    """The keeper's attempts (runner.runs.keeper): which attempt, the last incident, a restart ahead."""
    attempts = [a for a in record.get("attempts") or [] if isinstance(a, dict)]
    if not attempts:
        return []
    budget = ((record.get("keeper") or {}).get("restart") or {}).get("max_restarts")
    lines = [f"  attempt:    {len(attempts)}" + (f" (restarts allowed: {budget})" if budget is not None else "")]
    failed = [a for a in attempts if a.get("reason") not in (None, "stopped")]
    if failed:
        last = failed[-1]
        where = f" at rollout {last['rollout']}" if last.get("rollout") is not None else ""
        lines.append(f"  incident:   attempt {last.get('attempt')}{where}: {last.get('reason_label') or last['reason']}"
                     + (f": {str(last.get('detail'))[:160]}" if last.get("detail") else "")
                     + (f" ({record.get('dir')}/{last['incident']})" if last.get("incident") else ""))
        if last.get("decision"):
            lines.append(f"              {last['decision']}")
    restart = record.get("restart")
    if isinstance(restart, dict) and record.get("state") == "restarting":
        lines.append(f"  restart:    attempt {restart.get('attempt')} at {restart.get('at')}")
    return lines


def show_lines(record: dict, state: str, note: str) -> list[str]:
    """run.json, readably: the decisions first, then the software."""
    from runner.runs.manifest import describe_request

    moved = f" (run.json was written in {record['relocated_from']})" if record.get("relocated_from") else ""
    lines = [f"run {record.get('id')}  [{state}{': ' + note if note else ''}]",
             f"directory:   {record.get('dir')}{moved}",
             f"recipe:      {describe_request(record.get('request') or {})}"]
    if record.get("resumed_from"):
        lines.append(f"resumed:     {record['resumed_from']}")
    for change in record.get("changes_on_resume") or []:
        lines.append(f"changed:     {change}")
    lines += [f"created:     {record.get('created_at')}",
              f"ended:       {record.get('ended_at') or '-'}  {exit_text(record)}  "
              f"{record.get('detail') or ''}".rstrip()]
    ckpt = record.get("checkpoint") or {}
    lines.append(f"checkpoint:  --load {ckpt.get('load')} --save {ckpt.get('save')} "
                 f"(every {ckpt.get('save_interval')} rollouts)")
    lines.append("locations:")
    for name, s in (record.get("locations") or {}).items():
        lines.append(f"  {name:<13} {s.get('value')} (from {s.get('source')})")
    hosts = record.get("hosts") or {}
    lines.append(f"hosts:       head {hosts.get('head')} (MASTER_ADDR {hosts.get('master_addr')}), workers: "
                 f"{', '.join(hosts.get('workers') or []) or 'none'}")
    gpus = record.get("gpus") or {}
    names = sorted({d.get("name") for d in gpus.get("devices") or []})
    lines.append(f"GPUs:        {gpus.get('count')} x {', '.join(n for n in names if n) or '-'} "
                 f"(from {gpus.get('source')})")
    ray = record.get("ray") or {}
    lines.append(f"Ray:         {ray.get('gcs')}, job API {ray.get('dashboard')}, token auth "
                 f"{'on' if ray.get('token_auth') else 'off'}, temp dir {ray.get('temp_dir')}")
    logs = record.get("logs") or {}
    lines.append(f"logs:        job {logs.get('job')}; runner {logs.get('runner') or '-'}; Ray {logs.get('ray')}")
    lines.append("kernel caches:")
    for var, c in (record.get("kernel_caches") or {}).items():
        lines.append(f"  {var:<26} {c.get('path')} (from {c.get('source')}; "
                     f"{c.get('entries_at_start') if c.get('entries_at_start') is not None else 'no'} entries at start)")
    sw = record.get("software") or {}
    runner = sw.get("runner") or {}
    lines.append(f"runner:      {runner.get('version')} at {runner.get('rev') or 'unknown revision'}"
                 f"{' (uncommitted changes)' if runner.get('dirty') else ''}")
    pins = sw.get("pins") or {}
    lines.append(f"pins:        {pins.get('path')} sha256 {pins.get('sha256')}")
    for name, node in ((sw.get("flake_lock") or {}).items()):
        if isinstance(node, dict):
            lines.append(f"flake input: {name} {node.get('owner')}/{node.get('repo')} {node.get('rev')} "
                         f"{node.get('narHash')}")
    for name, path in (sw.get("store_paths") or {}).items():
        lines.append(f"store path:  {name} {path}")
    python = sw.get("python") or {}
    lines.append(f"python:      {python.get('executable')} {python.get('version') or ''}".rstrip())
    packages = sw.get("packages") or {}
    found = [f"{k} {v}" for k, v in packages.items() if v and not k.endswith(" path") and k != "error"]
    lines.append("packages:    " + (", ".join(found) or "-"))
    missing = [k for k, v in packages.items() if v is None and not k.endswith(" path")]
    if missing:
        lines.append("not found:   " + ", ".join(missing))
    job = record.get("job") or {}
    lines.append("job argv:")
    lines.append("  " + shlex.join(job.get("entrypoint") or []))
    env = (job.get("runtime_env") or {}).get("env_vars") or {}
    lines.append("job env:     " + " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items()))
    return lines
