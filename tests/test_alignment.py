"""Resume misalignment: the verdict (pure), and the same verdict from a run directory whose job log
the real collector read (progress.json's first_rollout) and whose run.json records the resume."""

import json

import pytest

from runner.runs.alignment import expected_first_rollout, misalignment, run_misalignment
from runner.runs.collector import RunCollector
from runner.runs.progress import RunShape
from tests.job_logs import job_log


def test_fine_or_not_yet_known_is_none():
    assert misalignment(19, 20) is None and misalignment("19", 20) is None  # run.json's text form too
    assert misalignment("release", 0) is None
    assert misalignment(20, 20, backend="fsdp") is None  # FSDP's iter_20 holds rollout 19
    assert misalignment(None, 0) is None  # not a resume
    assert misalignment(19, None) is None  # nothing logged yet
    assert misalignment(19, 7, start_rollout_id=7) is None  # an explicit start id, kept by a fixed slime


def test_the_pins_restart_from_zero_is_one_line_saying_what_to_do():
    line = misalignment(19, 0)
    assert line.startswith("resume misalignment: the job started at rollout 0 but checkpoint iteration 19 "
                           "(megatron) continues at rollout 20")
    assert "overwrite the checkpoints" in line and "python -m runner doctor" in line and "\n" not in line
    fsdp = misalignment(40, 0, backend="fsdp")
    assert "checkpoint iteration 40 (fsdp) continues at rollout 40" in fsdp
    ahead = misalignment(19, 25)
    assert ahead.startswith("resume misalignment:") and "rollouts 20..24 would never be trained" in ahead
    assert expected_first_rollout(19) == 20 and expected_first_rollout(20, backend="fsdp") == 20


@pytest.mark.parametrize("logged,expected", [(range(0, 3), "resume misalignment: the job started at rollout 0"),
                                             (range(20, 23), None)])
def test_from_a_run_directory(tmp_path, logged, expected):
    entrypoint = ["python", "train.py", "--num-rollout", "40", "--save-interval", "20"]
    record = {"resumed_from": {"run": "r1", "iteration": "19"}, "job": {"entrypoint": entrypoint}}
    (tmp_path / "job.log").write_text(job_log(logged, eval_first=False))
    collector = RunCollector(tmp_path, RunShape.from_record(record))
    collector.poll(final=True)
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["first_rollout"] == logged.start
    verdict = run_misalignment(record, progress)
    assert (verdict is None) if expected is None else verdict.startswith(expected)
    fresh = {"resumed_from": None, "job": {"entrypoint": entrypoint}}
    assert run_misalignment(fresh, progress) is None
