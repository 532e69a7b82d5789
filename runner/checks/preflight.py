"""Checks that read the machine (files, ports, GPUs) before anything starts.

Each returns one-line problems that name the file or value and the fix.
They only read: a dry-run runs them and lists what they find.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Mapping

from runner.checks.checkpoint import CheckpointError, torch_dist_complete, validate_hf_checkpoint
from runner.checks.dataset import DatasetError, validate_jsonl
from runner.flags import FlagSet
from runner.gpus import GpuFacts
from runner.recipes.base import Recipe


def port_problem(host: str, port: int, what: str, flag: str) -> str | None:
    """None if `port` can be bound on `host`; else why not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do: connections lingering in TIME_WAIT from an earlier
        # run must not count as "in use"; a listening socket still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} ({what}) is already in use, maybe by another Ray cluster "
                        f"(`ray status` tells); stop it or pass {flag} with a free port")
            if exc.errno == errno.EADDRNOTAVAIL:
                return (f"MASTER_ADDR {host} is not an address of this machine; run on the head node or set "
                        f"MASTER_ADDR / --master-addr to one of its addresses")
            return f"cannot bind {host}:{port} ({what}): {exc.strerror}"
    return None


def private_dir_problem(path: str) -> str | None:
    """The run's private directory (--ray-temp-dir) can be ours, mode 0700: an existing one must be a
    directory of this user (another user's could be read, or swapped, under Ray's logs and sockets)."""
    import os

    p = Path(path)
    if p.exists():
        st = p.stat()
        if not p.is_dir():
            return f"--ray-temp-dir {path} is a file; name a directory that does not exist yet (it is made mode 0700)"
        if st.st_uid != os.geteuid():
            return (f"--ray-temp-dir {path} belongs to another user (uid {st.st_uid}), who could read Ray's logs "
                    f"and reach its sockets there; name a directory of yours, or one that does not exist yet")
        return None
    existing = p.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"--ray-temp-dir {path} cannot be created under {existing} (not writable); choose another"
    return None


# `ray start` binds its dashboard agent to this port on every node whatever
# --port and --dashboard-port say. While another Ray instance on the machine
# holds it, a new head's job agent never comes up, and every job submission
# fails with "No available agent to submit job" until the timeout.
RAY_DASHBOARD_AGENT_PORT = 52365


def other_ray_problem() -> str | None:
    """A Ray instance already running on this machine (any address), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", RAY_DASHBOARD_AGENT_PORT))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"port {RAY_DASHBOARD_AGENT_PORT} (Ray's dashboard agent) is in use: another Ray instance "
                        f"runs on this machine (`ray status` tells); with it, this run's job agent could not start "
                        f"and no job could be submitted; stop that Ray first (one run per machine)")
    return None


def slime_problems(recipe: Recipe, slime_dir: str | None, megatron_dir: str | None) -> list[str]:
    problems = []
    if not slime_dir:
        problems.append("SLIME_DIR is not set: pass --slime-dir or export SLIME_DIR (the flake's apps set it)")
    elif not (Path(slime_dir) / "train.py").is_file():
        problems.append(f"{slime_dir}/train.py not found: SLIME_DIR must point at a slime checkout "
                        f"(commit {recipe.source.commit[:9]})")
    if not megatron_dir:
        problems.append("MEGATRON_DIR is not set: pass --megatron-dir or export MEGATRON_DIR (the flake's apps set it)")
    elif not (Path(megatron_dir) / "megatron").is_dir():
        problems.append(f"{megatron_dir}/megatron not found: MEGATRON_DIR must point at a Megatron-LM checkout")
    return problems


def megatron_patch_problems(recipe: Recipe, slime_dir: str | None, megatron_dir: str | None,
                            environ: Mapping[str, str]) -> list[str]:
    """slime's Megatron patch in MEGATRON_DIR, judged as the doctor judges it
    (runner.checks.stack.megatron_patch_check): without it slime's parser
    rejects a Megatron recipe's flags, but only once Ray is up and the job runs."""
    from runner.checks.rows import FAIL
    from runner.checks.stack import megatron_patch_check

    check = megatron_patch_check(recipe.backend, slime_dir, megatron_dir, environ)
    if check.status != FAIL:
        return []
    return [f"{check.detail}; fix: {check.fix}" if check.fix else check.detail]


def slime_resume_problems(slime_dir: str | None) -> list[str]:
    """SLIME_DIR's slime must continue a resumed (or restarted) run at the
    checkpoint's rollout, as the doctor judges it (doctor_checks.slime_resume_check):
    otherwise a resume silently trains from rollout 0 and overwrites checkpoints."""
    from runner.checks.rows import FAIL
    from runner.checks.stack import slime_resume_check

    check = slime_resume_check(slime_dir)
    if check.status != FAIL:
        return []
    return [f"{check.detail}; fix: {check.fix}"]


def gpu_problems(recipe: Recipe, facts: GpuFacts, gpus_per_node_needed: int) -> list[str]:
    problems = []
    if facts.error:
        return [f"cannot see GPUs: {facts.error}"]
    if facts.count < gpus_per_node_needed:
        problems.append(f"recipe {recipe.name} needs {gpus_per_node_needed} GPUs on this node, "
                        f"found {facts.count} ({facts.source}); use a bigger node or another recipe")
    if recipe.backend == "megatron":
        blackwell = [g for g in facts.gpus if g.is_blackwell]
        if blackwell:
            g = blackwell[0]
            cc = ".".join(map(str, g.compute_capability or ()))
            problems.append(f"GPU {g.index} ({g.name}, compute capability {cc}) is Blackwell: slime's Megatron "
                            f"recipes are unsupported there upstream; use --recipe fsdp")
    return problems


def checkpoint_problems(flags: FlagSet, backend: str) -> list[str]:
    """The HF checkpoint (--hf-checkpoint) and, for Megatron, the converted one (--ref-load)."""
    problems = []
    hf = flags.value("hf-checkpoint")
    if hf:
        try:
            validate_hf_checkpoint(Path(hf))
        except CheckpointError as exc:
            problems.append(str(exc))
    ref = flags.value("ref-load")
    if backend == "megatron" and ref and not torch_dist_complete(Path(ref)):
        problems.append(f"--ref-load {ref} is not a complete torch_dist checkpoint "
                        f"(no latest_checkpointed_iteration.txt); run `python -m runner convert` first")
    return problems


def dataset_problems(flags: FlagSet) -> list[str]:
    """Prompt and eval JSON lines carry the recipe's input and label keys."""
    problems = []
    keys = (flags.value("input-key", "input"), flags.value("label-key", "label"))
    prompt = flags.value("prompt-data")
    # --eval-prompt-data NAME PATH [NAME PATH ...]
    paths = ([prompt] if prompt else []) + list((flags.get("eval-prompt-data") or ())[1::2])
    for path in paths:
        try:
            validate_jsonl(Path(path), keys)
        except DatasetError as exc:
            problems.append(str(exc))
    return problems

