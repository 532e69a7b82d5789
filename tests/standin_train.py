"""A stand-in for slime's train.py (3d7599aa), for tests on a machine without GPUs.

Run through a real Ray head in place of train.py (`train --test-entrypoint
tests/standin_train.py`), it goes through train.py's loop in train.py's
order with real Ray actors named as slime's are (MegatronTrainRayActor or
FSDPTrainRayActor, RolloutManager, SGLangEngine), so their lines reach the
job log behind Ray's own `(ClassName pid=N)` prefixes and colour codes. Each
line is a logging record made with the file name, line number and format
string of the slime line it stands for (MESSAGES below; tests check them
against slime's source at the pin), formatted as slime's configure_logger
formats it. It writes checkpoints where slime does: Megatron's
`iter_NNNNNNN/` and `latest_checkpointed_iteration.txt` (FSDP's layout with
--train-backend fsdp), and `rollout/global_dataset_state_dict_N.pt`.

It reads slime's own flags, last one winning: --load, --save,
--save-interval, --num-rollout, --eval-interval, --skip-eval-before-train,
--disable-rollout-global-dataset, --start-rollout-id, --ckpt-step,
--train-backend, --rollout-batch-size, --n-samples-per-prompt,
--global-batch-size. The start rollout id is slime 3d7599aa's: 0, always
(slime_validate_args sets it after parsing, so a resume loads the weights
and trains from rollout 0 again), unless `--standin-start-id patched`: then
an explicit --start-rollout-id, else the checkpoint's next rollout, else 0
(upstream c1fd2bac1 and b91f59e2).

Knobs of its own (all --standin-*):
  --standin-start-id pin|patched    as above (default pin)
  --standin-seconds S               time one rollout's generation takes (default 0.3)
  --standin-crash-at K[,K...]       a Python exception in training at rollout K (each K; `startup`: before
                                    the first weight update, as a configuration error does; -1: never)
  --standin-oom-at K                CUDA's out-of-memory error in training at rollout K
  --standin-hang PHASE              hang in PHASE (startup, update_weights, eval, rollout, train,
                                    save_model) while an sglang engine keeps answering health checks
  --standin-hang-at K               ... at rollout K (the weight update after rollout K counts as K's;
                                    default: the first time PHASE comes)
  --standin-half-checkpoint K       the save of rollout K dies (SIGKILL) with iter_K half written
                                    and the tracker not updated, as a host OOM kill does
  --standin-no-data-state K         the save of rollout K ends after the actor's save: the tracker
                                    names K but rollout/global_dataset_state_dict_K.pt is missing
  --standin-health-interval S       seconds between health-check lines while hung (default 1)
  --standin-once-dir DIR            each crash, OOM or hang above fires once: a marker file in DIR
                                    records it, so a restarted job goes past it (a transient fault)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path

import ray

# What slime logs, as (file in slime 3d7599aa, line, the f-string's text). The messages are made
# with str.format, which reads these exactly as Python reads the f-strings (names, attributes,
# format specs; a dict prints as its repr).
MESSAGES = {
    "megatron_metric": ("slime/backends/megatron_utils/data.py", 159, "{metric_name} {rollout_id}: {reduced_log_dict}"),
    "megatron_step": ("slime/backends/megatron_utils/model.py", 636,
                      "{role_tag}step {accumulated_step_id}: {log_dict}"),
    "fsdp_rollout": ("slime/backends/fsdp_utils/actor.py", 531, "rollout {rollout_id}: {log_dict}"),
    "fsdp_step": ("slime/backends/fsdp_utils/actor.py", 799, "step {self.global_step}: {log_dict}"),
    "eval": ("slime/ray/rollout.py", 583, "eval {rollout_id}: {log_dict}"),
    "rollout_perf": ("slime/ray/rollout.py", 608, "perf {rollout_id}: {log_dict}"),
    "train_perf": ("slime/utils/train_metric_utils.py", 44, "perf {rollout_id}: {log_dict}"),
    "timer_start": ("slime/utils/timer.py", 24, "Timer {name} start"),
    "timer_end": ("slime/utils/timer.py", 32, "Timer {name} end (elapsed: {elapsed_time:.1f}s)"),
    "data_missing": ("slime/rollout/data_source.py", 141, "Checkpoint {path} does not exist."),
    "data_load": ("slime/rollout/data_source.py", 144, "load metadata from {path}"),
    "fsdp_saved": ("slime/backends/fsdp_utils/checkpoint.py", 247, "[FSDP] Saved checkpoint to {checkpoint_dir}"),
}
# slime/utils/logging_utils.py, configure_logger().
LOG_FORMAT = "[%(asctime)s] %(filename)s:%(lineno)d - %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# sglang 0.5.6.post1's HTTP server (set_uvicorn_logging_configs) logs each request in uvicorn's
# access format; this is the line slime's health checks leave (slime issue 1487: a hang in
# which only these were printed).
HEALTH_CHECK_LINE = '[{asctime}] INFO:     127.0.0.1:{port} - "GET /health_generate HTTP/1.1" 200 OK'
# torch's message for a failed CUDA allocation (c10/cuda/CUDACachingAllocator.cpp).
OOM_MESSAGE = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB of which "
               "1.06 GiB is free. Including non-PyTorch memory, this process has 78.04 GiB memory in use. Of the "
               "allocated memory 74.52 GiB is allocated by PyTorch, and 2.09 GiB is reserved by PyTorch but "
               "unallocated. If reserved but unallocated memory is large try setting "
               "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
               "Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")

TRACKER = "latest_checkpointed_iteration.txt"


def configure_logger() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt=DATE_FORMAT, force=True)


def record(key: str, **fields) -> logging.LogRecord:  # noqa: ANN003
    """The logging record slime's line `key` makes: its file name and line number, its text."""
    path, lineno, text = MESSAGES[key]
    return logging.LogRecord("slime", logging.INFO, path, lineno, text.format(**fields), None, None)


