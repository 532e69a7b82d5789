#!/usr/bin/env python3
"""Build-environment audit: each source build's REAL setup.py, in an
environment shaped like its derivation, with recording compilers; then every
recorded compile replayed with -E.

For every package of the Python set that builds against CUDA_HOME (today
transformer-engine-torch, flash-attn, causal-conv1d, torch-memory-saver; a
new one is picked up the same way), taken from the deep evaluation
(tools/nix-deep-eval):

1. its source: the sdist uv.lock pins (sha256 checked), or the pinned git
   tree from SLIME_UPSTREAM_SOURCES; its patches and postPatch applied;
2. its environment: every attribute of the derivation as Nix exports it
   (CUDA_HOME, CPLUS_INCLUDE_PATH, NVTE_*, ...), store paths pointed at
   stand-ins here: each Python build input installed from its own wheel
   (standin_python.py), CUDA_HOME built from NVIDIA's wheels of CUDA 12.8.1
   by the derivation's own join and postBuild (cuda_home.py); PYTHONPATH as
   pyproject.nix's hooks set it (every Python build input's site-packages,
   in order); CC=gcc, CXX=g++ as nixpkgs' cc-wrapper exports them; its
   preBuild; then the build command of pyproject.nix's build hook,
   `uv build --no-build-isolation --offline --wheel`;
3. gcc, g++, cc, c++ and CUDA_HOME/bin/nvcc record each compile and link
   and write empty outputs (recorder.py);
4. every recorded compile is replayed with -E as it happens (replay.py;
   nvcc compiles as nvcc's own preprocessor passes, nvcc_model.py), and
   every recorded link's -l names are looked up in its -L dirs.

It fails when setup.py fails, a compile does not preprocess, a header comes
from this machine rather than the inputs, a -l name is nowhere, or CUDA_HOME
lets a loader find a stub libcuda. Stand-ins (said in docs/nix.md): this
machine's Python 3.11 and the 3.11 wheels of the same releases for Python
3.12; Debian's gcc 12 and glibc headers for gcc 14 and glibc 2.40; host
ninja/which/patchelf for nixpkgs'; nvcc's preprocessing modelled.

    python3 tools/nix-build-audit/build_env_audit.py [--deep-eval FILE] [--only NAME ...]
        [--work DIR] [--markdown FILE] [--cores N]

Downloads go to tools/wheel_cache.py's cache (SLIME_WHEEL_CACHE). Exit 0
when everything passed, 1 on a finding, 2 when it cannot run here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tools"))
import cuda_home  # noqa: E402
import nvcc_model  # noqa: E402
import replay  # noqa: E402
import standin_python  # noqa: E402
import upstream_sources  # noqa: E402
import wheel_cache  # noqa: E402

# Non-Python build inputs: nixpkgs' tool -> this machine's program.
HOST_TOOLS = {"ninja-stand-in": "ninja", "which-stand-in": "which", "patchelf-stand-in": "patchelf"}
# Hooks that act outside the build phase (pyproject-hook's build phase is
# what this audit runs; autoAddDriverRunpath patches RUNPATHs in fixup).
HOOKS = {"pyproject-hook", "auto-add-driver-runpath-hook"}
# stdenv's own tools (its initialPath: coreutils, findutils, diffutils, sed,
# grep, gawk, tar, gzip, bzip2, xz, make, bash, patch) and binutils, from
# this machine.
STDENV_TOOLS = (
    "bash sh cat chmod chown cp cut date dd dirname basename echo env expr false head id install ln ls "
    "mkdir mktemp mv nproc od printf pwd readlink realpath rm rmdir sed seq sha256sum sleep sort stat tail "
    "tee test touch tr true uname uniq wc find xargs diff cmp grep egrep awk gawk tar gzip bzip2 xz make patch "
    "ar as ld nm objcopy objdump ranlib readelf strip"
).split()
COMPILERS = ("gcc", "g++", "cc", "c++")
GITHUB_ARCHIVE = re.compile(r"^https://github\.com/([^/]+)/([^/]+)/archive/([0-9a-f]{40})\.tar\.gz$")


class CannotRun(Exception):
    """Something this audit needs is missing here; the message says what."""


@dataclass
class PackageResult:
    name: str
    setup_ok: bool = False
    setup_tail: str = ""
    seconds: float = 0.0
    compiles: dict[str, int] = field(default_factory=dict)
    replays: list[replay.Replay] = field(default_factory=list)
    headers: dict[str, int] = field(default_factory=dict)
    foreign_headers: list[str] = field(default_factory=list)
    links: list[tuple[list[str], list[str]]] = field(default_factory=list)
    sass: list[str] = field(default_factory=list)
    ptx: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def source_builds(deep: dict) -> list[str]:
    """Packages of the Python set that build against CUDA_HOME."""
    return sorted(n for n, p in deep["python"].items() if "CUDA_HOME" in p["attrs"])


def require_tools() -> None:
    for tool in ("gcc", "g++", "ninja", "which", "patch", "bash"):
        if shutil.which(tool) is None:
            raise CannotRun(f"{tool} not installed (Debian: apt-get install g++ ninja-build patch)")
    wheel_cache.uv()


# --- the stand-in store ------------------------------------------------------


class Store:
    """Store paths of the deep evaluation -> stand-in directories here."""

    def __init__(self, root: Path):
        self.root = root
        self.map: dict[str, Path] = {}

    def add(self, store_path: str, local: Path) -> None:
        self.map[store_path] = local

    def rewrite(self, text: str) -> str:
        for store_path in sorted(self.map, key=len, reverse=True):
            text = text.replace(store_path, str(self.map[store_path]))
        return text


def toolkit_wheels(uvlock: dict) -> dict[str, Path]:
    """Distribution name -> wheel file, for every wheel cuda_home.py reads."""
    wheels = {}
    for name, (version, url, sha) in cuda_home.TOOLKIT_WHEELS.items():
        wheels[name] = wheel_cache.fetch(url, sha)
    locked = {p["name"]: p for p in uvlock["package"]}
    for name, version in cuda_home.LOCKED_COMPONENTS.items():
        entry = locked.get(name)
        if entry is None or entry["version"] != version:
            got = entry["version"] if entry else "nothing"
            raise CannotRun(f"uv.lock has {name} {got}, the audit stands CUDA 12.8.1's {version} in for nixpkgs' "
                            "(tools/nix-build-audit/cuda_home.py LOCKED_COMPONENTS)")
        wheel = next(w for w in entry["wheels"] if "x86_64" in w["url"])
        wheels[name] = wheel_cache.fetch(wheel["url"], wheel["hash"].split(":", 1)[1])
    return wheels


def nvcc_wrapper(bin_dir: Path) -> None:
    """CUDA_HOME/bin/nvcc: the recording stand-in (the wheel has no driver)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    write_wrapper(bin_dir / "nvcc", "nvcc", "none")


