"""Secrets and who can reach a run (docs/security.md), through the real CLI.

Without Ray: a dry-run (text and --json) shows no secret, whatever its value
holds (a newline, a quote, a backslash, a tab, non-ASCII), and redacts secret
flags' values and secret --train-env-vars keys by name; such flags and keys
are refused with the fix.

With a real Ray head and a second local user (root runs the test, `nobody`
probes it through setpriv): while a detached run with WANDB_API_KEY and
HF_TOKEN is running, the job's driver and two Ray actors (one with its own
runtime_env, as slime's actor groups pass one) see both keys, Ray's own daemons
do not hold them, and `nobody` reads no secret from any file of the run or any
port its processes listen on, cannot list the run's private directory, and
cannot submit a job (the job API wants the token). With the token the job API
answers, and its runtime env names the secrets file, not a secret. After
`stop`: the secrets file is gone and no file of the run holds a secret.
"""

import hashlib
import ipaddress
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, run_cli

WANDB = "wandb-" + 'k"e\\y\n\tw\u00e9ird-0123456789'
HF = "hf_" + "plain0123456789abcdefghij"


def _forms(value: str) -> list[str]:
    return [value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]


def _no_secret(text: str, *values: str) -> None:
    for value in values:
        for form in _forms(value):
            assert form not in text, f"a secret ({form[:6]}...) is in the output"


@pytest.fixture
def dry(tmp_path):
    def train(*extra: str, env: dict | None = None, json_mode: bool = False):
        argv = ["train", "--recipe", "megatron-8gpu", "--runs-dir", str(tmp_path / "runs"), "--ray-temp-dir",
                str(tmp_path / "p"), "--dry-run", *(["--json"] if json_mode else []), *extra]
        return run_cli(*argv, env=env)
    return train


@pytest.mark.parametrize("json_mode", [False, True])
def test_dry_run_shows_no_secret_whatever_its_value_holds(dry, json_mode):
    r = dry("--set", "use-wandb", env={"WANDB_API_KEY": WANDB, "HF_TOKEN": HF}, json_mode=json_mode)
    assert r.returncode == 0, r.stderr
    _no_secret(r.stdout + r.stderr, WANDB, HF)
    if json_mode:
        plan = json.loads(r.stdout)
        (runtime_env,) = [json.loads(c) for c in plan["files"].values()]
        assert "WANDB_API_KEY" not in runtime_env["env_vars"] and "HF_TOKEN" not in runtime_env["env_vars"]
        assert runtime_env["worker_process_setup_hook"] == "runner.launch.job_secrets.load"
        (secrets_file, names), = plan["secret_files"].items()
        assert names == ["WANDB_API_KEY", "HF_TOKEN"] and secrets_file.endswith("/p/secrets.json")
        assert runtime_env["env_vars"]["SLIME_RUNNER_SECRETS_FILE"] == secrets_file
        head, job = plan["processes"][0], plan["processes"][-1]
        assert head["unset_env"] == job["unset_env"] == ["WANDB_API_KEY", "HF_TOKEN"]  # Ray's daemons: not theirs
        entry = job["argv"][job["argv"].index("--") + 1:]
        assert entry[1:4] == ["-m", "runner.launch.job_secrets", "--"]  # the driver loads the file itself
    else:
        assert "WANDB_API_KEY=<redacted> HF_TOKEN=<redacted>" in r.stdout


@pytest.mark.parametrize("given", [
    ("--set", "wandb-key={}"), ("--", "--wandb-key", "{}"), ("--set", "sglang-api-key={}"),
    ("--set", "router-oracle-password={}")])
def test_secret_flags_are_redacted_by_name(dry, given):
    value = "not-in-the-environment-" + 'x"y\\z'
    r = dry(*(g.format(value) for g in given))
    assert r.returncode == 0, r.stderr
    _no_secret(r.stdout + r.stderr, value)
    flag = given[-1].split("=")[0].lstrip("-") if given[0] == "--set" else given[1].lstrip("-")
    assert f"--{flag} '<redacted>'" in r.stdout or f"--{flag} <redacted>" in r.stdout
    if flag == "wandb-key":
        assert "error: --wandb-key would put a secret on the command line" in r.stdout + r.stderr


def test_secret_keys_in_train_env_vars_are_refused_and_never_shown(dry, tmp_path):
    value = "typed-into-json-" + 'q"u\\o'
    text = json.dumps({"A": "1", "WANDB_API_KEY": value})
    for extra in (("--set", f"train-env-vars={text}"), ("--", "--train-env-vars", text)):
        for json_mode in (False, True):
            r = dry(*extra, json_mode=json_mode)
            _no_secret(r.stdout + r.stderr, value)
            assert "--train-env-vars: sets WANDB_API_KEY, a secret" in r.stdout + r.stderr
            assert "export WANDB_API_KEY in the environment instead" in r.stdout + r.stderr
    real = run_cli("train", "--recipe", "megatron-8gpu", "--runs-dir", str(tmp_path / "runs"), "--ray-temp-dir",
                   str(tmp_path / "p"), "--set", f"train-env-vars={text}")
    assert real.returncode == 2 and "--train-env-vars: sets WANDB_API_KEY" in real.stderr
    _no_secret(real.stdout + real.stderr, value)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "p").exists()


