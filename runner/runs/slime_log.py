"""The grammar of the lines slime prints about its progress. Pure: text in, events out.

Every line comes from Python logging as slime configures it
(slime/utils/logging_utils.py, slime 3d7599aa):

    [%(asctime)s] %(filename)s:%(lineno)d - %(message)s      datefmt %Y-%m-%d %H:%M:%S

and, when a Ray actor printed it, behind the prefix that Ray's driver adds
(ray/_private/worker.py, print_worker_logs): `(ClassName pid=N)`, with
`, ip=X` when the actor runs on another node than the driver, wrapped in
ANSI colour codes unless RAY_COLOR_PREFIX=0. With log deduplication on
(RAY_DEDUP_LOGS, which the runner turns off), a line can end in
" [repeated 3x across cluster]".

The messages this module reads (file:line at the pin):

    {metric_name} {rollout_id}: {dict}   backends/megatron_utils/data.py:159 (rollout, multi_turn, passrate)
    rollout {rollout_id}: {dict}         backends/fsdp_utils/actor.py:531
    {role_tag}step {step}: {dict}        backends/megatron_utils/model.py:636 (step, critic-step;
                                         step = rollout_id x steps per rollout + i)
    step {global_step}: {dict}           backends/fsdp_utils/actor.py:799 (a global counter)
    eval {rollout_id}: {dict}            ray/rollout.py:583
    perf {rollout_id}: {dict}            ray/rollout.py:608 (rollout side) and
                                         utils/train_metric_utils.py:44 (train side)
    Timer {name} start                   utils/timer.py:24 (global rank 0 only)
    Timer {name} end (elapsed: {s:.1f}s) utils/timer.py:32

The two `perf N` lines differ by the file that logged them, which each
event keeps as its `source`. Which message is which is read from the message
alone: line numbers move between slime versions, the format strings have
not.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from runner.runs.literal import NotALiteral, parse_metric_dict

# The words before " N: {...}" that are slime's metric lines. gather_log_data's metric
# names (rollout, multi_turn, passrate), perf, eval, and the training steps, whose role
# tag makes "critic-step" for a critic.
METRIC_KINDS = frozenset({"rollout", "multi_turn", "passrate", "perf", "eval", "step", "critic-step"})

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_RAY_PREFIX = re.compile(r"^\((?P<who>[^()]*?)\s*pid=(?P<pid>[^,)\s]+)(?:, ip=(?P<ip>[^)]+))?\)\s?")
_DEDUP = re.compile(r"\s*\[repeated \d+x across cluster\].*$")
_LOGGING = re.compile(r"\[(?P<asctime>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[^\]]*\] (?P<file>[^\s:]+):(?P<lineno>\d+) - "
                      r"(?P<message>.*)$")
_METRIC = re.compile(r"^(?P<kind>[A-Za-z_]+(?:-step)?) (?P<number>-?\d+): (?P<dict>\{.*\})\s*$")
_TIMER = re.compile(r"^Timer (?P<name>\S+) (?:(?P<start>start)|end \(elapsed: (?P<elapsed>[^)]*)s\))\s*$")


@dataclass(frozen=True)
class Origin:
    """Where a line came from: its logging time stamp (seconds since the epoch, read as this
    machine's local time, as slime's asctime is), the file that logged it, and the Ray actor."""

    time: float | None
    source: str
    actor: str | None = None
    pid: int | None = None
    ip: str | None = None


@dataclass(frozen=True)
class MetricLine:
    kind: str  # rollout, multi_turn, passrate, perf, eval, step, critic-step
    number: int  # the rollout id, or the training step for step lines
    values: dict
    origin: Origin


@dataclass(frozen=True)
class TimerLine:
    name: str
    edge: str  # "start" or "end"
    elapsed: float | None  # seconds, on "end"
    origin: Origin


def is_candidate(line: bytes) -> bool:
    """A cheap test on the raw bytes: could this line be one of slime's metric or Timer lines?
    (Most of a job log is neither; the collector skips those without decoding them.)"""
    return b": {" in line or b"Timer " in line


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


def parse_line(raw: str) -> MetricLine | TimerLine | None:
    """The event one log line carries, or None when it is not one of slime's metric or Timer lines."""
    text = strip_ansi(raw).rstrip("\r\n")
    actor = pid = ip = None
    prefix = _RAY_PREFIX.match(text)
    if prefix:
        actor = prefix.group("who").strip() or None
        pid = int(prefix.group("pid")) if prefix.group("pid").isdigit() else None
        ip = prefix.group("ip")
        text = text[prefix.end():]
    if "[repeated " in text:
        text = _DEDUP.sub("", text)
    # search, not match: a progress bar that slime's rank 0 draws on stderr (tqdm, e.g. FSDP's
    # "actor_train" bar) has no newline of its own, so a logging record can follow it on one line.
    logged = _LOGGING.search(text)
    if not logged:
        return None
    message = logged.group("message")
    origin = None
    metric = _METRIC.match(message)
    if metric:
        kind = metric.group("kind")
        if kind not in METRIC_KINDS:
            return None
        try:
            values = parse_metric_dict(metric.group("dict"))
        except NotALiteral:
            return None
        origin = Origin(_epoch(logged.group("asctime")), logged.group("file"), actor, pid, ip)
        return MetricLine(kind, int(metric.group("number")), values, origin)
    timer = _TIMER.match(message)
    if timer:
        origin = Origin(_epoch(logged.group("asctime")), logged.group("file"), actor, pid, ip)
        elapsed = None
        if not timer.group("start"):
            try:
                elapsed = float(timer.group("elapsed"))
            except ValueError:
                elapsed = None
        return TimerLine(timer.group("name"), "start" if timer.group("start") else "end", elapsed, origin)
    return None


_stamps: dict[str, float | None] = {}


def _epoch(asctime: str) -> float | None:
    """slime's asctime (YYYY-MM-DD HH:MM:SS, local time, whole seconds; the regex checked its shape) as
    seconds since the epoch. Lines share stamps: recent conversions are kept."""
    value = _stamps.get(asctime, "unknown")
    if value != "unknown":
        return value
    try:
        fields = (int(asctime[0:4]), int(asctime[5:7]), int(asctime[8:10]), int(asctime[11:13]),
                  int(asctime[14:16]), int(asctime[17:19]), 0, 0, -1)
        value = time.mktime(fields) if 1 <= fields[1] <= 12 and 1 <= fields[2] <= 31 else None
    except (ValueError, OverflowError):
        value = None
    if len(_stamps) > 4096:
        _stamps.clear()
    _stamps[asctime] = value
    return value
