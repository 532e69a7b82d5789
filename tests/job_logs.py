"""Job logs written by a test itself, with chosen times: slime's lines (the stand-in's copies of
slime's format strings, tests/standin_train.py) behind Ray-style prefixes, in train.py's order.

For tests of the collector, the commands and the report that need many
rollouts or exact times; tests/test_watch_ray.py runs the stand-in through a
real Ray instead."""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache

from tests.conftest import REPO

TRAINER = "\x1b[36m(MegatronTrainRayActor pid=2301)\x1b[0m "
FSDP_TRAINER = "\x1b[36m(FSDPTrainRayActor pid=2301)\x1b[0m "
ROLLOUT_MANAGER = "\x1b[36m(RolloutManager pid=2290)\x1b[0m "
NOISE = ("\x1b[36m(SGLangEngine pid=2295)\x1b[0m [2025-12-10 12:00:00 TP0] Decode batch. #running-req: 64, "
         "#token: 81234, token usage: 0.41, cuda graph: True, gen throughput (token/s): 2411.73, #queue-req: 0")


@lru_cache(maxsize=1)
def standin():
    spec = importlib.util.spec_from_file_location("standin_train", REPO / "tests" / "standin_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reward(rollout_id: int, speed: float = 1.0) -> float:
    """A learning curve; `speed` stands for another learning rate."""
    return round(0.2 + 0.5 * (1 - math.exp(-rollout_id * speed / 60)) + 0.015 * math.sin(rollout_id * 0.9), 6)


def job_log(rollouts: range, *, start: float = 1_765_000_000.0, seconds: float = 100.0, backend: str = "megatron",
            steps: int = 1, eval_interval: int | None = None, noise: int = 0, eval_first: bool = True,
            speed: float = 1.0) -> str:
    """The job log of `rollouts`, one every `seconds` from `start`; `noise` sglang lines per rollout."""
    s = standin()
    trainer = FSDP_TRAINER if backend == "fsdp" else TRAINER
    t = start
    out: list[str] = []

    def add(prefix: str, key: str, **fields) -> None:
        out.append(prefix + s.format_line(key, created=t, **fields))

    add(trainer, "timer_start", name="train_wait")
    add(trainer, "timer_start", name="update_weights")
    add(trainer, "timer_end", name="update_weights", elapsed_time=5.0)
    if eval_interval and eval_first and rollouts.start == 0:
        add(ROLLOUT_MANAGER, "eval", rollout_id=0, log_dict={"eval/aime": 0.1, "eval/aime-truncated_ratio": 0.2})
    global_step = rollouts.start * steps
    for rid in rollouts:
        out.extend([NOISE] * noise)
        t += seconds * 0.6
        add(ROLLOUT_MANAGER, "rollout_perf", rollout_id=rid, log_dict={
            "perf/rollout_time": seconds * 0.6, "perf/tokens_per_gpu_per_sec": 1500.0 + rid,
            "rollout/response_len/mean": 2000.0 + 10 * rid * speed, "rollout/truncated_ratio": 0.1 + rid / 2000})
        add(trainer, "timer_end", name="train_wait", elapsed_time=seconds * 0.6)
        add(trainer, "timer_start", name="train")
        t += seconds * 0.1
        values = {"rollout/raw_reward": reward(rid, speed), "rollout/log_probs": -0.3}
        if backend == "fsdp":
            add(trainer, "fsdp_rollout", rollout_id=rid, log_dict=values)
        else:
            add(trainer, "megatron_metric", metric_name="rollout", rollout_id=rid, reduced_log_dict=values)
        for i in range(steps):
            r = reward(rid, speed)
            loss = {"train/loss": 0.01 * math.sin(rid + i), "train/grad_norm": 0.3 - 0.1 * r,
                    "train/ppo_kl": 0.001 + 0.0005 * math.sin(rid / 3), "train/entropy_loss": 0.45 - 0.2 * r}
            t += seconds * 0.2 / steps
            if backend == "fsdp":
                add(trainer, "fsdp_step", self=type("Actor", (), {"global_step": global_step}), log_dict=loss)
            else:
                add(trainer, "megatron_step", role_tag="", accumulated_step_id=rid * steps + i,
                    log_dict={**loss, "train/step": rid * steps + i})
            global_step += 1
        add(trainer, "timer_end", name="train", elapsed_time=seconds * 0.3)
        add(trainer, "timer_start", name="train_wait")
        add(trainer, "train_perf", rollout_id=rid, log_dict={
            "perf/train_time": seconds * 0.3, "perf/update_weights_time": 5.0, "perf/step_time": seconds,
            "perf/actor_train_tok_per_s": 9000.0 + rid})
        add(trainer, "timer_start", name="update_weights")
        t += seconds * 0.1
        add(trainer, "timer_end", name="update_weights", elapsed_time=seconds * 0.1)
        if eval_interval and (rid + 1) % eval_interval == 0:
            add(ROLLOUT_MANAGER, "eval", rollout_id=rid, log_dict={"eval/aime": 0.1 + rid * speed / 1000,
                                                                   "eval/aime-truncated_ratio": 0.2 - rid / 2000})
    return "".join(line + "\n" for line in out)
