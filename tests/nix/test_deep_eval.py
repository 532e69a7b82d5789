"""The flake evaluated deeply with the REAL pyproject.nix, uv2nix and
build-system-pkgs at flake.lock's revisions, the real nixpkgs lib, and only
nixpkgs' package set stood in (tools/nix-deep-eval). Every package of the
Python set, every flake package, app, devShell and check is instantiated.

The sources come from the pinned tarballs of SLIME_UPSTREAM_SOURCES (CI sets
it) or SLIME_NIX_* variables (tools/nix-deep-eval/deep_eval.py says how);
where there are none, the tests skip with that reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from nixtools import NIX_DIR, PINS, REPO, load_tool, nix_eval

deep_eval = load_tool("deep_eval", REPO / "tools" / "nix-deep-eval" / "deep_eval.py")

UVLOCK = tomllib.loads((REPO / "uv.lock").read_text())
LOCKED = {p["name"]: p for p in UVLOCK["package"]}
NIXLIB = f"(import {NIX_DIR / 'lib.nix'})"
TABLE = json.loads((NIX_DIR / "wheel-libraries.json").read_text())


def run_deep_eval(system: str = "x86_64-linux", repo: Path = REPO) -> deep_eval.Result:
    try:
        return deep_eval.evaluate(system, repo=repo)
    except deep_eval.SourcesMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def x86():
    res = run_deep_eval("x86_64-linux")
    assert res.ok, res.error
    return res.data


@pytest.fixture(scope="module")
def arm():
    res = run_deep_eval("aarch64-linux")
    assert res.ok, res.error
    return res.data


def repo_copy(tmp_path: Path) -> Path:
    """This repository's files (no .git), to evaluate a modified flake."""
    dest = tmp_path / "repo"
    shutil.copytree(
        REPO, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "result*", ".venv")
    )
    return dest


# --- everything is forced ------------------------------------------------------


@pytest.mark.parametrize("system", ["x86_64-linux", "aarch64-linux"])
def test_every_locked_package_is_in_the_set_unless_a_marker_excludes_it(system, x86, arm):
    data = {"x86_64-linux": x86, "aarch64-linux": arm}[system]
    assert data["system"] == system
    forced = set(data["python"])
    refused = set(data["unavailable"])
    extra = {"flash-linear-attention", "causal-conv1d", "mbridge"}
    assert extra <= forced | refused, "the git-pinned packages are forced too"
    assert not (extra & set(LOCKED)), "the git-pinned packages are not in uv.lock"
    missing = set(data["notInSet"])
    for name in missing:
        # Every edge to a package missing from this system's set is
        # conditional, or comes from a package that is missing too.
        edges = [
            (pkg["name"], dep)
            for pkg in UVLOCK["package"]
            for dep in pkg.get("dependencies", [])
            + [d for ds in pkg.get("optional-dependencies", {}).values() for d in ds]
            if dep["name"] == name
        ]
        assert edges and all("marker" in dep or src in missing for src, dep in edges), name
    assert len(forced) + len(refused) + len(data["notInSet"]) == len(set(LOCKED) | extra)
    for name, pkg in data["python"].items():
        assert pkg["drvPath"].startswith("/nix/store/") and pkg["drvPath"].endswith(".drv"), name


def test_flake_outputs_are_all_forced(x86, arm):
    all_apps = set(nix_eval(f"{NIXLIB}.appRunnerArgs"))
    runner_apps = set(nix_eval(f"{NIXLIB}.runnerOnlyApps"))
    assert runner_apps == {"plan", "runner"} and runner_apps <= all_apps
    for data, apps in ((x86, all_apps), (arm, runner_apps)):
        assert set(data["apps"]) == apps | {"default"}
        assert {n for n in data["packages"] if n.startswith("slime-")} == {f"slime-{a}" for a in apps}
        assert {"default", "runner-env", "megatron", "slime"} <= set(data["packages"])
        assert {"runner-tests", "fla-patch-applies", "pins-consistent", "nix-format"} <= set(data["checks"])
        assert data["formatter"].endswith(".drv")
        for group in ("packages", "devShells", "checks"):
            for name, drv in data[group].items():
                assert drv["drvPath"].endswith(".drv"), (group, name)
    # The stack, its shell and CUDA_HOME: x86_64 only (PyPI's aarch64 torch
    # 2.9.1 is a CPU build); aarch64 gets the runner alone.
    stack = {"env", "cudaHome", "torch", "sglang", "flash-attn", "transformer-engine-torch", "causal-conv1d"}
    assert stack <= set(x86["packages"]) and not stack & set(arm["packages"])
    assert x86["packages"]["default"]["out"] == x86["packages"]["env"]["out"]
    assert arm["packages"]["default"]["out"] == arm["packages"]["runner-env"]["out"]
    assert set(x86["devShells"]) == {"default"} and arm["devShells"] == {}
    assert x86["apps"]["default"]["program"].endswith("/bin/slime-train-8gpu")
    assert arm["apps"]["default"]["program"].endswith("/bin/slime-runner")
    assert "import-check" in x86["checks"] and "import-check" not in arm["checks"]
    # It imports the stack too: slime's flag schema regenerated and compared (issue 12).
    assert "slime-flags" in x86["checks"] and "slime-flags" not in arm["checks"]


