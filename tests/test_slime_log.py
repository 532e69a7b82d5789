"""slime's log lines -> events, with golden lines made from slime's real format strings at the pin.

Each line is rendered from the f-string slime 3d7599aa logs it with (read
from slime's source: tests.slime_golden), formatted by the logging format
slime configures, and put behind Ray's prefix by Ray's own print_worker_logs
(colours, `ip=` of a remote actor) or deduplication; one comes after a real
tqdm bar on the same line, as FSDP's rank 0 leaves it. Both backends.
"""

import importlib.util
import io
import math
from types import SimpleNamespace

import pytest

from runner.runs.collector import Collector
from runner.runs.literal import NotALiteral, parse_metric_dict
from runner.runs.progress import RunShape
from runner.runs.slime_log import MetricLine, TimerLine, parse_line
from tests.conftest import REPO

numpy = pytest.importorskip("numpy", reason="the golden values include numpy scalars (pip install numpy)")
pytest.importorskip("ray", reason="Ray's own prefix code makes the golden lines (pip install -e '.[test]')")

from tests.slime_golden import (ray_deduplicated, ray_prefixed, render, slime_log_format,  # noqa: E402
                                slime_messages, slime_tree)

WHEN = 1765370096.0  # a fixed time stamp; lines carry it to the second


def expected(values: dict) -> dict:
    """What the parser must give for a dict slime printed: numbers as numbers, nan/inf as None."""
    out = {}
    for key, value in values.items():
        value = value.item() if hasattr(value, "item") else value
        if isinstance(value, bool):
            value = int(value)
        out[key] = None if isinstance(value, float) and not math.isfinite(value) else value
    return out


MEGATRON_ROLLOUT = {"rollout/raw_reward": 0.4375, "rollout/response_lengths": 2048.5, "rollout/log_probs": -0.31,
                    "rollout/ref_log_probs": float("nan"), "rollout/advantages": -1.4901161193847656e-08,
                    "rollout/entropy": float("inf")}
MEGATRON_STEP = {"train/loss": -0.0123, "train/pg_loss": -0.0123, "train/entropy_loss": 0.38,
                 "train/pg_clipfrac": 0.0, "train/ppo_kl": 1e-06, "train/grad_norm": float("-inf"),
                 "train/lr-pg_0": 1e-06, "train/lr-pg_1": 1e-06, "train/step": 15}
FSDP_ROLLOUT = {"rollout/raw_reward": numpy.float64(0.25), "rollout/log_probs": -0.5}
FSDP_STEP = {"train/loss": 0.5, "train/grad_norm": numpy.float64("nan"), "train/lr-pg_0": 2e-06}
EVAL = {"eval/aime": 0.3, "eval/aime-truncated_ratio": numpy.float64(0.0625), "eval/aime-pass@2": numpy.float64(0.5),
        "eval/数学": 0.125, "eval/aime/zero_std/count_1.0": numpy.int64(3)}
ROLLOUT_PERF = {"perf/rollout_time": 412.7, "perf/tokens_per_gpu_per_sec": 1523.2,
                "rollout/response_len/mean": 5123.0, "rollout/zero_std/count_0.0": 4, "rollout/truncated_ratio": 0.125}
TRAIN_PERF = {"perf/train_wait_time": 420.1, "perf/train_time": 95.5, "perf/update_weights_time": 12.0,
              "perf/actor_train_tok_per_s": 10240.0, "perf/step_time": 515.6, "perf/wait_time_ratio": 0.81}


@pytest.fixture(scope="module")
def slime(tmp_path_factory):
    root = slime_tree(tmp_path_factory.mktemp("upstream"))
    return SimpleNamespace(root=root, messages=slime_messages(root), fmt=slime_log_format(root))


def line(slime, key: str, **names) -> str:
    return render(slime.messages[key], slime.fmt, WHEN, **names)


