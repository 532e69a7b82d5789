"""Where a run is: phase, rollout i of N, seconds per rollout, ETA, last reward and eval score.

Pure: events from runner.runs.slime_log in, a small JSON-able state out. The
collector (runner.runs.collector) applies every event of the job log to it
and keeps the result in the run's progress.json, so that `status` and `runs`
read a few hundred bytes per run instead of the metrics.

Phases. slime logs Timer lines from training rank 0 only (utils/timer.py),
and has no timer around rollout generation or eval. The phase is the
outermost open timer, mapped below, and otherwise inferred from train.py's
loop (slime 3d7599aa):

    startup         until the first weight update starts
    update_weights  Timer update_weights, and the time between the trainer's last timer and the
                    weight update (colocated: sglang onloads its memory)
    eval            after a weight update when train.py evaluates next (rollout 0 before
                    training, unless --skip-eval-before-train; then every --eval-interval)
                    and until that `eval N` line
    rollout         after a weight update otherwise, until training starts
    train           Timer train / data_preprocess / log_probs / actor_train / wake_up ..., and
                    what follows until the trainer's next timer (its perf line, freeing memory)
    save_model      Timer save_model
    offload         Timer sleep (colocated recipes: training hands the GPUs back)

The trainer's own `train_wait` timer runs while it waits for rollouts, so it
never names a phase. Timer names this table does not know are their own
phase. Each phase's recent durations are kept (`phase_durations`), for
timeouts that calibrate themselves.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from runner.flags import FlagSet
from runner.runs.slime_log import MetricLine, TimerLine

TIMER_PHASE = {
    "update_weights": "update_weights",
    "save_model": "save_model",
    "sleep": "offload",
    "wake_up": "train",
    "train": "train",
    "data_preprocess": "train",
    "log_probs": "train",
    "ref_log_probs": "train",
    "actor_train": "train",
    "ref_model_update": "train",
}
INVERSE_TIMERS = frozenset({"train_wait"})
# Where each metric kind comes from, for "which rollouts are done": the trainer's perf line
# (utils/train_metric_utils.py) ends a rollout's training.
TRAIN_PERF_SOURCE = "train_metric_utils.py"
REWARD_KEY = "rollout/raw_reward"
KEEP_TAIL = 40  # rollouts kept for sparklines and the rollout rate
KEEP_DURATIONS = 10  # per phase


@dataclass(frozen=True)
class RunShape:
    """What the job's argv says about its progress (slime's defaults where the argv is silent)."""

    backend: str = "megatron"
    num_rollout: int | None = None
    steps_per_rollout: int | None = None
    eval_interval: int | None = None
    save_interval: int | None = None
    eval_before_train: bool = True

    @classmethod
    def from_argv(cls, argv: list[str]) -> "RunShape":
        """argv: slime's train.py argv (anything before the first --flag is skipped)."""
        start = next((i for i, t in enumerate(argv) if t.startswith("--")), len(argv))
        try:
            flags = FlagSet.parse(argv[start:])
        except ValueError:
            return cls()

        def number(name: str) -> int | None:
            try:
                value = flags.value(name)
                return int(value) if value is not None else None
            except ValueError:
                return None

        steps = number("num-steps-per-rollout")
        rollout_batch, samples, global_batch = (number("rollout-batch-size"), number("n-samples-per-prompt") or 1,
                                                number("global-batch-size"))
        if steps is None and rollout_batch and global_batch:
            steps = rollout_batch * samples // global_batch or None
        return cls(backend=flags.value("train-backend") or "megatron", num_rollout=number("num-rollout"),
                   steps_per_rollout=steps, eval_interval=number("eval-interval"),
                   save_interval=number("save-interval"),
                   eval_before_train=not flags.has("skip-eval-before-train"))

    @classmethod
    def from_record(cls, record: dict) -> "RunShape":
        shape = cls.from_argv(list(((record.get("job") or {}).get("entrypoint")) or []))
        if record.get("resumed_from") or len(record.get("attempts") or []) > 1:
            # Where a resume (or a keeper's restart) starts is slime's decision (at the pin: rollout 0
            # again; patched: the checkpoint's next rollout), so an eval before the first rollout is not
            # expected.
            shape = dataclasses.replace(shape, eval_before_train=False)
        return shape

    def to_json(self) -> dict:
        return dict(self.__dict__)


