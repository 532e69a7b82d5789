"""How long a phase may go without progress before the run counts as hung. Pure.

Progress is what runner.runs.progress counts (slime's metric lines and Timer
ends) and a change of the checkpoint tracker; sglang's health checks and any
other line are not. A phase's limit calibrates itself on the run:

    limit(phase) = max(floor(phase), 5 x the longest of that phase's last 10 durations)

and the time from the attempt's start to the end of its first weight sync
(slime loads the checkpoint, starts the engines, captures CUDA graphs) has
a limit of its own, `startup`. Every floor can be set with
`--hang-timeout PHASE=MINUTES` (repeatable); `--hang-timeout off` turns the
check off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Minutes. The phases are runner.runs.progress's; "other" is any timer that table does not know.
DEFAULT_FLOORS_MIN = {"startup": 90.0, "train": 30.0, "update_weights": 15.0, "save_model": 60.0,
                      "rollout": 45.0, "eval": 60.0, "offload": 15.0, "other": 60.0}
CALIBRATION_FACTOR = 5.0


class HangSpecError(ValueError):
    pass


@dataclass(frozen=True)
class HangLimits:
    floors_s: dict = field(default_factory=lambda: {k: v * 60 for k, v in DEFAULT_FLOORS_MIN.items()})
    enabled: bool = True

    def to_json(self) -> dict:
        return {"enabled": self.enabled, "floors_min": {k: round(v / 60, 4) for k, v in self.floors_s.items()}}

    @classmethod
    def from_json(cls, data: dict | None) -> "HangLimits":
        if not data:
            return cls()
        floors = {**DEFAULT_FLOORS_MIN, **(data.get("floors_min") or {})}
        return cls({k: float(v) * 60 for k, v in floors.items()}, bool(data.get("enabled", True)))

    def limit(self, phase: str, durations: list | None) -> float:
        """Seconds phase `phase` may go without progress."""
        if phase == "startup":
            return self.floors_s["startup"]
        floor = self.floors_s.get(phase, self.floors_s["other"])
        recent = [d for d in (durations or [])[-10:] if isinstance(d, (int, float))]
        return max(floor, CALIBRATION_FACTOR * max(recent)) if recent else floor


def parse_hang_timeouts(specs: list[str]) -> HangLimits:
    """--hang-timeout values: PHASE=MINUTES (repeatable), or `off`."""
    floors = dict(DEFAULT_FLOORS_MIN)
    enabled = True
    for spec in specs:
        if spec.strip().lower() == "off":
            enabled = False
            continue
        phase, sep, minutes = spec.partition("=")
        phase = phase.strip()
        if not sep or phase not in DEFAULT_FLOORS_MIN:
            raise HangSpecError(f"--hang-timeout {spec!r}: give PHASE=MINUTES with PHASE one of "
                                f"{', '.join(DEFAULT_FLOORS_MIN)} (e.g. --hang-timeout train=45), or `off`")
        try:
            value = float(minutes)
        except ValueError:
            value = -1.0
        if not value > 0 or value != value or value == float("inf"):
            raise HangSpecError(f"--hang-timeout {spec!r}: MINUTES must be a positive number (e.g. {phase}=45)")
        floors[phase] = value
    return HangLimits({k: v * 60 for k, v in floors.items()}, enabled)


def hang_verdict(progress: dict, limits: HangLimits, quiet_s: float) -> str | None:
    """One line when the run has been quiet (no progress) longer than its phase allows, else None."""
    if not limits.enabled:
        return None
    phase = str(progress.get("phase") or "startup")
    synced = bool(progress.get("weights_synced"))
    key = phase if synced else "startup"
    limit = limits.limit(key, (progress.get("phase_durations") or {}).get(phase))
    if quiet_s <= limit:
        return None
    what = "before the first weight sync ended" if key == "startup" else f"in phase {phase}"
    return (f"hang: no progress for {_minutes(quiet_s)} {what} (limit {_minutes(limit)}; slime's metric lines, "
            f"Timer ends and the checkpoint tracker are progress, health checks are not); --hang-timeout "
            f"{key}=MINUTES changes it")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
