#!/usr/bin/env python3
"""NEEDED audit of the locked wheels: will autoPatchelf find every library?

uv2nix runs autoPatchelfHook on every wheel it installs; autoPatchelf fails the
build when an ELF file's NEEDED library is found nowhere. This tool takes the
wheels the flake really installs (the deep evaluation's selection, i.e.
uv2nix's, for one system), downloads each from PyPI (sha256 from uv.lock
checked), reads the NEEDED entries of every ELF file in it, and resolves each
the way nixpkgs' auto-patchelf.py does for the derivation the overlay makes:

  1. a library file of the same name inside the wheel itself;
  2. glibc's own libraries (auto-patchelf leaves them to the dynamic linker);
  3. the libraries uv2nix's manylinux buildInputs provide (the wheel has a
     manylinux tag);
  4. the search paths and nixpkgs libraries nix/wheel-libraries.json gives
     the wheel (sibling nvidia/*/lib dirs, torch/lib, nixpkgs packages);
  5. the table's allowed-missing entries (driver libraries, and per wheel
     with the reason).

Anything else is printed as UNRESOLVED and the exit status is 1 (autoPatchelf
would fail that build). --markdown writes the per-wheel summary recorded in
docs/nix.md.

    python3 tools/wheel_needed_audit.py [--system x86_64-linux] [--deep-eval FILE]
        [--cache DIR] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import struct
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[1]
TABLE_PATH = REPO / "nix" / "wheel-libraries.json"

# ELF e_machine -> the system whose wheels it belongs to.
MACHINES = {62: "x86_64-linux", 183: "aarch64-linux"}


# --- ELF ----------------------------------------------------------------------


@dataclass
class Elf:
    machine: int
    needed: list[str]
    soname: str | None


def read_elf(path: Path) -> Elf | None:
    """NEEDED and SONAME of a dynamic ELF file; None for non-ELF or static files."""
    with path.open("rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF":
            return None
        is64 = ident[4] == 2
        end = "<" if ident[5] == 1 else ">"
        if is64:
            hdr = struct.unpack(end + "HHIQQQIHHHHHH", f.read(48))
            _, machine, _, _, phoff, _, _, _, phentsize, phnum, _, _, _ = hdr
        else:
            hdr = struct.unpack(end + "HHIIIIIHHHHHH", f.read(36))
            _, machine, _, _, phoff, _, _, _, phentsize, phnum, _, _, _ = hdr
        loads, dynamic = [], None
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            if is64:
                p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack(end + "IIQQQQQQ", f.read(56))
            else:
                p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = struct.unpack(end + "IIIIIIII", f.read(32))
            if p_type == 1:  # PT_LOAD
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == 2:  # PT_DYNAMIC
                dynamic = (p_offset, p_filesz)
        if dynamic is None:
            return None

        def file_offset(vaddr: int) -> int:
            for start, off, size in loads:
                if start <= vaddr < start + size:
                    return off + vaddr - start
            raise ValueError(f"{path}: address {vaddr:#x} not in a PT_LOAD segment")

        f.seek(dynamic[0])
        raw = f.read(dynamic[1])
        entry = 16 if is64 else 8
        fmt = end + ("qQ" if is64 else "iI")
        needed_offsets, soname_offset, strtab = [], None, None
        for i in range(0, len(raw) - entry + 1, entry):
            tag, val = struct.unpack(fmt, raw[i : i + entry])
            if tag == 0:
                break
            if tag == 1:
                needed_offsets.append(val)
            elif tag == 14:
                soname_offset = val
            elif tag == 5:
                strtab = val
        if strtab is None:
            return Elf(machine, [], None)
        base = file_offset(strtab)

        def string(off: int) -> str:
            f.seek(base + off)
            out = b""
            while (chunk := f.read(64)) and b"\0" not in chunk:
                out += chunk
            return (out + chunk.split(b"\0", 1)[0]).decode()

        return Elf(machine, [string(o) for o in needed_offsets], string(soname_offset) if soname_offset is not None else None)


# --- wheels -------------------------------------------------------------------


@dataclass
class WheelFiles:
    """What auto-patchelf sees of one installed wheel."""

    name: str
    filename: str
    # path in the wheel -> (machine, NEEDED) for every dynamic ELF file
    elfs: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    # every file named *.so* (auto-patchelf's library index), path in the wheel
    libraries: list[str] = field(default_factory=list)


class NotCached(Exception):
    """offline and a wheel's record is not in the cache."""