def periodic(rollout_id: int, interval: int | None, num_rollout: int | None = None) -> bool:
    """slime's should_run_periodic_action (utils/misc.py) without the epoch boundary, which
    depends on the dataset's size."""
    if interval is None:
        return False
    if num_rollout is not None and rollout_id == num_rollout - 1:
        return True
    return (rollout_id + 1) % interval == 0


def new_progress(shape: RunShape, attempt: int = 1) -> dict:
    return {
        "attempt": attempt,
        "phase": "startup",
        "phase_since": None,
        "open_timers": {},
        "weights_synced": False,  # a weight update ended in this attempt
        "trained_since_sync": False,  # training ended after the last weight update
        "in_training": False,  # from the trainer's first timer of a rollout until its next other timer
        "first_rollout": None,  # the first rollout id this attempt logged
        "last_rollout": None,  # the last rollout whose training ended (trainer's perf line)
        "num_rollout": shape.num_rollout,
        "evaluated": None,  # the last rollout id an `eval N` line reported
        "rollout_ends": [],  # [rollout id, time] of the last trained rollouts
        "rewards": [],  # [rollout id, raw reward] of the last rollouts
        "last_reward": None,
        "last_eval": None,  # {"rollout_id": N, "values": {key: value}}
        "phase_durations": {},
        "last_progress": None,  # log time of the last metric line or Timer end
        "last_progress_seen": None,  # the collector's clock when it read that line
        "events": 0,
    }


def begin_attempt(progress: dict, attempt: int) -> dict:
    """A new attempt of the same run (a restart in the same run directory): the phase and what this
    attempt has seen start over; the rollouts, rewards and evals of earlier attempts stay."""
    progress.update(attempt=attempt, phase="startup", phase_since=None, open_timers={}, weights_synced=False,
                    trained_since_sync=False, in_training=False, first_rollout=None, rollout_ends=[])
    return progress


def eval_due(progress: dict, shape: RunShape) -> bool:
    """Does train.py evaluate before its next rollout? (train.py: at rollout 0 before training, then
    after the weight update that follows rollout r when r hits --eval-interval or is the last.)"""
    if shape.eval_interval is None:
        return False
    last = progress["last_rollout"]
    if last is None:
        return shape.eval_before_train and progress["first_rollout"] in (None, 0) and progress["evaluated"] != 0
    return periodic(last, shape.eval_interval, shape.num_rollout) and progress["evaluated"] != last


def _inferred_phase(progress: dict, shape: RunShape) -> str:
    open_timers = [name for name in progress["open_timers"] if name not in INVERSE_TIMERS]
    if open_timers:
        outermost = min(open_timers, key=lambda n: progress["open_timers"][n] or 0)
        return TIMER_PHASE.get(outermost, outermost)
    if progress["in_training"]:
        return "train"
    if not progress["weights_synced"]:
        return "startup"
    if progress["trained_since_sync"]:
        return "update_weights"
    return "eval" if eval_due(progress, shape) else "rollout"


def _set_phase(progress: dict, phase: str, at: float | None) -> None:
    if phase == progress["phase"]:
        return
    since = progress["phase_since"]
    if since is not None and at is not None:
        kept = progress["phase_durations"].setdefault(progress["phase"], [])
        kept.append(round(at - since, 1))
        del kept[:-KEEP_DURATIONS]
    progress["phase"] = phase
    progress["phase_since"] = at