# ---- a real run and a second local user

def _setpriv() -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root, to probe the run as a second local user (nobody)")
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to run as a second local user")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _python_for_nobody(setpriv: list[str]) -> str:
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            probe = subprocess.run([*setpriv, python, "-c", "import sys; assert sys.version_info >= (3, 10)"],
                                   capture_output=True, cwd="/")
        except OSError:
            continue
        if probe.returncode == 0:
            return python
    pytest.skip("no Python 3.10+ that user nobody may run")


def _as_nobody(setpriv: list[str], python: str, request: dict) -> dict:
    script = (REPO / "tests" / "second_user.py").read_text()
    # The script goes on argv (it holds no secret); the request, with the secrets, on stdin.
    r = subprocess.run([*setpriv, python, "-c", script], input=json.dumps(request), capture_output=True,
                       text=True, cwd="/", timeout=120, env={"PATH": "/usr/bin:/bin", "no_proxy": "*"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["uid"] == 65534
    return out


def _pids_of_run(run_dir: Path) -> list[int]:
    """The run's processes: its supervisor's descendants, and whatever carries its marker (a process that
    retitles itself, like ray::DashboardAgent, may hide its environment from /proc)."""
    record = json.loads((run_dir / "run.json").read_text())
    needle = f"SLIME_RUNNER_RUN={record['id']}".encode()
    parents, marked = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                marked.add(int(entry.name))
        except (OSError, ValueError, IndexError):
            pass
    tree, frontier = set(), {(record.get("supervisor") or {}).get("pid")}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier and p not in tree}
        tree |= frontier
    return sorted(tree | marked)


def _environ(pid: int) -> dict[str, str]:
    try:
        items = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(i.decode(errors="replace").split("=", 1) for i in items if b"=" in i)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _listening(pids: list[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket these processes listen on."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            if family == 4:
                host = ".".join(str(b) for b in reversed(bytes.fromhex(address)))
            else:  # four little-endian 32-bit words
                words = [bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, 32, 8)]
                host = str(ipaddress.IPv6Address(b"".join(words)))
                mapped = ipaddress.IPv6Address(host).ipv4_mapped
                host = str(mapped) if mapped else host
            # A wildcard bind: probe it where a local user would, on loopback.
            host = {"0.0.0.0": "127.0.0.1", "::": "127.0.0.1"}.get(host, host)
            found.add((host, int(port, 16)))
    return sorted(found)


ENTRY = """\
import hashlib, json, os, sys, time
def seen():
    return {n: hashlib.sha256(os.environ[n].encode()).hexdigest() if n in os.environ else None
            for n in ("WANDB_API_KEY", "HF_TOKEN")}
print("ENTRY driver " + json.dumps(seen()), flush=True)
import ray
ray.init()
@ray.remote
class Probe:
    def seen(self):
        return seen()
# As slime's RayTrainGroup and rollout engines do: the actor's own runtime_env with env_vars.
like_slime = Probe.options(runtime_env={"env_vars": {"NCCL_CUMEM_ENABLE": "0"}}).remote()
print("ENTRY actor " + json.dumps(ray.get(like_slime.seen.remote())), flush=True)
print("ENTRY plain-actor " + json.dumps(ray.get(Probe.remote().seen.remote())), flush=True)
print("ENTRY sleeping", flush=True)
time.sleep(300)
"""


# Connects to a running Ray with no token (no RAY_AUTH_*, an empty HOME: no ~/.ray/auth_token).
TOKENLESS_CLIENT = """\
import sys, ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
    print("CONNECTED", ray.cluster_resources())
except Exception as exc:
    print("REFUSED", type(exc).__name__)
"""


def _wait(predicate, timeout: float, what: str):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.mark.slow
def test_a_second_local_user_gets_no_secret_and_no_job(tmp_path):
    pytest.importorskip("ray.job_submission", reason="needs ray[default] (pip install -e '.[test]')")
    setpriv = _setpriv()
    python = _python_for_nobody(setpriv)
    # Everything in a directory any user may enter: only the runner's own modes keep `nobody` out.
    lab = Path(tempfile.mkdtemp(prefix="sec", dir="/tmp"))
    os.chmod(lab, 0o755)
    private, runs, pwned = lab / "p", lab / "runs", lab / "pwned"
    entry = lab / "entry.py"
    entry.write_text(ENTRY)
    entry.chmod(0o644)
    dashboard, gcs = free_port(), free_port()
    env = {"WANDB_API_KEY": WANDB, "HF_TOKEN": HF, "NCCL_NVLS_ENABLE": "0", "PYTHONUNBUFFERED": "1",
           "SLIME_RUNNER_LOCK": str(lab / "runner.lock"), "HOME": str(lab)}
    run_dir = None
    try:
        r = run_cli("train", "--recipe", "megatron-8gpu", "--test-entrypoint", str(entry), "--ray-temp-dir",
                    str(private), "--ray-port", str(gcs), "--dashboard-port", str(dashboard),
                    "--ready-timeout", "120", "--runs-dir", str(runs), "--kernel-cache", str(lab / "kernels"),
                    "--detach", env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        _no_secret(r.stdout + r.stderr, WANDB, HF)
        (run_dir,) = [p for p in runs.iterdir() if (p / "run.json").is_file()]
        run_id = run_dir.name
        job_log = run_dir / "job.log"
        _wait(lambda: "ENTRY sleeping" in job_log.read_text(), 180, "the job's actors to report")
        log = job_log.read_text()
        want = json.dumps({n: hashlib.sha256(v.encode()).hexdigest() for n, v in
                           (("WANDB_API_KEY", WANDB), ("HF_TOKEN", HF))})
        for who in ("driver", "actor", "plain-actor"):
            assert f"ENTRY {who} {want}" in log, log[-3000:]

        secrets_file = private / "secrets.json"
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        pids = _pids_of_run(run_dir)
        daemons = [p for p in pids if any(d in _cmdline(p) for d in ("gcs_server", "raylet", "dashboard.py"))]
        assert len(daemons) >= 3, [_cmdline(p)[:80] for p in pids]
        for pid in daemons:  # the secrets reached the job's processes through the hook, not through Ray
            assert "WANDB_API_KEY" not in _environ(pid) and "HF_TOKEN" not in _environ(pid), _cmdline(pid)[:120]
        token = next(_environ(p)["RAY_AUTH_TOKEN"] for p in pids if "RAY_AUTH_TOKEN" in _environ(p))
        ports = _listening(pids)
        assert ("127.0.0.1", dashboard) in ports, ports

        # As nobody: every file and port of the run, and a job submission.
        probe = _as_nobody(setpriv, python, {
            "paths": [str(lab), str(private / "head"), str(secrets_file)],
            "ports": [list(p) for p in ports], "secrets": [WANDB, HF, token],
            "submit": {"port": dashboard, "marker": str(pwned)}})
        assert not probe["leaks"], probe["leaks"]
        assert str(private) in probe["denied"] and str(secrets_file) in probe["denied"]
        assert not [f for f in probe["read"] if f.startswith(str(private))], probe["read"]
        assert str(run_dir / "run.json") in probe["read"]  # the run directory is readable, and holds no secret
        assert probe["http"][f"127.0.0.1:{dashboard}"][0] == "401", probe["http"]  # the job API wants the token
        assert probe["submit"] == "401", probe["submit"]
        # Without the token, only Prometheus metrics and the dashboard's static page answer.
        answered = {f"{k} {v}" for k, answers in probe["http"].items() for v in answers if v.startswith("200")}
        assert all(a.endswith(("200 metrics", f":{dashboard} 200 html")) for a in answered), answered
        assert any(port == gcs for _, port in ports), ports

        # Ray's own clients without the token: the GCS (bound to every interface) and the Ray client server.
        tokenless = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        clients = [subprocess.Popen([sys.executable, "-c", TOKENLESS_CLIENT, address], cwd="/", text=True,
                                    env={**tokenless, "HOME": str(lab / "empty-home")}, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
                   for address in (f"127.0.0.1:{gcs}", "ray://127.0.0.1:10001")]
        answers = [c.communicate(timeout=240)[0].strip() for c in clients]
        assert all(a.startswith("REFUSED") for a in answers), answers

        # With the token, the job API answers; its runtime env names the secrets file, not a secret.
        request = urllib.request.Request(f"http://127.0.0.1:{dashboard}/api/jobs/",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as resp:
            jobs = resp.read().decode()
        assert run_id in jobs and str(secrets_file) in jobs
        _no_secret(jobs, WANDB, HF)

        stop = run_cli("stop", run_id, "--runs-dir", str(runs), env=env, timeout=300)
        assert stop.returncode == 0, stop.stderr
        assert not pwned.exists()
        assert not secrets_file.exists()  # removed at the end
        everything = [p for p in lab.rglob("*") if p.is_file() and not p.is_symlink()]
        assert any("runtime_env_agent" in p.name for p in everything)  # Ray's logs stay, without the secrets
        for path in everything:
            data = path.read_bytes().decode(errors="replace")
            for value in (WANDB, HF, token):
                assert not any(form in data for form in _forms(value)), path
        after = _as_nobody(setpriv, python, {"paths": [str(private)], "secrets": [WANDB, HF]})
        assert after["denied"] == [str(private)] and not after["read"]
    finally:
        if run_dir is not None and (run_dir / "run.json").exists() and _pids_of_run(run_dir):
            run_cli("stop", run_dir.name, "--runs-dir", str(runs), env=env, timeout=300)
        subprocess.run(["rm", "-rf", str(lab)])
