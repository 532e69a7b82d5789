"""`metrics`, `report`, `status` and `runs` through the real CLI, over run directories with slime's
lines in their job logs (tests.watch_runs); tests/test_watch_ray.py does the same over a real Ray."""

import csv
import io
import json
import re
import time

import pytest

from tests.conftest import run_cli
from tests.job_logs import job_log, reward
from tests.watch_runs import make_run

pytest.importorskip("ray", reason="tests/standin_train.py, whose lines these logs copy, imports ray")

RUN = "megatron-8gpu-20261205-010000-aaaa"
RESUMED = "megatron-8gpu-20261205-020000-bbbb"


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    make_run(root, RUN, range(0, 40))
    make_run(root, RESUMED, range(40, 70), resumed_from=RUN)
    return root


def cli(runs, *args, **kw):  # noqa: ANN001, ANN003
    return run_cli(*args, "--runs-dir", str(runs), **kw)


def test_metrics_table_one_row_per_rollout(runs):
    r = cli(runs, "metrics", RUN)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["rollout", "rollout/raw_reward", "eval/aime", "train/loss", "train/grad_norm",
                                "rollout/response_len/mean", "perf/step_time"]
    assert len(lines) == 1 + 40
    row = lines[1 + 12].split()
    assert row[0] == "12" and float(row[1]) == pytest.approx(reward(12), abs=1e-4)


def test_metrics_json_records(runs):
    r = cli(runs, "metrics", RUN, "--json")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert all(set(x) == {"kind", "rollout_id", "step", "time", "attempt", "source", "values"} for x in records)
    perf = {x["source"] for x in records if x["kind"] == "perf" and x["rollout_id"] == 3}
    assert perf == {"rollout.py", "train_metric_utils.py"}  # the two `perf 3` lines, told apart
    step = next(x for x in records if x["kind"] == "step" and x["step"] == 7)
    assert step["rollout_id"] == 7 and step["attempt"] == 1 and step["time"] == 1_765_000_000 + 7 * 100 + 90
    assert len([x for x in records if x["kind"] == "eval"]) == 1 + 8  # before training, then every 5
    narrowed = [json.loads(line) for line in cli(runs, "metrics", RUN, "--json", "--keys", "eval/*",
                                                 "rollout/raw_reward").stdout.splitlines()]
    assert {x["kind"] for x in narrowed} == {"eval", "rollout"}
    assert all(set(x["values"]) <= {"eval/aime", "eval/aime-truncated_ratio", "rollout/raw_reward"} for x in narrowed)
    steps = cli(runs, "metrics", RUN, "--json", "--kind", "step").stdout.splitlines()
    assert len(steps) == 40 and all(json.loads(s)["kind"] == "step" for s in steps)


def test_metrics_csv(runs):
    r = cli(runs, "metrics", RUN, "--csv", "--keys", "perf/*")
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0][:6] == ["kind", "rollout_id", "step", "time", "attempt", "source"]
    assert "perf/rollout_time" in rows[0] and "perf/step_time" in rows[0]
    assert len(rows) == 1 + 2 * 40
    train = next(row for row in rows[1:] if row[5] == "train_metric_utils.py")
    assert float(train[rows[0].index("perf/step_time")]) == 100.0 and train[rows[0].index("perf/rollout_time")] == ""


def test_metrics_catches_up_with_a_collector_that_stopped_and_writes_nothing(tmp_path):
    root = tmp_path / "runs"
    run_dir = make_run(root, RUN, range(0, 5), state="running")
    with open(run_dir / "job.log", "a") as f:  # the owner was killed; the job log went on
        f.write(job_log(range(5, 9), start=1_765_000_500.0))
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    r = cli(root, "metrics", RUN, "--json", "--kind", "rollout")
    assert [json.loads(x)["rollout_id"] for x in r.stdout.splitlines()] == list(range(9))
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_metrics_of_a_run_that_predates_the_collector(tmp_path):
    root = tmp_path / "runs"
    make_run(root, RUN, range(0, 3), collect=False)
    r = cli(root, "metrics", RUN, "--json", "--kind", "rollout")
    assert [json.loads(x)["rollout_id"] for x in r.stdout.splitlines()] == [0, 1, 2]