def scan_wheel(name: str, url: str, sha256: str, cache: Path, offline: bool = False) -> WheelFiles:
    """Download (hash checked), list ELF files and their NEEDED; cached by hash."""
    record = cache / f"{sha256}.json"
    filename = url.rsplit("/", 1)[1]
    if record.exists():
        data = json.loads(record.read_text())
        return WheelFiles(name, filename, {k: (m, n) for k, (m, n) in data["elfs"].items()}, data["libraries"])
    if offline:
        raise NotCached(filename)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        whl = Path(tmp) / filename
        digest = hashlib.sha256()
        with urllib.request.urlopen(url) as resp, whl.open("wb") as out:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise SystemExit(f"{filename}: sha256 {digest.hexdigest()} is not uv.lock's {sha256}")
        files = WheelFiles(name, filename)
        with zipfile.ZipFile(whl) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                base = PurePosixPath(info.filename).name
                if ".so" in base and fnmatch.fnmatch(base, "*.so*"):
                    files.libraries.append(info.filename)
                with zf.open(info) as member:
                    if member.read(4) != b"\x7fELF":
                        continue
                target = Path(tmp) / "elf"
                with zf.open(info) as member, target.open("wb") as out:
                    while chunk := member.read(1 << 20):
                        out.write(chunk)
                elf = read_elf(target)
                if elf is not None:
                    files.elfs[info.filename] = (elf.machine, elf.needed)
    record.write_text(json.dumps({"elfs": files.elfs, "libraries": files.libraries}, sort_keys=True))
    return files


# --- resolution ------------------------------------------------------------------


@dataclass
class Verdict:
    how: dict[str, int] = field(default_factory=dict)  # category -> count of NEEDED resolved that way
    ignored: dict[str, str] = field(default_factory=dict)  # soname -> reason
    unresolved: dict[str, list[str]] = field(default_factory=dict)  # soname -> files wanting it
    elf_files: int = 0


def nvidia_lib_names(files: WheelFiles) -> set[str]:
    """Library file names under nvidia/*/lib (what the overlay's loop adds)."""
    out = set()
    for lib in files.libraries:
        parts = PurePosixPath(lib).parts
        if len(parts) >= 4 and parts[0] == "nvidia" and parts[2] == "lib":
            out.add(parts[-1])
    return out


def torch_lib_names(files: WheelFiles) -> set[str]:
    return {PurePosixPath(l).name for l in files.libraries if PurePosixPath(l).parts[:2] == ("torch", "lib")}


def resolve(
    name: str,
    files: WheelFiles,
    wheels: dict[str, WheelFiles],
    table: dict,
    lock_deps: dict[str, set[str]],
    system: str,
) -> Verdict:
    spec = table["wheels"].get(name, {})
    machine = {v: k for k, v in MACHINES.items()}[system]
    own = {PurePosixPath(l).name for l in files.libraries}
    glibc = set(table["glibc"][system])
    platform_tags = files.filename[:-4].split("-")[-1].split(".")
    manylinux = set(table["manylinux2014"]) - {"_about"} if any(t.startswith("manylinux") for t in platform_tags) else set()
    nvidia_names = sorted(n for n in table["wheels"] if n.startswith("nvidia-") and n in wheels)
    mode = spec.get("nvidia_lib_dirs", "none")
    searched = {"all": nvidia_names, "dependencies": [n for n in nvidia_names if n in lock_deps.get(name, set())], "none": []}[mode]
    nvidia = set().union(*(nvidia_lib_names(wheels[n]) for n in searched)) if searched else set()
    torch = torch_lib_names(wheels["torch"]) if spec.get("torch_lib") and "torch" in wheels else set()
    nixpkgs = {so: attr for attr in spec.get("nixpkgs", []) for so in table["nixpkgs_sonames"][attr]["sonames"]}
    # The overlay treats only the table's wheels: they get the driver
    # libraries allowed missing (and autoAddDriverRunpath).
    allowed = {**(table["driver_libraries"] if name in table["wheels"] else {}), **spec.get("ignore", {})}

    verdict = Verdict()
    for path, (elf_machine, needed) in sorted(files.elfs.items()):
        if elf_machine != machine:
            continue  # auto-patchelf skips files of another architecture
        verdict.elf_files += 1
        for dep in needed:
            if "/" in dep:
                how = "absolute path"
            elif dep in own:
                how = "the wheel itself"
            elif dep in glibc:
                how = "glibc"
            elif dep in manylinux:
                how = "manylinux buildInputs"
            elif dep in nvidia:
                how = "nvidia-* lib dirs"
            elif dep in torch:
                how = "torch/lib"
            elif dep in nixpkgs:
                how = f"nixpkgs {nixpkgs[dep]}"
            else:
                reason = next((r for pat, r in allowed.items() if fnmatch.fnmatch(dep, pat)), None)
                if reason is not None:
                    verdict.ignored[dep] = reason
                    continue
                verdict.unresolved.setdefault(dep, []).append(path)
                continue
            verdict.how[how] = verdict.how.get(how, 0) + 1
    return verdict