def test_no_uv_lock_marker_depends_on_the_python_patch_level():
    """The stand-in's python312 has a patch level; no marker may care."""
    text = (REPO / "uv.lock").read_text()
    assert not re.search(r"python_full_version\s*[<>=!~]+\s*'3\.12\.\d", text)


def test_every_sdist_gets_a_build_backend(x86, arm):
    """uv2nix gives an sdist only pyprojectHook; the build backend must come
    from [tool.uv.extra-build-dependencies] or from the overlay."""
    backends = ("setuptools-", "hatchling-", "flit-core-", "poetry-core-", "pdm-backend-", "maturin-")
    for data in (x86, arm):
        sdists = {n: p for n, p in data["python"].items() if p["format"] == "pyproject"}
        assert {"pylatexenc", "antlr4-python3-runtime", "sglang"} <= set(sdists)
        assert ("flash-attn" in sdists) == (data is x86)  # aarch64: refused (meta.platforms)
        for name, pkg in sdists.items():
            assert any(i.startswith(backends) for i in pkg["nativeBuildInputNames"]), (name, pkg["nativeBuildInputNames"])


# --- apps ----------------------------------------------------------------------


@pytest.mark.parametrize("system", ["x86_64-linux", "aarch64-linux"])
def test_every_app_has_a_program_and_description(system, x86, arm):
    data = {"x86_64-linux": x86, "aarch64-linux": arm}[system]
    default = "train-8gpu" if data is x86 else "runner"
    for name, app in data["apps"].items():
        target = default if name == "default" else name
        assert app["type"] == "app"
        assert re.fullmatch(rf"/nix/store/[a-z0-9]{{32}}-slime-{target}/bin/slime-{target}", app["program"]), name
        assert app["description"].strip(), name


def test_an_app_without_a_description_fails_the_evaluation(tmp_path):
    repo = repo_copy(tmp_path)
    lib_nix = repo / "nix" / "lib.nix"
    text = lib_nix.read_text()
    anchor = "  appRunnerArgs = {\n"
    assert anchor in text
    lib_nix.write_text(text.replace(anchor, anchor + '    new-app = [ "doctor" ];\n'))
    res = run_deep_eval(repo=repo)
    assert not res.ok
    assert "app new-app: no description in nix/lib.nix appDescriptions" in res.error


# What nix/find-libcuda.sh, the test's stand-in python and fake ldconfig run,
# all from coreutils.
COREUTILS_USED = ("cat", "dirname", "env", "ln", "mkdir", "mktemp", "mv", "readlink", "rm", "sha256sum", "uname")


def standin_wrapper(x86, tmp_path: Path, app: str, env: Path) -> Path:
    """The wrapper text the flake generates for APP, its store paths pointed
    at stand-ins here: the Python environment at ENV, coreutils at this
    machine's (symlinks to COREUTILS_USED only), the libcuda finder at
    nix/find-libcuda.sh."""
    text = x86["wrapperTexts"][f"slime-{app}"]
    out = lambda name: x86["packages"][name]["out"]  # noqa: E731
    env_name = "env" if "env" in x86["packages"] else "runner-env"  # the runner alone without the stack
    fakes = {out(env_name): str(env), out("megatron"): "/fake/megatron", out("slime"): "/fake/slime"}
    if "cudaHome" in x86["packages"]:
        fakes[out("cudaHome")] = "/fake/cuda"
    for path, fake in fakes.items():
        assert path in text, path
        text = text.replace(path, fake)
    # The two files the flake copies into the store (nix/pins.json, the libcuda finder).
    for store_path in set(re.findall(r"/nix/store/[a-z0-9]{32}-[^\s/'\"]+", text)):
        if store_path.endswith("-find-libcuda.sh"):
            text = text.replace(store_path, str(NIX_DIR / "find-libcuda.sh"))
        elif store_path.endswith("-pins.json"):
            text = text.replace(store_path, "/fake/pins.json")
        elif "-coreutils-" in store_path:
            coreutils = tmp_path / "coreutils"
            (coreutils / "bin").mkdir(parents=True)
            for name in COREUTILS_USED:
                (coreutils / "bin" / name).symlink_to(shutil.which(name))
            text = text.replace(store_path, str(coreutils))
    # Everything else it names is a stand-in's output: nothing there to run.
    text = text.replace(text.split("\n", 1)[0], "#!/usr/bin/env bash")
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(text)
    return wrapper


