"""The first run.json of a run, assembled from the plan. Pure.

Secrets never get in: process environments pass through redact_env (names
like *TOKEN, *API_KEY) and the whole record through redact_json with the
secret values themselves (WANDB_API_KEY, HF_TOKEN, the Ray token).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runner.gpus import GpuFacts
from runner.launch.plan import Process
from runner.locations import Locations
from runner.runs.record import now_iso
from runner.runs.setup import RunSetup, describe_layer
from runner.runs.sinks import sinks_record
from runner.runs.notify import webhook_env_name
from runner.secrets import redact_argv, redact_env, redact_json


@dataclass(frozen=True)
class RunContext:
    """What `train` knows about a run beyond its processes."""

    setup: RunSetup
    locations: Locations
    gpu_facts: GpuFacts
    detach: bool
    ready_timeout: float
    test_entrypoint: str | None = None
    # The Slurm job the run's Ray runs in ({"job_id", "nodes", "head_node"}), or None.
    slurm: dict | None = None
    # How the run's owner keeps it (runner.runs.keeper.KeeperConfig): restarts, hang limits, notifications.
    keeper: dict | None = None


def _process(p: Process) -> dict:
    return {"purpose": p.purpose, "argv": redact_argv(p.argv), "env": redact_env(p.env), "cwd": p.cwd}


def _gpus(facts: GpuFacts) -> dict:
    return {
        "source": facts.source,
        "count": len(facts.gpus),
        "nvlink_links": facts.nvlink_links,
        "error": facts.error,
        "devices": [{"index": g.index, "name": g.name, "memory_mib": g.memory_mib,
                     "compute_capability": ".".join(map(str, g.compute_capability)) if g.compute_capability else None,
                     "driver": g.driver_version, "uuid": g.uuid} for g in facts.gpus],
    }


def build_record(tp, ctx: RunContext, software: dict, secrets: list[str], host: str,
                 cache_entries_at_start: dict[str, int | None] | None = None) -> dict:  # noqa: ANN001 - a TrainPlan
    setup, spec = ctx.setup, tp.cluster
    entry = redact_argv(tp.job.argv[list(tp.job.argv).index("--") + 1:])
    caches = {var: {"path": path, "source": setup.kernel_cache.sources.get(var),
                    "entries_at_start": (cache_entries_at_start or {}).get(var)}
              for var, path in setup.kernel_cache.env.items()}
    record = {
        "id": setup.run_id,
        "dir": str(setup.paths.dir),
        "state": "starting",
        "created_at": now_iso(),
        "ended_at": None,
        "exit_code": None,
        "detail": "",
        "request": {**setup.request, "detach": ctx.detach, "test_entrypoint": ctx.test_entrypoint},
        "resumed_from": setup.resumed_from,
        "changes_on_resume": list(setup.changes),
        # The runner's options for a long run (runner.runs.setup.long_run_options); the webhook's URL is a
        # secret: only the variable's name.
        "long_run": {**setup.long_run, "notify_webhook_env": webhook_env_name(os.environ)},
        "recipe": setup.recipe,
        "checkpoint": {"folder": setup.checkpoint_dir, "load": tp.flags.value("load"), "save": tp.flags.value("save"),
                       "save_interval": tp.flags.value("save-interval")},
        "locations": {name: {"value": s.value, "source": s.source} for name, s in (
            ("base_folder", ctx.locations.base_folder), ("slime_dir", ctx.locations.slime_dir),
            ("megatron_dir", ctx.locations.megatron_dir), ("master_addr", ctx.locations.master_addr),
            ("runs_dir", setup.runs_dir))},
        "job": {"submission_id": setup.run_id, "entrypoint": entry, "runtime_env": {
            "env_vars": redact_env(tp.runtime_env.get("env_vars", {})),
            **({"worker_process_setup_hook": tp.runtime_env["worker_process_setup_hook"]}
               if "worker_process_setup_hook" in tp.runtime_env else {})},
                # Names only: the values went to the job's processes through a private file (runner.launch.job_secrets).
                "secrets_passed": [name for names in tp.secret_files.values() for name in names],
                "submitted_at": None},
        "processes": [_process(p) for p in (tp.head, *tp.workers, tp.job)],
        "ray": {"temp_dir": spec.temp_dir, "logs": os.path.join(spec.head_temp_dir, "session_latest", "logs"),
                "gcs": spec.gcs_address, "dashboard": spec.dashboard_url, "token_auth": spec.token_auth,
                "ready_timeout_s": ctx.ready_timeout},
        "logs": {"job": str(setup.paths.job_log), "runner": str(setup.paths.runner_log) if ctx.detach else None,
                 "ray": os.path.join(spec.head_temp_dir, "session_latest", "logs")},
        # slime's metric lines as the run's owner collects them (runner.runs.collector), and the files
        # of slime's own sinks, kept in the run directory (runner.runs.sinks).
        "metrics": {"jsonl": str(setup.paths.dir / "metrics.jsonl"),
                    "progress": str(setup.paths.dir / "progress.json")},
        "sinks": sinks_record(tp.flags, tp.runtime_env.get("env_vars", {})),
        "kernel_caches": caches,
        "hosts": {"head": host, "master_addr": spec.master_addr, "workers": list(spec.workers),
                  "worker_launcher": spec.worker_launcher, "nodes": spec.nodes},
        "slurm": ctx.slurm,
        "gpus": _gpus(ctx.gpu_facts),
        "software": software,
        "supervisor": None,
        "keeper": ctx.keeper,
        "attempts": [],
    }
    return redact_json(record, secrets)


def describe_request(request: dict) -> str:
    parts = [f"--recipe {request.get('recipe')}"]
    for layer in request.get("overrides") or []:
        parts += describe_layer(layer)
    return " ".join(parts)
