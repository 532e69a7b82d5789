"""Phase, rollout i of N, seconds per rollout and ETA from the events of train.py's loop (runner.runs.progress).

The events come in the order slime 3d7599aa's train.py and its actors log
them (tests/standin_train.py follows the same order through a real Ray;
tests/test_watch_ray.py checks it end to end)."""

from runner.runs import progress as pg
from runner.runs.progress import RunShape
from runner.runs.slime_log import MetricLine, Origin, TimerLine


class Clock:
    """Events with log times that advance as the test says."""

    def __init__(self, shape: RunShape) -> None:
        self.t = 1_000_000.0
        self.shape = shape
        self.state = pg.new_progress(shape)
        self.phases: list[str] = []

    def _apply(self, event) -> None:  # noqa: ANN001
        pg.apply(self.state, self.shape, event)
        if not self.phases or self.phases[-1] != self.state["phase"]:
            self.phases.append(self.state["phase"])

    def wait(self, seconds: float) -> "Clock":
        self.t += seconds
        return self

    def timer(self, name: str, edge: str) -> "Clock":
        self._apply(TimerLine(name, edge, 1.0 if edge == "end" else None, Origin(self.t, "timer.py", "Actor", 1)))
        return self

    def metric(self, kind: str, number: int, source: str, **values) -> "Clock":
        self._apply(MetricLine(kind, number, {k.replace("__", "/"): v for k, v in values.items()},
                               Origin(self.t, source, "Actor", 2)))
        return self

    def sync(self, seconds: float = 10) -> "Clock":
        return self.timer("update_weights", "start").wait(seconds).timer("update_weights", "end")

    def rollout(self, rid: int, seconds: float = 60, megatron: bool = True, reward: float = 0.5) -> "Clock":
        self.wait(seconds).metric("perf", rid, "rollout.py", perf__rollout_time=seconds)
        if megatron:
            self.timer("data_preprocess", "start").timer("data_preprocess", "end")
        self.timer("train_wait", "end").timer("train", "start").wait(5)
        self.metric("rollout", rid, "data.py" if megatron else "actor.py", rollout__raw_reward=reward)
        self.timer("actor_train", "start").wait(20).metric("step", rid, "model.py", train__loss=0.1)
        self.timer("actor_train", "end").timer("train", "end").timer("train_wait", "start")
        return self.metric("perf", rid, "train_metric_utils.py", perf__step_time=seconds + 25).wait(1)


def test_phases_of_a_fresh_megatron_run_in_train_py_order():
    shape = RunShape(backend="megatron", num_rollout=4, steps_per_rollout=1, eval_interval=2, save_interval=2)
    c = Clock(shape)
    c.timer("train_wait", "start").wait(300)  # the actor's init ends; sglang engines come up
    assert c.state["phase"] == "startup"
    c.sync()
    assert c.state["phase"] == "eval"  # train.py evaluates at rollout 0 before training
    c.wait(30).metric("eval", 0, "rollout.py", eval__aime=0.1, **{"eval__aime-truncated_ratio": 0.5})
    assert c.state["phase"] == "rollout"
    c.rollout(0, reward=0.2)
    assert c.state["phase"] == "train"  # training's tail (perf line, freeing memory) until the next timer
    c.sync()
    assert c.state["phase"] == "rollout"  # no eval after rollout 0 with --eval-interval 2
    c.rollout(1, reward=0.3)
    c.timer("save_model", "start")
    assert c.state["phase"] == "save_model"
    c.wait(40).timer("save_model", "end").sync()
    assert c.state["phase"] == "eval"  # after rollout 1: (1 + 1) % 2 == 0
    c.wait(30).metric("eval", 1, "rollout.py", eval__aime=0.3)
    assert c.state["phase"] == "rollout"
    assert c.phases == ["startup", "update_weights", "eval", "rollout", "train", "update_weights", "rollout", "train",
                        "save_model", "update_weights", "eval", "rollout"]
    c.rollout(2, reward=0.35).timer("sleep", "start").timer("sleep", "end")  # colocated: training hands the GPUs back
    assert c.state["phase"] == "update_weights"  # ... and sglang onloads before the weight update
    s = pg.summary(c.state)
    assert (s["rollout"], s["rollouts_done"], s["num_rollout"]) == (2, 3, 4)
    assert s["last_reward"] == 0.35 and s["rewards"] == [0.2, 0.3, 0.35]
    assert s["last_eval"] == {"rollout_id": 1, "values": {"eval/aime": 0.3}}  # scores only, not ratios
    assert s["first_rollout"] == 0
    durations = c.state["phase_durations"]
    assert durations["startup"] == [300.0] and durations["save_model"] == [40.0]
    assert durations["update_weights"][0] == 10.0


