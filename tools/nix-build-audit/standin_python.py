"""The flake's Python packages, stood in by their own wheels on this machine.

The deep evaluation (tools/nix-deep-eval) names every Python package a
derivation builds with or installs by store path, with the file uv2nix
fetches for it (URL and sha256: uv.lock's, or build-system-pkgs' lock for the
build systems). Here each such store path becomes a directory shaped like
that store path (`lib/python3.12/site-packages/...`) holding exactly that
package, installed from the same release's wheel:

- the file the flake selects when it runs here (pure-Python wheels);
- else the wheel of the same release for this machine's interpreter, from
  uv.lock (binary wheels: the flake's Python is 3.12, this machine's 3.11;
  the same release ships the same Python code and headers for both).

Everything is downloaded through tools/wheel_cache.py (hash checked) and
installed once per wheel under its cache root.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

try:
    from packaging.markers import Marker
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename
except ImportError:  # a bare python3 (CI runs these before installing anything): pip's own copy
    from pip._vendor.packaging.markers import Marker
    from pip._vendor.packaging.tags import sys_tags
    from pip._vendor.packaging.utils import parse_wheel_filename

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tools"))
import wheel_cache  # noqa: E402

# Where a Python package keeps its files inside its store path (python312).
SITE = "lib/python3.12/site-packages"


@dataclass(frozen=True)
class PythonPackage:
    name: str  # the derivation's name, pname-version
    out: str  # its store path
    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


def _from_src(name: str, out: str, src: dict | None) -> PythonPackage | None:
    if not src or not src.get("urls") or not str(src.get("hash", "")).startswith("sha256:"):
        return None
    return PythonPackage(name, out, src["urls"][0], src["hash"].split(":", 1)[1])


def packages_by_out(deep: dict) -> dict[str, PythonPackage]:
    """Every Python package the deep evaluation describes, by store path."""
    out: dict[str, PythonPackage] = {}
    for pkg in deep["python"].values():
        for dep in pkg.get("nativeBuildInputSources", []):
            if (p := _from_src(dep["name"], dep["out"], dep["src"])) is not None:
                out[p.out] = p
        if (p := _from_src(pkg["name"], pkg["out"], pkg["src"])) is not None:
            out[p.out] = p
    return out


def _compatible_rank() -> dict:
    return {tag: i for i, tag in enumerate(sys_tags())}


def wheel_here(pkg: PythonPackage, uvlock: dict) -> tuple[str, str]:
    """(url, sha256) of the wheel of PKG's release that this interpreter installs."""
    rank = _compatible_rank()
    if not pkg.filename.endswith(".whl"):
        raise LookupError(f"{pkg.name}: {pkg.filename} is not a wheel (a source build inside the set?)")
    name, version, _, tags = parse_wheel_filename(pkg.filename)
    if any(t in rank for t in tags):
        return pkg.url, pkg.sha256
    for entry in uvlock["package"]:
        if entry["name"] != name or entry.get("version") != str(version):
            continue
        usable = []
        for wheel in entry.get("wheels", []):
            fname = wheel["url"].rsplit("/", 1)[1]
            best = min((rank[t] for t in parse_wheel_filename(fname)[3] if t in rank), default=None)
            if best is not None:
                usable.append((best, wheel["url"], wheel["hash"].split(":", 1)[1]))
        if usable:
            _, url, sha = min(usable)
            return url, sha
    raise LookupError(f"{pkg.name}: uv.lock has no wheel of {name} {version} for this interpreter "
                      f"(Python {sys.version_info.major}.{sys.version_info.minor})")


def lock_closure(names: list[str], byout: dict[str, PythonPackage], uvlock: dict) -> list[str]:
    """Store paths of these uv.lock packages and of their dependencies (the
    edges whose markers hold for this interpreter), where the deep
    evaluation knows them."""
    locked = {p["name"]: p for p in uvlock["package"]}
    by_name = {}
    for out, pkg in byout.items():
        by_name.setdefault(pkg.name.rsplit("-", 1)[0], out)
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for dep in locked[name].get("dependencies", []):
            if "marker" in dep and not Marker(dep["marker"]).evaluate():
                continue
            todo.append(dep["name"])
    return [by_name[n] for n in sorted(seen) if n in by_name]


def uv_lock(repo: Path = REPO) -> dict:
    return tomllib.loads((repo / "uv.lock").read_text())


def installed(url: str, sha256: str, root: Path | None = None) -> Path:
    """A directory holding exactly this wheel's installed files (cached)."""
    root = root or wheel_cache.cache_root()
    dest = root / "envs" / f"wheel-{sha256[:24]}"
    if (dest / ".complete").exists():
        return dest / "site-packages"
    if dest.exists():
        shutil.rmtree(dest)
    wheel = wheel_cache.fetch(url, sha256, root)
    wheel_cache.install([wheel], target=dest / "site-packages", root=root)
    (dest / ".complete").write_text(url + "\n")
    return dest / "site-packages"


def materialize(pkg: PythonPackage, store: Path, uvlock: dict, root: Path | None = None) -> Path:
    """PKG's store path stood in under STORE (same base name), its site-packages
    a link to the installed wheel. Returns that stand-in store path."""
    url, sha = wheel_here(pkg, uvlock)
    site = installed(url, sha, root)
    dest = store / Path(pkg.out).name
    (dest / SITE).parent.mkdir(parents=True, exist_ok=True)
    if not (dest / SITE).exists():
        (dest / SITE).symlink_to(site)
    return dest