@pytest.fixture(scope="module")
def golden(slime):
    """(log text as the job log holds it, the events it must give), both backends, in train.py's order."""
    trainer = ("MegatronTrainRayActor", 2301)
    cases = [
        (ray_prefixed([line(slime, "timer_start", name="update_weights")], *trainer),
         TimerLine("update_weights", "start", None, None)),
        (ray_prefixed([line(slime, "timer_end", name="update_weights", elapsed_time=12.345)], *trainer),
         TimerLine("update_weights", "end", 12.3, None)),
        (ray_prefixed([line(slime, "eval", rollout_id=0, log_dict=EVAL)], "RolloutManager", 2290, "10.0.0.2"),
         ("eval", 0, EVAL, "rollout.py")),
        (ray_prefixed([line(slime, "rollout_perf", rollout_id=7, log_dict=ROLLOUT_PERF)], "RolloutManager", 2290,
                      "10.0.0.2"), ("perf", 7, ROLLOUT_PERF, "rollout.py")),
        (ray_prefixed([line(slime, "megatron_metric", metric_name="rollout", rollout_id=7,
                            reduced_log_dict=MEGATRON_ROLLOUT)], *trainer),
         ("rollout", 7, MEGATRON_ROLLOUT, "data.py")),
        (ray_prefixed([line(slime, "megatron_metric", metric_name="passrate", rollout_id=7,
                            reduced_log_dict={"passrate/pass@4": 0.5})], *trainer),
         ("passrate", 7, {"passrate/pass@4": 0.5}, "data.py")),
        (ray_prefixed([line(slime, "megatron_step", role_tag="", accumulated_step_id=15, log_dict=MEGATRON_STEP)],
                      *trainer), ("step", 15, MEGATRON_STEP, "model.py")),
        (ray_prefixed([line(slime, "megatron_step", role_tag="critic-", accumulated_step_id=15,
                            log_dict={"train/critic-value_loss": 0.2})], "MegatronTrainRayActor", 2302),
         ("critic-step", 15, {"train/critic-value_loss": 0.2}, "model.py")),
        (ray_deduplicated(ray_prefixed([line(slime, "train_perf", rollout_id=7, log_dict=TRAIN_PERF)],
                                       *trainer).rstrip("\n"), 2) + "\n",
         ("perf", 7, TRAIN_PERF, "train_metric_utils.py")),
        # FSDP: a remote trainer; its step line after the tqdm bar that rank 0 draws on the same stream.
        (ray_prefixed([line(slime, "fsdp_rollout", rollout_id=9, log_dict=FSDP_ROLLOUT)], "FSDPTrainRayActor", 4410,
                      "10.0.0.3"), ("rollout", 9, FSDP_ROLLOUT, "actor.py")),
        (ray_prefixed([_tqdm_bar() + line(slime, "fsdp_step", self=SimpleNamespace(global_step=42),
                                          log_dict=FSDP_STEP)], "FSDPTrainRayActor", 4410, "10.0.0.3"),
         ("step", 42, FSDP_STEP, "actor.py")),
        # Not metric lines: another slime record, sglang's health check, Ray's own output.
        (ray_prefixed([line(slime, "data_missing", path="/ckpt/rollout/global_dataset_state_dict_-1.pt")],
                      "RolloutManager", 2290), None),
        (ray_prefixed(['[2025-12-10 12:34:56] INFO:     127.0.0.1:40001 - "GET /health_generate HTTP/1.1" 200 OK'],
                      "SGLangEngine", 2295), None),
        ("2025-12-10 12:34:56,209\tINFO worker.py:1691 -- Using address 10.0.0.1:6379 set in RAY_ADDRESS\n", None),
    ]
    return cases


def _tqdm_bar() -> str:
    """What a real tqdm bar leaves on a line before its loop body logs (no newline of its own)."""
    from tqdm import tqdm

    out = io.StringIO()
    bar = tqdm(total=2, desc="actor_train", file=out, mininterval=0)  # draws "\ractor_train:   0%|..."
    text = out.getvalue()
    bar.close()
    return text


