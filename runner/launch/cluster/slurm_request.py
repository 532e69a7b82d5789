"""What a run asks of Slurm, checked against what the cluster has. Pure.

The facts come from `scontrol show partition -o` and `sinfo -N` (read by
runner.launch.cluster.slurm_cli); the problems are one line each, naming the value
and the fix: an unknown partition, too few nodes (or nodes with too few
GPUs) in it, a time limit Slurm would refuse or one below the run's expected
duration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runner.launch.cluster.slurm import parse_one_line_record

UNLIMITED = ("UNLIMITED", "INFINITE", "NONE")


@dataclass(frozen=True)
class SlurmRequest:
    """The allocation `train --slurm` asks for."""

    nodes: int
    gpus_per_node: int  # 0: no GPU request (a launch test)
    partition: str | None = None
    account: str | None = None
    time_limit: str | None = None  # as the user wrote it (sbatch's --time syntax)
    qos: str | None = None


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    nodes: tuple[str, ...]
    state: str  # UP, DOWN, DRAIN, INACTIVE
    max_time_s: int | None  # None: no limit
    default_time_s: int | None  # None: the job gets max_time_s
    # Node name -> GPUs its gres lists (sinfo %G); nodes without GPUs map to 0.
    gpus: dict[str, int]


def parse_time(text: str) -> int:
    """Seconds of a Slurm time limit: MIN, MIN:SEC, H:MIN:SEC, D-H, D-H:MIN, D-H:MIN:SEC (sbatch(1) --time).

    ValueError with the accepted forms for anything else (UNLIMITED too: a job's limit must be finite here)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a Slurm time limit; write MINUTES, HH:MM:SS or DAYS-HH:MM:SS "
                         f"(e.g. 90, 12:00:00, 2-00:00:00)")
    days, a, b, c = m.groups()
    a, b, c = int(a), int(b or 0), int(c or 0)
    if days is not None:  # D-H, D-H:M, D-H:M:S
        seconds = int(days) * 86400 + a * 3600 + b * 60 + c
    elif m.group(4) is not None:  # H:M:S
        seconds = a * 3600 + b * 60 + c
    elif m.group(3) is not None:  # M:S
        seconds = a * 60 + b
    else:  # M
        seconds = a * 60
    if seconds <= 0:
        raise ValueError(f"{text!r} is no time at all; give the job a time limit above zero")
    return seconds


def parse_limit(text: str | None) -> int | None:
    """A partition's MaxTime/DefaultTime: None when unlimited or unset."""
    if not text or text.upper() in UNLIMITED:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def format_duration(seconds: float) -> str:
    """D-HH:MM:SS (or HH:MM:SS under a day), as sbatch takes it."""
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def gpus_of_gres(gres: str) -> int:
    """GPUs in one node's gres (sinfo %G): 'gpu:8', 'gpu:h200:8(S:0-1)', 'gpu:a100:4,nic:1'; '(null)' is 0."""
    total = 0
    for item in re.split(r",(?![^()]*\))", gres):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def parse_partitions(scontrol_partitions: str, sinfo_nodes: str) -> dict[str, Partition]:
    """scontrol_partitions: `scontrol show partition -o`; sinfo_nodes: `sinfo -h -N -o '%R|%N|%G'`."""
    gres: dict[str, dict[str, int]] = {}
    for line in sinfo_nodes.splitlines():
        fields = line.strip().split("|")
        if len(fields) == 3:
            gres.setdefault(fields[0], {})[fields[1]] = gpus_of_gres(fields[2])
    out = {}
    for line in scontrol_partitions.splitlines():
        rec = parse_one_line_record(line)
        name = rec.get("PartitionName")
        if not name:
            continue
        nodes = tuple(gres.get(name, {}))
        out[name] = Partition(
            name=name, default=rec.get("Default") == "YES", nodes=nodes, state=rec.get("State", "UP"),
            max_time_s=parse_limit(rec.get("MaxTime")), default_time_s=parse_limit(rec.get("DefaultTime")),
            gpus=gres.get(name, {}))
    return out


@dataclass(frozen=True)
class Expectation:
    """How long the run is expected to take, and why that figure."""

    seconds: float
    source: str  # e.g. "3000 rollouts x 12.3 s per rollout, measured by run X (its job.log)"


def request_problems(req: SlurmRequest, partitions: dict[str, Partition], recipe: str,
                     expectation: Expectation | None) -> list[str]:
    """One line per problem with what `req` asks of this cluster."""
    problems = []
    names = ", ".join(sorted(partitions)) or "none"
    if req.partition:
        part = partitions.get(req.partition)
        if part is None:
            return [f"--partition {req.partition}: no such partition on this cluster (sinfo lists: {names}); "
                    f"pass one of those"]
        where = f"--partition {req.partition}"
    else:
        part = next((p for p in partitions.values() if p.default), None)
        if part is None:
            return [f"this cluster has no default partition: pass --partition (sinfo lists: {names})"]
        where = f"the default partition {part.name}"
    if part.state not in ("UP",):
        problems.append(f"{where} is {part.state}: jobs there do not start; pass another --partition "
                        f"(sinfo lists: {names})")
    if len(part.nodes) < req.nodes:
        problems.append(f"{where} has {len(part.nodes)} node(s); {recipe} needs {req.nodes}: pass a partition "
                        f"with at least {req.nodes} nodes (sinfo -s shows their sizes)")
    elif req.gpus_per_node:
        capable = [n for n in part.nodes if part.gpus.get(n, 0) >= req.gpus_per_node]
        if len(capable) < req.nodes:
            most = max(part.gpus.values(), default=0)
            problems.append(f"{where} has {len(capable)} node(s) with {req.gpus_per_node} GPUs (gres; at most "
                            f"{most} per node there); {recipe} needs {req.nodes} such nodes: pass a GPU partition")
    limit, limit_source = None, ""
    if req.time_limit:
        try:
            limit, limit_source = parse_time(req.time_limit), f"--time {req.time_limit}"
        except ValueError as exc:
            problems.append(f"--time {exc}")
        if limit and part.max_time_s and limit > part.max_time_s:
            problems.append(f"--time {req.time_limit} is above {where}'s limit of "
                            f"{format_duration(part.max_time_s)}: Slurm would never start the job; ask for at most "
                            f"that")
    else:
        limit = part.default_time_s or part.max_time_s
        if limit:
            limit_source = f"{where}'s {'default' if part.default_time_s else 'maximum'} time limit"
    if limit and expectation and limit < expectation.seconds:
        problems.append(f"{limit_source} ({format_duration(limit)}) is below the expected duration of {recipe}, "
                        f"{format_duration(expectation.seconds)} ({expectation.source}): give --time at least "
                        f"that, or fewer rollouts (--set num-rollout=N)")
    return problems