def test_seconds_per_rollout_and_eta():
    shape = RunShape(num_rollout=10, steps_per_rollout=1)
    c = Clock(shape)
    c.timer("train_wait", "start").sync()
    for rid in range(3):
        c.rollout(rid, seconds=60).sync(9)  # 60 + 5 + 20 + 1 + 9 = 95 s from one rollout's end to the next
    assert pg.seconds_per_rollout(c.state) == 95.0
    assert pg.eta_seconds(c.state) == 7 * 95.0  # rollouts 3..9 remain
    assert pg.summary(c.state)["eta_seconds"] == 665.0


def test_fsdp_colocated_offload_phase_and_no_eta_without_num_rollout():
    c = Clock(RunShape(backend="fsdp"))
    c.timer("train_wait", "start").sync().rollout(0, megatron=False)
    c.timer("sleep", "start")
    assert c.state["phase"] == "offload"
    c.timer("sleep", "end")
    assert c.state["phase"] == "update_weights"
    c.sync()
    assert c.state["phase"] == "rollout"
    assert pg.eta_seconds(c.state) is None  # --num-rollout unknown (e.g. --num-epoch)


def test_a_resumed_run_expects_no_eval_before_its_first_rollout():
    record = {"job": {"entrypoint": ["python", "train.py", "--num-rollout", "300", "--eval-interval", "20"]},
              "resumed_from": {"run": "r1", "iteration": "19"}}
    shape = RunShape.from_record(record)
    c = Clock(shape)
    c.timer("train_wait", "start").sync()
    assert c.state["phase"] == "rollout"
    c.rollout(20)
    assert pg.summary(c.state)["first_rollout"] == 20


def test_a_new_attempt_starts_its_phase_over_and_keeps_the_curve():
    c = Clock(RunShape(num_rollout=10))
    c.timer("train_wait", "start").sync().rollout(0, reward=0.2).sync().rollout(1, reward=0.4)
    pg.begin_attempt(c.state, 2)
    assert c.state["phase"] == "startup" and c.state["first_rollout"] is None and c.state["attempt"] == 2
    assert pg.summary(c.state)["rewards"] == [0.2, 0.4] and pg.summary(c.state)["rollout"] == 1
    assert pg.seconds_per_rollout(c.state) is None  # no rate across a restart


def test_run_shape_from_the_argv():
    shape = RunShape.from_argv(["python", "train.py", "--train-backend", "fsdp", "--num-rollout", "300",
                                "--rollout-batch-size", "16", "--n-samples-per-prompt", "4", "--global-batch-size",
                                "32", "--eval-interval=20", "--num-rollout", "100", "--skip-eval-before-train"])
    assert shape == RunShape(backend="fsdp", num_rollout=100, steps_per_rollout=2, eval_interval=20,
                             eval_before_train=False)
    assert RunShape.from_argv(["x", "--num-steps-per-rollout", "4"]).steps_per_rollout == 4
    assert RunShape.from_argv(["x", "--num-rollout", "many"]).num_rollout is None
    assert RunShape.from_argv([]) == RunShape()