def _check(event, want) -> None:  # noqa: ANN001
    if want is None:
        assert event is None
        return
    if isinstance(want, TimerLine):
        assert isinstance(event, TimerLine)
        assert (event.name, event.edge, event.elapsed) == (want.name, want.edge, want.elapsed)
    else:
        kind, number, values, source = want
        assert isinstance(event, MetricLine), event
        assert (event.kind, event.number, event.origin.source) == (kind, number, source)
        assert event.values == expected(values)
    assert event.origin.time == WHEN


def test_golden_lines_of_both_backends(golden):
    for text, want in golden:
        assert text.count("\n") == 1, text
        _check(parse_line(text), want)


def test_golden_lines_carry_rays_prefix_and_colours(golden):
    text, _ = golden[3]
    assert text.startswith("\x1b[36m(RolloutManager pid=2290, ip=10.0.0.2)\x1b[0m [20")  # Ray's, verbatim
    event = parse_line(text)
    assert (event.origin.actor, event.origin.pid, event.origin.ip) == ("RolloutManager", 2290, "10.0.0.2")
    local = parse_line(golden[4][0])
    assert (local.origin.actor, local.origin.pid, local.origin.ip) == ("MegatronTrainRayActor", 2301, None)
    assert "[repeated 2x across cluster]" in golden[8][0]
    assert "\r" in golden[10][0] and "actor_train:" in golden[10][0]  # the tqdm bar shares the line


def test_without_rays_colours(slime, monkeypatch):
    monkeypatch.setenv("RAY_COLOR_PREFIX", "0")
    text = ray_prefixed([line(slime, "timer_end", name="train", elapsed_time=3.0)], "MegatronTrainRayActor", 7)
    assert "\x1b" not in text
    event = parse_line(text)
    assert (event.name, event.edge, event.elapsed, event.origin.pid) == ("train", "end", 3.0, 7)


def test_a_line_split_across_reads_at_any_byte(golden):
    """The collector gets the log in arbitrary pieces (a line, an ANSI code, a UTF-8 character cut in two)."""
    blob = "".join(text for text, _ in golden).encode()
    assert len(blob) != len(blob.decode())  # multibyte characters are in there (eval/数学)
    shape = RunShape(backend="megatron", steps_per_rollout=2)
    whole = Collector(shape).feed(blob)
    assert len(whole) == sum(1 for _, want in golden if isinstance(want, tuple))
    for cut in range(1, len(blob)):
        collector = Collector(shape)
        records = collector.feed(blob[:cut]) + collector.feed(blob[cut:])
        assert records == whole, f"split at byte {cut}"
        assert collector.offset == len(blob)


def test_records_of_both_backends(golden):
    blob = "".join(text for text, _ in golden).encode()
    megatron = Collector(RunShape(backend="megatron", steps_per_rollout=2), attempt=1).feed(blob)
    by_kind = {(r["kind"], r["source"]): r for r in megatron}
    perf_rollout, perf_train = by_kind[("perf", "rollout.py")], by_kind[("perf", "train_metric_utils.py")]
    assert perf_rollout["values"]["perf/rollout_time"] == 412.7 and perf_train["values"]["perf/step_time"] == 515.6
    step = next(r for r in megatron if r["kind"] == "step" and r["source"] == "model.py")
    # Megatron: step = rollout x steps per rollout + i
    assert step == {"kind": "step", "rollout_id": 7, "step": 15, "time": WHEN, "attempt": 1, "source": "model.py",
                    "values": expected(MEGATRON_STEP)}
    assert set(step) == {"kind", "rollout_id", "step", "time", "attempt", "source", "values"}
    assert by_kind[("rollout", "data.py")]["step"] is None and by_kind[("rollout", "data.py")]["rollout_id"] == 7
    # FSDP: a global step counter; the rollout is the one its trainer announced last.
    fsdp = Collector(RunShape(backend="fsdp", steps_per_rollout=2), attempt=2).feed(blob)
    fsdp_step = next(r for r in fsdp if r["kind"] == "step" and r["source"] == "actor.py")
    assert (fsdp_step["rollout_id"], fsdp_step["step"], fsdp_step["attempt"]) == (9, 42, 2)
    # Unknown steps per rollout: Megatron's step lines get no rollout.
    unknown = Collector(RunShape(backend="megatron")).feed(blob)
    assert next(r for r in unknown if r["kind"] == "step")["rollout_id"] is None


