"""Disk at --save: the preflight (will the run's checkpoints fit?) and the running run's warning.

Free space is read where the folder is, or at its nearest existing parent (a
fresh run's checkpoints/ does not exist yet). Multinode: every rank writes its
shards into --save, which must then be storage all nodes share; it is measured
from the head node, where the runner runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from runner.planner.saved import SavePlan, human_bytes

LOW_DISK_FACTOR = 1.5


def free_bytes(folder: str | Path) -> int | None:
    """Bytes free to this user on the filesystem holding folder (or its nearest existing parent)."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def disk_problem(save_dir: str | Path, saving: SavePlan, free: int | None = None) -> str | None:
    """One line when the checkpoints this run will write cannot fit the free space at --save."""
    free = free_bytes(save_dir) if free is None else free
    if free is None or saving.count == 0 or saving.peak_bytes <= free:
        return None
    each = saving.each.total
    fitting = free // each if each else 0
    if fitting < 1:
        fix = "free space there, or save elsewhere with --set save=DIR (and load=DIR)"
        what = f"not even one checkpoint ({human_bytes(each)}) fits"
    else:
        # K complete ones plus the one being written must fit.
        fix = (f"pass --keep-checkpoints {fitting - 1} (the newest kept; it fits)" if fitting >= 2 else
               "free space there") + ", or save elsewhere with --set save=DIR (and load=DIR)"
        what = f"{fitting} fit"
    held = (f"{saving.kept} at once with --keep-checkpoints {saving.keep}" if saving.keep is not None
            else f"{saving.count} (slime keeps every one)")
    return (f"disk: --save {save_dir} has {human_bytes(free)} free, and this run would write {held} checkpoints of "
            f"{human_bytes(each)} = {human_bytes(saving.peak_bytes)}; {what}: {fix}")


def low_disk_warning(save_dir: str | Path, checkpoint_bytes: int, free: int | None = None) -> str | None:
    """One line while free space at --save is below 1.5 x a checkpoint (the next save may fail half way)."""
    free = free_bytes(save_dir) if free is None else free
    if free is None or free >= LOW_DISK_FACTOR * checkpoint_bytes:
        return None
    return (f"low disk: {human_bytes(free)} free at {save_dir}, less than {LOW_DISK_FACTOR:g} x a checkpoint "
            f"({human_bytes(checkpoint_bytes)}): the next save may fail half written; free space there (older "
            f"iter_* folders), or stop and resume with --keep-checkpoints K")
