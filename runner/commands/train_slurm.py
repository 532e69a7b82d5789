"""`train --slurm`: submit a run as a Slurm batch job instead of running it here.

The same preflight as `train` (recipe, overrides, topology, checkouts,
checkpoints, data, runs dir), except what only the allocation's nodes can
tell (their GPUs, ports, MASTER_ADDR: checked there when the job starts);
then what Slurm itself has: the partition (sinfo, scontrol), its nodes and
GPUs, the time limit against the recipe's expected duration, and `sbatch
--test-only` for the rest (account, QOS). Any problem: one line each, exit 2,
nothing written or submitted.

Then the run directory gets run.json ("queued") and sbatch.sh (rendered by
runner.launch.cluster.sbatch), which is submitted. On the allocation's first node
the script runs this same `train` with `--prepared-run DIR`: the Ray head
there, a Ray worker on every other node through srun, the job, clean-up.
`status`, `logs` and `stop` follow the run from the login node.

examples:
  python -m runner train --recipe megatron-multinode --slurm --partition gpu --time 2-00:00:00 --dry-run
  python -m runner train --recipe megatron-multinode --slurm --partition gpu --account proj --time 2-00:00:00
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from runner.launch.cluster import slurm_cli
from runner.launch.cluster.sbatch import BatchScript, Environment, UnsafeValue, render
from runner.launch.cluster.slurm_request import Expectation, SlurmRequest, request_problems

SCRIPT_NAME = "sbatch.sh"
OUTPUT_NAME = "slurm-%j.out"
# Options of `train` that are about the submission only: the batch script's own `train` does not get them.
SUBMISSION_ONLY = ("slurm", "partition", "account", "time", "qos", "nodes", "dry_run", "json", "prepared_run")
# Set by the flake's apps and devShell: a script that sets up their environment (nix/apps.nix).
ENV_SCRIPT_VAR = "SLIME_RUNNER_ENV_SCRIPT"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Slurm (train --slurm: submit the run as a batch job; README \"Multi-node\")")
    g.add_argument("--slurm", action="store_true",
                   help="write an sbatch script into the run directory and submit it, instead of running here; "
                        "--dry-run prints the script")
    g.add_argument("--partition", help="Slurm partition (default: the cluster's default partition)")
    g.add_argument("--account", help="Slurm account to charge")
    g.add_argument("--time", metavar="LIMIT",
                   help="the job's time limit (MINUTES, HH:MM:SS or DAYS-HH:MM:SS; default: the partition's)")
    g.add_argument("--qos", help="Slurm quality of service")
    g.add_argument("--nodes", type=int, metavar="N",
                   help="launch test only (--test-entrypoint): nodes to allocate (default: the recipe's)")
    g.add_argument("--prepared-run", metavar="DIR",
                   help="run into DIR, the run directory `train --slurm` prepared (its batch script passes this)")


def usage_problem(args) -> str | None:  # noqa: ANN001
    """A combination of options that cannot work with --slurm (or without it)."""
    if not args.slurm:
        for name in ("partition", "account", "time", "qos", "nodes"):
            if getattr(args, name) is not None:
                return f"--{name} is for `train --slurm`; add --slurm to submit the run as a batch job"
        return None
    if args.prepared_run:
        return "--prepared-run is what a --slurm run's batch script passes; it does not go with --slurm"
    if args.hostfile:
        return "--slurm starts the Ray workers with srun on the allocation's nodes; drop --hostfile"
    if args.master_addr:
        return ("--slurm: the Ray head is the allocation's first node, so Slurm picks MASTER_ADDR; "
                "drop --master-addr")
    if args.detach:
        return "--slurm runs never depend on this terminal (Slurm runs them); drop --detach"
    if args.nodes is not None and not args.test_entrypoint:
        return "--nodes is for launch tests (--test-entrypoint); a recipe's run gets the recipe's nodes"
    if args.nodes is not None and args.nodes < 1:
        return f"--nodes {args.nodes}: give at least 1"
    return None


def batch_command(args, run_dir: str, locations: dict[str, str], parser: argparse.ArgumentParser) -> tuple[str, ...]:  # noqa: ANN001
    """The batch script's `python -m runner train ...`: every option given here except the submission's own,
    the locations resolved here (so the job reads what was checked), and --prepared-run."""
    argv = ["train"]
    for action in parser._actions:
        if not action.option_strings or action.dest in SUBMISSION_ONLY or action.dest in locations:
            continue
        value = getattr(args, action.dest, None)
        option = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
        if isinstance(action, argparse._StoreTrueAction):
            argv += [option] if value else []
        elif isinstance(action, argparse._AppendAction):
            for item in value or ():
                argv += [option, str(item)]
        elif isinstance(action, argparse._StoreAction) and value is not None and value != action.default:
            argv += [option, str(value)]
    for dest, value in locations.items():
        argv += [f"--{dest.replace('_', '-')}", value]
    argv += ["--prepared-run", run_dir]
    if args.slime_args:
        argv += ["--", *args.slime_args]
    python = (sys.executable, "-P") if sys.flags.safe_path else (sys.executable,)
    return (*python, "-m", "runner", *argv)


def environment(environ) -> Environment:  # noqa: ANN001
    if environ.get(ENV_SCRIPT_VAR):
        return Environment(script=environ[ENV_SCRIPT_VAR])
    return Environment(pythonpath=environ.get("PYTHONPATH") or None)


def expectation(runs_dir: Path, recipe: str, flags, resumed_from: dict | None) -> Expectation | None:  # noqa: ANN001
    from runner.runs.pace import latest_pace

    pace = latest_pace(runs_dir, recipe)
    if pace is None:
        return None
    total = flags.int("num-rollout", 0)
    start = int((resumed_from or {}).get("iteration") or -1) + 1 if resumed_from else 0
    rollouts = max(0, total - start)
    return Expectation(pace.seconds_per_rollout * rollouts, f"{rollouts} rollouts at {pace.describe()}")


def run(args) -> int:  # noqa: ANN001
    from runner.cli import build_parser
    from runner.commands.train import gather
    from runner.secrets import redact_text, secret_values

    tp, plan = gather(args)
    secrets = secret_values(os.environ)
    if tp is None:
        print(f"error: {plan.errors[0].message}", file=sys.stderr)
        return 2
    if tp.cluster.token:
        secrets.append(tp.cluster.token)
    setup, recipe, test = tp.run.setup, tp.inputs.recipe, bool(tp.inputs.test_entrypoint)
    request = SlurmRequest(nodes=(args.nodes or recipe.layout.nodes) if test else recipe.layout.nodes,
                           gpus_per_node=0 if test else recipe.layout.gpus_per_node, partition=args.partition,
                           account=args.account, time_limit=args.time, qos=args.qos)
    expected = expectation(Path(setup.runs_dir.value), recipe.name, tp.flags, setup.resumed_from)
    problems = [p.message for p in plan.errors]
    warnings = [p.message for p in plan.problems if p.severity != "error"]
    try:
        problems += request_problems(request, slurm_cli.partitions(), recipe.name, expected)
    except slurm_cli.SlurmError as exc:
        problems.append(str(exc))
    locs = tp.run.locations
    locations = {"base_folder": locs.base_folder.value, "runs_dir": setup.runs_dir.value}
    locations.update({k: s.value for k, s in (("slime_dir", locs.slime_dir), ("megatron_dir", locs.megatron_dir))
                      if s.value})
    run_dir = str(setup.paths.dir)
    script_path = os.path.join(run_dir, SCRIPT_NAME)
    script = BatchScript(run_id=setup.run_id, request=request, output=os.path.join(run_dir, OUTPUT_NAME),
                         chdir=os.getcwd(), environment=environment(os.environ),
                         command=batch_command(args, run_dir, locations, build_parser().subcommand_parsers["train"]))
    try:
        text = render(script)
    except UnsafeValue as exc:
        problems.append(str(exc))
        text = ""
    if text and not problems:
        try:  # slurmctld's own verdict on partition, account, QOS and limits; submits nothing
            slurm_cli.test_only(text)
        except slurm_cli.SlurmError as exc:
            problems.append(f"Slurm would refuse this job: {exc}")
    notes = [f"expected duration: {expected.seconds:.0f} s ({expected.source})" if expected else
             (f"expected duration: unknown (no earlier run of {recipe.name} under {setup.runs_dir.value} shows two "
              f"rollouts in its job.log), so --time is not checked against it")]
    if args.dry_run:
        return _print_dry_run(args, text, script_path, problems, warnings, notes, secrets)
    for w in warnings:
        print(redact_text(f"warning: {w}", secrets), file=sys.stderr)
    if problems:
        for p in problems:
            print(redact_text(f"error: {p}", secrets), file=sys.stderr)
        return 2
    return _submit(tp, text, script_path, script.output, request, secrets)


def _print_dry_run(args, text, script_path, problems, warnings, notes, secrets) -> int:  # noqa: ANN001
    from runner.secrets import redact_json, redact_text

    if args.json:
        print(json.dumps(redact_json({"script": text, "script_path": script_path, "submit": ["sbatch", "--parsable",
                                      script_path], "notes": notes,
                                      "problems": [{"severity": "error", "message": p} for p in problems]
                                      + [{"severity": "warning", "message": w} for w in warnings]}, secrets),
                         indent=2))
        return 0
    print(redact_text(text, secrets), end="")
    print(f"# would write the above to {script_path} and run: sbatch --parsable {script_path}")
    for n in notes:
        print(f"# {n}")
    for w in warnings:
        print(redact_text(f"warning: {w}", secrets))
    for p in problems:
        print(redact_text(f"error: {p}", secrets))
    return 0


def _submit(tp, text: str, script_path: str, output: str, request: SlurmRequest, secrets: list[str]) -> int:  # noqa: ANN001
    from runner.launch.processes import write_private_file
    from runner.runs import provenance
    from runner.runs.identity import hostname
    from runner.runs.manifest import build_record
    from runner.runs.record import create_record, now_iso, update_record
    from runner.runs.slurm_run import queued_record
    from runner.runs.start import run_ref

    ctx, paths = tp.run, tp.run.setup.paths
    software = provenance.collect(python=tp.job.argv[0], pythonpath=tp.runtime_env["env_vars"].get("PYTHONPATH"),
                                  slime_dir=ctx.locations.slime_dir.value,
                                  megatron_dir=ctx.locations.megatron_dir.value, environ=os.environ)
    slurm = {"script": script_path, "output": output, "partition": request.partition, "account": request.account,
             "time": request.time_limit, "qos": request.qos, "nodes_requested": request.nodes,
             "gpus_per_node": request.gpus_per_node, "submitted_from": hostname(), "submitted_at": now_iso()}
    record = queued_record(build_record(tp, ctx, software, secrets, hostname(), {}), slurm, output)
    create_record(paths, record)
    write_private_file(Path(script_path), text)
    try:
        job_id = slurm_cli.submit(script_path)
    except slurm_cli.SlurmError as exc:
        update_record(paths, {"state": "failed", "detail": f"sbatch: {exc}", "ended_at": now_iso()})
        print(f"error: {exc} (run {ctx.setup.run_id} recorded as failed: {paths.dir})", file=sys.stderr)
        return 1
    job_output = output.replace("%j", job_id)
    update_record(paths, {"slurm": {"job_id": job_id, "output": job_output}, "logs": {"runner": job_output}})
    ref = run_ref(ctx.setup.run_id, ctx.setup.runs_dir)
    print(f"[runner] run {ctx.setup.run_id}: submitted as Slurm job {job_id}\n"
          f"    python -m runner status {ref}\n"
          f"    python -m runner logs -f {ref}\n"
          f"    python -m runner logs --runner {ref}\n"
          f"    python -m runner stop {ref}\n"
          f"  run directory: {paths.dir} (run.json, {SCRIPT_NAME}, job.log, checkpoints/; the job's output: "
          f"{Path(job_output).name})", file=sys.stderr)
    return 0