def selected_wheels(deep: dict) -> dict[str, tuple[str, str]]:
    """Package -> (url, sha256 hex) of the wheel uv2nix selected."""
    out = {}
    for name, pkg in deep["python"].items():
        if pkg["format"] != "wheel" or not pkg["src"] or not pkg["src"]["urls"]:
            continue
        # uv.lock's hash, as uv2nix hands it to fetchurl ("sha256:<hex>");
        # a package of uv.lock's build-system-pkgs carries that lock's.
        algo, hexdigest = pkg["src"]["hash"].split(":", 1)
        assert algo == "sha256", pkg["src"]
        out[name] = (pkg["src"]["urls"][0], hexdigest)
    return out


def lock_dependencies(uvlock: dict) -> dict[str, set[str]]:
    return {p["name"]: {d["name"] for d in p.get("dependencies", [])} for p in uvlock["package"]}


def markdown(system: str, verdicts: dict[str, Verdict], wheels: dict[str, WheelFiles]) -> str:
    lines = [
        f"| wheel ({system}) | ELF files | NEEDED resolved by | allowed missing |",
        "|---|---|---|---|",
    ]
    for name in sorted(verdicts):
        v = verdicts[name]
        if not v.elf_files:
            continue
        how = ", ".join(f"{k} {n}" for k, n in sorted(v.how.items()))
        ignored = ", ".join(sorted(v.ignored)) or "-"
        if v.unresolved:
            ignored += " **UNRESOLVED: " + ", ".join(sorted(v.unresolved)) + "**"
        lines.append(f"| {wheels[name].filename} | {v.elf_files} | {how} | {ignored} |")
    return "\n".join(lines) + "\n"


def audit(
    system: str, deep: dict, cache: Path, progress=None, table: dict | None = None, offline: bool = False
) -> tuple[dict[str, Verdict], dict[str, WheelFiles]]:
    import tomllib

    uvlock = tomllib.loads((REPO / "uv.lock").read_text())
    table = table if table is not None else json.loads(TABLE_PATH.read_text())
    wheels = {}
    for name, (url, sha) in sorted(selected_wheels(deep).items()):
        if progress:
            progress(name)
        wheels[name] = scan_wheel(name, url, sha, cache, offline)
    deps = lock_dependencies(uvlock)
    verdicts = {name: resolve(name, files, wheels, table, deps, system) for name, files in wheels.items()}
    return verdicts, wheels


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "slime-nix-wheel-audit"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", default="x86_64-linux", choices=sorted(MACHINES.values()))
    ap.add_argument("--deep-eval", type=Path, help="deep evaluation JSON (default: run it)")
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--markdown", type=Path, help="write the per-wheel summary table here")
    args = ap.parse_args(argv)
    if args.deep_eval:
        deep = json.loads(args.deep_eval.read_text())
    else:
        sys.path.insert(0, str(REPO / "tools" / "nix-deep-eval"))
        import deep_eval

        try:
            res = deep_eval.evaluate(args.system)
        except deep_eval.SourcesMissing as exc:
            print(f"wheel-audit: {exc}", file=sys.stderr)
            return 2
        if not res.ok:
            print(res.error, file=sys.stderr)
            return 1
        deep = res.data
    if deep["system"] != args.system:
        print(f"wheel-audit: the deep evaluation is for {deep['system']}, not {args.system}", file=sys.stderr)
        return 2
    verdicts, wheels = audit(args.system, deep, args.cache, progress=lambda n: print(f"  {n}", file=sys.stderr))
    bad = {n: v for n, v in verdicts.items() if v.unresolved}
    with_elf = [n for n, v in verdicts.items() if v.elf_files]
    print(f"{len(verdicts)} wheels, {len(with_elf)} with ELF files ({sum(v.elf_files for v in verdicts.values())} files)")
    for name in sorted(with_elf):
        v = verdicts[name]
        for dep, reason in sorted(v.ignored.items()):
            print(f"  {name}: {dep} allowed missing: {reason}")
    for name, v in sorted(bad.items()):
        for dep, paths in sorted(v.unresolved.items()):
            print(f"UNRESOLVED {name}: {dep} (needed by {len(paths)} files, e.g. {paths[0]})")
    if args.markdown:
        args.markdown.write_text(markdown(args.system, verdicts, wheels))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