def test_metrics_of_an_unknown_run_is_one_line(runs):
    r = cli(runs, "metrics", "nosuchrun")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no run 'nosuchrun'" in r.stderr


def test_report_overlays_a_run_and_its_resume(runs, tmp_path):
    out = tmp_path / "r" / "both.html"
    r = cli(runs, "report", RUN, RESUMED, "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    index = json.loads(r.stdout)
    html = out.read_text()
    series = set(re.findall(r'class="series" data-run="([^"]+)" data-key="([^"]+)" data-points="(\d+)"', html))
    assert series == {(s["run"], s["key"], str(s["points"])) for s in index["series"]}
    keys = {k for _, k, _ in series}
    assert {"rollout/raw_reward", "eval/aime", "train/loss", "train/grad_norm", "train/ppo_kl", "train/entropy_loss",
            "rollout/response_len/mean", "rollout/truncated_ratio", "eval/aime-truncated_ratio", "perf/rollout_time",
            "perf/train_time", "perf/update_weights_time", "perf/tokens_per_gpu_per_sec",
            "perf/actor_train_tok_per_s"} == keys
    assert ((RUN, "rollout/raw_reward", "40") in series) and ((RESUMED, "rollout/raw_reward", "30") in series)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(|<script""", html)  # nothing to fetch
    assert "resumes" in html and f"{RUN} at iteration 39" in html  # provenance names what it resumes


def test_report_default_file_dry_run_and_bad_output(runs, tmp_path):
    dry = cli(runs, "report", RUN, "--dry-run")
    assert dry.returncode == 0 and "would write" in dry.stdout
    assert not (runs / RUN / "report.html").exists()
    r = cli(runs, "report", RUN)
    assert r.returncode == 0 and (runs / RUN / "report.html").is_file()
    bad = cli(runs, "report", RUN, "-o", str(tmp_path))
    assert bad.returncode == 2 and "is a directory" in bad.stderr and bad.stderr.count("\n") == 1
    missing = cli(runs, "report", RUN, "nosuchrun")
    assert missing.returncode == 2 and "no run 'nosuchrun'" in missing.stderr


def test_status_and_runs_show_progress(tmp_path):
    root = tmp_path / "runs"
    make_run(root, RUN, range(0, 40))
    live = make_run(root, RESUMED, range(40, 62), state="running", resumed_from=RUN, seconds=120.0,
                    start=time.time() - 62 * 120.0)
    (live / "checkpoints").mkdir()
    (live / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("59")
    r = cli(root, "status")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert f"run {RESUMED}: running" in text and RUN not in text.split("\n")[0]
    assert re.search(r"phase: +rollout", text)
    assert "rollout 61 done, 62 of 300 (20%); 2m00s per rollout; ETA 7h" in text
    assert re.search(rf"reward: +{reward(61):.4g}  [▁▂▃▄▅▆▇█]+  \(last 22 rollouts\)", text)
    assert re.search(r"eval: +aime 0.159 at rollout 59", text)
    assert re.search(r"saved: +iteration 59, \d+s ago", text)
    as_json = json.loads(cli(root, "status", "--json").stdout)[0]
    assert as_json["progress"]["rollouts_done"] == 62 and as_json["iteration"] == "59"
    listing = cli(root, "runs").stdout.splitlines()
    assert listing[0].split() == ["RUN", "RECIPE", "STATE", "PROGRESS", "STARTED", "DURATION"]
    assert re.search(rf"^{RUN} +megatron-8gpu +succeeded +40/300 ", listing[1])
    assert re.search(rf"^{RESUMED} +megatron-8gpu +running +62/300 rollout ", listing[2])


def test_runs_lists_a_cut_short_run_json_as_a_warning(tmp_path):
    root = tmp_path / "runs"
    make_run(root, RUN, range(0, 2))
    broken = make_run(root, RESUMED, range(2, 3), resumed_from=RUN)
    text = (broken / "run.json").read_text()
    (broken / "run.json").write_text(text[: len(text) // 2])
    r = cli(root, "runs")
    assert r.returncode == 0 and RUN in r.stdout and RESUMED not in r.stdout
    assert f"warning: skipped run {RESUMED}" in r.stderr and "not valid JSON" in r.stderr