def format_line(key: str, created: float | None = None, **fields) -> str:  # noqa: ANN003
    """The line as slime's configure_logger prints it (for tests that write a job log themselves)."""
    rec = record(key, **fields)
    if created is not None:
        rec.created, rec.msecs = created, 0
    return logging.Formatter(LOG_FORMAT, DATE_FORMAT).format(rec)


def log(key: str, **fields) -> None:  # noqa: ANN003
    logging.getLogger().handle(record(key, **fields))


class Timer:
    """slime/utils/timer.py: logs on (global) rank 0, accumulates until the perf line resets it."""

    def __init__(self) -> None:
        self.timers: dict[str, float] = {}
        self.start_time: dict[str, float] = {}

    def start(self, name: str) -> None:
        self.start_time[name] = time.time()
        log("timer_start", name=name)

    def end(self, name: str) -> None:
        elapsed_time = time.time() - self.start_time.pop(name)
        self.timers[name] = self.timers.get(name, 0) + elapsed_time
        log("timer_end", name=name, elapsed_time=elapsed_time)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(allow_abbrev=False)
    p.add_argument("--load")
    p.add_argument("--save")
    p.add_argument("--save-interval", type=int)
    p.add_argument("--num-rollout", type=int, default=3)
    p.add_argument("--eval-interval", type=int)
    p.add_argument("--skip-eval-before-train", action="store_true")
    p.add_argument("--disable-rollout-global-dataset", dest="rollout_global_dataset", action="store_false")
    p.add_argument("--start-rollout-id", type=int)
    p.add_argument("--ckpt-step", type=int)
    p.add_argument("--train-backend", default="megatron")
    p.add_argument("--rollout-batch-size", type=int, default=4)
    p.add_argument("--n-samples-per-prompt", type=int, default=1)
    p.add_argument("--global-batch-size", type=int)
    p.add_argument("--standin-start-id", choices=("pin", "patched"), default="pin")
    p.add_argument("--standin-seconds", type=float, default=0.3)
    p.add_argument("--standin-crash-at", type=_rollout_list, default=())
    p.add_argument("--standin-oom-at", type=int)
    p.add_argument("--standin-hang", choices=("startup", "update_weights", "eval", "rollout", "train", "save_model"))
    p.add_argument("--standin-hang-at", type=int)
    p.add_argument("--standin-half-checkpoint", type=int)
    p.add_argument("--standin-no-data-state", type=int)
    p.add_argument("--standin-health-interval", type=float, default=1.0)
    p.add_argument("--standin-once-dir")
    args, _ = p.parse_known_args(argv)  # the recipe's other flags are slime's business
    return args