def apply(progress: dict, shape: RunShape, event: MetricLine | TimerLine) -> dict:
    """Advance `progress` (in place, and returned) by one event of the job log."""
    at = event.origin.time
    progress["events"] += 1
    if progress["phase_since"] is None:
        progress["phase_since"] = at
    if isinstance(event, TimerLine):
        if event.edge == "start":
            progress["open_timers"][event.name] = at
            # Training lasts from its first timer (Megatron: data_preprocess) until the trainer
            # starts something else (save_model, sleep, update_weights): its tail (the perf line,
            # freeing memory) is training's.
            if event.name not in INVERSE_TIMERS:
                progress["in_training"] = TIMER_PHASE.get(event.name, event.name) == "train"
        else:
            progress["open_timers"].pop(event.name, None)
            progress["last_progress"] = at
            if event.name == "update_weights":
                progress["weights_synced"] = True
                progress["trained_since_sync"] = False
            elif event.name == "train":
                progress["trained_since_sync"] = True
    else:
        _metric(progress, shape, event)
        progress["last_progress"] = at
    _set_phase(progress, _inferred_phase(progress, shape), at)
    return progress


def _metric(progress: dict, shape: RunShape, event: MetricLine) -> None:
    if event.kind.endswith("step"):
        return
    rollout_id = event.number
    if progress["first_rollout"] is None:
        progress["first_rollout"] = rollout_id
    if event.kind == "eval":
        scores = {k: v for k, v in event.values.items() if is_eval_score(k)}
        progress["evaluated"] = rollout_id
        progress["last_eval"] = {"rollout_id": rollout_id, "values": scores}
        return
    if event.kind == "rollout" and REWARD_KEY in event.values:
        reward = event.values[REWARD_KEY]
        progress["last_reward"] = reward
        rewards = [r for r in progress["rewards"] if r[0] != rollout_id] + [[rollout_id, reward]]
        progress["rewards"] = rewards[-KEEP_TAIL:]
    if event.kind == "perf" and event.origin.source == TRAIN_PERF_SOURCE:
        progress["last_rollout"] = rollout_id
        ends = progress["rollout_ends"] + [[rollout_id, event.origin.time]]
        progress["rollout_ends"] = ends[-KEEP_TAIL:]


def is_eval_score(key: str) -> bool:
    """eval/<dataset>: the mean reward on one eval set (ray/rollout.py), not its truncation ratio
    (eval/<dataset>-truncated_ratio), pass rates (eval/<dataset>-pass@k) or response-length statistics."""
    name = key.removeprefix("eval/")
    return (key.startswith("eval/") and "/" not in name and not name.endswith("-truncated_ratio")
            and "-pass@" not in name)


def seconds_per_rollout(progress: dict) -> float | None:
    """Mean time between the ends of consecutive rollouts, over the last ones this attempt trained
    (a mean, not a median: it must include the periodic saves and evals that an ETA pays for)."""
    ends = [(r, t) for r, t in progress["rollout_ends"] if t is not None]
    gaps = [(t2 - t1) / (r2 - r1) for (r1, t1), (r2, t2) in zip(ends, ends[1:]) if r2 > r1 and t2 >= t1]
    return statistics.fmean(gaps) if gaps else None


def eta_seconds(progress: dict) -> float | None:
    per = seconds_per_rollout(progress)
    total, last = progress.get("num_rollout"), progress.get("last_rollout")
    if per is None or total is None or last is None:
        return None
    return max(0, total - 1 - last) * per


def summary(progress: dict, now_log_time: float | None = None) -> dict:
    """The few numbers `status` and `runs` show, as progress.json keeps them beside the state."""
    last = progress.get("last_rollout")
    return {
        "phase": progress.get("phase"),
        "phase_since": progress.get("phase_since"),
        "rollout": last,
        "rollouts_done": None if last is None else last + 1,
        "num_rollout": progress.get("num_rollout"),
        "seconds_per_rollout": seconds_per_rollout(progress),
        "eta_seconds": eta_seconds(progress),
        "last_reward": progress.get("last_reward"),
        "last_eval": progress.get("last_eval"),
        "rewards": [r for _, r in progress.get("rewards") or []],
        "attempt": progress.get("attempt"),
        "first_rollout": progress.get("first_rollout"),
        "last_progress": progress.get("last_progress"),
        "last_progress_seen": progress.get("last_progress_seen"),
        # The ETA counts from here: the log time the last rollout's training ended.
        "last_rollout_end": (progress.get("rollout_ends") or [[None, None]])[-1][1],
    }