def write_wrapper(path: Path, tool: str, real: str) -> None:
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "recorder.py"}" {tool} "{real}" "$@"\n')
    path.chmod(0o755)


def stand_in_cuda_home(deep: dict, store: Store, wheels: dict[str, Path]) -> Path:
    attrs = dict(deep["packages"]["cudaHome"]["attrs"])
    prefix = "mkdir -p $out; "
    if not attrs["buildCommand"].startswith(prefix):
        raise CannotRun("cudaHome's buildCommand is not the stand-in symlinkJoin's (mkdir -p $out; POSTBUILD)")
    attrs["postBuild"] = attrs["buildCommand"][len(prefix):]
    out = cuda_home.build({"attrs": attrs, "out": deep["packages"]["cudaHome"]["out"]}, store.root, wheels)
    for path in attrs["paths"]:
        store.add(path, store.root / Path(path).name)
        if cuda_home.parse_part(path) == ("cuda_nvcc", "out"):
            nvcc_wrapper(store.root / Path(path).name / "bin")
            nvcc_part = store.root / Path(path).name
    # The join linked the part's bin/ entries before nvcc existed there.
    if not (out / "bin" / "nvcc").exists():
        (out / "bin").mkdir(exist_ok=True)
        (out / "bin" / "nvcc").symlink_to(nvcc_part / "bin" / "nvcc")
    store.add(deep["packages"]["cudaHome"]["out"], out)
    return out


