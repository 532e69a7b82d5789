"""Replay recorded compiles with -E, and check recorded links' -l names.

A recorded gcc/g++ compile runs again as the same command with -E instead
of -c (no object written), with the variables the compiler reads itself
(CPLUS_INCLUDE_PATH, ...) as they were. A recorded nvcc compile runs as the
preprocessor passes nvcc would start (nvcc_model.py). Each replay also
writes a dependency list, so the report can say where every header came
from, and flag a header that only this machine has (a Debian -dev package
the Nix build would not see).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nvcc_model

# gcc options whose value is a separate argument and that only name outputs.
OUTPUT_OPTIONS = {"-o", "-MF", "-MT", "-MQ"}
DEP_FLAGS = {"-MD", "-MMD", "-MP"}
# Debian packages whose headers stand in for the Nix build's own toolchain
# (gcc 14, glibc 2.40, linux headers): a header from any other package is
# one the sandboxed build would not have.
TOOLCHAIN_PACKAGES = re.compile(r"^(libc6-dev|linux-libc-dev|libstdc\+\+-\d+-dev|libgcc-\d+-dev|gcc-\d+|cpp-\d+|libcrypt-dev)(:\w+)?$")


@dataclass
class Replay:
    label: str  # source file and pass
    ok: bool
    error: str = ""
    headers: list[str] = field(default_factory=list)
    same_as: list[str] = field(default_factory=list)  # sources with identical directives and flags


def gcc_preprocess_argv(argv: list[str]) -> list[str] | None:
    """The recorded gcc/g++ compile as a preprocess-only command (no outputs)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in OUTPUT_OPTIONS:
            skip = True
            continue
        if arg in DEP_FLAGS or (arg.startswith(("-MF", "-MT", "-MQ")) and len(arg) > 3):
            continue
        out.append("-E" if arg == "-c" else arg)
    return out if "-E" in out else None


def source_of(argv: list[str]) -> str:
    srcs = [a for a in argv if not a.startswith("-") and a.endswith(nvcc_model.SOURCE_SUFFIXES)]
    return srcs[-1] if srcs else ""


def directives_key(cwd: str, source: str) -> str:
    """The source's preprocessor directive lines: two sources with the same
    directives and flags include the same headers."""
    path = Path(cwd) / source
    try:
        lines = [l.strip() for l in path.read_text(errors="replace").splitlines() if l.lstrip().startswith("#")]
    except OSError:
        return "missing:" + source
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def parse_depfile(text: str) -> list[str]:
    body = text.replace("\\\n", " ")
    _, _, deps = body.partition(":")
    return [d.replace("\\ ", " ") for d in re.split(r"(?<!\\)\s+", deps.strip()) if d]


def run_preprocessor(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[bool, str, list[str]]:
    with tempfile.TemporaryDirectory(prefix="replay.") as tmp:
        dep = Path(tmp) / "deps.d"
        full = [*argv, "-o", os.devnull, "-MD", "-MF", str(dep)]
        res = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True)
        headers = [os.path.normpath(os.path.join(cwd, h)) for h in parse_depfile(dep.read_text())] if dep.exists() else []
    first = next((l for l in res.stderr.splitlines() if "error" in l), res.stderr.strip().splitlines()[-1:] or [""])
    error = first if isinstance(first, str) else (first[0] if first else "")
    return res.returncode == 0, error if res.returncode else "", headers


# The real compilers (the build's PATH has the recording ones first).
HOST_PATH = "/usr/bin:/bin"


def replay_env(entry: dict) -> dict[str, str]:
    env = {"PATH": HOST_PATH, "LC_ALL": "C"}
    env.update(entry.get("env", {}))
    return env


def passes_of(entry: dict, nvcc_includes: list[str]) -> list[tuple[str, list[str], str]]:
    """(label, preprocess argv, dedupe key) for every pass of a recorded compile."""
    argv, cwd = entry["argv"], entry["cwd"]
    out = []
    if entry["tool"] == "nvcc":
        compile_ = nvcc_model.parse(argv)
        src = compile_.source
        gcc = shutil.which("gcc", path=HOST_PATH) or "gcc"
        for name, pargv in nvcc_model.passes(compile_, nvcc_includes, compiler=gcc):
            flags = [a if a != src else "<source>" for a in pargv]
            key = hashlib.sha256(repr((cwd, flags, entry.get("env"), directives_key(cwd, src))).encode()).hexdigest()
            out.append((f"{src} [{name}]", pargv, key))
        return out
    pargv = gcc_preprocess_argv(argv)
    if pargv is None:
        return out
    src = source_of(argv)
    flags = [a if a != src else "<source>" for a in pargv]
    key = hashlib.sha256(repr((cwd, flags, entry.get("env"), directives_key(cwd, src))).encode()).hexdigest()
    return [(src, [entry.get("real") or entry["tool"], *pargv], key)]


