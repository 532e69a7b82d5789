"""Where things are: BASE_FOLDER, slime, Megatron-LM, MASTER_ADDR.

Command-line flags win over the environment, which wins over defaults; each
value remembers where it came from, so output can say so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DEFAULT_BASE_FOLDER = "./models"
DEFAULT_MASTER_ADDR = "127.0.0.1"


@dataclass(frozen=True)
class Setting:
    value: str | None
    source: str  # "--flag", "$VAR" or "default"

    def __str__(self) -> str:
        return f"{self.value} (from {self.source})"


@dataclass(frozen=True)
class Locations:
    base_folder: Setting
    slime_dir: Setting
    megatron_dir: Setting
    master_addr: Setting

    @property
    def base(self) -> Path:
        assert self.base_folder.value is not None
        return Path(self.base_folder.value)

    def describe(self) -> list[str]:
        return [
            f"BASE_FOLDER = {self.base_folder}",
            f"SLIME_DIR = {self.slime_dir}",
            f"MEGATRON_DIR = {self.megatron_dir}",
            f"MASTER_ADDR = {self.master_addr}",
        ]


def _pick(flag_value: str | None, flag_name: str, environ: Mapping[str, str], var: str,
          default: str | None) -> Setting:
    if flag_value:
        return Setting(flag_value, flag_name)
    if environ.get(var):
        return Setting(environ[var], f"${var}")
    return Setting(default, "default" if default is not None else "unset")


def _absolute(setting: Setting, cwd: str) -> Setting:
    if setting.value is None:
        return setting
    # Ray jobs run in another working directory: pass absolute paths only.
    return Setting(os.path.normpath(os.path.join(cwd, os.path.expanduser(setting.value))), setting.source)


def resolve_locations(*, base_folder: str | None = None, slime_dir: str | None = None,
                      megatron_dir: str | None = None, master_addr: str | None = None,
                      environ: Mapping[str, str] | None = None, cwd: str | None = None,
                      default_master_addr: str | None = DEFAULT_MASTER_ADDR) -> Locations:
    environ = os.environ if environ is None else environ
    cwd = cwd or os.getcwd()
    return Locations(
        base_folder=_absolute(_pick(base_folder, "--base-folder", environ, "BASE_FOLDER", DEFAULT_BASE_FOLDER), cwd),
        slime_dir=_absolute(_pick(slime_dir, "--slime-dir", environ, "SLIME_DIR", None), cwd),
        megatron_dir=_absolute(_pick(megatron_dir, "--megatron-dir", environ, "MEGATRON_DIR", None), cwd),
        master_addr=_pick(master_addr, "--master-addr", environ, "MASTER_ADDR", default_master_addr),
    )
