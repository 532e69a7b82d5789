"""`train`'s keeper options as run.json's "keeper" record, and what a dry-run says of them. Pure."""

from __future__ import annotations

from runner.runs.hang import parse_hang_timeouts
from runner.runs.restart_policy import DEFAULT_BACKOFF_S, DEFAULT_MAX_RESTARTS, RestartPolicy, parse_backoff


def keeper_record(args, checkpoint_bytes: int | None = None) -> tuple[dict, list[str]]:  # noqa: ANN001
    """args: train's argparse namespace; checkpoint_bytes: one checkpoint's size (runner.planner.saved), for
    the running run's low-disk warning. --keep-checkpoints and --notify-cmd are recorded in run.json's
    "long_run" (runner.runs.setup.long_run_options), which the keeper reads."""
    problems: list[str] = []
    # A run in a Slurm batch job (train --slurm) has no terminal either: it restarts as a detached one.
    detach = bool(getattr(args, "detach", False) or getattr(args, "slurm", False)
                  or getattr(args, "prepared_run", None))
    given = getattr(args, "max_restarts", None)
    if given and not detach:
        problems.append(f"--max-restarts {given} is for detached runs (a foreground run ends with its terminal): "
                        f"add --detach, or drop --max-restarts")
    max_restarts = (DEFAULT_MAX_RESTARTS if given is None else given) if detach else 0
    text = getattr(args, "restart_backoff", None)
    backoff = parse_backoff(text) if text else DEFAULT_BACKOFF_S
    limits = parse_hang_timeouts(list(getattr(args, "hang_timeout", None) or []))
    record = {"restart": RestartPolicy(max_restarts, backoff).to_json(), "hang": limits.to_json(),
              "checkpoint_bytes": checkpoint_bytes}
    return record, problems


def keeper_notes(keeper: dict, detach: bool) -> list[str]:
    restart = keeper["restart"]
    hang = keeper["hang"]
    if restart["max_restarts"]:
        backoff = ", ".join(f"{s:g}" for s in restart["backoff_s"])
        notes = [f"keeper: a failed or hung attempt restarts from the latest complete checkpoint, up to "
                 f"{restart['max_restarts']} time(s), after {backoff} s (--max-restarts, --restart-backoff)"]
    else:
        notes = ["keeper: no automatic restart" + ("" if detach else " (foreground run; --detach has them)")]
    if hang["enabled"]:
        floors = ", ".join(f"{k} {v:g}" for k, v in hang["floors_min"].items())
        notes.append(f"keeper: hang limits (minutes without progress; grow to 5x a phase's longest recent "
                     f"duration): {floors} (--hang-timeout PHASE=MINUTES)")
    else:
        notes.append("keeper: hang detection off (--hang-timeout off)")
    return notes
