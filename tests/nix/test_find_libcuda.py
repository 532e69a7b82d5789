"""nix/find-libcuda.sh: the wrapper's host-driver search, run by real bash
against fake filesystem roots (SLIME_RUNNER_LIBCUDA_ROOT)."""

import os
import subprocess

from nixtools import NIX_DIR

SCRIPT = NIX_DIR / "find-libcuda.sh"


def run(root, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLIME_RUNNER_")}
    base.pop("LD_LIBRARY_PATH", None)
    base.update(SLIME_RUNNER_LIBCUDA_ROOT=str(root), **env)
    out = subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"; '
         'printf "%s\\n%s\\n%s\\n" "$SLIME_RUNNER_LIBCUDA_DIR" "$SLIME_RUNNER_LIBCUDA_SOURCE" "${LD_LIBRARY_PATH:-}"'],
        env=base, capture_output=True, text=True, check=True,
    )  # fmt: skip
    d, source, ld = out.stdout.split("\n")[:3]
    return d, source, ld


def fake_lib(root, rel):
    d = root / rel.lstrip("/")
    d.mkdir(parents=True)
    (d / "libcuda.so.1").write_bytes(b"")
    return d


def test_nixos_driver_dir_wins_and_is_not_put_on_ld_library_path(tmp_path):
    nixos = fake_lib(tmp_path, "/run/opengl-driver/lib")
    fake_lib(tmp_path, "/usr/lib/x86_64-linux-gnu")
    d, source, ld = run(tmp_path)
    assert (d, source) == (str(nixos), "nixos")
    assert ld == ""  # NixOS binaries carry it in RUNPATH


def test_debian_dir_found_and_exported(tmp_path):
    deb = fake_lib(tmp_path, "/usr/lib/x86_64-linux-gnu")
    d, source, ld = run(tmp_path)
    assert (d, source, ld) == (str(deb), "search", str(deb))


def test_rhel_and_container_dirs(tmp_path):
    rhel = fake_lib(tmp_path, "/usr/lib64")
    assert run(tmp_path)[:2] == (str(rhel), "search")
    other = tmp_path / "b"
    ctr = fake_lib(other, "/usr/local/nvidia/lib64")
    assert run(other)[:2] == (str(ctr), "search")


def test_explicit_dir_wins(tmp_path):
    fake_lib(tmp_path, "/run/opengl-driver/lib")
    mine = fake_lib(tmp_path, "/opt/driver")
    d, source, ld = run(tmp_path, SLIME_RUNNER_LIBCUDA_DIR=str(mine))
    assert (d, source, ld) == (str(mine), "environment", str(mine))


def test_nothing_found_says_so(tmp_path):
    d, source, ld = run(tmp_path)
    assert (d, source, ld) == ("", "none", "")


def test_no_driver_version_is_pinned():
    text = SCRIPT.read_text()
    assert "libcuda.so.5" not in text and "libcuda.so.1" in text
    # No versioned driver path (nixGL's failure mode).
    import re

    assert not re.search(r"\b\d{3}\.\d+(\.\d+)?\b", text)