# --- one package -----------------------------------------------------------------


def unpack_source(pkg: dict, work: Path) -> Path:
    src = pkg["src"]
    dest = work / "source"
    if dest.exists():
        shutil.rmtree(dest)
    if src.get("urls"):
        archive = wheel_cache.fetch(src["urls"][0], src["hash"].split(":", 1)[1])
        dest.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="tar") if hasattr(tarfile, "data_filter") else tar.extractall(dest)
        tops = [p for p in dest.iterdir()]
        return tops[0] if len(tops) == 1 and tops[0].is_dir() else dest
    m = GITHUB_ARCHIVE.match(src.get("url") or "")
    if m is None:
        raise CannotRun(f"{pkg['name']}: source {src} is neither a PyPI file nor a GitHub archive")
    owner, repo, rev = m.groups()
    try:
        tree = upstream_sources.tree(f"{owner}/{repo}", rev)
    except upstream_sources.SourceMissing as exc:
        raise CannotRun(str(exc)) from None
    shutil.copytree(tree, dest, symlinks=True, ignore=shutil.ignore_patterns(".complete"))
    for p in dest.rglob("*"):
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o200)
    return dest


def derivation_env(attrs: dict, store: Store) -> dict[str, str]:
    """The derivation's attributes as Nix exports them (lists joined by
    spaces, true as 1, false as empty), store paths rewritten."""
    env = {}
    for key, value in attrs.items():
        if isinstance(value, bool):
            env[key] = "1" if value else ""
        elif isinstance(value, (int, float)):
            env[key] = str(value)
        elif isinstance(value, str):
            env[key] = store.rewrite(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            env[key] = store.rewrite(" ".join(value))
    return env


def tool_bin(work: Path, pkg: dict, python: Path) -> Path:
    """PATH of the build: the recording compilers, stdenv's tools, the
    derivation's non-Python build inputs, python."""
    bin_dir = work / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in COMPILERS:
        write_wrapper(bin_dir / tool, tool, shutil.which(tool, path="/usr/bin:/bin") or tool)
    wanted = list(STDENV_TOOLS) + ["uv"]
    for name in pkg["nativeBuildInputNames"]:
        if name in HOST_TOOLS:
            wanted.append(HOST_TOOLS[name])
    for tool in wanted:
        exe = shutil.which(tool)
        if exe and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(exe)
    for name in ("python", "python3"):
        if not (bin_dir / name).exists():
            (bin_dir / name).symlink_to(python)
    return bin_dir


def phase_script(pkg: dict, env: dict[str, str]) -> str:
    attrs = pkg["attrs"]
    patches = attrs.get("patches", [])
    if isinstance(patches, str):
        patches = patches.split()
    flags = env.get("patchFlags", "-p1")
    lines = [
        "set -eu -o pipefail",
        'substituteInPlace() { "$AUDIT_PYTHON_HOST" "$AUDIT_DIR/substitute_in_place.py" "$@"; }',
        'runHook() { local hook="$1"; if [ -n "${!hook:-}" ]; then eval "${!hook}"; fi; }',
        "echo '== patchPhase'",
        *[f'patch {flags} < "{p}"' for p in (env.get("patches", "").split() if patches else [])],
        "runHook postPatch",
        "echo '== configurePhase (pyproject-configure-hook)'",
        "export PYTHONPATH= UV_COMPILE_BYTECODE=1 UV_COMPILE_BYTECODE_TIMEOUT=0 UV_NO_INSTALLER_METADATA=1 UV_NO_CONFIG=1",
        "echo '== buildPhase (pyproject-build-hook)'",
        "runHook preBuild",
        'env PYTHONPATH="${NIX_PYPROJECT_PYTHONPATH}:${PYTHONPATH}" uv build -v --no-cache '
        '--python="$AUDIT_PYTHON" --offline --no-build-isolation --out-dir dist/ --wheel',
    ]
    return "\n".join(lines) + "\n"


def run_package(name: str, deep: dict, store: Store, byout: dict, uvlock: dict, work: Path,
                python: Path, cores: int, nvcc_includes: list[str]) -> PackageResult:
    pkg = deep["python"][name]
    result = PackageResult(pkg["name"])
    pwork = work / name
    if pwork.exists():
        shutil.rmtree(pwork)
    pwork.mkdir(parents=True)
    unknown = [n for n in pkg["nativeBuildInputNames"] if n not in HOST_TOOLS and n not in HOOKS
               and not any(d["name"] == n for d in pkg["nativeBuildInputSources"])]
    if unknown:
        result.problems.append(f"build inputs the audit does not model: {', '.join(sorted(set(unknown)))}")
        return result
    # Python build inputs, in the order their setup hooks run.
    site_dirs = []
    for dep in pkg["nativeBuildInputSources"]:
        p = byout.get(dep["out"])
        if p is None:
            result.problems.append(f"{dep['name']}: no wheel known for {dep['out']}")
            continue
        local = standin_python.materialize(p, store.root, uvlock)
        store.add(dep["out"], local)
        site = str(local / standin_python.SITE)
        if site not in site_dirs:
            site_dirs.append(site)
    if result.problems:
        return result
    source = unpack_source(pkg, pwork)
    env = derivation_env(pkg["attrs"], store)
    log = pwork / "compiles.jsonl"
    log.touch()
    bin_dir = tool_bin(pwork, pkg, python)
    (pwork / "tmp").mkdir()
    env.update({
        "PATH": str(bin_dir),
        "HOME": str(pwork / "homeless-shelter"),
        "TMPDIR": str(pwork / "tmp"),
        "NIX_BUILD_TOP": str(pwork),
        "NIX_BUILD_CORES": str(cores),
        "NIX_STORE": "/nix/store",
        "SOURCE_DATE_EPOCH": "315532800",
        "CC": "gcc",
        "CXX": "g++",
        "out": str(pwork / "out"),
        "NIX_PYPROJECT_PYTHONPATH": ":".join(site_dirs),
        "UV_PYTHON_DOWNLOADS": "never",
        "BUILD_AUDIT_LOG": str(log),
        "BUILD_AUDIT_NVCC_INCLUDES": ":".join(nvcc_includes),
        "AUDIT_PYTHON": str(python),
        "AUDIT_PYTHON_HOST": sys.executable,
        "AUDIT_DIR": str(HERE),
    })
    script = pwork / "phases.sh"
    script.write_text(phase_script(pkg, env))
    start = time.monotonic()
    res = subprocess.run(["bash", str(script)], cwd=source, env=env, capture_output=True, text=True)
    result.seconds = time.monotonic() - start
    (pwork / "build.log").write_text(res.stdout + res.stderr)
    result.setup_ok = res.returncode == 0
    result.setup_tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-15:])
    if not result.setup_ok:
        result.problems.append(f"setup.py (uv build) exited {res.returncode}; see {pwork / 'build.log'}")
    lines = [json.loads(l) for l in log.read_text().splitlines()]
    entries = [l for l in lines if l["type"] == "command"]
    for e in entries:
        key = f"{e['tool']} {e['kind']}"
        result.compiles[key] = result.compiles.get(key, 0) + 1
        if e["kind"] == "other":
            result.problems.append(f"nvcc asked for something other than a compile: {' '.join(e['argv'][:8])}")
    compiles = [e for e in entries if e["kind"] == "compile"]
    if result.setup_ok and not compiles:
        result.problems.append("setup.py compiled nothing (was the source build skipped?)")
    for e in compiles:
        if e["tool"] == "nvcc":
            sass, ptx = nvcc_model.emitted(nvcc_model.parse(e["argv"]))
            by_arch = lambda code: int(code.split("_")[1])  # noqa: E731
            result.sass = sorted(set(result.sass) | set(sass), key=by_arch)
            result.ptx = sorted(set(result.ptx) | set(ptx), key=by_arch)
    result.replays = replay.collect(lines)
    for r in result.replays:
        if not r.ok:
            result.problems.append(f"{r.label}: {r.error}")
    roots = {str(source): "the package's source", str(pwork): "the build directory",
             sysconfig.get_paths()["include"]: "Python headers (this interpreter's)"}
    for local in {str(v) for v in store.map.values()}:
        name = Path(local).name.split("-", 1)[1]
        part = cuda_home.PART.match(Path(local).name)
        if part:
            name = f"CUDA_HOME ({part['pname']}.{part['output'] or 'out'})"
        elif name.startswith("cuda-home-"):
            name = "CUDA_HOME"
        roots[local + "/"] = name
        # A Python stand-in's site-packages is a link into the wheel cache.
        site = Path(local) / standin_python.SITE
        if site.is_symlink():
            roots[os.path.realpath(site) + "/"] = name
    for prefix, pname in list(roots.items()):
        real = os.path.realpath(prefix)
        if real != prefix.rstrip("/"):
            roots[real + "/"] = pname
    headers = {h for r in result.replays for h in r.headers}
    result.headers, result.foreign_headers = replay.classify_headers(headers, roots)
    for h in result.foreign_headers[:5]:
        result.problems.append(f"header from this machine, not from the build's inputs: {h}")
    for e in entries:
        if e["kind"] == "link":
            resolved, missing = replay.check_link(e)
            result.links.append((resolved, missing))
            for m in missing:
                result.problems.append(f"link: {m} is in none of the command's -L dirs")
    return result


