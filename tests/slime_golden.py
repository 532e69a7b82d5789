"""Golden log lines made from slime's real format strings at the pin, behind Ray's real prefixes.

slime_messages() reads slime 3d7599aa's source (from SLIME_UPSTREAM_SOURCES,
tests.nix.nixtools.upstream_tree) and finds each metric and Timer line as
slime wrote it: the `logger.info(f"...")` call in its function, its line
number, and the f-string, compiled from slime's own syntax tree. render()
evaluates that f-string over given values (the names slime's code has in
scope there) and formats the record with the logging format that
slime/utils/logging_utils.py configures, read from that file too. Ray's
prefix, colours and deduplication suffix come from Ray's own functions
(ray._private.worker.print_worker_logs, ray._private.ray_logging.DedupState).
"""

from __future__ import annotations

import ast
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from tests.nix.nixtools import PINS, upstream_tree

# (file in slime, enclosing function, how the f-string's source begins)
LINES = {
    "megatron_metric": ("slime/backends/megatron_utils/data.py", "gather_log_data", 'f"{metric_name} {rollout_id}: '),
    "megatron_step": ("slime/backends/megatron_utils/model.py", "train", 'f"{role_tag}step '),
    "fsdp_rollout": ("slime/backends/fsdp_utils/actor.py", "_log_rollout_data", 'f"rollout {rollout_id}: '),
    "fsdp_step": ("slime/backends/fsdp_utils/actor.py", "_train_step", 'f"step {self.global_step}: '),
    "eval": ("slime/ray/rollout.py", "_log_eval_rollout_data", 'f"eval {rollout_id}: '),
    "rollout_perf": ("slime/ray/rollout.py", "_log_rollout_data", 'f"perf {rollout_id}: '),
    "train_perf": ("slime/utils/train_metric_utils.py", "log_perf_data_raw", 'f"perf {rollout_id}: '),
    "timer_start": ("slime/utils/timer.py", "start", 'f"Timer {name} start"'),
    "timer_end": ("slime/utils/timer.py", "end", 'f"Timer {name} end'),
    "data_missing": ("slime/rollout/data_source.py", "load", 'f"Checkpoint {path} does not exist."'),
    "data_load": ("slime/rollout/data_source.py", "load", 'f"load metadata from {path}"'),
    "fsdp_saved": ("slime/backends/fsdp_utils/checkpoint.py", "save", 'f"[FSDP] Saved checkpoint to {checkpoint_dir}"'),
}


@dataclass(frozen=True)
class Message:
    path: str  # as slime's tree names it
    lineno: int
    text: str  # the f-string's text, without f"..."
    code: object  # the f-string, compiled


def slime_tree(tmp: Path) -> Path:
    return upstream_tree("slime", "SLIME_NIX_SLIME_SRC", PINS["sources"]["slime"]["rev"], tmp / "slime")


def slime_messages(root: Path) -> dict[str, Message]:
    out = {}
    for key, (path, function, start) in LINES.items():
        source = (root / path).read_text()
        found = []
        for func in ast.walk(ast.parse(source)):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) or func.name != function:
                continue
            for call in ast.walk(func):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "info"
                        and call.args and isinstance(call.args[0], ast.JoinedStr)):
                    segment = ast.get_source_segment(source, call.args[0])
                    if segment.startswith(start):
                        found.append((call, segment))
        assert len(found) == 1, f"{path}:{function}: expected one logger.info({start}...), found {len(found)}"
        call, segment = found[0]
        code = compile(ast.Expression(body=call.args[0]), path, "eval")
        out[key] = Message(path, call.lineno, segment[2:-1], code)
    return out


def slime_log_format(root: Path) -> tuple[str, str]:
    """(format, datefmt) as slime/utils/logging_utils.py's configure_logger() passes them to basicConfig."""
    path = root / "slime/utils/logging_utils.py"
    tree = ast.parse(path.read_text())
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "basicConfig":
            kwargs = {k.arg: k.value for k in call.keywords}
            # slime's own pinned source: its f-string, with configure_logger's default prefix ""
            fmt = eval(compile(ast.Expression(body=kwargs["format"]), str(path), "eval"), {"prefix": ""})  # noqa: S307
            datefmt = ast.literal_eval(kwargs["datefmt"])
            return fmt, datefmt
    raise AssertionError(f"no logging.basicConfig call in {path}")


def render(message: Message, fmt: tuple[str, str], created: float, **names) -> str:
    """The line slime logs: its f-string over `names`, as configure_logger formats the record."""
    text = eval(message.code, {"__builtins__": {}}, names)  # noqa: S307 - slime's own pinned f-string
    record = logging.LogRecord("slime", logging.INFO, message.path, message.lineno, text, None, None)
    record.created = created
    record.msecs = 0
    return logging.Formatter(fmt[0], fmt[1]).format(record)


def ray_prefixed(lines: list[str], actor: str | None, pid: int, ip: str | None = None, is_err: bool = True) -> str:
    """What Ray's driver prints for a worker's lines (print_worker_logs): prefix, colours, ip when remote."""
    from ray._private.worker import print_worker_logs

    out = io.StringIO()
    data = {"pid": pid, "ip": ip or "10.0.0.1", "localhost": "10.0.0.1", "lines": lines, "is_err": is_err,
            "actor_name": actor}
    print_worker_logs(data, out)
    return out.getvalue()


def ray_deduplicated(line: str, count: int) -> str:
    """A line as Ray's log deduplication prints it after `count` repeats (RAY_DEDUP_LOGS on)."""
    from ray._private.ray_logging import DedupState

    return DedupState(0, count, line, {}, set()).formatted()