def replay_entry(entry: dict, nvcc_includes: list[str], seen: Path) -> list[dict]:
    """Replay one recorded compile now, while the tree is as the compile saw
    it (setup.py may delete generated headers afterwards). A pass whose flags
    and source directives an earlier pass had (SEEN holds their keys) is
    noted, not run again."""
    results = []
    for label, argv, key in passes_of(entry, nvcc_includes):
        try:
            (seen / key).mkdir(parents=True)
        except FileExistsError:
            results.append({"type": "replay", "key": key, "label": label, "duplicate": True})
            continue
        ok, error, headers = run_preprocessor(argv, entry["cwd"], replay_env(entry))
        results.append({"type": "replay", "key": key, "label": label, "duplicate": False, "ok": ok,
                        "error": error, "headers": headers})
    return results


def collect(lines: list[dict]) -> list[Replay]:
    """The replay results of a log, duplicates folded into their first pass."""
    firsts: dict[str, Replay] = {}
    dups: list[dict] = []
    for line in lines:
        if line.get("type") != "replay":
            continue
        if line["duplicate"]:
            dups.append(line)
        else:
            firsts[line["key"]] = Replay(line["label"], line["ok"], line["error"], line["headers"])
    for d in dups:
        if d["key"] in firsts:
            firsts[d["key"]].same_as.append(d["label"])
    return list(firsts.values())


# --- where headers came from ---------------------------------------------------


def dpkg_owners(paths: list[str]) -> dict[str, str]:
    """Debian package owning each path (dpkg -S), '' when none or no dpkg."""
    owners = {p: "" for p in paths}
    if not paths or not Path("/usr/bin/dpkg").exists():
        return owners
    for i in range(0, len(paths), 200):
        chunk = paths[i : i + 200]
        res = subprocess.run(["dpkg", "-S", *chunk], capture_output=True, text=True)
        for line in res.stdout.splitlines():
            pkgs, _, path = line.partition(": ")
            if path in owners:
                owners[path] = pkgs.split(",")[0].strip()
    return owners


def classify_headers(headers: set[str], roots: dict[str, str]) -> tuple[dict[str, int], list[str]]:
    """Count headers per origin (ROOTS: path prefix -> name) and list the
    headers from elsewhere on this machine that no toolchain package owns."""
    counts: dict[str, int] = {}
    host: list[str] = []
    for h in sorted(headers):
        real = os.path.realpath(h)
        name = next((n for prefix, n in roots.items() if h.startswith(prefix) or real.startswith(prefix)), None)
        if name is None:
            host.append(real)
            continue
        counts[name] = counts.get(name, 0) + 1
    owners = dpkg_owners(host)
    foreign = [h for h in host if not TOOLCHAIN_PACKAGES.match(owners.get(h, "") or "-")]
    counts["toolchain (gcc, glibc, linux headers)"] = len(host) - len(foreign)
    return counts, foreign


# --- links ---------------------------------------------------------------------------

SYSTEM_LIBS = {"c", "m", "dl", "rt", "pthread", "stdc++", "gcc_s", "gcc", "util"}


def check_link(entry: dict) -> tuple[list[str], list[str]]:
    """(resolved '-lX -> path', unresolved '-lX') for a recorded link: each -l
    name in the command's -L dirs (and LIBRARY_PATH), or a libc/libstdc++ one."""
    argv = entry["argv"]
    dirs, libs = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-L":
            dirs.append(argv[i + 1]); i += 2; continue
        if a.startswith("-L"):
            dirs.append(a[2:])
        elif a == "-l":
            libs.append(argv[i + 1]); i += 2; continue
        elif a.startswith("-l"):
            libs.append(a[2:])
        i += 1
    dirs += [d for d in entry.get("env", {}).get("LIBRARY_PATH", "").split(":") if d]
    resolved, missing = [], []
    for lib in libs:
        hit = next((Path(entry["cwd"], d, f"lib{lib}{ext}") for d in dirs for ext in (".so", ".a")
                    if Path(entry["cwd"], d, f"lib{lib}{ext}").exists()), None)
        if hit is not None:
            resolved.append(f"-l{lib} -> {hit}")
        elif lib in SYSTEM_LIBS:
            resolved.append(f"-l{lib} -> toolchain")
        else:
            missing.append(f"-l{lib}")
    return resolved, missing