def recording_python(tmp_path: Path) -> Path:
    """A stand-in environment whose python records its argv and environment."""
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    py = env / "bin" / "python"
    py.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$OUT/argv"; env > "$OUT/environ"\n')
    py.chmod(0o755)
    return env


def recorded_environ(tmp_path: Path) -> dict:
    return dict(line.split("=", 1) for line in (tmp_path / "environ").read_text().splitlines() if "=" in line)


@pytest.mark.parametrize(("app", "args", "runner_args"), [
    ("train-multinode", ["--dry-run", "--set", "a=b c"], ["train", "--recipe", "megatron-multinode"]),
    ("runner", ["status", "some-run", "--runs-dir", "/r s"], []),  # the whole CLI: nix run .#runner -- ...
])
def test_app_wrapper_runs_the_runner(x86, tmp_path, app, args, runner_args):
    """The wrapper text the flake generates, run by bash with its store paths
    pointed at stand-ins here: arguments, exported environment, libcuda.
    The host PATH it is given is empty: coreutils comes from the wrapper's
    own PATH entry (this machine's coreutils behind the stand-in's store
    path)."""
    env = recording_python(tmp_path)
    wrapper = standin_wrapper(x86, tmp_path, app, env)
    root = tmp_path / "root"
    (root / "usr/lib64").mkdir(parents=True)
    (root / "usr/lib64/libcuda.so.1").write_bytes(b"")
    host_bin = tmp_path / "host-bin"  # the host's PATH: empty
    host_bin.mkdir()
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SLIME_")}
    run_env.update(OUT=str(tmp_path), SLIME_RUNNER_LIBCUDA_ROOT=str(root), PYTHONPATH="/user/path",
                   XDG_CACHE_HOME=str(tmp_path / "cache"), PATH=str(host_bin))
    subprocess.run([shutil.which("bash"), str(wrapper), *args], env=run_env, check=True)
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv == ["-P", "-m", "runner", *runner_args, *args]  # -P: not ./runner of the cwd
    got = recorded_environ(tmp_path)
    assert got["SLIME_DIR"] == "/fake/slime" and got["MEGATRON_DIR"] == "/fake/megatron"
    assert got["PYTHONPATH"] == "/fake/megatron:/fake/slime:/user/path"
    assert got["SLIME_RUNNER_PINS"] == "/fake/pins.json"
    assert got["CUDA_HOME"] == "/fake/cuda"
    # cuDNN: the wheel torch loads (Transformer Engine reads CUDNN_PATH first).
    cudnn = x86["python"]["nvidia-cudnn-cu12"]["out"] + "/lib/python3.12/site-packages/nvidia/cudnn"
    assert got["CUDNN_PATH"] == cudnn
    # Triton's launcher and flashinfer's JIT need a C/C++ compiler.
    cc_bin = got["CC"].rsplit("/", 1)[0]
    assert got["CC"] == f"{cc_bin}/cc" and got["CXX"] == f"{cc_bin}/c++"
    assert got["PATH"] == f"{env}/bin:/fake/cuda/bin:{cc_bin}:{tmp_path / 'coreutils'}/bin:{host_bin}"
    assert got["SLIME_RUNNER_LIBCUDA_SOURCE"] == "search"
    # Not the host lib dir itself: a private dir of links to the driver's
    # libraries, in the per-user cache (sha256sum, mktemp, ln, mv -T worked).
    driver_libs = got["LD_LIBRARY_PATH"].split(":")[0]
    assert driver_libs == got["TRITON_LIBCUDA_PATH"] == got["SLIME_RUNNER_DRIVER_LIBS"]
    assert driver_libs.startswith(f"{tmp_path}/cache/slime-runner/driver-libs/")
    assert os.readlink(os.path.join(driver_libs, "libcuda.so.1")) == str(root / "usr/lib64/libcuda.so.1")
    # Provenance for run.json (runner/runs/provenance.py): the flake's
    # revision as Nix gives it for this tree, its flake.lock, the env.
    info = deep_eval.self_info(REPO)
    assert got["SLIME_RUNNER_REVISION"] == info.get("rev", info.get("dirtyRev", ""))
    lock = REPO / "flake.lock"
    assert got["SLIME_RUNNER_FLAKE_LOCK"] == nix_eval('"${' + str(lock) + '}"')  # this flake.lock, in the store
    assert got["SLIME_RUNNER_NIX_ENV"] == str(env)
    # What a `train --slurm` batch script sources on its node (runner/launch/cluster/sbatch.py).
    assert re.fullmatch(r"/nix/store/[a-z0-9]{32}-slime-environment\.sh", got["SLIME_RUNNER_ENV_SCRIPT"])


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the fake ldconfig lists an x86-64 libcuda")
def test_app_wrapper_finds_libcuda_through_ldconfig_on_a_host_with_no_tools(x86, tmp_path):
    """A minimal container: /sbin/ldconfig, but nothing on the caller's PATH
    (no awk, no coreutils). The finder parses the listing with what the
    wrapper brings (bash, nixpkgs' coreutils); parsed with awk, the wrapper
    exited 127 ("awk: command not found") before the runner started."""
    env = recording_python(tmp_path)
    wrapper = standin_wrapper(x86, tmp_path, "doctor", env)
    driver = tmp_path / "host" / "usr/lib/x86_64-linux-gnu"
    driver.mkdir(parents=True)
    (driver / "libcuda.so.570.86.15").write_bytes(b"driver")
    (driver / "libcuda.so.1").symlink_to("libcuda.so.570.86.15")
    listing = tmp_path / "ld.so.cache.txt"
    listing.write_text("\n".join(
        ["3001 libs found in cache `/etc/ld.so.cache'", f"\tlibcuda.so.1 (libc6) => {tmp_path}/i386/libcuda.so.1",
         f"\tlibcuda.so.1 (libc6,x86-64) => {driver}/libcuda.so.1"]
        + [f"\tlibfoo{i}.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libfoo{i}.so.1" for i in range(3000)]
    ) + "\n")
    ldconfig = tmp_path / "ldconfig"
    ldconfig.write_text(f"#!/bin/sh\nexec cat '{listing}'\n")  # cat: from the wrapper's coreutils
    ldconfig.chmod(0o755)
    host_bin = tmp_path / "host-bin"  # the host's PATH: empty
    host_bin.mkdir()
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SLIME_")}
    run_env.update(OUT=str(tmp_path), SLIME_RUNNER_LDCONFIG=str(ldconfig), XDG_CACHE_HOME=str(tmp_path / "cache"),
                   PATH=str(host_bin))
    r = subprocess.run([shutil.which("bash"), str(wrapper)], env=run_env, capture_output=True, text=True)
    assert r.returncode == 0, (r.returncode, r.stderr)
    got = recorded_environ(tmp_path)
    assert (got["SLIME_RUNNER_LIBCUDA_SOURCE"], got["SLIME_RUNNER_LIBCUDA_DIR"]) == ("ldconfig", str(driver))
    assert os.readlink(Path(got["TRITON_LIBCUDA_PATH"]) / "libcuda.so.1") == str(driver / "libcuda.so.1")


