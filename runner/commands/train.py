"""Run one of slime's Qwen3-Next recipes: preflight, Ray up, job, logs, clean-up.

Preflight first (read-only; any error stops here and nothing is started):
slime/Megatron checkouts, GPUs, checkpoints, datasets, parallel sizes, memory
plan, ports. Then a Ray head on MASTER_ADDR (job API on 127.0.0.1), workers
(multinode: --hostfile over ssh, or srun under Slurm), slime's train.py as a
Ray job whose logs stream here; the exit code is the job's. On exit, error,
Ctrl-C or SIGTERM the job is stopped, then the Ray processes this run started,
and nothing else. With --slurm, all of that runs in a Slurm batch job instead
(runner.commands.train_slurm).

examples:
  python -m runner train --recipe megatron-8gpu --dry-run     # what would run
  python -m runner train --recipe megatron-8gpu-80gb          # 8 x 80 GB layout
  python -m runner train --recipe megatron-8gpu --low-memory --set lr=2e-6
  MASTER_ADDR=10.0.0.1 python -m runner train --recipe megatron-multinode --hostfile hosts
  python -m runner train --recipe fsdp -- --num-rollout 10    # raw slime flags
  python -m runner train --recipe megatron-8gpu --detach      # outlives the terminal (status, logs -f, stop)
  python -m runner train --resume RUN                         # continue RUN from its latest checkpoint
  python -m runner train --recipe megatron-multinode --slurm --partition gpu --time 2-00:00:00   # sbatch it
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import secrets as _secrets
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Mapping

from runner.checks import inputs, preflight
from runner.checks.request import OverrideLayer, check_request
from runner.commands import train_slurm
from runner.commands.common import print_plan
from runner.commands.options import (add_location_arguments, add_override_arguments, add_run_arguments,
                                     locations_from_args, override_layer_from_args, run_request_from_args)
from runner.flags import FlagSet
from runner.gpus import GpuFacts, nccl_nvls_value, query_gpus
from runner.interpreter import own_python
from runner.launch.cluster import slurm_cli
from runner.launch.cluster.hostfile import HostfileError, read_workers
from runner.launch.cluster.ray_args import (dashboard_modules, pid_digits, port_problems, positive_seconds,
                                            socket_path_problem, tcp_port)
from runner.launch.cluster.slurm import Allocation
from runner.launch.cluster.spec import DEFAULT_DASHBOARD_PORT, DEFAULT_GCS_PORT, ClusterSpec, supports_token_auth
from runner.launch.plan import Plan
from runner.launch.train_plan import TrainInputs, TrainPlan, build_train_plan
from runner.locations import Setting
from runner.planner import fitting_derived_recipe, memory_fit
from runner.recipes import RECIPES, get_recipe
from runner.recipes.base import Recipe
from runner.runs import sinks
from runner.runs.machine_lock import active_run_problem
from runner.runs.manifest import RunContext
from runner.runs.setup import SetupError, checkpoint_layer, prepare_run, resolve_resume_point, run_notes, run_problems
from runner.runs.slurm_run import adopt as adopt_prepared_run
from runner.runs.long_run import long_run_notes, long_run_problems, run_save_plan
from runner.secrets import PASSED_SECRETS, RUNNER_ONLY_SECRETS, secret_flag_error, secret_values



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", choices=sorted(RECIPES), help="which slime recipe to run (required unless --resume)")
    add_override_arguments(p)
    add_location_arguments(p)
    add_run_arguments(p)
    ray = p.add_argument_group("Ray cluster")
    ray.add_argument("--hostfile", help="multinode: worker hosts, one per line (first column; MASTER_ADDR is skipped)")
    ray.add_argument("--ray-port", type=tcp_port, default=DEFAULT_GCS_PORT,
                     help="GCS port of the head (default %(default)s)")
    ray.add_argument("--dashboard-host", default="127.0.0.1",
                     help="address the dashboard and job API bind to (default %(default)s; 0.0.0.0 lets anyone "
                          "who reaches this port run code)")
    ray.add_argument("--dashboard-port", type=tcp_port, default=DEFAULT_DASHBOARD_PORT, help="default %(default)s")
    ray.add_argument("--ray-auth", choices=("auto", "token", "off"), default="auto",
                     help="Ray token authentication (Ray >= 2.52): auto = on (default); off lets any local user, "
                          "and anyone who reaches Ray's ports, submit jobs that run as you")
    ray.add_argument("--ready-timeout", type=positive_seconds, default=300.0,
                     help="seconds to wait for all nodes and GPUs to register (default %(default)s)")
    ray.add_argument("--ray-temp-dir", metavar="DIR",
                     help="the run's private directory (mode 0700) holding Ray's temp dir, e.g. DIR/head "
                          "(default /tmp/slime-ray-<random>)")
    p.add_argument("--force", action="store_true", help="start even if the memory planner says it will not fit")
    p.add_argument("--accept-changes", action="store_true",
                   help="with --resume RUN: run with a recipe or overrides other than RUN's recorded ones (the "
                        "change is recorded in the new run's run.json)")
    p.add_argument("--test-entrypoint", metavar="PY_FILE",
                   help="launch-path test: Ray with 0 GPUs (head, plus --hostfile workers if given), run PY_FILE "
                        "with the recipe's arguments in place of slime's train.py; skips GPU, checkpoint and data "
                        "checks")
    train_slurm.add_arguments(p)
    p.add_argument("slime_args", nargs="*", metavar="-- SLIME_ARGS",
                   help="extra slime/Megatron flags after `--`; they override the recipe's (last one wins)")


def _workers(args, recipe, master_addr: str, allocation, environ,
             problems: list[str]) -> tuple[tuple[str, ...], str, str]:
    """(worker hosts, launcher, head node name). allocation: the Slurm allocation this runs in, if any."""
    nodes = recipe.layout.nodes
    if args.test_entrypoint and args.hostfile:
        # Launch test across hosts: every hostfile worker joins with 0 GPUs.
        try:
            return tuple(read_workers(Path(args.hostfile), master_addr)), "ssh", ""
        except HostfileError as exc:
            problems.append(str(exc))
            return (), "ssh", ""
    if args.test_entrypoint and allocation is not None:
        # Launch test inside a Slurm allocation: its other nodes join with 0 GPUs.
        return allocation.others, "slurm", allocation.this_node
    if args.test_entrypoint or nodes == 1:
        if args.hostfile:
            problems.append(f"--hostfile is for multinode recipes; {recipe.name} runs on one node")
        return (), "none", ""
    if args.hostfile:
        try:
            workers = read_workers(Path(args.hostfile), master_addr)
        except HostfileError as exc:
            problems.append(str(exc))
            return (), "ssh", ""
        launcher, head = "ssh", ""
    elif allocation is not None:
        workers, launcher, head = list(allocation.others), "slurm", allocation.this_node
    elif environ.get("SLURM_JOB_NODELIST"):
        return (), "slurm", ""  # the allocation could not be read: that problem is listed
    else:
        problems.append(f"{recipe.name} needs {nodes} nodes: pass --hostfile (one worker address per line) "
                        f"or run inside a Slurm allocation (SLURM_JOB_NODELIST)")
        return (), "none", ""
    if len(workers) != nodes - 1:
        problems.append(f"{recipe.name} needs {nodes - 1} worker node(s) besides MASTER_ADDR {master_addr}; "
                        f"found {len(workers)}: {', '.join(workers) or 'none'}")
    return tuple(workers), launcher, head


def _allocation(args: argparse.Namespace, recipe: Recipe, environ: Mapping[str, str],
                problems: list[str]) -> Allocation | None:
    """The Slurm allocation a multinode run (or launch test) runs in; None outside one, or with --hostfile."""
    if not environ.get("SLURM_JOB_NODELIST") or args.hostfile or (recipe.layout.nodes == 1 and not args.test_entrypoint):
        return None
    try:
        return slurm_cli.read_allocation(environ)
    except slurm_cli.SlurmError as exc:
        problems.append(str(exc))
        return None


def gather(args, environ=None, gpu_facts: GpuFacts | None = None) -> tuple[TrainPlan | None, Plan]:
    """Collect inputs (reads only), plan, and attach every problem found."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    warnings: list[str] = []
    try:
        setup = prepare_run(run_request_from_args(args), environ, now=time.time(), suffix=_secrets.token_hex(2))
    except SetupError as exc:
        return None, _failed(str(exc))
    if getattr(args, "prepared_run", None):
        setup = adopt_prepared_run(setup, args.prepared_run)
    # `train --slurm` plans here, on a login node, for nodes Slurm picks later: what only those can
    # tell (GPUs, ports, MASTER_ADDR) is checked there, by the batch script's own `train`.
    submitting = bool(getattr(args, "slurm", False))
    recipe = get_recipe(setup.recipe)
    allocation = None if submitting else _allocation(args, recipe, environ, problems)
    nodes = (getattr(args, "nodes", None) or recipe.layout.nodes) if submitting else recipe.layout.nodes
    # A launch test is multinode when it is given a hostfile, or runs in an allocation of several nodes.
    if args.test_entrypoint and not submitting:
        multinode = bool(args.hostfile) or bool(allocation and len(allocation.nodes) > 1)
    else:
        multinode = nodes > 1
    locs = locations_from_args(args, environ, default_master_addr=None if multinode else "127.0.0.1")
    if submitting:
        locs = replace(locs, master_addr=Setting("<NodeAddr of the allocation's first node>", "Slurm, at start"))
    head_address = slurm_cli.node_address(allocation) if allocation and multinode else None
    if locs.master_addr.value is None and head_address:
        # In an allocation the head is this node: its address as Slurm reaches it.
        locs = replace(locs, master_addr=Setting(head_address, f"Slurm, NodeAddr of {allocation.this_node}"))
    master_addr = locs.master_addr.value
    if master_addr is None:
        problems.append(f"{recipe.name} needs MASTER_ADDR: the head node's address that the workers reach; "
                        f"export MASTER_ADDR or pass --master-addr")
        master_addr = "<MASTER_ADDR>"
    else:
        ipv6 = inputs.ipv6_problem(master_addr, "MASTER_ADDR", locs.master_addr.source)
        problems += filter(None, [ipv6])
        if multinode and not ipv6 and not submitting:
            problems += filter(None, [inputs.multinode_master_problem(master_addr, locs.master_addr.source)])
    base_problem = inputs.base_folder_problem(locs)
    problems += filter(None, [base_problem])
    run_dir = str(setup.paths.dir)
    resumed: dict = {}

    def more_layers(flags: FlagSet) -> tuple:
        """Layers that depend on the run's flags: a resume's --ckpt-step (the latest complete checkpoint,
        which the run's own flags decide: its data state), then the wandb dir."""
        layers: list = []
        if setup.resumed_from:
            resumed["setup"], ckpt_step, resumed["problems"] = resolve_resume_point(setup, flags)
            layers += ckpt_step
        # TensorBoard's and wandb's files (when the flags turn them on) go into the run directory.
        layers += filter(None, [sinks.wandb_layer(flags, run_dir)])
        return tuple(layers)

    # The one validation pipeline: every layer checked, the flags rendered, the shape derived, once.
    request = check_request(
        recipe, str(locs.base), override_layer_from_args(args),
        replay=[OverrideLayer.from_record(layer) for layer in setup.replay],
        replayed_run=(setup.resumed_from or {}).get("run"), fixed=(checkpoint_layer(setup.checkpoint_dir),),
        more_layers=more_layers,
        runner_options=getattr(args, "own_options", None) or (), allow_unknown=bool(args.test_entrypoint))
    if request.fatal:  # a layer that cannot be applied: the one thing to say
        return None, _failed(request.fatal)
    problems += request.override_problems
    problems += request.replay_problems
    setup = resumed.get("setup", setup)
    problems += resumed.get("problems", [])

    if submitting:
        workers = tuple(f"<node {i} of the allocation>" for i in range(2, nodes + 1))
        launcher, head_node = "slurm", "<node 1 of the allocation>"
    else:
        workers, launcher, head_node = _workers(args, recipe, master_addr, allocation, environ, problems)
    test = bool(args.test_entrypoint)
    if test:
        facts = GpuFacts(source="skipped (launch test)")
    elif submitting:
        facts = GpuFacts(source="not seen from here: checked on the allocation's nodes when the job starts")
    else:
        facts = gpu_facts or query_gpus(environ)
    nvls, nvls_source = nccl_nvls_value(facts, environ)

    ray_version = _ray_version()
    # Every run, one node included: without a token any local user reaches the job API on 127.0.0.1
    # (the job's runtime env, and jobs that run as you) and Ray's other ports.
    token_auth = args.ray_auth != "off"
    if token_auth and ray_version is not None and not supports_token_auth(ray_version):
        problems.append(f"Ray {ray_version} has no token authentication (Ray >= 2.52 has): without it any local "
                        f"user can submit jobs that run as you; use the pinned stack (Ray 2.53), or pass "
                        f"--ray-auth off to run without it")
    if not token_auth:
        warnings.append("--ray-auth off: Ray token authentication is off: any local user, and anyone who reaches "
                        "Ray's ports, can submit jobs that run as you")
    ray_exe = inputs.ray_executable()
    problems += filter(None, [inputs.job_python_problem(ray_exe)])
    if ray_exe is None:
        problems.append("`ray` is not on PATH: run inside the pinned stack (nix develop, or slime's image)")
        ray_exe = "ray"
    run_id = setup.run_id
    spec = ClusterSpec(
        ray=ray_exe, master_addr=master_addr, gcs_port=args.ray_port, dashboard_host=args.dashboard_host,
        dashboard_port=args.dashboard_port, gpus_per_node=0 if test else recipe.layout.gpus_per_node,
        nodes=1 + len(workers) if test else recipe.layout.nodes,
        temp_dir=os.path.abspath(args.ray_temp_dir) if args.ray_temp_dir else f"/tmp/slime-ray-{_secrets.token_hex(4)}",
        token_auth=token_auth,
        token=("<generated at launch>" if args.dry_run else _secrets.token_urlsafe(32)) if token_auth else None,
        workers=workers, worker_launcher=launcher, run_id=run_id,
    )
    secret_names = tuple(k for k in PASSED_SECRETS if environ.get(k))
    runner_only = tuple(k for k in RUNNER_ONLY_SECRETS if environ.get(k))
    problems += filter(None, [preflight.private_dir_problem(spec.temp_dir),
                              socket_path_problem(spec, pid_digits(), dashboard_modules())])
    unusable_ports = port_problems(args.ray_port, args.dashboard_port)
    problems += unusable_ports.values()
    tp = build_train_plan(TrainInputs(
        recipe=recipe, flags=request.flags, slime_dir=locs.slime_dir.value,
        megatron_dir=locs.megatron_dir.value, cluster=spec, python=sys.executable, setup=setup,
        python_flags=tuple(own_python()[1:]),
        nccl_nvls_enable=nvls, secret_names=secret_names, runner_only_secrets=runner_only,
        runner_path=runner_import_root(),
        ray_banner=getattr(args, "verbose", False),
        test_entrypoint=os.path.abspath(args.test_entrypoint) if test else None, head_node=head_node,
        submit_timeout=args.ready_timeout, echo_job_log=not args.detach))
    plan = tp.plan
    plan.notes[:0] = locs.describe() + [f"NCCL_NVLS_ENABLE = {nvls} (from {nvls_source})"]
    from runner.runs.keeper_args import keeper_notes, keeper_record

    saving = run_save_plan(setup, tp.flags, recipe.backend)
    keeper, keeper_problems = keeper_record(args, checkpoint_bytes=saving.each.total)
    problems += keeper_problems
    tp.run = RunContext(setup, locs, facts, detach=args.detach, ready_timeout=args.ready_timeout,
                        test_entrypoint=tp.inputs.test_entrypoint,
                        slurm=allocation.to_record() if allocation and launcher == "slurm" else None, keeper=keeper)
    plan.notes += run_notes(setup, tp.flags, detach=args.detach)
    plan.notes += keeper_notes(keeper, detach=args.detach)
    problems += run_problems(setup, tp.flags)
    plan.notes += long_run_notes(setup, tp.flags, saving, environ)
    if not test and not submitting:  # a launch test saves no model; --slurm: checked where the job runs
        # Not overridden by --force: a run that fills the disk dies at a save, hours in, half written.
        problems += long_run_problems(setup, tp.flags, saving)
    warnings += setup.warnings
    # One run per machine. When a run holds the machine, its Ray holds the ports too: that is the one
    # thing to say (a "port in use, pass --ray-port" could not help).
    # (`train --slurm` runs on the allocation's nodes, not here.)
    busy = None if submitting else active_run_problem(environ)
    problems += filter(None, [busy])

    flags: FlagSet = tp.flags
    secret_flag = secret_flag_error(f.name for f in flags)
    if secret_flag:
        problems.append(secret_flag)
    problems += request.rule_problems
    topology = request.topology
    problems += topology
    warnings += request.warnings
    if getattr(args, "accept_changes", False) and not getattr(args, "resume", None):
        warnings.append("--accept-changes applies to --resume RUN only; ignored")
    if recipe.status != "faithful":
        warnings.append(f"recipe {recipe.name} is {recipe.status}: not yet run at full scale")
    if args.dashboard_host not in ("127.0.0.1", "localhost"):
        warnings.append(f"--dashboard-host {args.dashboard_host}: the Ray job API accepts code from anyone who "
                        f"reaches {args.dashboard_host}:{args.dashboard_port}")
    dashboard_ipv6 = inputs.ipv6_problem(args.dashboard_host, "--dashboard-host")
    problems += filter(None, [dashboard_ipv6])
    if master_addr != "<MASTER_ADDR>" and not submitting and not busy:
        for port, what, flag in ((args.ray_port, "Ray GCS", "--ray-port"),
                                 (args.dashboard_port, "Ray dashboard/job API", "--dashboard-port")):
            if flag in unusable_ports:
                continue  # said above; whether it is free too does not matter
            host = master_addr if what == "Ray GCS" else args.dashboard_host
            if inputs.is_ipv6_literal(host) or (host == args.dashboard_host and dashboard_ipv6):
                continue  # refused above (an IPv4 bind probe of it would only fail on the address family)
            problem = preflight.port_problem(host, port, what, flag)
            if problem:
                problems.append(problem)
    if not test:
        checkouts = preflight.slime_problems(recipe, locs.slime_dir.value, locs.megatron_dir.value)
        problems += checkouts or (preflight.megatron_patch_problems(recipe, locs.slime_dir.value,
                                                                     locs.megatron_dir.value, environ)
                                  + preflight.slime_resume_problems(locs.slime_dir.value))
        if not submitting:
            problems += preflight.gpu_problems(recipe, facts, recipe.layout.gpus_per_node)
        if not base_problem:  # files under a BASE_FOLDER that is a file would only repeat it
            problems += preflight.checkpoint_problems(flags, recipe.backend)
            problems += preflight.dataset_problems(flags)
        fit = None if topology else memory_fit(recipe, flags, facts, request.checked_shape)  # it divides by the sizes
        fit_problems = [f"memory plan: {r}" for r in fit[1]] if fit and not fit[0] else []
        if args.force:
            warnings += [f"{p} (--force: starting anyway)" for p in fit_problems]
        else:
            problems += [f"{p}; pass --force to start anyway" for p in fit_problems]
        hint = fitting_derived_recipe(recipe, facts, str(locs.base)) if fit_problems else None
        if hint:
            (warnings if args.force else problems).append(hint)
    for p in problems:
        plan.error(p)
    for w in warnings:
        plan.warn(w)
    return tp, plan


