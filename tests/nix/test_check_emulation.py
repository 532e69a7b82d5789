"""The check-command emulation (tools/nix-build-audit/check_emulation.py):
a check's own script from the deep evaluation, under bubblewrap with only
the check's inputs.

First the sandbox itself: what a script sees there. Then checks.runner-tests
as the flake stood before issue 16's fix, one cause at a time, each made
from this repository by undoing one part of the fix (a fixture that asserts
its anchor, so it cannot silently stop applying):

- a: Megatron-LM and slime on PYTHONPATH (Megatron's tests/__init__.py
  shadows this repo's tests/);
- b: the test sources without bench/ and .ci/;
- c: the test env without pip (uv.lock's edge from the `test` extra removed);

each must fail in the emulation, and the flake as it is must pass, on the
test files those causes touch (--select). The whole check runs on CI
(.ci/run). Needs bubblewrap, uv, the deep evaluation's sources
(SLIME_UPSTREAM_SOURCES) and PyPI or a filled wheel cache; skips otherwise.
"""

from __future__ import annotations

import shutil
import signal
import urllib.error
from pathlib import Path

import pytest

from nixtools import REPO, load_tool

emulation = load_tool("check_emulation", REPO / "tools" / "nix-build-audit" / "check_emulation.py")

SELECT = ["tests/test_bench_scripts.py", "tests/test_input_errors.py"]


def repo_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "result*"))
    return dest


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path.name}: the fixture's anchor moved: {old!r}"
    path.write_text(text.replace(old, new))


PYTEST_LINE = '    python -m pytest -q -m "not gpu and not network" --ignore=tests/nix tests\n'


def with_megatron_on_pythonpath(repo: Path) -> None:
    edit(repo / "nix" / "checks.nix", PYTEST_LINE,
         "    export PYTHONPATH=${runtime.megatron}:${runtime.slime}\n" + PYTEST_LINE)


def without_bench_and_ci(repo: Path) -> None:
    for d in ("bench", ".ci"):
        edit(repo / "nix" / "checks.nix", f'        (src + "/{d}")\n', "")


def without_pip(repo: Path) -> None:
    edit(repo / "uv.lock", '    { name = "pip" },\n', "")


def emulate(tmp_path: Path, repo: Path, checks: list[str], select: list[str] | None = None):
    try:
        return emulation.emulate(checks, repo, tmp_path / "work", select)
    except emulation.CannotRun as exc:
        pytest.skip(f"check emulation cannot run here: {exc}")
    except (urllib.error.URLError, FileNotFoundError) as exc:
        pytest.skip(f"check emulation needs PyPI (or a filled wheel cache) and uv: {exc}")


@pytest.mark.slow
@pytest.mark.parametrize(("undo", "expected"), [
    (with_megatron_on_pythonpath, "No module named 'tests.conftest'"),
    (without_bench_and_ci, "6 failed"),
    (without_pip, "No module named pip"),
], ids=["a-pythonpath", "b-bench-and-ci", "c-pip"])
def test_runner_tests_as_the_flake_stood_fails(tmp_path, undo, expected):
    repo = repo_copy(tmp_path)
    undo(repo)
    (result,), _ = emulate(tmp_path, repo, ["runner-tests"], SELECT)
    assert not result.ok
    log = (tmp_path / "work" / "runner-tests" / "check.log").read_text()
    assert expected in log, result.tail


@pytest.mark.slow
def test_runner_tests_of_the_flake_pass_on_those_tests(tmp_path):
    (result,), _ = emulate(tmp_path, REPO, ["runner-tests"], SELECT)
    assert result.ok, result.tail
    assert "failed" not in result.summary and "passed" in result.summary


def test_the_other_checks_run_or_say_why_not(tmp_path):
    results, skipped = emulate(tmp_path, REPO, ["fla-patch-applies", "pins-consistent", "nix-format", "import-check"])
    assert {r.name: r.ok for r in results} == {"fla-patch-applies": True, "pins-consistent": True}
    assert set(skipped) == {"nix-format", "import-check"} and all(skipped.values())


def test_the_sandbox_shows_only_the_inputs(tmp_path):
    """What a check's script sees: uid 1000 / gid 100, loopback only, its
    input read-only at its store path and nothing else in the store, the
    store and /build writable, no /usr/bin, Nix's /etc files."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap not installed (apt-get install bubblewrap)")
    etc = tmp_path / "etc"
    etc.mkdir()
    for name, text in emulation.ETC.items():
        (etc / name).write_text(text)
    inp = tmp_path / "input"
    inp.mkdir()
    (inp / "file").write_text("x")
    build = tmp_path / "build"
    build.mkdir()
    store_path = "/nix/store/" + "a" * 32 + "-input"
    script = f"""
        id -u; id -g
        ls /nix/store
        cat {store_path}/file; echo
        touch {store_path}/new 2>/dev/null && echo input-writable || echo input-read-only
        touch /nix/store/out && echo store-writable
        touch /build/x && echo build-writable
        test -e /usr/bin/env && echo usr-bin || echo no-usr-bin
        (exec 3<>/dev/tcp/1.1.1.1/53) 2>/dev/null && echo network || echo no-network
        tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '
        grep -c nixbld /etc/passwd
        grep SigIgn /proc/self/status
    """
    argv = emulation.sandbox_argv({store_path: inp}, {}, build, emulation.stdenv_dir(tmp_path), etc)
    argv += ["--setenv", "PATH", "/stdenv/bin", "/stdenv/bin/bash", "-c", script]
    # Started the way a shell starts a background job (SIGINT and SIGQUIT
    # ignored, inherited across exec), the script still gets every signal at
    # its default, as a builder does: tests that Ctrl-C a child depend on it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    try:
        out = emulation.run_sandboxed(argv)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGQUIT, previous[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1000", "100", "a" * 32 + "-input", "x", "input-read-only", "store-writable",
                                  "build-writable", "no-usr-bin", "no-network", "lo", "1",
                                  "SigIgn:", "0000000000000000"]


def test_marks_narrow_the_runner_tests_pytest_expression_and_nothing_else():
    """CI's `--marks "not slow"`: the check's own pytest line (read from nix/checks.nix) keeps its
    expression and gains the narrowing; a script without such a line cannot be narrowed."""
    import re

    checks = (REPO / "nix" / "checks.nix").read_text()
    (line,) = [l.strip() for l in checks.splitlines() if l.strip().startswith("python -m pytest") and " tests" in l
               and "--ignore=tests/nix" in l]
    script = f"cd /build/src\n{line}\n"
    narrowed = emulation.narrow_marks(script, "not slow")
    original = re.search(r'-m "([^"]*)"', line).group(1)
    assert narrowed == script.replace(f'-m "{original}"', f'-m "({original}) and (not slow)"')
    with pytest.raises(emulation.CannotRun):
        emulation.narrow_marks("echo no pytest here\n", "not slow")