def test_the_standin_prints_slimes_lines(slime):
    """tests/standin_train.py copies slime's format strings, file names and line numbers: the same as the pin's."""
    spec = importlib.util.spec_from_file_location("standin_train", REPO / "tests" / "standin_train.py")
    standin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standin)
    for key, (path, lineno, text) in standin.MESSAGES.items():
        message = slime.messages[key]
        assert (path, lineno, text) == (message.path, message.lineno, message.text), key
    assert (standin.LOG_FORMAT, standin.DATE_FORMAT) == slime.fmt


@pytest.mark.parametrize("text", [
    "{'a': __import__('os').system('touch pwned')}",  # a call: never made; its value is no number
    "{'a': (lambda: 1)()}",
    "{'a': [1, 2], 'b': 'text', 'c': {'d': 1}}",
])
def test_values_that_are_not_numbers_are_null_and_nothing_runs(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = parse_metric_dict(text)
    assert set(values.values()) == {None}
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("text", ["{1: 2}", "{**x}", "[1, 2]", "{'a': 1", "{'a': 1} or {}",
                                  "{'a': " + "-" * 100000 + "1}", "{'a': 1}" + " " * (1 << 20)])
def test_what_is_not_a_metric_dict_is_refused(text):
    with pytest.raises(NotALiteral):
        parse_metric_dict(text)


def test_the_fast_path_agrees_with_the_syntax_tree():
    """Random dicts as slime prints them (repr: floats of any size, ints, nan/inf, numpy scalars,
    bools, None, odd keys): the regex path, where it answers, gives what the syntax tree gives."""
    import random

    from runner.runs import literal

    rng = random.Random(20)
    answered = 0
    for _ in range(3000):
        d = {}
        for _ in range(rng.randint(0, 12)):
            key = rng.choice(["rollout/raw_reward", "eval/aime-pass@2", "train/lr-pg_0", "eval/数学", "it's", 'q"',
                              "a\\b"])
            value = rng.choice([rng.uniform(-1, 1) * 10 ** rng.randint(-12, 22), rng.randint(-10**12, 10**12),
                                float("nan"), float("inf"), -float("inf"), numpy.float64(rng.random()),
                                numpy.int64(rng.randint(0, 99)), True, False, None, 1e-06, 0.0, -0.0])
            d[key + str(rng.randint(0, 3))] = value
        text = repr(d)
        fast = literal._fast(text)
        slow = literal.from_tree(text)
        if fast is not None:
            answered += 1
            assert fast == slow, text
        elif not any(c in k for k in d for c in "'\"\\"):
            raise AssertionError(f"the fast path refused a dict with plain keys: {text}")
        assert parse_metric_dict(text) == slow
    assert answered > 500


def test_numbers_as_slime_prints_them():
    values = parse_metric_dict("{'a': nan, 'b': inf, 'c': -inf, 'd': np.float64(0.5), 'e': np.float32(1.5), "
                               "'f': np.int64(3), 'g': 1e-06, 'h': -2, 'i': True, 'j': None, "
                               "'k': tensor(0.25, device='cuda:0'), 'l': float('nan'), 'm': numpy.float64(-inf)}")
    assert values == {"a": None, "b": None, "c": None, "d": 0.5, "e": 1.5, "f": 3, "g": 1e-06, "h": -2, "i": 1,
                      "j": None, "k": 0.25, "l": None, "m": None}
