"""Whether a failed attempt is restarted, and after how long. Pure: run.json's attempts in, a decision out.

Never restarted: a success, a `stop`, a resume misalignment (the same slime
would do it again), a first attempt that never made progress (a
configuration error: fail fast), the same reason at the same rollout twice
in a row, two attempts in a row without a new complete checkpoint, and any
failure once --max-restarts restarts were spent.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_RESTARTS = 3
DEFAULT_BACKOFF_S = (60.0, 300.0, 900.0)


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = DEFAULT_MAX_RESTARTS
    backoff_s: tuple = DEFAULT_BACKOFF_S

    def to_json(self) -> dict:
        return {"max_restarts": self.max_restarts, "backoff_s": list(self.backoff_s)}

    @classmethod
    def from_json(cls, data: dict | None) -> "RestartPolicy":
        if not data:
            return cls(max_restarts=0)
        backoff = tuple(float(x) for x in data.get("backoff_s") or DEFAULT_BACKOFF_S)
        return cls(int(data.get("max_restarts", 0)), backoff)

    def delay(self, restarts_done: int) -> float:
        """The wait before restart number restarts_done + 1: the list, its last value repeated."""
        return self.backoff_s[min(restarts_done, len(self.backoff_s) - 1)]


def parse_backoff(text: str) -> tuple:
    """--restart-backoff: seconds, comma-separated (e.g. 60,300,900); the last repeats."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or any(not (v >= 0 and v != float("inf")) for v in values):
        raise ValueError(f"--restart-backoff {text!r}: give seconds separated by commas, e.g. 60,300,900")
    return values


@dataclass(frozen=True)
class Decision:
    restart: bool
    why: str  # one line: why not, or "restart k of N in S s"
    delay_s: float = 0.0


def decide(attempts: list[dict], policy: RestartPolicy) -> Decision:
    """attempts: run.json's, the last one just ended (state, reason, progressed, new_checkpoint, rollout)."""
    last = attempts[-1]
    state = last.get("state")
    if state == "succeeded":
        return Decision(False, "the job succeeded")
    if state == "stopped":
        return Decision(False, "stopped")
    reason = last.get("reason")
    if reason == "misalignment":
        return Decision(False, "no restart after a resume misalignment: the same slime would start at the same "
                               "wrong rollout again")
    if len(attempts) == 1 and not last.get("progressed"):
        return Decision(False, "no restart: the first attempt never made progress (no metric line, no finished "
                               "timer), which is a configuration or environment error rather than a transient one")
    previous = attempts[-2] if len(attempts) >= 2 else None
    if previous is not None:
        rollout = last.get("rollout")
        if previous.get("reason") == reason and rollout is not None and previous.get("rollout") == rollout:
            return Decision(False, f"no restart: the same failure ({reason}) at the same rollout {rollout} in "
                                   f"attempts {previous.get('attempt')} and {last.get('attempt')}")
        if not last.get("new_checkpoint") and not previous.get("new_checkpoint"):
            return Decision(False, f"no restart: attempts {previous.get('attempt')} and {last.get('attempt')} "
                                   f"both ended without a new complete checkpoint")
    done = len(attempts) - 1
    if done >= policy.max_restarts:
        if policy.max_restarts == 0:
            return Decision(False, "no restart: --max-restarts is 0")
        return Decision(False, f"no restart: the restart budget is spent ({done} of --max-restarts "
                               f"{policy.max_restarts})")
    delay = policy.delay(done)
    return Decision(True, f"restart {done + 1} of {policy.max_restarts} in {delay:g} s", delay)