def test_app_wrapper_started_in_a_checkout_runs_the_installed_runner(x86, tmp_path):
    """Started from a directory holding a runner/ package (a checkout's root,
    the usual place), the wrapper imports the environment's runner, not the
    directory's: run.json's SLIME_RUNNER_REVISION names the code that ran.
    The stand-in environment is a venv of this machine's python (3.11 has -P
    as the flake's 3.12 does) with this repository's runner copied into its
    site-packages, as the flake's environment installs it."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next(env.glob("lib/python3*/site-packages"))
    shutil.copytree(REPO / "runner", site / "runner", ignore=shutil.ignore_patterns("__pycache__"))
    wrapper = standin_wrapper(x86, tmp_path, "runner", env)
    checkout = tmp_path / "checkout"
    (checkout / "runner").mkdir(parents=True)
    for name in ("__init__.py", "__main__.py"):
        (checkout / "runner" / name).write_text(
            f"import pathlib, sys\npathlib.Path({str(tmp_path / 'decoy-ran')!r}).write_text(__file__)\nsys.exit(3)\n")
    (tmp_path / "root").mkdir()
    host_bin = tmp_path / "host-bin"
    host_bin.mkdir()
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SLIME_") and k != "PYTHONPATH"}
    run_env.update(SLIME_RUNNER_LIBCUDA_ROOT=str(tmp_path / "root"), XDG_CACHE_HOME=str(tmp_path / "cache"),
                   PATH=str(host_bin))
    r = subprocess.run([shutil.which("bash"), str(wrapper), "--version"], env=run_env, cwd=checkout,
                       capture_output=True, text=True)
    assert not (tmp_path / "decoy-ran").exists(), "imported the checkout's ./runner"
    version = re.search(r'__version__ = "([^"]+)"', (REPO / "runner" / "__init__.py").read_text()).group(1)
    assert (r.returncode, r.stdout.strip()) == (0, f"python -m runner {version}"), r.stderr


def test_wrapper_revision_is_self_rev_or_dirty_rev_or_empty(tmp_path):
    """self.rev for a clean tree, self.dirtyRev for a dirty one (Nix >= 2.17),
    neither for a path: flake: the wrapper exports what Nix gave."""
    repo = repo_copy(tmp_path)
    for info, want in (({"rev": "0123abc" * 5 + "01234", "shortRev": "0123abc"}, "0123abc" * 5 + "01234"),
                       ({"dirtyRev": "89abcde" * 5 + "89abc-dirty", "dirtyShortRev": "89abcde-dirty"},
                        "89abcde" * 5 + "89abc-dirty"),
                       ({}, "")):
        try:
            res = deep_eval.evaluate("x86_64-linux", repo=repo, info=info)
        except deep_eval.SourcesMissing as exc:
            pytest.skip(str(exc))
        assert res.ok, res.error
        for name, text in res.data["wrapperTexts"].items():
            assert f"\nexport SLIME_RUNNER_REVISION={want}\n" in text, name


def test_dev_shell_exports_what_the_apps_do(x86):
    shell = x86["devShells"]["default"]
    hook = shell["attrs"]["shellHook"]
    wrapper = x86["wrapperTexts"]["slime-doctor"]
    for var in ("SLIME_DIR", "MEGATRON_DIR", "SLIME_RUNNER_PINS", "CUDA_HOME", "CUDNN_PATH", "CC", "CXX",
                "SLIME_RUNNER_FLAKE_LOCK"):
        line = next(l.strip() for l in wrapper.splitlines() if l.startswith(f"export {var}="))
        assert line in hook, var
    assert "source /nix/store/" in hook and "-find-libcuda.sh" in hook
    # Its runner is the editable checkout: git gives the revision, none is exported.
    assert "SLIME_RUNNER_REVISION" not in hook
    dev_env = next(p for p in shell["attrs"]["nativeBuildInputs"] if p.endswith("-slime-qwen3-next-dev-env"))
    assert f"export SLIME_RUNNER_NIX_ENV={dev_env}\n" in hook
    # The finder's coreutils (and mkShell puts packages on PATH).
    assert any(n.startswith("coreutils-") for n in shell["nativeBuildInputNames"])


def test_aarch64_has_the_runner_alone(arm, tmp_path):
    """Without the stack (PyPI's aarch64 torch 2.9.1 is a CPU build), the
    CUDA source builds refuse to evaluate (their meta.platforms), and what
    remains works with the runner alone: the wrappers export no CUDA and
    look for no driver, and plan, a dry run and runs/status run there."""
    assert arm["unavailable"] == {
        n: {"platforms": ["x86_64-linux"], "refused": True}
        for n in ("flash-attn", "transformer-engine-torch", "causal-conv1d", "torch-memory-saver")
    }
    runner_env = arm["packages"]["runner-env"]["venvPackages"]
    assert [p.split("-", 1)[1] for p in runner_env] == ["slime-qwen3-next-0.1.0"]
    for name, text in arm["wrapperTexts"].items():
        assert "CUDA_HOME" not in text and "find-libcuda" not in text and "CUDNN_PATH" not in text, name
    # The aarch64 wrappers' text, run here with a venv holding only the runner.
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next(env.glob("lib/python3*/site-packages"))
    shutil.copytree(REPO / "runner", site / "runner", ignore=shutil.ignore_patterns("__pycache__"))
    # A machine with checkpoints, data, slime and Megatron-LM trees and 8
    # recorded GPUs (the runner's own test fixtures), for the dry run.
    from tests.gpu_recordings import record
    from tests.hf_fixtures import make_base_folder
    from tests.machine import make_source_trees

    base = make_base_folder(tmp_path / "models")
    slime, megatron = make_source_trees(tmp_path)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SLIME_") and k != "PYTHONPATH"}
    run_env.update(record(tmp_path / "gpus", 8))
    runs = tmp_path / "runs"
    dry_run = ["train", "--recipe", "megatron-8gpu", "--base-folder", str(base), "--slime-dir", str(slime),
               "--megatron-dir", str(megatron), "--ray-temp-dir", str(tmp_path / "raytmp"), "--dry-run", "--json"]
    for i, (app, args, want) in enumerate((
        ("plan", ["--recipe", "megatron-8gpu", "--gpu", "h200", "--host-memory", "2000"], "verdict: FITS"),
        ("runner", dry_run, '"argv"'),
        ("runner", ["runs", "--runs-dir", str(runs)], f"no runs under {runs}"),
    )):
        case = tmp_path / f"case{i}"
        case.mkdir()
        wrapper = standin_wrapper(arm, case, app, env)
        r = subprocess.run([shutil.which("bash"), str(wrapper), *args], env=run_env, capture_output=True, text=True,
                           cwd=tmp_path)
        assert r.returncode == 0 and want in r.stdout, (app, args, r.returncode, r.stdout[-500:], r.stderr[-800:])
    assert not runs.exists() and not (tmp_path / "raytmp").exists()  # the dry run started and wrote nothing


# --- CUDA_HOME, build parallelism, the light test environment -------------------


def test_cuda_home_holds_only_what_compiling_needs(x86):
    for data in (x86,):
        paths = data["packages"]["cudaHome"]["attrs"]["paths"]
        names = [p.split("-", 1)[1] for p in paths]
        # No cuDNN (the wheel's is used), no NCCL, no static archives or
        # pkg-config/CMake outputs.
        assert not [n for n in names if "cudnn" in n or "nccl" in n], names
        assert not [n for n in names if n.endswith(("-static", "-dev", "-doc"))], names
        assert any("cuda_nvcc" in n for n in names) and any("cuda_cccl" in n for n in names)
        # Run-time libraries torch loads from the wheels appear only as stubs.
        for lib_ in ("libcublas", "libcurand", "cuda_nvrtc", "libcusparse", "libcusolver"):
            assert not [n for n in names if lib_ in n and n.endswith("-lib")], lib_


def max_jobs(pre_build: str, cores: str, meminfo: str | None, tmp_path: Path) -> tuple[int, str]:
    """MAX_JOBS the derivation's preBuild exports, run by bash with
    NIX_BUILD_CORES=CORES and /proc/meminfo replaced by MEMINFO (bubblewrap
    binds it over the real one; None: a meminfo without MemAvailable)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bubblewrap not installed (apt-get install bubblewrap)")
    fake = tmp_path / "meminfo"
    fake.write_text(f"MemTotal:       999999999 kB\nMemAvailable:   {meminfo} kB\n" if meminfo else "MemTotal: 1 kB\n")
    out = subprocess.run(
        [bwrap, "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--ro-bind", str(fake), "/proc/meminfo",
         "bash", "-euo", "pipefail", "-c", pre_build + '\necho "$MAX_JOBS"'],
        env={"NIX_BUILD_CORES": cores, "PATH": os.environ["PATH"]}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = out.stdout.splitlines()
    return int(lines[-1]), lines[0]


GIB = 1024 * 1024  # KiB


@pytest.mark.parametrize(
    ("name", "cores", "avail_kib", "jobs"),
    [
        # flash-attn: nvcc --threads 2, 10 GiB per job (5 GiB per thread, upstream's measurement).
        ("flash-attn", "16", 400 * GIB, 8),
        ("flash-attn", "64", 120 * GIB, 12),  # the 64-core / 128 GB builder: not 32 jobs
        ("flash-attn", "1", 400 * GIB, 1),
        # causal-conv1d: setup.py's --threads 4, 20 GiB per job.
        ("causal-conv1d", "16", 400 * GIB, 4),
        ("causal-conv1d", "2", 400 * GIB, 1),
        ("causal-conv1d", "16", 30 * GIB, 1),
        # TE: one g++ per job, 3 GiB (measured 2.2 GiB at most).
        ("transformer-engine-torch", "16", 20 * GIB, 6),
        ("transformer-engine-torch", "16", None, 16),  # no MemAvailable: the cores bound alone
    ],
)
def test_max_jobs_bounded_by_cores_and_memory(x86, tmp_path, name, cores, avail_kib, jobs):
    attrs = x86["python"][name]["attrs"]
    assert "MAX_JOBS" not in attrs, "no hard-coded MAX_JOBS"
    got, reason = max_jobs(attrs["preBuild"], cores, str(avail_kib) if avail_kib else None, tmp_path)
    assert got == jobs, reason
    assert reason.startswith(f"MAX_JOBS={jobs}: {cores} cores / "), reason


def test_max_jobs_with_all_cores_counts_them(x86, tmp_path):
    """NIX_BUILD_CORES=0 is Nix's "all cores": nproc counts them."""
    got, _ = max_jobs(x86["python"]["transformer-engine-torch"]["attrs"]["preBuild"], "0", str(400 * GIB), tmp_path)
    assert got == len(os.sched_getaffinity(0))


def test_runner_tests_check_uses_a_light_environment(x86):
    check = x86["checks"]["runner-tests"]["venvPackages"]
    env = x86["packages"]["env"]["venvPackages"]
    names = lambda paths: {p.split("-", 1)[1].rsplit("-", 1)[0] for p in paths}  # noqa: E731
    # pip: tests/test_bench_scripts.py runs bench/lib/smoke-site.bash (`python3 -m pip install`).
    assert {"torch", "ray", "pytest", "pip", "transformers", "safetensors", "slime-qwen3-next"} <= names(check)
    # No Megatron-LM on PYTHONPATH: its tests/__init__.py shadows this repo's tests/.
    script = x86["checks"]["runner-tests"]["attrs"]["buildCommand"]
    assert "PYTHONPATH" not in script and x86["packages"]["megatron"]["out"] not in script
    # Nothing compiled from source for a CPU-only test run.
    assert not names(check) & {"flash-attn", "transformer-engine-torch", "sglang", "causal-conv1d"}
    assert {"flash-attn", "transformer-engine-torch", "sglang", "causal-conv1d"} <= names(env)


def test_soundfile_finds_nixpkgs_libsndfile(x86):
    sf = x86["python"]["soundfile"]
    assert sf["format"] == "wheel" and sf["src"]["name"].endswith("-none-any.whl"), "the pure wheel: no libsndfile inside"
    m = re.search(r"--replace-fail \"_find_library\('sndfile'\)\" \"'(/nix/store/[a-z0-9]{32}-libsndfile-[^/]+)/lib/libsndfile\.so'\"", sf["attrs"]["postInstall"])
    assert m, sf["attrs"]["postInstall"]


# --- the CUDA wheel overlay -------------------------------------------------------


def test_the_old_overlay_pattern_is_an_infinite_recursion(tmp_path):
    """Choosing the overridden names by reading prev.<name> (what
    nix/wheel-libraries.nix did until issue 9) loops under uv2nix's callPackage:
    the deep evaluation must say so."""
    repo = repo_copy(tmp_path)
    shutil.copy(Path(__file__).parent / "fixtures" / "wheel-libraries-chooses-names-from-prev.nix", repo / "nix" / "wheel-libraries.nix")
    res = run_deep_eval(repo=repo)
    assert not res.ok
    assert "infinite recursion encountered" in res.error


def test_cuda_wheels_get_search_paths_and_driver_ignores(x86):
    py = x86["python"]
    nvidia = {n for n in TABLE["wheels"] if n.startswith("nvidia-") and n in py}
    store_name = {pkg["out"]: n for n, pkg in py.items()}

    def searched(name):
        """nvidia-* wheels whose lib dirs this package's preFixup searches."""
        pre = py[name]["attrs"].get("preFixup", "")
        return {store_name[p] for p in re.findall(r"(/nix/store/[a-z0-9]{32}-[^/]+)/lib/python3\.12/site-packages/nvidia/", pre)}

    for name, spec in TABLE["wheels"].items():
        if name not in py or py[name]["format"] != "wheel":
            continue
        attrs = py[name]["attrs"]
        ignored = attrs["autoPatchelfIgnoreMissingDeps"]
        assert ignored == sorted(TABLE["driver_libraries"]) + sorted(spec.get("ignore", {})), name
        assert any(p.endswith("-auto-add-driver-runpath-hook") for p in attrs["nativeBuildInputs"]), name
        mode = spec.get("nvidia_lib_dirs", "none")
        if mode == "all":
            assert searched(name) == nvidia, name
        elif mode == "dependencies":
            deps = {d["name"] for d in LOCKED[name].get("dependencies", [])}
            assert searched(name) == nvidia & deps, name
        else:
            assert searched(name) == set(), name
        torch_lib = f"{py['torch']['out']}/lib/python3.12/site-packages/torch/lib"
        assert (torch_lib in attrs.get("preFixup", "")) == spec.get("torch_lib", False), name
    # The cycle the dependency rule avoids: cublas does not search cusolver.
    assert "nvidia-cusolver-cu12" not in searched("nvidia-cublas-cu12")
    assert "nvidia-cublas-cu12" in searched("nvidia-cusolver-cu12")


def test_every_wheel_of_the_table_is_in_uv_lock():
    assert set(TABLE["wheels"]) <= set(LOCKED), set(TABLE["wheels"]) - set(LOCKED)


# --- hand-written packages, as evaluated -------------------------------------------


def test_fla(x86):
    d = x86["python"]["flash-linear-attention"]
    pin = PINS["sources"]["flash-linear-attention"]
    assert d["name"] == f"flash-linear-attention-{pin['version']}"
    assert d["src"]["url"] == f"https://github.com/{pin['owner']}/{pin['repo']}/archive/{pin['rev']}.tar.gz"
    assert d["src"]["hash"] == pin["hash"]
    patches = d["attrs"]["patches"]
    assert [p.split("-", 1)[1] for p in map(os.path.basename, patches)] == [Path(p).name for p in pin["patches"]]


def test_causal_conv1d_rewrites_setup_py_gencodes(x86, tmp_path):
    from nixtools import upstream_tree

    attrs = x86["python"]["causal-conv1d"]["attrs"]
    assert attrs["CAUSAL_CONV1D_FORCE_BUILD"] == "TRUE"
    assert attrs["TORCH_CUDA_ARCH_LIST"] == "9.0;10.0"
    assert attrs["CUDA_HOME"] == x86["packages"]["cudaHome"]["out"]
    # Apply the evaluated postPatch's substitution (bash single-quoted
    # strings) to the real setup.py, where a snapshot exists.
    m = re.fullmatch(
        r"substituteInPlace setup.py --replace-fail \\\n\s*'([^']*)' \\\n\s*'([^']*)'\n", attrs["postPatch"]
    )
    assert m, attrs["postPatch"]
    old, new = m.groups()
    pin = PINS["sources"]["causal-conv1d"]
    tree = upstream_tree("causal-conv1d", "SLIME_NIX_CAUSAL_CONV1D_SRC", pin["rev"], tmp_path / "cc")
    setup = (tree / "setup.py").read_text()
    assert setup.count(old) == 1
    patched = setup.replace(old, new)
    compile(patched, "setup.py", "exec")
    line = next(l for l in patched.splitlines() if l.strip().startswith("cc_flag = [f for f"))
    ns = {"cc_flag": ["-gencode", "arch=compute_75,code=sm_75", "-lineinfo"]}
    exec(line.strip(), ns)
    assert ns["cc_flag"] == [
        "-lineinfo",
        "-gencode", "arch=compute_90,code=sm_90",
        "-gencode", "arch=compute_100,code=sm_100",
        "-gencode", "arch=compute_100,code=compute_100",
    ]  # fmt: skip


def test_mbridge_source_is_the_pinned_tree_without_the_pdf(x86):
    src = x86["python"]["mbridge"]["src"]
    pin = PINS["sources"]["mbridge"]
    assert src["hash"] == pin["hash"]
    assert src["postFetch"] == 'rm -f "$out/memory_estimator/MoEMemoryEstimator.pdf"\n'


def test_torch_memory_saver_drops_the_stub_runpath(x86):
    d = x86["python"]["torch-memory-saver"]
    assert d["name"] == f"torch-memory-saver-{PINS['sources']['torch-memory-saver']['version']}"
    assert "grep -v '/stubs'" in d["attrs"]["postFixup"]


def test_source_builds_of_lock_packages(x86):
    py = x86["python"]
    fa = py["flash-attn"]["attrs"]
    assert py["flash-attn"]["format"] == "pyproject"
    assert fa["FLASH_ATTENTION_FORCE_BUILD"] == "TRUE" and fa["FLASH_ATTN_CUDA_ARCHS"] == "90;100"
    te = py["transformer-engine-torch"]["attrs"]
    assert te["NVTE_FRAMEWORK"] == "pytorch" and te["NVTE_CUDA_ARCHS"] == "90;100"
    # TE's C++-only extension includes <cudnn.h> and "nccl.h" but gets neither
    # dir from its build_tools or torch (CppExtension): g++ reads them here.
    site = "lib/python3.12/site-packages/nvidia"
    assert te["CPLUS_INCLUDE_PATH"].split(":") == [
        f'{py["nvidia-cudnn-cu12"]["out"]}/{site}/cudnn/include',
        f'{py["nvidia-nccl-cu12"]["out"]}/{site}/nccl/include',
    ]
    sg = py["sglang"]
    assert sg["format"] == "pyproject", "sglang is rebuilt from its sdist to take slime's patch"
    assert sg["attrs"]["patches"] == [x86["packages"]["slime"]["out"] + "/docker/patch/latest/sglang.patch"]
    assert sg["attrs"]["patchFlags"] == ["-p2", "--no-backup-if-mismatch"]
    assert sg["src"]["hash"] == "sha256:" + "be20671c3870458a73d41006daae52139a87f0858188733ebb344e4967a694e7"


def test_slime_carries_our_patches(x86):
    attrs = x86["packages"]["slime"]["attrs"]
    names = [p.split("-", 1)[1] for p in attrs["patches"]]  # store paths: HASH-NAME
    assert names == [p.rsplit("/", 1)[1] for p in PINS["sources"]["slime"]["patches"]]


def test_megatron_takes_the_patch_from_slime(x86):
    attrs = x86["packages"]["megatron"]["attrs"]
    assert attrs["patches"] == [x86["packages"]["slime"]["out"] + "/docker/patch/latest/megatron.patch"]