def runner_import_root() -> str | None:
    """The directory that makes this runner importable (the job's secrets hook runs it in every Ray
    worker), or None when it is installed in this Python's site-packages, where the job's Python finds it."""
    import site
    import sysconfig

    import runner

    root = os.path.dirname(os.path.dirname(os.path.abspath(runner.__file__)))
    paths = sysconfig.get_paths()
    installed = {os.path.abspath(p) for p in (*site.getsitepackages(), paths["purelib"], paths["platlib"])}
    return None if root in installed else root


def _ray_version() -> str | None:
    try:
        return importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return None


def _failed(message: str) -> Plan:
    plan = Plan()
    plan.error(message)
    return plan


def run(args) -> int:
    usage = train_slurm.usage_problem(args)
    if usage:
        print(f"error: {usage}", file=sys.stderr)
        return 2
    if args.slurm:
        return train_slurm.run(args)
    tp, plan = gather(args)
    secrets = secret_values(os.environ)
    if tp is not None and tp.cluster.token:
        secrets.append(tp.cluster.token)
    if tp is None:  # a usage error (bad --set/--unset): fails even in a dry-run
        print(f"error: {plan.errors[0].message}", file=sys.stderr)
        return _refused(args, 2, plan.errors[0].message)
    if args.dry_run:
        return print_plan(plan, args, secrets)
    if plan.errors:
        return _refused(args, print_plan(plan, args, secrets, problems_only=True), plan.errors[0].message)
    print_plan(plan, args, secrets, problems_only=True)
    assert tp is not None
    from runner.runs.start import start_run

    return _refused(args, start_run(tp, tp.run, secrets))


def _refused(args: argparse.Namespace, rc: int, reason: str | None = None) -> int:
    """A `train --slurm` run whose batch job refuses to start it (exit 2) is recorded as failed, with why."""
    if rc == 2 and getattr(args, "prepared_run", None):
        from runner.runs.slurm_run import mark_refused

        mark_refused(Path(args.prepared_run), reason)
    return rc
