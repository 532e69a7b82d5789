"""nix/find-libcuda.sh: the wrappers' host-driver search, run by real bash
under the wrappers' `set -euo pipefail`, against fake host trees
(SLIME_RUNNER_LIBCUDA_ROOT), fake ldconfig listings (SLIME_RUNNER_LDCONFIG)
and, where a C compiler exists, real ELF libraries loaded by the real dynamic
linker."""

import os
import platform
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nixtools import NIX_DIR

SCRIPT = NIX_DIR / "find-libcuda.sh"
BASH = shutil.which("bash")  # by path: some tests give the script a PATH without it
EXPORTS = ("SLIME_RUNNER_LIBCUDA_DIR", "SLIME_RUNNER_LIBCUDA_SOURCE", "SLIME_RUNNER_DRIVER_LIBS",
           "LD_LIBRARY_PATH", "TRITON_LIBCUDA_PATH")
# What a distribution's library directory holds beside the driver: none of it
# may become visible through the exported paths.
HOST_LIBS = ("libc.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libm.so.6", "libz.so.1", "libssl.so.3")
DRIVER_LIBS = ("libcuda.so.570.86.15", "libnvidia-ml.so.570.86.15", "libnvidia-ptxjitcompiler.so.570.86.15",
               "libnvidia-nvvm.so.570.86.15", "libnvidia-gpucomp.so.570.86.15", "libcudadebugger.so.570.86.15")


