"""The collector on real files: a job log that grows in pieces, a collector that restarts (or dies
between writing records and recording how far it got), a log replaced under it, an over-long line,
and the thread a run's owner runs it in."""

import json
import os
import time

import pytest

from runner.runs import collector as col
from runner.runs.collector import CollectorThread, RunCollector, read_records
from runner.runs.progress import RunShape
from tests.job_logs import job_log, reward

pytest.importorskip("ray", reason="tests/standin_train.py, whose lines these logs copy, imports ray")

SHAPE = RunShape(backend="megatron", num_rollout=50, steps_per_rollout=2, eval_interval=5)


def _lines(path) -> list[bytes]:  # noqa: ANN001
    return path.read_bytes().splitlines()


def test_a_growing_log_read_in_pieces_across_restarts(tmp_path):
    text = job_log(range(0, 12), steps=2, eval_interval=5, noise=3).encode()
    reference = col.Collector(SHAPE).feed(text)
    assert len(reference) == 12 * 5 + 3  # perf x2, rollout, 2 steps per rollout; evals at 0, 4, 9
    log = tmp_path / "job.log"
    log.write_bytes(b"")
    collector = RunCollector(tmp_path, SHAPE)
    cuts = sorted({0, 1000, 1001, 5003, 9999, 20000, len(text) // 2, len(text) - 7, len(text)})
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        with open(log, "ab") as f:
            f.write(text[a:b])
        collector.poll()
        if i % 3 == 2:  # the supervisor restarts: a new collector continues from .collector.json
            collector = RunCollector(tmp_path, SHAPE)
    assert read_records(tmp_path / "metrics.jsonl") == reference
    assert [json.loads(line) for line in _lines(tmp_path / "metrics.jsonl")] == reference
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["rollout"] == 11 and progress["num_rollout"] == 50 and progress["phase"] == "rollout"
    assert progress["last_reward"] == reward(11) and progress["seconds_per_rollout"] == 100.0
    assert progress["eta_seconds"] == (50 - 12) * 100.0
    assert progress["last_eval"]["rollout_id"] == 9


def test_last_progress_seen_moves_with_progress_only(tmp_path):
    """For hang checks: this machine's clock when the last metric or Timer-end line was read; noise
    (sglang's lines, health checks) does not move it."""
    from tests.job_logs import NOISE

    log = tmp_path / "job.log"
    log.write_text(job_log(range(0, 2)))
    before = time.time()
    collector = RunCollector(tmp_path, SHAPE)
    collector.poll()
    seen = json.loads((tmp_path / "progress.json").read_text())["last_progress_seen"]
    assert before <= seen <= time.time()
    time.sleep(0.05)
    with open(log, "a") as f:
        f.write((NOISE + "\n") * 50)
    collector.poll()
    assert collector.collector.progress["last_progress_seen"] == seen
    with open(log, "a") as f:
        f.write(job_log(range(2, 3), start=1_765_000_200.0))
    collector.poll()
    assert json.loads((tmp_path / "progress.json").read_text())["last_progress_seen"] > seen


def test_a_collector_killed_after_appending_but_before_recording_its_offset(tmp_path):
    text = job_log(range(0, 6)).encode()
    (tmp_path / "job.log").write_bytes(text[: len(text) // 2])
    first = RunCollector(tmp_path, SHAPE)
    first.poll()
    saved = (tmp_path / ".collector.json").read_bytes()
    (tmp_path / "job.log").write_bytes(text)
    first.poll()  # appends the second half's records, then records its offset ...
    (tmp_path / ".collector.json").write_bytes(saved)  # ... which the crash lost
    assert len(read_records(tmp_path / "metrics.jsonl")) == len(col.Collector(SHAPE).feed(text))
    again = RunCollector(tmp_path, SHAPE)
    again.poll()
    assert read_records(tmp_path / "metrics.jsonl") == col.Collector(SHAPE).feed(text)  # nothing twice


def test_a_log_replaced_by_a_shorter_one_is_read_from_the_start(tmp_path):
    (tmp_path / "job.log").write_bytes(job_log(range(0, 6)).encode())
    RunCollector(tmp_path, SHAPE).poll()
    (tmp_path / "job.log").write_bytes(job_log(range(0, 2)).encode())
    RunCollector(tmp_path, SHAPE).poll()
    assert [r["rollout_id"] for r in read_records(tmp_path / "metrics.jsonl") if r["kind"] == "rollout"] == [0, 1]


def test_an_over_long_line_is_skipped_without_being_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(col, "MAX_LINE", 1000)
    monkeypatch.setattr(col, "READ_CHUNK", 700)
    text = job_log(range(0, 2)) + "x: {" + "9" * 5000 + "\n" + job_log(range(2, 3))
    (tmp_path / "job.log").write_text(text)
    collector = RunCollector(tmp_path, SHAPE)
    collector.poll()
    assert len(collector.collector._pending) <= 1000
    assert [r["rollout_id"] for r in read_records(tmp_path / "metrics.jsonl") if r["kind"] == "rollout"] == [0, 1, 2]


def test_the_last_line_without_newline_waits_until_the_end(tmp_path):
    text = job_log(range(0, 1))
    text = text[: text.index("\n", text.index("train_metric_utils.py"))]  # ends in the trainer's perf line
    (tmp_path / "job.log").write_text(text)
    collector = RunCollector(tmp_path, SHAPE)
    collector.poll()
    assert [r["kind"] for r in read_records(tmp_path / "metrics.jsonl")] == ["perf", "rollout", "step"]
    collector.poll(final=True)  # the job ended: its last line counts without a newline
    assert [r["kind"] for r in read_records(tmp_path / "metrics.jsonl")] == ["perf", "rollout", "step", "perf"]


def test_read_only_collection_writes_nothing(tmp_path):
    (tmp_path / "job.log").write_text(job_log(range(0, 3)))
    records = RunCollector(tmp_path, SHAPE, read_only=True).poll(final=True)
    assert len(records) == 12
    assert sorted(os.listdir(tmp_path)) == ["job.log"]


def test_the_thread_collects_while_the_log_grows_and_drains_at_stop(tmp_path):
    log = tmp_path / "job.log"
    log.write_text(job_log(range(0, 2)))
    thread = CollectorThread(RunCollector(tmp_path, SHAPE), interval=0.05).start()
    deadline = time.monotonic() + 10
    while not (tmp_path / "progress.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads((tmp_path / "progress.json").read_text())["rollout"] == 1
    with open(log, "a") as f:
        f.write(job_log(range(2, 4)).rstrip("\n"))
    thread.stop()
    assert json.loads((tmp_path / "progress.json").read_text())["rollout"] == 3


def test_the_thread_reports_a_failing_poll_once_and_goes_on(tmp_path, capsys):
    import io

    out = io.StringIO()
    (tmp_path / "job.log").write_text(job_log(range(0, 1)))
    collector = RunCollector(tmp_path, SHAPE)
    (tmp_path / "metrics.jsonl").mkdir()  # appending fails: IsADirectoryError
    thread = CollectorThread(collector, interval=0.02, log=out).start()
    time.sleep(0.3)
    thread.stop()
    assert out.getvalue().count("metrics collector:") == 1