# --- report ---------------------------------------------------------------------


def emitted_text(r: PackageResult) -> str:
    if not r.sass and not r.ptx:
        return "host code only (no nvcc compile)"
    return f"SASS {', '.join(r.sass) or 'none'}; PTX {', '.join(r.ptx) or 'none'}"


def summary(results: list[PackageResult], cuda_findings: list[str]) -> str:
    lines = []
    for r in results:
        ok = sum(1 for x in r.replays if x.ok)
        covered = sum(1 + len(x.same_as) for x in r.replays)
        status = "ok" if r.ok else "FAILED"
        lines.append(f"{r.name}: {status}")
        lines.append(f"  setup.py: {'ran' if r.setup_ok else 'FAILED'} in {r.seconds:.0f} s; recorded "
                     + ", ".join(f"{n} {k}" for k, n in sorted(r.compiles.items())))
        lines.append(f"  replay -E: {ok}/{len(r.replays)} preprocessed ({covered} compile passes; "
                     "passes with identical flags and directives replayed once)")
        lines.append(f"  emits: {emitted_text(r)}")
        lines.append("  headers: " + ", ".join(f"{k} {n}" for k, n in sorted(r.headers.items(), key=lambda kv: -kv[1])))
        for resolved, missing in r.links:
            lines.append("  link: " + "; ".join(resolved + [f"MISSING {m}" for m in missing]))
        for p in r.problems[:12]:
            lines.append(f"  PROBLEM {p}")
        if len(r.problems) > 12:
            lines.append(f"  ... {len(r.problems) - 12} more")
    lines += [f"CUDA_HOME: {f}" for f in cuda_findings]
    return "\n".join(lines)


