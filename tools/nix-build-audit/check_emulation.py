#!/usr/bin/env python3
"""Check-command emulation: a `nix flake check` check's own script, run in a
sandbox shaped like Nix's build sandbox, with only the check's inputs.

The script and its inputs come from the deep evaluation
(tools/nix-deep-eval), run with a Nix store of its own (`--store
local?root=...`) so that the sources the check copies into the store (its
lib.fileset sources, the patch files) are there, exactly as Nix computes
them. Each store path the check names is then stood in for and mounted at
that very path, read-only, under bubblewrap:

- lib.fileset / path sources: Nix's own copies, from that store;
- fetchFromGitHub sources: the pinned tree from SLIME_UPSTREAM_SOURCES
  (Megatron-LM with slime's megatron.patch applied, as its derivation does);
- a Python virtual environment of the flake (the test env): a venv built
  here from exactly its package list, each from the wheel uv.lock pins (for
  this machine's Python 3.11; tools/nix-build-audit/standin_python.py), the
  runner from its source in that store;
- nixpkgs' tools the check asks for (patch, python312 with pytest): this
  machine's patch; a venv with uv.lock's pytest.

The sandbox: no network (--unshare-net, loopback only), uid 1000 / gid 100
(nixbld), /build as the writable build directory (TMPDIR, HOME as the
script sets it), a writable /tmp, /etc/passwd, /etc/group and /etc/hosts as
Nix writes them, a minimal /bin/sh (this machine's dash), stdenv's tools
(coreutils, findutils, diffutils, sed, grep, gawk, tar, gzip, bzip2, xz,
make, bash: copies of this machine's), the shared libraries of
/usr/lib/x86_64-linux-gnu, and this machine's Python 3.11 prefix without its
site-packages. PATH is the inputs' bin directories, then stdenv's tools.
Nothing else of this machine is visible.

Checks it cannot run here are listed with the reason (nix-format: no nixfmt;
import-check and slime-flags: they import the whole stack, whose source
builds need nvcc).

    python3 tools/nix-build-audit/check_emulation.py [--check NAME ...] [--select TEST ...]
        [--repo DIR] [--work DIR]

--marks EXPR narrows runner-tests' pytest -m expression (CI passes "not slow").
--select runs runner-tests' pytest command on those test paths instead of
the whole tests/ directory (the script is otherwise unchanged). Exit 0 when
every emulated check passed, 1 when one failed, 2 when it cannot run here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tools" / "nix-deep-eval"))
import deep_eval  # noqa: E402
import standin_python  # noqa: E402
import upstream_sources  # noqa: E402
import wheel_cache  # noqa: E402

STORE_PATH = re.compile(r"/nix/store/[a-z0-9]{32}-[A-Za-z0-9+._?=-]+")
GITHUB_ARCHIVE = re.compile(r"^https://github\.com/([^/]+)/([^/]+)/archive/([0-9a-f]{40})\.tar\.gz$")
# stdenv's initialPath (pkgs/stdenv/generic/common-path.nix) and bash, as
# this machine's programs.
STDENV_TOOLS = (
    "bash sh cat chmod chown cp cut date dd dirname basename echo env expr false head id install ln ls mkdir "
    "mktemp mv nproc od printf pwd readlink realpath rm rmdir seq sha256sum sleep sort stat tail tee test touch "
    "tr true uname uniq wc find xargs diff cmp sed grep awk gawk tar gzip bzip2 xz make"
).split()
# What Nix writes into the sandbox (libstore's local derivation goal).
ETC = {
    "passwd": "root:x:0:0:Nix build user:/build:/noshell\nnixbld:x:1000:100:Nix build user:/build:/noshell\n"
              "nobody:x:65534:65534:Nobody:/:/noshell\n",
    "group": "root:x:0:\nnixbld:!:100:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost\n::1 localhost\n",
}
CANNOT = {
    "nix-format": "nixfmt is not installable here (not in Debian 12, PyPI or npm)",
    "import-check": "imports the whole stack, whose source builds (TE, flash-attn, causal-conv1d) need nvcc",
    "slime-flags": "runs in the whole stack, whose source builds (TE, flash-attn, causal-conv1d) need nvcc",
}


class CannotRun(Exception):
    """The emulation cannot run here; the message says what is missing."""


@dataclass
class CheckResult:
    name: str
    returncode: int
    seconds: float
    tail: str
    summary: str  # pytest's last line, when there is one

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# --- stand-ins for the store paths a check names ---------------------------------


class StandIns:
    def __init__(self, deep: dict, nix_root: Path, work: Path):
        self.deep, self.nix_root, self.work = deep, nix_root, work
        self.uvlock = standin_python.uv_lock()
        self.byout = standin_python.packages_by_out(deep)
        self.mounts: dict[str, Path] = {}  # store path -> local directory
        self.extra: dict[str, Path] = {}  # absolute path -> local (venvs' own paths)

    def _github_tree(self, url: str) -> Path:
        m = GITHUB_ARCHIVE.match(url or "")
        if m is None:
            raise CannotRun(f"not a pinned GitHub archive: {url}")
        owner, repo, rev = m.groups()
        try:
            return upstream_sources.tree(f"{owner}/{repo}", rev)
        except upstream_sources.SourceMissing as exc:
            raise CannotRun(str(exc)) from None

    def _patched(self, pkg: dict) -> Path:
        """A source derivation with patches (Megatron-LM + slime's patch)."""
        attrs = pkg["attrs"]
        tree = self._github_tree(pkg["src"]["url"])
        dest = self.work / "patched" / Path(pkg["out"]).name
        if dest.exists():
            return dest
        shutil.copytree(tree, dest, symlinks=True, ignore=shutil.ignore_patterns(".complete"))
        for patch in attrs.get("patches", []):
            local = self.resolve(patch)
            res = subprocess.run(["patch", "-p1", "-i", str(local)], cwd=dest, capture_output=True, text=True)
            if res.returncode != 0:
                raise CannotRun(f"{pkg['name']}: {patch} does not apply: {res.stdout[-300:]}")
        return dest

    def resolve(self, store_path: str) -> Path:
        """A local path standing in for STORE_PATH (or a path inside one)."""
        base = "/".join(store_path.split("/")[:4])
        rest = store_path[len(base):].lstrip("/")
        if base not in self.mounts:
            self.mounts[base] = self._stand_in(base)
        return self.mounts[base] / rest if rest else self.mounts[base]

    def _stand_in(self, base: str) -> Path:
        copied = self.nix_root / base.lstrip("/")
        if copied.exists():  # a source Nix copied into the store during evaluation
            return copied
        packages = self.deep["packages"]
        for pkg in packages.values():
            if pkg["out"] != base:
                continue
            if pkg["attrs"].get("url"):  # fetchFromGitHub itself (slime)
                return self._github_tree(pkg["attrs"]["url"])
            if pkg.get("src") and pkg["attrs"].get("patches"):  # megatron
                return self._patched(pkg)
        for check in self.deep["checks"].values():
            if check["attrs"].get("src") == base and check.get("src"):
                return self._github_tree(check["src"]["url"])
        raise CannotRun(f"no stand-in for {base} (tools/nix-build-audit/check_emulation.py)")

    # -- build inputs --

    def venv_of(self, store_paths: list[str], runner_src: str | None, label: str) -> Path:
        """A venv with exactly these packages (wheels) and the runner built
        from RUNNER_SRC; cached under the wheel cache, keyed by its contents."""
        wheels = []
        for p in store_paths:
            pkg = self.byout.get(p)
            if pkg is None:
                if runner_src and "-slime-qwen3-next-" in p:
                    continue  # the runner: built from its source below
                raise CannotRun(f"{label}: no wheel known for {p}")
            url, sha = standin_python.wheel_here(pkg, self.uvlock)
            wheels.append((url, sha))
        key = hashlib.sha256(repr((sorted(wheels), runner_src, sys.version)).encode()).hexdigest()[:24]
        dest = wheel_cache.cache_root() / "envs" / f"venv-{label}-{key}"
        if (dest / ".complete").exists():
            return dest
        # One environment per label: the previous one (another runner
        # source, another package set) goes; the wheels stay cached.
        for old in dest.parent.glob(f"venv-{label}-*"):
            shutil.rmtree(old, ignore_errors=True)
        files = [wheel_cache.fetch(u, s) for u, s in wheels]
        wheel_cache.install(files, venv=dest)
        if runner_src:
            src = self.work / "runner-src"
            if src.exists():
                shutil.rmtree(src)
            shutil.copytree(self.resolve(runner_src), src)
            env = {**os.environ, "UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(wheel_cache.cache_root() / "uv"),
                   "UV_PYTHON_DOWNLOADS": "never"}
            env.pop("VIRTUAL_ENV", None)
            subprocess.run([wheel_cache.uv(), "pip", "install", "--quiet", "--offline", "--no-index", "--no-deps",
                            "--no-build-isolation", "--python", str(dest / "bin" / "python"), str(src)],
                           check=True, env=env)
        (dest / ".complete").write_text(label + "\n")
        return dest

    def input_dir(self, name: str, store_path: str, check: dict) -> Path:
        if name == "slime-qwen3-next-test-env":
            venv_pkgs = check["venvPackages"]
            runner = next((p for p in venv_pkgs if p not in self.byout and "-slime-qwen3-next-" in p), None)
            runner_src = self.deep["python"]["slime-qwen3-next"]["attrs"]["src"] if runner else None
            venv = self.venv_of(venv_pkgs, runner_src, "test-env")
            self.extra[str(venv)] = venv
            return venv
        if re.fullmatch(r"python3-[\d.]+-env", name):  # python312.withPackages (ps: [ ps.pytest ])
            pytest = standin_python.lock_closure(["pytest"], self.byout, self.uvlock)
            venv = self.venv_of(pytest, None, "pytest")
            self.extra[str(venv)] = venv
            return venv
        if name == "patch-stand-in":
            return self._host_tools("patch-bin", ["patch"])
        raise CannotRun(f"{check['name']}: no stand-in for its build input {name}")

    def _host_tools(self, label: str, tools: list[str]) -> Path:
        dest = self.work / label
        (dest / "bin").mkdir(parents=True, exist_ok=True)
        for tool in tools:
            exe = shutil.which(tool)
            if exe is None:
                raise CannotRun(f"{tool} not installed here")
            if not (dest / "bin" / tool).exists():
                shutil.copy2(exe, dest / "bin" / tool)
        return dest


# --- the sandbox ---------------------------------------------------------------------


def stdenv_dir(work: Path) -> Path:
    dest = work / "stdenv"
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    for tool in STDENV_TOOLS:
        exe = shutil.which(tool)
        if exe and not (dest / "bin" / tool).exists():
            shutil.copy2(os.path.realpath(exe), dest / "bin" / tool)
    return dest


def bwrap() -> str:
    exe = shutil.which("bwrap")
    if exe is None:
        raise CannotRun("bubblewrap not installed (Debian: apt-get install bubblewrap)")
    return exe


def sandbox_argv(mounts: dict[str, Path], extra: dict[str, Path], build: Path, stdenv: Path, etc: Path) -> list[str]:
    prefix = Path(sys.base_prefix)
    site = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    argv = [
        bwrap(), "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "100", "--hostname", "localhost",
        "--die-with-parent", "--clearenv",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--tmpfs", "/tmp",
        "--ro-bind", "/usr/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
        "--ro-bind", "/usr/lib64", "/usr/lib64",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--ro-bind", str(os.path.realpath("/bin/sh")), "/bin/sh",
        "--ro-bind", str(stdenv), "/stdenv",
        "--ro-bind", str(etc / "passwd"), "/etc/passwd", "--ro-bind", str(etc / "group"), "/etc/group",
        "--ro-bind", str(etc / "hosts"), "/etc/hosts",
        "--ro-bind", str(prefix), str(prefix),
    ]
    if site.is_dir():
        argv += ["--tmpfs", str(site)]  # this machine's own packages: not an input
    argv += ["--tmpfs", "/nix/store"]
    for store_path, local in sorted(mounts.items()):
        argv += ["--ro-bind", str(local), store_path]
    for path, local in sorted(extra.items()):
        argv += ["--ro-bind", str(local), path]
    argv += ["--bind", str(build), "/build", "--chdir", "/build"]
    return argv


def sandbox_env(check: dict, path: list[str], cores: int) -> dict[str, str]:
    env = {
        "PATH": ":".join(path + ["/stdenv/bin"]),
        "HOME": "/homeless-shelter",
        "NIX_STORE": "/nix/store",
        "NIX_BUILD_CORES": str(cores),
        "NIX_BUILD_TOP": "/build",
        "TMPDIR": "/build", "TEMPDIR": "/build", "TMP": "/build", "TEMP": "/build",
        "PWD": "/build",
        "TERM": "xterm-256color",
        "out": check["out"],
    }
    for key, value in check["attrs"].items():
        if key in ("buildCommand", "passAsFile"):
            continue
        if isinstance(value, str):
            env[key] = value
        elif isinstance(value, bool):
            env[key] = "1" if value else ""
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            env[key] = " ".join(value)
    env["buildCommandPath"] = "/build/.attr-buildCommand"
    return env


def default_signals() -> None:
    """A builder starts with every signal at its default action. Whoever runs
    this tool may ignore some (a shell's background job ignores SIGINT and
    SIGQUIT), and ignored dispositions are inherited across exec: the tests
    that interrupt a child with Ctrl-C would see nothing happen."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)


def run_sandboxed(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, preexec_fn=default_signals)


def select_tests(script: str, tests: list[str]) -> str:
    """runner-tests' pytest command on TESTS instead of the tests/ directory."""
    lines = script.splitlines(keepends=True)
    hits = [i for i, l in enumerate(lines) if l.lstrip().startswith("python -m pytest") and l.rstrip().endswith(" tests")]
    if len(hits) != 1:
        raise CannotRun("--select: the check has no `python -m pytest ... tests` line")
    i = hits[0]
    lines[i] = lines[i].rstrip()[: -len(" tests")] + " " + " ".join(tests) + "\n"
    return "".join(lines)


def narrow_marks(script: str, marks: str) -> str:
    """runner-tests' pytest command with its -m expression narrowed by MARKS (e.g. "not slow")."""
    pattern = re.compile(r'(python -m pytest [^\n]*?-m )"([^"]*)"')
    if len(pattern.findall(script)) != 1:
        raise CannotRun("--marks: the check has no `python -m pytest ... -m \"...\"` line")
    return pattern.sub(lambda m: f'{m.group(1)}"({m.group(2)}) and ({marks})"', script)


def run_check(name: str, deep: dict, nix_root: Path, work: Path, select: list[str] | None, cores: int,
              marks: str | None = None) -> CheckResult:
    check = deep["checks"][name]
    cwork = work / name
    if cwork.exists():
        shutil.rmtree(cwork)
    (cwork / "build").mkdir(parents=True)
    stand = StandIns(deep, nix_root, cwork)
    script = check["attrs"]["buildCommand"]
    if select:
        script = select_tests(script, select)
    if marks:
        script = narrow_marks(script, marks)
    path = []
    for store_path, input_name in zip(check["attrs"].get("nativeBuildInputs", []), check["nativeBuildInputNames"]):
        local = stand.input_dir(input_name, store_path, check)
        stand.mounts[store_path] = local
        path.append(f"{store_path}/bin")
    for store_path in sorted(set(STORE_PATH.findall(script + json.dumps(check["attrs"])))):
        if store_path not in stand.mounts and store_path != check["out"]:
            stand.resolve(store_path)
    etc = cwork / "etc"
    etc.mkdir()
    for fname, text in ETC.items():
        (etc / fname).write_text(text)
    (cwork / "build" / ".attr-buildCommand").write_text(script)
    env = sandbox_env(check, path, cores)
    argv = sandbox_argv(stand.mounts, stand.extra, cwork / "build", stdenv_dir(cwork), etc)
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["/stdenv/bin/bash", "-e", "-c", 'source "$buildCommandPath"']
    start = time.monotonic()
    res = run_sandboxed(argv)
    seconds = time.monotonic() - start
    out = res.stdout + res.stderr
    (cwork / "check.log").write_text(out)
    summary = next((l for l in reversed(out.splitlines()) if re.search(r"\d+ (passed|failed|error)", l)), "")
    return CheckResult(name, res.returncode, seconds, "\n".join(out.strip().splitlines()[-25:]), summary.strip())


def emulate(names: list[str] | None, repo: Path, work: Path, select: list[str] | None = None,
            cores: int = 2, marks: str | None = None) -> tuple[list[CheckResult], dict[str, str]]:
    bwrap()
    wheel_cache.uv()
    nix_root = work / "nix-root"
    try:
        res = deep_eval.evaluate("x86_64-linux", repo=repo, store=nix_root)
    except deep_eval.SourcesMissing as exc:
        raise CannotRun(str(exc)) from None
    if not res.ok:
        raise CannotRun(f"the deep evaluation failed:\n{res.error}")
    deep = res.data
    wanted = names or sorted(deep["checks"])
    skipped = {n: CANNOT[n] for n in wanted if n in CANNOT}
    unknown = [n for n in wanted if n not in deep["checks"]]
    if unknown:
        raise CannotRun(f"no such check: {', '.join(unknown)} (checks: {', '.join(sorted(deep['checks']))})")
    results = [run_check(n, deep, nix_root, work, select if n == "runner-tests" else None, cores,
                         marks if n == "runner-tests" else None)
               for n in wanted if n not in CANNOT]
    return results, skipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", nargs="*", help="checks to emulate (default: every check)")
    ap.add_argument("--select", nargs="*", help="runner-tests: these test paths instead of tests/")
    ap.add_argument("--marks", metavar="EXPR",
                    help='runner-tests: narrow its pytest -m expression with EXPR, e.g. "not slow" (CI: the slow '
                         "tests, real Ray runs, also run outside the sandbox; run the whole check before changing nix/)")
    ap.add_argument("--repo", type=Path, default=REPO, help="the flake to take the checks from")
    ap.add_argument("--work", type=Path, help="keep the work tree here (default: a temporary directory)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="check-emulation."))
    try:
        results, skipped = emulate(args.check, args.repo.resolve(), work, args.select, args.cores, args.marks)
    except CannotRun as exc:
        print(f"check-emulation: cannot run here: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print(f"{r.name}: {'ok' if r.ok else f'FAILED (exit {r.returncode})'} in {r.seconds:.0f} s"
              + (f": {r.summary}" if r.summary else ""))
        if not r.ok:
            print("  " + r.tail.replace("\n", "\n  "))
    for name, why in skipped.items():
        print(f"{name}: skipped: {why}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
