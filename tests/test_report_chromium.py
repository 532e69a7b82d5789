"""The HTML report in a real headless Chromium (Debian's `chromium`; .ci/run installs it): no console
error, every series drawn (a path of non-zero length inside its chart), and a screenshot.

Set SLIME_REPORT_SCREENSHOT=PATH to keep the screenshot (docs/report.png is made that way:
`SLIME_REPORT_SCREENSHOT=docs/report.png python -m pytest tests/test_report_chromium.py`)."""

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from tests.conftest import run_cli
from tests.watch_runs import make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: apt-get install "
                                                          "chromium; .ci/run installs it)")
pytest.importorskip("ray", reason="tests/standin_train.py, whose lines these logs copy, imports ray")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0"]

# Appended to a copy of the report (never to the report itself, which has no script): measures every
# series as Chromium laid it out and writes the result into the page, which --dump-dom prints.
GEOMETRY = """<script>
const out = [];
for (const g of document.querySelectorAll("g.series")) {
  const svg = g.ownerSVGElement, view = svg.viewBox.baseVal, path = g.querySelector("path");
  const box = g.getBBox();
  out.push({run: g.dataset.run, key: g.dataset.key, length: path.getTotalLength(),
            dots: g.querySelectorAll("circle").length,
            inside: box.x >= 0 && box.y >= 0 && box.x + box.width <= view.width + 0.5
                    && box.y + box.height <= view.height + 0.5});
}
const pre = document.createElement("pre"); pre.id = "geometry"; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def chromium(tmp_path, target, *extra: str) -> tuple[str, list[str]]:
    """(stdout, console messages) of one headless Chromium run with a fresh profile."""
    profile = tmp_path / f"profile-{uuid.uuid4().hex}"
    r = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, target.as_uri()],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout, [line for line in r.stderr.splitlines() if ":CONSOLE" in line]


def test_console_errors_are_caught(tmp_path):
    """The check below can fail: a page with an error is seen as one."""
    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><p>x</p><script>console.error("deliberate"); missingFunction();</script>')
    _, console = chromium(tmp_path, page, "--dump-dom")
    assert any("deliberate" in line for line in console)
    assert any("Uncaught ReferenceError: missingFunction" in line for line in console)


def test_the_report_in_chromium(tmp_path):
    runs = tmp_path / "runs"
    run, resumed, other = ("megatron-8gpu-20261205-010000-aaaa", "megatron-8gpu-20261205-020000-bbbb",
                           "megatron-8gpu-20261206-090000-cccc")
    make_run(runs, run, range(0, 40))
    make_run(runs, resumed, range(40, 90), resumed_from=run)
    make_run(runs, other, range(0, 75), lr="2e-6", seconds=90.0, speed=1.5)
    report = tmp_path / "report.html"
    r = run_cli("report", run, resumed, other, "--runs-dir", str(runs), "-o", str(report), "--json")
    assert r.returncode == 0, r.stderr
    expected = {(s["run"], s["key"]) for s in json.loads(r.stdout)["series"]}
    assert {run for run, _ in expected} == {run, resumed, other}

    dom, console = chromium(tmp_path, report, "--dump-dom")
    assert console == []
    assert set(re.findall(r'class="series" data-run="([^"]+)" data-key="([^"]+)"', dom)) == expected

    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", GEOMETRY + "</body>"))
    dom, console = chromium(tmp_path, probe, "--dump-dom")
    assert console == []
    geometry = json.loads(re.search(r'<pre id="geometry">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
    assert {(g["run"], g["key"]) for g in geometry} == expected
    for g in geometry:
        assert g["length"] > 10 or g["dots"] > 0, g  # drawn: a line, or a dot for a single point
        assert g["inside"], g

    shot = tmp_path / "report.png"
    _, console = chromium(tmp_path, report, f"--screenshot={shot}", "--window-size=1280,2300", "--hide-scrollbars")
    assert console == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    keep = os.environ.get("SLIME_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