def markdown(results: list[PackageResult], cuda_findings: list[str]) -> str:
    rows = ["| package | setup.py | compiles recorded | replayed with -E | emits | links |", "|---|---|---|---|---|---|"]
    for r in results:
        ok = sum(1 for x in r.replays if x.ok)
        covered = sum(1 + len(x.same_as) for x in r.replays)
        links = "; ".join(", ".join(x.split(" -> ")[0] + (" (stubs)" if "/stubs/" in x else "") for x in res)
                          + "".join(f", **{m} missing**" for m in miss) for res, miss in r.links) or "-"
        rows.append(f"| {r.name} | {'ran' if r.setup_ok else '**failed**'} | "
                    f"{', '.join(f'{n} {k}' for k, n in sorted(r.compiles.items()))} | "
                    f"{ok}/{len(r.replays)} distinct ({covered} passes){'' if r.ok else ' **FAILED**'} | "
                    f"{emitted_text(r)} | {links} |")
    return "\n".join(rows) + "\n\n" + "\n".join(f"- CUDA_HOME: {f}" for f in cuda_findings) + "\n"


def audit(deep: dict, only: list[str] | None, work: Path, cores: int) -> tuple[list[PackageResult], list[str]]:
    require_tools()
    uvlock = standin_python.uv_lock()
    byout = standin_python.packages_by_out(deep)
    store = Store(work / "store")
    store.root.mkdir(parents=True, exist_ok=True)
    wheels = toolkit_wheels(uvlock)
    cuda = stand_in_cuda_home(deep, store, wheels)
    nvcc_part = next(store.root / Path(p).name for p in deep["packages"]["cudaHome"]["attrs"]["paths"]
                     if cuda_home.parse_part(p) == ("cuda_nvcc", "out"))
    nvcc_includes = [str(nvcc_part / "include"), str(nvcc_part / "nvvm" / "include")]
    stubs = cuda_home.reachable_driver_stubs(cuda)
    cuda_findings = ([f"PROBLEM a loader finds a stub libcuda here: {', '.join(stubs)}"] if stubs else
                     ["no libcuda.so* in lib/ or lib64/ (the link stub stays in lib/stubs)"])
    python = work / "python"
    if not python.exists():
        subprocess.run([wheel_cache.uv(), "venv", "--quiet", "--python", sys.executable, str(python)], check=True,
                       env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    names = source_builds(deep)
    if only:
        unknown = set(only) - set(names)
        if unknown:
            raise CannotRun(f"not a source build of the deep evaluation: {', '.join(sorted(unknown))} "
                            f"(source builds: {', '.join(names)})")
        names = [n for n in names if n in only]
    results = []
    for name in names:
        print(f"build-audit: {name} ...", file=sys.stderr, flush=True)
        results.append(run_package(name, deep, store, byout, uvlock, work, python / "bin" / "python", cores,
                                   nvcc_includes))
    return results, cuda_findings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deep-eval", type=Path, help="deep evaluation JSON for x86_64-linux (default: run it)")
    ap.add_argument("--only", nargs="*", help="audit these source builds only")
    ap.add_argument("--work", type=Path, help="keep the work tree here (default: a temporary directory)")
    ap.add_argument("--markdown", type=Path, help="write the summary table here (docs/nix.md)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="NIX_BUILD_CORES of the build")
    args = ap.parse_args(argv)
    if args.deep_eval:
        deep = json.loads(args.deep_eval.read_text())
    else:
        sys.path.insert(0, str(REPO / "tools" / "nix-deep-eval"))
        import deep_eval

        try:
            res = deep_eval.evaluate("x86_64-linux")
        except deep_eval.SourcesMissing as exc:
            print(f"build-audit: {exc}", file=sys.stderr)
            return 2
        if not res.ok:
            print(res.error, file=sys.stderr)
            return 1
        deep = res.data
    if deep["system"] != "x86_64-linux":
        print("build-audit: needs the x86_64-linux deep evaluation (the source builds are x86_64 only)", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="build-audit."))
    try:
        results, cuda_findings = audit(deep, args.only, work, args.cores)
    except (CannotRun, FileNotFoundError) as exc:
        print(f"build-audit: cannot run here: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(summary(results, cuda_findings))
    if args.markdown:
        args.markdown.write_text(markdown(results, cuda_findings))
    failed = [r.name for r in results if not r.ok] + [f for f in cuda_findings if f.startswith("PROBLEM")]
    print(f"build-audit: {len(results) - len([r for r in results if not r.ok])}/{len(results)} source builds passed"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