def base_env(tmp_path: Path, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLIME_RUNNER_")}
    for k in ("LD_LIBRARY_PATH", "TRITON_LIBCUDA_PATH"):
        base.pop(k, None)
    base["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    base.update(env)
    return base


def run(tmp_path: Path, root: Path | None = None, then: str = "", cwd: Path | None = None, **env) -> dict:
    """Source the script the way the app wrappers do and return its exports."""
    if root is not None:
        env["SLIME_RUNNER_LIBCUDA_ROOT"] = str(root)
    show = "".join(f'printf "%s\\n" "${{{k}:-}}"; ' for k in EXPORTS)
    out = subprocess.run(
        [BASH, "-c", f'set -euo pipefail; source "{SCRIPT}"; {show}{then}'],
        env=base_env(tmp_path, **env), capture_output=True, text=True, timeout=60, cwd=cwd,
    )  # fmt: skip
    assert out.returncode == 0, (out.returncode, out.stderr)
    lines = out.stdout.split("\n")
    got = dict(zip(EXPORTS, lines))
    got["rest"] = lines[len(EXPORTS):]
    return got


def host_dir(root: Path, rel: str, driver=DRIVER_LIBS, others=HOST_LIBS) -> Path:
    """A fake host library dir: versioned driver files, their soname links,
    and the distribution's own libraries (garbage bytes)."""
    d = root / rel.lstrip("/")
    d.mkdir(parents=True)
    for name in driver:
        (d / name).write_bytes(b"driver")
        soname = re.sub(r"\.so\..*", ".so.1", name)
        (d / soname).symlink_to(name)
    for name in others:
        (d / name).write_bytes(b"not an ELF file")
    return d


def exposed(got: dict) -> set[str]:
    """Every file name reachable through the exported search paths."""
    names = set()
    for d in got["LD_LIBRARY_PATH"].split(":") + [got["TRITON_LIBCUDA_PATH"]]:
        if d:
            names |= {p.name for p in Path(d).iterdir()}
    return names


def test_host_lib_dir_is_not_exposed_only_the_drivers_libraries(tmp_path):
    deb = host_dir(tmp_path / "root", "/usr/lib/x86_64-linux-gnu")
    got = run(tmp_path, tmp_path / "root")
    assert (got["SLIME_RUNNER_LIBCUDA_DIR"], got["SLIME_RUNNER_LIBCUDA_SOURCE"]) == (str(deb), "search")
    private = Path(got["SLIME_RUNNER_DRIVER_LIBS"])
    assert private.parent == tmp_path / "cache" / "slime-runner" / "driver-libs"
    assert got["LD_LIBRARY_PATH"] == got["TRITON_LIBCUDA_PATH"] == str(private)
    names = exposed(got)
    assert not names & set(HOST_LIBS), names
    assert names == set(DRIVER_LIBS) | {re.sub(r"\.so\..*", ".so.1", n) for n in DRIVER_LIBS} | {"libcuda.so"}
    # Links to the host files by name, and the -lcuda name Triton links with.
    assert os.readlink(private / "libcuda.so.1") == str(deb / "libcuda.so.1")
    assert os.readlink(private / "libcuda.so") == str(deb / "libcuda.so.1")
    assert (private / "libnvidia-ml.so.1").read_bytes() == b"driver"


def test_existing_ld_library_path_is_kept_after_the_private_dir(tmp_path):
    host_dir(tmp_path / "root", "/usr/lib64")
    got = run(tmp_path, tmp_path / "root", LD_LIBRARY_PATH="/opt/mine")
    assert got["LD_LIBRARY_PATH"] == f"{got['SLIME_RUNNER_DRIVER_LIBS']}:/opt/mine"


def test_sourced_twice_adds_the_dir_once(tmp_path):
    host_dir(tmp_path / "root", "/usr/lib64")
    got = run(tmp_path, tmp_path / "root", then=f'source "{SCRIPT}"; printf "%s\\n" "$LD_LIBRARY_PATH"')
    assert got["rest"][0] == got["SLIME_RUNNER_DRIVER_LIBS"]


def test_nixos_driver_dir_is_linked_and_exported_too(tmp_path):
    nixos = host_dir(tmp_path / "root", "/run/opengl-driver/lib", others=())
    host_dir(tmp_path / "root", "/usr/lib/x86_64-linux-gnu")
    got = run(tmp_path, tmp_path / "root")
    assert (got["SLIME_RUNNER_LIBCUDA_DIR"], got["SLIME_RUNNER_LIBCUDA_SOURCE"]) == (str(nixos), "nixos")
    # The PyPI wheels carry no /run/opengl-driver/lib RUNPATH; Triton needs
    # TRITON_LIBCUDA_PATH there (no /sbin/ldconfig on NixOS).
    assert got["LD_LIBRARY_PATH"] == got["TRITON_LIBCUDA_PATH"] == got["SLIME_RUNNER_DRIVER_LIBS"] != ""
    assert os.readlink(Path(got["SLIME_RUNNER_DRIVER_LIBS"]) / "libcuda.so.1") == str(nixos / "libcuda.so.1")


def test_rhel_and_container_dirs(tmp_path):
    rhel = host_dir(tmp_path / "a", "/usr/lib64")
    assert run(tmp_path, tmp_path / "a")["SLIME_RUNNER_LIBCUDA_DIR"] == str(rhel)
    ctr = host_dir(tmp_path / "b", "/usr/local/nvidia/lib64")
    got = run(tmp_path, tmp_path / "b")
    assert (got["SLIME_RUNNER_LIBCUDA_DIR"], got["SLIME_RUNNER_LIBCUDA_SOURCE"]) == (str(ctr), "search")


def test_explicit_dir_wins(tmp_path):
    host_dir(tmp_path / "root", "/run/opengl-driver/lib")
    mine = host_dir(tmp_path / "root", "/opt/driver")
    got = run(tmp_path, tmp_path / "root", SLIME_RUNNER_LIBCUDA_DIR=str(mine))
    assert (got["SLIME_RUNNER_LIBCUDA_DIR"], got["SLIME_RUNNER_LIBCUDA_SOURCE"]) == (str(mine), "environment")
    assert not exposed(got) & set(HOST_LIBS)
    assert os.readlink(Path(got["LD_LIBRARY_PATH"]) / "libcuda.so.1") == str(mine / "libcuda.so.1")


def test_relative_explicit_dir_is_made_absolute_and_its_links_resolve(tmp_path):
    # `lib` used to give links to `lib/libcuda.so.1` that dangle (read from
    # the links' own directory), a broken cache dir left behind, and a new
    # temporary dir on every later start.
    work = tmp_path / "work"
    mine = host_dir(work, "lib")
    (tmp_path / "tmp").mkdir()
    dirs = set()
    for _ in range(2):
        got = run(tmp_path, cwd=work, SLIME_RUNNER_LIBCUDA_DIR="lib", TMPDIR=str(tmp_path / "tmp"))
        assert (got["SLIME_RUNNER_LIBCUDA_DIR"], got["SLIME_RUNNER_LIBCUDA_SOURCE"]) == (str(mine), "environment")
        private = Path(got["SLIME_RUNNER_DRIVER_LIBS"])
        assert private.parent == tmp_path / "cache" / "slime-runner" / "driver-libs"
        assert os.readlink(private / "libcuda.so.1") == str(mine / "libcuda.so.1")
        assert (private / "libcuda.so").read_bytes() == (private / "libnvidia-ml.so.1").read_bytes() == b"driver"
        dirs.add(private)
    assert len(dirs) == 1 and os.listdir(private.parent) == [private.name]  # reused, nothing else left
    assert os.listdir(tmp_path / "tmp") == []


def test_a_dir_whose_libcuda_does_not_resolve_is_never_used_or_left_behind(tmp_path):
    # slime_find_libcuda passes only absolute dirs now; the guard behind it:
    # links to a relative dir, read from elsewhere, dangle. Neither the cache
    # dir nor the temporary fallback may be kept, and nothing is exported.
    host_dir(tmp_path / "work", "lib")
    (tmp_path / "tmp").mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for cache in (tmp_path / "cache", blocker / "cache"):
        got = run(tmp_path, XDG_CACHE_HOME=str(cache), TMPDIR=str(tmp_path / "tmp"), cwd=tmp_path / "work",
                  then='slime_link_driver_libs lib; printf "[%s]\\n" "$SLIME_RUNNER_DRIVER_LIBS"')
        assert got["rest"][0] == "[]"
        assert os.listdir(tmp_path / "tmp") == []
    assert os.listdir(tmp_path / "cache" / "slime-runner" / "driver-libs") == []


def test_nothing_found_says_so_and_exports_no_path(tmp_path):
    (tmp_path / "root").mkdir()
    got = run(tmp_path, tmp_path / "root", LD_LIBRARY_PATH="/opt/mine")
    assert (got["SLIME_RUNNER_LIBCUDA_DIR"], got["SLIME_RUNNER_LIBCUDA_SOURCE"]) == ("", "none")
    assert (got["SLIME_RUNNER_DRIVER_LIBS"], got["TRITON_LIBCUDA_PATH"], got["LD_LIBRARY_PATH"]) == ("", "", "/opt/mine")


def test_driver_update_gets_a_new_dir_and_the_old_one_is_left_alone(tmp_path):
    root = tmp_path / "root"
    d = host_dir(root, "/usr/lib/x86_64-linux-gnu")
    first = run(tmp_path, root)["SLIME_RUNNER_DRIVER_LIBS"]
    assert run(tmp_path, root)["SLIME_RUNNER_DRIVER_LIBS"] == first  # same driver: reused
    # The driver package replaces its versioned files and moves the links.
    for name in DRIVER_LIBS:
        (d / name).unlink()
        new = name.replace("570.86.15", "575.51.03")
        (d / new).write_bytes(b"driver 575")
        link = d / re.sub(r"\.so\..*", ".so.1", name)
        link.unlink()
        link.symlink_to(new)
    second = run(tmp_path, root)["SLIME_RUNNER_DRIVER_LIBS"]
    assert second != first
    assert "libcuda.so.575.51.03" in os.listdir(second) and "libcuda.so.570.86.15" not in os.listdir(second)
    assert "libcuda.so.570.86.15" in os.listdir(first)  # not modified under a process that may use it
    assert (Path(second) / "libcuda.so.1").read_bytes() == b"driver 575"


def test_many_processes_starting_at_once_share_one_complete_dir(tmp_path):
    root = tmp_path / "root"
    host_dir(root, "/usr/lib/x86_64-linux-gnu")
    with ThreadPoolExecutor(16) as pool:
        dirs = list(pool.map(lambda _: run(tmp_path, root)["SLIME_RUNNER_DRIVER_LIBS"], range(32)))
    assert len(set(dirs)) == 1
    parent = Path(dirs[0]).parent
    assert os.listdir(parent) == [Path(dirs[0]).name]  # losers removed their temporary copies
    assert len(os.listdir(dirs[0])) == 2 * len(DRIVER_LIBS) + 1


def test_unwritable_cache_falls_back_to_a_private_temp_dir(tmp_path):
    host_dir(tmp_path / "root", "/usr/lib64")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    got = run(tmp_path, tmp_path / "root", XDG_CACHE_HOME=str(blocker / "cache"), TMPDIR=str(tmp))
    private = Path(got["SLIME_RUNNER_DRIVER_LIBS"])
    assert private.parent == tmp and private.name.startswith("slime-runner-driver-libs.")
    assert private.stat().st_mode & 0o777 == 0o700
    assert got["TRITON_LIBCUDA_PATH"] == str(private) and not exposed(got) & set(HOST_LIBS)


def test_no_home_and_no_xdg_cache_still_links(tmp_path):
    host_dir(tmp_path / "root", "/usr/lib64")
    (tmp_path / "tmp").mkdir()
    got = run(tmp_path, tmp_path / "root", XDG_CACHE_HOME="", HOME="", TMPDIR=str(tmp_path / "tmp"))
    assert Path(got["SLIME_RUNNER_DRIVER_LIBS"]).parent == tmp_path / "tmp"


# ldconfig ---------------------------------------------------------------------

LDCONFIG_ARCH = {"x86_64": "x86-64", "aarch64": "AArch64"}.get(platform.machine())


def fake_ldconfig(tmp_path: Path, libcuda: Path, size: int = 240_000, rc: int = 0) -> Path:
    """An ldconfig whose `-p` prints a long cache listing (as on a host with
    many packages) with libcuda near the top, the 32-bit entry first."""
    lines = ["2087 libs found in cache `/etc/ld.so.cache'",
             f"\tlibcuda.so.1 (libc6) => {tmp_path}/i386/libcuda.so.1",
             f"\tlibcuda.so.1 (libc6,{LDCONFIG_ARCH}) => {libcuda}"]
    i = 0
    while sum(len(x) + 1 for x in lines) < size:
        lines.append(f"\tlibfoo{i}.so.1 (libc6,{LDCONFIG_ARCH}) => /usr/lib/x86_64-linux-gnu/libfoo{i}.so.1")
        i += 1
    listing = tmp_path / "listing.txt"
    listing.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "ldconfig"
    # exec: like the real ldconfig, the process that writes dies of SIGPIPE.
    exe.write_text(f"#!/bin/sh\nexec cat '{listing}'\n" if rc == 0 else f"#!/bin/sh\ncat '{listing}'\nexit {rc}\n")
    exe.chmod(0o755)
    (tmp_path / "i386").mkdir(exist_ok=True)
    (tmp_path / "i386" / "libcuda.so.1").write_bytes(b"32-bit")
    return exe


@pytest.mark.skipif(LDCONFIG_ARCH is None, reason=f"no ldconfig arch tag known for {platform.machine()}")
def test_long_ldconfig_listing_under_pipefail_never_kills_the_wrapper(tmp_path):
    # An awk that exits at the first match made `ldconfig -p` die of SIGPIPE,
    # and the wrapper exit 141 without a word (5 of 5 runs with this listing).
    host = host_dir(tmp_path / "host", "/srv/driver")
    exe = fake_ldconfig(tmp_path, host / "libcuda.so.1")
    for _ in range(25):
        got = run(tmp_path, SLIME_RUNNER_LDCONFIG=str(exe))
        assert (got["SLIME_RUNNER_LIBCUDA_DIR"], got["SLIME_RUNNER_LIBCUDA_SOURCE"]) == (str(host), "ldconfig")


# The app wrappers' PATH holds nixpkgs' coreutils before the caller's PATH,
# which on a minimal container has nothing else: no awk, sed or grep.
COREUTILS = ("cat", "dirname", "env", "ln", "mkdir", "mktemp", "mv", "readlink", "rm", "sha256sum", "uname")


def coreutils_only(tmp_path: Path) -> str:
    d = tmp_path / "coreutils-bin"
    d.mkdir()
    for name in COREUTILS:
        (d / name).symlink_to(shutil.which(name))
    return str(d)


@pytest.mark.skipif(LDCONFIG_ARCH is None, reason=f"no ldconfig arch tag known for {platform.machine()}")
def test_ldconfig_listing_is_parsed_with_nothing_but_bash_and_coreutils(tmp_path):
    # With awk parsing the listing, this exited 127: "awk: command not found".
    host = host_dir(tmp_path / "host", "/srv/driver")
    exe = fake_ldconfig(tmp_path, host / "libcuda.so.1")
    path = coreutils_only(tmp_path)
    assert not any(shutil.which(tool, path=path) for tool in ("awk", "sed", "grep", "cut"))
    got = run(tmp_path, SLIME_RUNNER_LDCONFIG=str(exe), PATH=path)
    assert (got["SLIME_RUNNER_LIBCUDA_DIR"], got["SLIME_RUNNER_LIBCUDA_SOURCE"]) == (str(host), "ldconfig")
    assert os.readlink(Path(got["TRITON_LIBCUDA_PATH"]) / "libcuda.so.1") == str(host / "libcuda.so.1")


@pytest.mark.skipif(LDCONFIG_ARCH is None, reason=f"no ldconfig arch tag known for {platform.machine()}")
def test_ldconfig_entries_with_an_os_abi_tag_and_other_libraries_named_alike(tmp_path):
    host = host_dir(tmp_path / "host", "/srv/driver")
    listing = tmp_path / "listing.txt"
    listing.write_text("3 libs found in cache `/etc/ld.so.cache'\n"
                       f"\tlibcuda.so.1.bak (libc6,{LDCONFIG_ARCH}) => /nowhere/libcuda.so.1.bak\n"
                       f"\tlibcuda.so.1 (libc6,{LDCONFIG_ARCH}, OS ABI: Linux 3.2.0) => {host}/libcuda.so.1\n"
                       f"\tlibcuda.so.1 (libc6,{LDCONFIG_ARCH}) => /elsewhere/libcuda.so.1\n")
    exe = tmp_path / "ldconfig"
    exe.write_text(f"#!/bin/sh\nexec cat '{listing}'\n")
    exe.chmod(0o755)
    got = run(tmp_path, SLIME_RUNNER_LDCONFIG=str(exe), PATH=coreutils_only(tmp_path))
    assert (got["SLIME_RUNNER_LIBCUDA_DIR"], got["SLIME_RUNNER_LIBCUDA_SOURCE"]) == (str(host), "ldconfig")


@pytest.mark.skipif(LDCONFIG_ARCH is None, reason=f"no ldconfig arch tag known for {platform.machine()}")
def test_failing_ldconfig_falls_through_to_the_directory_search(tmp_path):
    root = tmp_path / "root"
    deb = host_dir(root, "/usr/lib/x86_64-linux-gnu")
    exe = fake_ldconfig(tmp_path, tmp_path / "missing" / "libcuda.so.1", size=1000, rc=1)
    got = run(tmp_path, root, SLIME_RUNNER_LDCONFIG=str(exe))
    assert (got["SLIME_RUNNER_LIBCUDA_DIR"], got["SLIME_RUNNER_LIBCUDA_SOURCE"]) == (str(deb), "search")


# The real dynamic linker and compiler ------------------------------------------

CC = shutil.which("cc") or shutil.which("gcc")


def elf_driver_dir(tmp_path: Path) -> Path:
    """A host dir with a real ELF libcuda (soname libcuda.so.1, no libcuda.so)
    beside a libstdc++.so.6 that is not an ELF file."""
    d = host_dir(tmp_path / "root", "/usr/lib/x86_64-linux-gnu", driver=())
    src = tmp_path / "cuda.c"
    src.write_text("int cuInit(unsigned int flags) { return 42 + (int)flags; }\n")
    subprocess.run([CC, "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(d / "libcuda.so.570.86.15"),
                    str(src)], check=True)
    (d / "libcuda.so.1").symlink_to("libcuda.so.570.86.15")
    return d


@pytest.mark.skipif(CC is None, reason="no C compiler to build a stand-in libcuda")
def test_real_loader_finds_libcuda_and_not_the_hosts_libstdcxx(tmp_path):
    elf_driver_dir(tmp_path)
    code = ("import ctypes; print(ctypes.CDLL('libcuda.so.1').cuInit(0)); "
            "ctypes.CDLL('libstdc++.so.6'); print('ok')")
    got = run(tmp_path, tmp_path / "root", then=f'"{sys.executable}" -c "{code}"')
    # With the host dir itself on LD_LIBRARY_PATH (the old script), python
    # does not even start: "libc.so.6: file too short" (the host's libc).
    assert got["rest"][:2] == ["42", "ok"]


@pytest.mark.skipif(CC is None, reason="no C compiler to build a stand-in libcuda")
def test_triton_style_link_with_lcuda_works_from_triton_libcuda_path(tmp_path):
    elf_driver_dir(tmp_path)
    src = tmp_path / "launcher.c"
    src.write_text("int cuInit(unsigned int); int probe(void) { return cuInit(1); }\n")
    so = tmp_path / "launcher.so"
    # Triton's runtime/build.py: cc SRC -O3 -shared -fPIC -o SO -lcuda -L$TRITON_LIBCUDA_PATH
    run(tmp_path, tmp_path / "root",
        then=f'"{CC}" "{src}" -O3 -shared -fPIC -o "{so}" -lcuda -L"$TRITON_LIBCUDA_PATH"; '
             f'"{sys.executable}" -c "import ctypes; assert ctypes.CDLL(\'{so}\').probe() == 43"')  # fmt: skip
    needed = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True).stdout \
        if shutil.which("readelf") else "libcuda.so.1"
    assert "libcuda.so.1" in needed


def test_no_driver_version_is_pinned():
    text = SCRIPT.read_text()
    assert "libcuda.so.5" not in text and "libcuda.so.1" in text
    # No versioned driver path (nixGL's failure mode).
    assert not re.search(r"\b\d{3}\.\d+(\.\d+)?\b", text)
