"""`train`'s keeper options as run.json's "keeper" record, and what a dry-run says of them. Pure."""

from __future__ import annotations

from runner.runs.hang import parse_hang_timeouts
from runner.runs.restart_policy import DEFAULT_BACKOFF_S, DEFAULT_MAX_RESTARTS, RestartPolicy


def keeper_record(args) -> tuple[dict, list[str]]:  # noqa: ANN001 - train's argparse namespace
    problems: list[str] = []
    detach = bool(getattr(args, "detach", False))
    given = getattr(args, "max_restarts", None)
    if given and not detach:
        problems.append(f"--max-restarts {given} is for detached runs (a foreground run ends with its terminal): "
                        f"add --detach, or drop --max-restarts")
    max_restarts = (DEFAULT_MAX_RESTARTS if given is None else given) if detach else 0
    backoff = tuple(getattr(args, "restart_backoff", None) or DEFAULT_BACKOFF_S)
    limits = parse_hang_timeouts(list(getattr(args, "hang_timeout", None) or []))
    notify = {"cmd": getattr(args, "notify_cmd", None), "webhook_env": getattr(args, "notify_webhook_env", None),
              "min_interval_s": getattr(args, "notify_min_interval", None)}
    record = {"restart": RestartPolicy(max_restarts, backoff).to_json(), "hang": limits.to_json(),
              "keep_checkpoints": getattr(args, "keep_checkpoints", None),
              "notify": {k: v for k, v in notify.items() if v is not None}}
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
    if keeper.get("keep_checkpoints"):
        notes.append(f"keeper: keeps the {keeper['keep_checkpoints']} newest complete checkpoints")
    return notes