def _rollout_list(text: str) -> tuple:
    return tuple(t if t == "startup" else int(t) for t in text.split(",") if t)


def fires(args, knob: str, at) -> bool:  # noqa: ANN001
    """Whether fault `knob` fires at `at` now: always, or once with --standin-once-dir."""
    if not args.standin_once_dir:
        return True
    marker = Path(args.standin_once_dir) / f"{knob}-{at}"
    if marker.exists():
        return False
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("fired\n")
    return True


def steps_per_rollout(args) -> int:  # noqa: ANN001
    return max(1, args.rollout_batch_size * args.n_samples_per_prompt // (args.global_batch_size or 1))


def curve(rollout_id: int, start: float, end: float, scale: float = 60.0, wiggle: float = 0.03) -> float:
    """A smooth, deterministic learning curve: a resumed run continues the same one."""
    return start + (end - start) * (1 - math.exp(-rollout_id / scale)) + wiggle * math.sin(rollout_id * 1.7)


def scalar(value: float):  # noqa: ANN201
    """A numpy float where numpy is installed: numpy 2 prints np.float64(...) in a dict."""
    try:
        import numpy

        return numpy.float64(value)
    except ImportError:
        return value


def hang_forever(where: str) -> None:
    print(f"standin: hanging in {where}", file=sys.stderr, flush=True)
    while True:
        time.sleep(3600)


@ray.remote(num_cpus=0)
class SGLangEngine:
    def __init__(self) -> None:
        configure_logger()

    def serve_health_checks(self, interval: float) -> None:
        port = 40000
        while True:
            port += 1
            print(HEALTH_CHECK_LINE.format(asctime=time.strftime(DATE_FORMAT), port=port), flush=True)
            time.sleep(interval)


@ray.remote(num_cpus=0)
class RolloutManager:
    def __init__(self, args) -> None:  # noqa: ANN001
        configure_logger()
        self.args = args

    def generate(self, rollout_id: int, hang: bool = False) -> int:
        start = time.time()
        time.sleep(self.args.standin_seconds)
        if hang:
            hang_forever(f"rollout {rollout_id}")
        rollout_time = time.time() - start
        length = curve(rollout_id, 900, 2400, wiggle=40)
        samples = self.args.rollout_batch_size * self.args.n_samples_per_prompt
        log_dict = {
            "perf/rollout_time": rollout_time,
            "perf/tokens_per_gpu_per_sec": samples * length / rollout_time / 2,
            "perf/longest_sample_tokens_per_sec": 1.4 * length / rollout_time,
            "rollout/response_len/mean": length,
            "rollout/response_len/median": 0.93 * length,
            "rollout/zero_std/count_0.0": rollout_id % 3,
            "rollout/repetition_frac": 0.0,
            "rollout/truncated_ratio": max(0.0, curve(rollout_id, 0.02, 0.12, wiggle=0.01)),
        }
        log("rollout_perf", rollout_id=rollout_id, log_dict=log_dict)
        return rollout_id

    def eval(self, rollout_id: int, hang: bool = False) -> None:
        time.sleep(self.args.standin_seconds / 2)
        if hang:
            hang_forever(f"eval {rollout_id}")
        log_dict = {
            "eval/aime": curve(rollout_id, 0.10, 0.42, scale=80, wiggle=0.02),
            "eval/aime/response_len/mean": curve(rollout_id, 5000, 9000, wiggle=100),
            "eval/aime-truncated_ratio": curve(rollout_id, 0.05, 0.15, wiggle=0.01),
            "eval/aime-pass@2": scalar(curve(rollout_id, 0.15, 0.5, scale=80, wiggle=0.02)),
        }
        log("eval", rollout_id=rollout_id, log_dict=log_dict)

    def save(self, rollout_id: int) -> None:
        if not self.args.rollout_global_dataset:
            return
        path = Path(self.args.save) / f"rollout/global_dataset_state_dict_{rollout_id}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"sample_offset": (rollout_id + 1) * self.args.rollout_batch_size, "epoch_id": 0}
        path.write_text(json.dumps(state))

    def load(self, rollout_id: int) -> None:
        if not self.args.rollout_global_dataset or self.args.load is None:
            return
        path = os.path.join(self.args.load, f"rollout/global_dataset_state_dict_{rollout_id}.pt")
        if not os.path.exists(path):
            log("data_missing", path=path)
            return
        log("data_load", path=path)

    def dispose(self) -> None:
        pass


class TrainActor:
    """What both backends' actors share; the Ray actor classes below carry slime's names."""

    def __init__(self, args) -> None:  # noqa: ANN001
        configure_logger()
        self.args = args
        self.timer = Timer()
        self.global_step = 0  # FSDP's counter

    def init(self) -> int:
        """Load the checkpoint; return the rollout id it continues at (the actor's start_rollout_id)."""
        args = self.args
        loaded = -1
        tracker = Path(args.load) / TRACKER if args.load else None
        if tracker is not None and tracker.exists():
            iteration = args.ckpt_step if args.ckpt_step is not None else int(tracker.read_text().strip())
            if args.train_backend == "fsdp":
                meta = json.loads((Path(args.load) / f"iter_{iteration:07d}" / "meta.json").read_text())
                self.global_step = meta["global_step"]
                loaded = meta["next_rollout_id"] - 1
            else:
                loaded = iteration
        self.timer.start("train_wait")  # slime: with_defer(lambda: Timer().start("train_wait")) on init
        return loaded + 1

    def update_weights(self, hang: bool = False) -> None:
        self.timer.start("update_weights")
        time.sleep(0.05)
        if hang:
            hang_forever("update_weights")
        self.timer.end("update_weights")

    def train(self, rollout_id: int, hang: bool = False) -> None:
        args = self.args
        if args.train_backend != "fsdp":
            self.timer.start("data_preprocess")
            self.timer.end("data_preprocess")
        self.timer.end("train_wait")  # inverse_timer("train_wait")
        self.timer.start("train")
        self.timer.start("log_probs")
        time.sleep(0.02)
        self.timer.end("log_probs")
        if hang:
            hang_forever(f"train {rollout_id}")
        if rollout_id in args.standin_crash_at and fires(args, "crash", rollout_id):
            raise RuntimeError(f"standin: crash in training at rollout {rollout_id}")
        if args.standin_oom_at == rollout_id and fires(args, "oom", rollout_id):
            raise OutOfMemoryError(OOM_MESSAGE)
        reward = curve(rollout_id, 0.15, 0.75)
        rollout_metrics = {"rollout/raw_reward": reward, "rollout/rewards": reward - 0.5,
                           "rollout/response_lengths": curve(rollout_id, 900, 2400, wiggle=40),
                           "rollout/truncated": curve(rollout_id, 0.02, 0.12, wiggle=0.01),
                           "rollout/log_probs": curve(rollout_id, -0.45, -0.25, wiggle=0.01),
                           "rollout/ref_log_probs": curve(rollout_id, -0.45, -0.3, wiggle=0.01),
                           "rollout/entropy": curve(rollout_id, 0.45, 0.3, wiggle=0.01)}
        if args.train_backend == "fsdp":
            log("fsdp_rollout", rollout_id=rollout_id, log_dict=rollout_metrics)
        else:
            log("megatron_metric", metric_name="rollout", rollout_id=rollout_id, reduced_log_dict=rollout_metrics)
        self.timer.start("actor_train")
        steps = steps_per_rollout(args)
        for step_id in range(steps):
            time.sleep(0.02)
            loss_dict = {"train/loss": curve(rollout_id, 0.02, -0.01, wiggle=0.005),
                         "train/pg_loss": curve(rollout_id, 0.02, -0.01, wiggle=0.005),
                         "train/entropy_loss": curve(rollout_id, 0.45, 0.3, wiggle=0.01),
                         "train/pg_clipfrac": curve(rollout_id, 0.001, 0.004, wiggle=0.0005),
                         "train/ppo_kl": curve(rollout_id, 0.0, 0.002, wiggle=0.0002),
                         "train/grad_norm": curve(rollout_id, 0.4, 0.15, wiggle=0.03),
                         "train/lr-pg_0": 1e-6, "train/lr-pg_1": 1e-6}
            if args.train_backend == "fsdp":
                log("fsdp_step", self=self, log_dict=loss_dict)
                self.global_step += 1
            else:
                accumulated_step_id = rollout_id * steps + step_id
                loss_dict["train/step"] = accumulated_step_id
                log("megatron_step", role_tag="", accumulated_step_id=accumulated_step_id, log_dict=loss_dict)
        self.timer.end("actor_train")
        self.timer.end("train")
        self.timer.start("train_wait")
        self._log_perf(rollout_id)

    def _log_perf(self, rollout_id: int) -> None:
        """utils/train_metric_utils.py: log_perf_data_raw."""
        log_dict = {f"perf/{key}_time": val for key, val in self.timer.timers.items()}
        self.timer.timers = {}
        if "perf/actor_train_time" in log_dict and self.args.train_backend != "fsdp":
            log_dict["perf/actor_train_tflops"] = 3 * 41.5 / log_dict["perf/actor_train_time"]
            log_dict["perf/actor_train_tok_per_s"] = curve(rollout_id, 9000, 12000, wiggle=200)
        if "perf/train_wait_time" in log_dict and "perf/train_time" in log_dict:
            total_time = log_dict["perf/train_wait_time"] + log_dict["perf/train_time"]
            if total_time > 0:
                log_dict["perf/step_time"] = total_time
                log_dict["perf/wait_time_ratio"] = log_dict["perf/train_wait_time"] / total_time
        log("train_perf", rollout_id=rollout_id, log_dict=log_dict)

    def save_model(self, rollout_id: int, hang: bool = False) -> None:
        args = self.args
        self.timer.start("save_model")
        if hang:
            hang_forever(f"save_model {rollout_id}")
        save = Path(args.save)
        fsdp = args.train_backend == "fsdp"
        iteration = rollout_id + 1 if fsdp else rollout_id  # fsdp_utils/checkpoint.py saves iter_{rollout+1}
        folder = save / f"iter_{iteration:07d}"
        (folder / ("model" if fsdp else "")).mkdir(parents=True, exist_ok=True)
        (folder / ("model/__0_0.distcp" if fsdp else "__0_0.distcp")).write_bytes(b"\0" * 4096)
        if args.standin_half_checkpoint == rollout_id:
            print(f"standin: the save of rollout {rollout_id} dies half written", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        if fsdp:
            meta = {"iteration": iteration, "rollout_id": rollout_id, "next_rollout_id": rollout_id + 1,
                    "global_step": self.global_step}
            (folder / "meta.json").write_text(json.dumps(meta))
        else:
            (folder / "common.pt").write_bytes(b"\0" * 64)
            (folder / "metadata.json").write_text(json.dumps({"sharded_backend": "torch_dist"}))
        (save / TRACKER).write_text(str(iteration))
        if fsdp:
            log("fsdp_saved", checkpoint_dir=folder)
        self.timer.end("save_model")


class OutOfMemoryError(RuntimeError):
    """Named as torch's (torch.OutOfMemoryError), carrying its message; defined here so that no torch
    is needed to raise it, and so Ray's traceback in the driver reads RayTaskError(OutOfMemoryError)."""


@ray.remote(num_cpus=0)
class MegatronTrainRayActor(TrainActor):
    pass


@ray.remote(num_cpus=0)
class FSDPTrainRayActor(TrainActor):
    pass


def periodic(rollout_id: int, interval: int | None, num_rollout: int | None = None) -> bool:
    """slime/utils/misc.py: should_run_periodic_action (no epoch boundary: the stand-in has no dataset)."""
    if interval is None:
        return False
    if num_rollout is not None and rollout_id == num_rollout - 1:
        return True
    return (rollout_id + 1) % interval == 0


def start_rollout_id(args, checkpoint_start: int) -> int:  # noqa: ANN001
    if args.standin_start_id == "pin":
        return 0  # slime_validate_args: `args.start_rollout_id = 0` in every case
    if args.start_rollout_id is not None:
        return args.start_rollout_id
    return checkpoint_start


def train(args) -> None:  # noqa: ANN001 - the shape of slime's train.py, step for step
    configure_logger()
    hang = args.standin_hang
    rollout_manager = RolloutManager.remote(args)
    engine = SGLangEngine.remote()
    actor_cls = FSDPTrainRayActor if args.train_backend == "fsdp" else MegatronTrainRayActor
    actor = actor_cls.remote(args)

    fired: set[str] = set()

    def hangs(phase: str, rollout_id: int | None) -> bool:
        """--standin-hang PHASE: the first time PHASE comes, or at rollout --standin-hang-at (the
        weight update after rollout K counts as K's; startup and the first weight update have none)."""
        if hang != phase or phase in fired:
            return False
        if args.standin_hang_at is not None and rollout_id != args.standin_hang_at and phase != "startup":
            return False
        fired.add(phase)
        if not fires(args, f"hang-{phase}", rollout_id):
            return False
        engine.serve_health_checks.remote(args.standin_health_interval)
        return True

    if hangs("startup", None):
        hang_forever("startup")
    if "startup" in args.standin_crash_at and fires(args, "crash", "startup"):
        raise RuntimeError("standin: a configuration error before the first weight update")
    start = start_rollout_id(args, ray.get(actor.init.remote()))
    if args.rollout_global_dataset:
        ray.get(rollout_manager.load.remote(start - 1))
    ray.get(actor.update_weights.remote(hang=hangs("update_weights", None)))

    for rollout_id in range(start, args.num_rollout):
        if args.eval_interval is not None and rollout_id == 0 and not args.skip_eval_before_train:
            ray.get(rollout_manager.eval.remote(rollout_id, hang=hangs("eval", rollout_id)))
        ray.get(rollout_manager.generate.remote(rollout_id, hang=hangs("rollout", rollout_id)))
        ray.get(actor.train.remote(rollout_id, hang=hangs("train", rollout_id)))
        if periodic(rollout_id, args.save_interval, args.num_rollout):
            ray.get(actor.save_model.remote(rollout_id, hang=hangs("save_model", rollout_id)))
            if args.standin_no_data_state == rollout_id:
                print(f"standin: the save of rollout {rollout_id} ends before the data state", file=sys.stderr,
                      flush=True)
                time.sleep(1.0)  # let Ray forward the actors' last lines first, as at any other end
                os._exit(1)
            if args.rollout_global_dataset:
                ray.get(rollout_manager.save.remote(rollout_id))
        ray.get(actor.update_weights.remote(hang=hangs("update_weights", rollout_id)))
        if periodic(rollout_id, args.eval_interval):
            ray.get(rollout_manager.eval.remote(rollout_id, hang=hangs("eval", rollout_id)))

    ray.get(rollout_manager.dispose.remote())


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    ray.init(log_to_driver=True)
    try:
        train(arguments)
    finally:
        time.sleep(1.0)  # let Ray forward the actors' last lines before the driver exits
